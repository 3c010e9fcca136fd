package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const (
	shopPass = "e2eShopPassXYZ"
	sitePass = "e2eSitePassQRS"
)

// sandboxSetup runs paynorm and its sandbox in one process: the API on one
// port, the simulated GMO on another, and a few accounts shaped to reach
// every error type.
func sandboxSetup(t *testing.T) (*proc, string) {
	api, sim := freePort(t), freePort(t)
	cf := fmt.Sprintf(`{
	admin {ADMIN}
	auto_https off
	servers {
		metrics
	}
}
:%[1]d {
	paynorm {
		default_provider gmo
		max_body_bytes 4096
		account gmo {
			type gmo
			three_d_secure off
			endpoint http://127.0.0.1:%[2]d
			shop_id tshop00000001
			shop_pass %[3]s
			site_id tsite00000001
			site_pass {env.PAYNORM_E2E_SITE_PASS}
			timeout 400ms
		}
		account gmo-limited {
			type gmo
			three_d_secure off
			endpoint http://127.0.0.1:%[2]d
			shop_id tshop00000001
			shop_pass %[3]s
			rate_limit 0.01 2
			max_wait 10ms
		}
		account gmo-fragile {
			type gmo
			three_d_secure off
			endpoint http://127.0.0.1:%[2]d
			shop_id tshop00000001
			shop_pass %[3]s
			breaker 2 1m
		}
		account gmo-wrongpass {
			type gmo
			three_d_secure off
			endpoint http://127.0.0.1:%[2]d
			shop_id tshop00000002
			shop_pass wrong
		}
	}
}
:%[2]d {
	paynorm_sandbox e2e {
		slow_delay 2s
		shop tshop00000001 %[3]s
		shop tshop00000002 right
	}
}
`, api, sim, shopPass)
	// Credentials come from the environment as in production.
	t.Setenv("PAYNORM_E2E_SITE_PASS", sitePass)
	cf = strings.Replace(cf, "shop_pass "+shopPass+"\n\t\t\tsite_id", "shop_pass {env.PAYNORM_E2E_SHOP_PASS}\n\t\t\tsite_id", 1)
	t.Setenv("PAYNORM_E2E_SHOP_PASS", shopPass)
	p := start(t, cf, fmt.Sprintf("http://127.0.0.1:%d", api))
	return p, fmt.Sprintf("http://127.0.0.1:%d", sim)
}

func TestUnifiedAPIEndToEnd(t *testing.T) {
	p, sim := sandboxSetup(t)
	api := p.API + "/v1"
	var sentTokens []string
	pay := func(body string) *answer {
		return do(t, "POST", api+"/payments", body)
	}

	t.Run("authorize capture get cancel", func(t *testing.T) {
		sentTokens = append(sentTokens, "tok_visa_e2e1")
		a := pay(`{"order_id":"E2E-1","amount":1000,"tax":100,"capture":"manual","payment_method":{"token":"tok_visa_e2e1"},"metadata":{"client_field_1":"注文メモ"}}`)
		if a.Status != 200 || a.str("status") != "authorized" || a.str("id") != "gmo_E2E-1" || a.JSON["total"].(float64) != 1100 {
			t.Fatalf("authorize: %d %s", a.Status, a.Body)
		}
		if a.Header.Get("X-Request-Id") == "" {
			t.Fatal("no X-Request-Id")
		}
		a = do(t, "GET", api+"/payments/gmo_E2E-1", "")
		if a.Status != 200 || a.str("status") != "authorized" || a.str("metadata", "client_field_1") != "注文メモ" || a.str("card", "masked_number") != "************1111" {
			t.Fatalf("get: %d %s", a.Status, a.Body)
		}
		a = do(t, "POST", api+"/payments/gmo_E2E-1/capture", "")
		if a.Status != 200 || a.str("status") != "captured" {
			t.Fatalf("capture: %d %s", a.Status, a.Body)
		}
		a = do(t, "POST", api+"/payments/gmo_E2E-1/capture", "{}")
		if a.Status != 409 || a.str("error", "code") != "already_captured" || a.str("error", "payment", "status") != "captured" {
			t.Fatalf("capture again: %d %s", a.Status, a.Body)
		}
		a = do(t, "POST", api+"/payments/gmo_E2E-1/cancel", "")
		if a.Status != 200 || a.str("status") != "voided" || a.str("provider_data", "gmo_job") != "VOID" {
			t.Fatalf("cancel: %d %s", a.Status, a.Body)
		}
		a = do(t, "GET", api+"/payments/gmo_E2E-1", "")
		if a.str("status") != "voided" {
			t.Fatalf("after cancel: %s", a.Body)
		}
	})

	t.Run("reauthorize", func(t *testing.T) {
		sentTokens = append(sentTokens, "tok_mastercard_e2e2")
		a := pay(`{"order_id":"E2E-2","amount":5000,"capture":"automatic","payment_method":{"token":"tok_mastercard_e2e2"}}`)
		if a.Status != 200 || a.str("status") != "captured" {
			t.Fatalf("%d %s", a.Status, a.Body)
		}
		a = do(t, "POST", api+"/payments/gmo_E2E-2/reauthorize", `{"amount":3000,"tax":300}`)
		if a.Status != 200 || a.JSON["amount"].(float64) != 3000 || a.JSON["total"].(float64) != 3300 {
			t.Fatalf("%d %s", a.Status, a.Body)
		}
	})

	errorCases := []struct {
		name, method, path, body string
		status                   int
		typ, code                string
	}{
		{"decline", "POST", "/payments", `{"amount":1000,"payment_method":{"token":"tok_insufficient_funds"}}`, 402, "card_error", "insufficient_funds"},
		{"expired token", "POST", "/payments", `{"amount":1000,"payment_method":{"token":"tok_token_expired"}}`, 402, "card_error", "token_expired"},
		{"validation", "POST", "/payments", `{"amount":"1000","payment_method":{"token":"tok_visa"}}`, 400, "invalid_request_error", "parameter_invalid"},
		{"malformed json", "POST", "/payments", `{"amount":`, 400, "invalid_request_error", "invalid_json"},
		{"bad encoding", "POST", "/payments", "{\"amount\":1,\"order_id\":\"\xff\xfe\"}", 400, "invalid_request_error", "invalid_encoding"},
		{"huge body", "POST", "/payments", `{"amount":1,"order_id":"` + strings.Repeat("A", 5000) + `"}`, 413, "invalid_request_error", "body_too_large"},
		{"unknown provider", "POST", "/payments", `{"provider":"nope","amount":1,"payment_method":{"token":"tok_visa"}}`, 400, "invalid_request_error", "unknown_provider"},
		{"unknown id", "GET", "/payments/gmo_NOPE-9", "", 404, "invalid_request_error", "resource_missing"},
		{"unknown account", "GET", "/payments/zzz_1", "", 404, "invalid_request_error", "resource_missing"},
		{"unknown route", "GET", "/nothing", "", 404, "invalid_request_error", "route_not_found"},
		{"wrong method", "DELETE", "/payments", "", 405, "invalid_request_error", "method_not_allowed"},
		{"gmo order id too long", "POST", "/payments", `{"order_id":"` + strings.Repeat("A", 28) + `","amount":1,"payment_method":{"token":"tok_visa"}}`, 400, "invalid_request_error", "invalid_order_id"},
		{"forged CheckString", "POST", "/payments", `{"amount":1000,"payment_method":{"token":"tok_fault_checkstring"}}`, 502, "provider_error", "invalid_response"},
		{"wrong credentials", "POST", "/payments", `{"provider":"gmo-wrongpass","amount":1000,"payment_method":{"token":"tok_visa"}}`, 502, "provider_error", "provider_misconfigured"},
		{"maintenance", "POST", "/payments", `{"amount":1000,"payment_method":{"token":"tok_fault_maintenance"}}`, 503, "provider_unavailable", "provider_unavailable"},
	}
	for _, c := range errorCases {
		t.Run(c.name, func(t *testing.T) {
			a := do(t, c.method, api+c.path, c.body)
			e := a.err()
			if a.Status != c.status || e == nil || e["type"] != c.typ || e["code"] != c.code {
				t.Fatalf("got %d %s", a.Status, a.Body)
			}
			if e["message"] == "" || e["message_ja"] == "" || e["request_id"] != a.Header.Get("X-Request-Id") {
				t.Fatalf("incomplete error %s", a.Body)
			}
			if _, ok := e["retryable"].(bool); !ok {
				t.Fatalf("retryable missing: %s", a.Body)
			}
		})
	}

	t.Run("timeout after send is unknown, then resolved", func(t *testing.T) {
		// ExecTran is held 1s before GMO processes it; paynorm gives up at
		// 400ms and SearchTrade still sees an unexecuted order: unknown.
		ctl := do(t, "POST", sim+"/sandbox/faults", `{"api":"ExecTran","kind":"delay","delay_ms":1000}`)
		if ctl.Status != 204 {
			t.Fatalf("fault control: %d", ctl.Status)
		}
		a := pay(`{"order_id":"E2E-TO","amount":700,"payment_method":{"token":"tok_visa"}}`)
		if a.Status != 504 || a.str("error", "type") != "provider_timeout" || a.str("error", "payment", "status") != "unknown" {
			t.Fatalf("%d %s", a.Status, a.Body)
		}
		// GMO finishes the charge later; GET reads the truth.
		deadline := 0
		for ; deadline < 40; deadline++ {
			g := do(t, "GET", api+"/payments/gmo_E2E-TO", "")
			if g.str("status") == "captured" {
				break
			}
			waitShort()
		}
		if deadline == 40 {
			t.Fatal("payment never resolved")
		}
	})

	t.Run("slow answer after charge resolves by SearchTrade", func(t *testing.T) {
		a := pay(`{"order_id":"E2E-SLOW","amount":800,"payment_method":{"token":"tok_fault_slow"}}`)
		if a.Status != 200 || a.str("status") != "captured" {
			t.Fatalf("%d %s", a.Status, a.Body)
		}
		ledger := do(t, "GET", sim+"/sandbox/ledger", "")
		if strings.Count(string(ledger.Body), `"order_id":"E2E-SLOW"`) != 1 || !strings.Contains(string(ledger.Body), `"order_id":"E2E-SLOW","status":"CAPTURE","amount":800,"charges":1`) {
			t.Fatalf("ledger: %s", ledger.Body)
		}
	})

	t.Run("rate limited", func(t *testing.T) {
		first := pay(`{"provider":"gmo-limited","amount":100,"payment_method":{"token":"tok_visa"}}`)
		if first.Status != 200 {
			t.Fatalf("first: %d %s", first.Status, first.Body)
		}
		a := pay(`{"provider":"gmo-limited","amount":100,"payment_method":{"token":"tok_visa"}}`)
		if a.Status != 429 || a.str("error", "type") != "rate_limited" || a.Header.Get("Retry-After") == "" {
			t.Fatalf("%d %s %v", a.Status, a.Body, a.Header)
		}
	})

	t.Run("breaker opens on provider faults", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			a := pay(`{"provider":"gmo-fragile","amount":100,"payment_method":{"token":"tok_fault_e91"}}`)
			if a.Status != 503 {
				t.Fatalf("fault %d: %d %s", i, a.Status, a.Body)
			}
		}
		a := pay(`{"provider":"gmo-fragile","amount":100,"payment_method":{"token":"tok_visa"}}`)
		if a.Status != 503 || a.str("error", "code") != "circuit_open" || a.Header.Get("Retry-After") == "" {
			t.Fatalf("%d %s", a.Status, a.Body)
		}
		h := do(t, "GET", api+"/health", "")
		if h.str("status") != "degraded" || !strings.Contains(string(h.Body), `{"name":"gmo-fragile","type":"gmo","breaker":"open"}`) {
			t.Fatalf("health: %s", h.Body)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		resp, err := http.Get(p.Admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{`paynorm_provider_calls_total{account="gmo",api="ExecTran",outcome="ok"}`,
			`paynorm_breaker_state{account="gmo-fragile"} 2`, `paynorm_rate_limited_total{account="gmo-limited",reason="limiter"}`,
			`paynorm_provider_call_duration_seconds_bucket{account="gmo",api="EntryTran"`} {
			if !strings.Contains(string(b), want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})

	t.Run("logs hold no secrets", func(t *testing.T) {
		// AccessPass values GMO issued, read straight from the simulator.
		form := url.Values{"ShopID": {"tshop00000001"}, "ShopPass": {shopPass}, "OrderID": {"E2E-1"}}
		resp, err := http.Post(sim+"/payment/SearchTrade.idPass", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var accessPass string
		for _, kv := range strings.Split(string(b), "&") {
			if v, ok := strings.CutPrefix(kv, "AccessPass="); ok {
				accessPass = v
			}
		}
		if accessPass == "" {
			t.Fatalf("no AccessPass in %s", b)
		}
		logs := p.logs.String()
		if !strings.Contains(logs, `"api":"ExecTran"`) {
			t.Fatalf("no provider-call log lines:\n%s", logs)
		}
		secrets := append([]string{shopPass, sitePass, accessPass, "4111111111111111", "tok_insufficient_funds"}, sentTokens...)
		for _, s := range secrets {
			if strings.Contains(logs, s) {
				t.Errorf("log contains secret %q", s)
			}
		}
	})
}
