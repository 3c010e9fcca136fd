package caddymodule

import (
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/paynorm/paynorm/providers/sandbox"
)

// ivrEnv is a handler with a GMO card account (with a site), an IVR
// account and an IVR account with a wrong API key, in front of the GMO and
// IVR simulators sharing one ledger.
type ivrEnv struct {
	*env
	ivr *sandbox.IVR
}

func newIVREnv(t *testing.T) *ivrEnv {
	g := sandbox.NewGMO()
	ivr := sandbox.NewIVR(g)
	ivr.Keys = map[string]string{"ivrkey1": "ivrApiPass1"}
	srv := httptest.NewServer(ivr)
	t.Cleanup(srv.Close)
	e := newEnv(t, g, func(h *Handler) {
		h.Accounts[0].SiteID, h.Accounts[0].SitePass = "tsite1", "sitePassX"
		h.DefaultProvider = "gmo"
		base := Account{Type: "gmo_ivr", Endpoint: srv.URL, APIKey: "ivrkey1", APIPassword: "ivrApiPass1", ShopID: "tshop1", SiteID: "tsite1",
			Timeout: caddy.Duration(300 * time.Millisecond), BreakerFailures: 1000}
		a, bad := base, base
		a.Name, bad.Name, bad.APIKey = "ivr", "ivr-badkey", "wrong"
		h.Accounts = append(h.Accounts, a, bad)
	})
	return &ivrEnv{env: e, ivr: ivr}
}

func (e *ivrEnv) advance(receipt, outcome string) {
	e.t.Helper()
	if _, err := e.ivr.Advance(receipt, outcome, true); err != nil {
		e.t.Fatal(err)
	}
}

// noSecrets fails when an answer carries anything of the credentials.
func noSecrets(t *testing.T, r *reply) {
	t.Helper()
	for _, s := range []string{"ivrApiPass1", "ivrkey1", "accessPass", "AccessPass", "sitePassX", testShopPass} {
		if strings.Contains(string(r.Body), s) {
			t.Fatalf("answer leaks %q: %s", s, r.Body)
		}
	}
}

func TestPhoneAuthorizeFlow(t *testing.T) {
	e := newIVREnv(t)
	r := e.do("POST", "/v1/phone_authorizations?provider=ivr", `{"use":"authorize","user_id":"op1",
		"items":[{"name":"受付","value":"電話注文"},{"name":"担当","value":"佐藤"}],
		"authorize":{"order_id":"PH-1","capture":"manual","amount":1000,"tax":80,"shipping":20,"metadata":{"client_field_1":"x"}}}`, "")
	if r.Status != 200 || r.str("status") != "waiting_for_call" || r.str("order_id") != "PH-1" || r.str("payment", "status") != "pending" {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	receipt := r.str("receipt_no")
	// Seed 001's example receipt number has 22 digits.
	if !regexp.MustCompile(`^\d{22}$`).MatchString(receipt) || !regexp.MustCompile(`^\d{6}$`).MatchString(r.str("identification_id")) {
		t.Fatalf("receipt %q id %q", receipt, r.str("identification_id"))
	}
	path := "/v1/phone_authorizations/" + receipt + "?provider=ivr"
	if g := e.do("GET", path, "", ""); g.str("status") != "waiting_for_call" || g.str("payment", "status") != "pending" {
		t.Fatalf("waiting: %s", g.Body)
	}
	if _, err := e.ivr.Advance(receipt, "", false); err != nil {
		t.Fatal(err)
	}
	g := e.do("GET", path, "", "")
	if g.str("status") != "in_call" || g.str("call", "caller_phone") == "" || g.str("call", "started_at") == "" {
		t.Fatalf("in call: %s", g.Body)
	}
	e.advance(receipt, "success")
	g = e.do("GET", path+"&history=true&items=true", "", "")
	noSecrets(t, g)
	pay, _ := g.JSON["payment"].(map[string]any)
	if g.Status != 200 || g.str("status") != "completed" || g.JSON["authorized"] != true || pay == nil ||
		pay["status"] != "authorized" || pay["id"] != "ivr_PH-1" || pay["amount"] != 1000.0 || pay["tax"] != 80.0 || pay["shipping"] != 20.0 ||
		pay["approval_code"] == "" || g.JSON["payment_error"] != nil {
		t.Fatalf("completed: %s", g.Body)
	}
	hist, _ := g.JSON["history"].([]any)
	if len(hist) != 2 || hist[0].(map[string]any)["api"] != "EntryTran" || hist[1].(map[string]any)["api"] != "ExecTran" {
		t.Fatalf("history: %s", g.Body)
	}
	items, _ := g.JSON["items"].([]any)
	if len(items) != 2 {
		t.Fatalf("items: %s", g.Body)
	}
	if st, amount := e.gmo.TradeStatus("tshop1", "PH-1"); st != "AUTH" || amount != 1000 {
		t.Fatalf("ledger %s %d", st, amount)
	}
	// The phone payment is followed up on the card account of the shop.
	if c := e.do("POST", "/v1/payments/gmo_PH-1/capture", "", ""); c.Status != 200 || c.str("status") != "captured" {
		t.Fatalf("capture: %d %s", c.Status, c.Body)
	}
}

func TestPhoneOutcomes(t *testing.T) {
	e := newIVREnv(t)
	cases := []struct {
		outcome, capture     string
		status, code, ledger string
	}{
		{"success", "automatic", "captured", "", "CAPTURE"},
		{"tok_insufficient_funds", "automatic", "failed", "insufficient_funds", ""},
		{"tok_expired_card", "manual", "failed", "expired_card", ""},
		// Seed 001's processing error (pspStatusCode 1, no code): failed.
		{"timeout", "automatic", "failed", "processing_error", ""},
		{"entry_error", "automatic", "failed", "invalid_order_id", ""},
		{"hangup", "automatic", "failed", "card_declined", ""},
	}
	for _, c := range cases {
		t.Run(c.outcome, func(t *testing.T) {
			r := e.do("POST", "/v1/phone_authorizations", `{"provider":"ivr","use":"authorize","authorize":{"capture":"`+c.capture+`","amount":500}}`, "")
			order := r.str("order_id")
			if r.Status != 200 || !strings.HasPrefix(order, "IVR-") {
				t.Fatalf("auto-numbered order: %d %s", r.Status, r.Body)
			}
			e.advance(r.str("receipt_no"), c.outcome)
			g := e.do("GET", "/v1/phone_authorizations/"+r.str("receipt_no")+"?provider=ivr", "", "")
			if g.str("status") != "completed" || g.str("payment", "status") != c.status || g.str("payment_error", "code") != c.code {
				t.Fatalf("%s", g.Body)
			}
			if c.code == "insufficient_funds" && !strings.Contains(string(g.Body), "42G020000") {
				t.Fatalf("raw code missing: %s", g.Body)
			}
			if st, _ := e.gmo.TradeStatus("tshop1", order); (c.ledger == "" && st == "CAPTURE") || (c.ledger != "" && st != c.ledger) {
				t.Fatalf("ledger %q", st)
			}
		})
	}
}

func TestPhoneSaveCard(t *testing.T) {
	e := newIVREnv(t)
	// authorize_and_save: the member id is numbered by GMO, the card kept
	// with TradedCard after the payment.
	r := e.do("POST", "/v1/phone_authorizations", `{"provider":"ivr","use":"authorize_and_save","authorize":{"amount":700},"save":{"holder_name":"TARO YAMADA"}}`, "")
	if r.Status != 200 || r.str("customer_id") == "" {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	cust := r.str("customer_id")
	e.advance(r.str("receipt_no"), "tok_jcb")
	g := e.do("GET", "/v1/phone_authorizations/"+r.str("receipt_no")+"?provider=ivr&history=true", "", "")
	noSecrets(t, g)
	// TradedCard answers no brand and a number masked to its last digits,
	// so the brand stays unknown rather than guessed.
	if g.JSON["card_saved"] != true || g.str("card", "masked_number") != "************0000" || g.str("card", "customer_id") != cust ||
		g.str("payment", "status") != "captured" || g.str("customer_id") != cust {
		t.Fatalf("%s", g.Body)
	}
	l := e.do("GET", "/v1/customers/"+cust+"/cards", "", "")
	data, _ := l.JSON["data"].([]any)
	if l.Status != 200 || len(data) != 1 || data[0].(map[string]any)["masked_number"] != "*************000" { // SearchCard: last 3
		t.Fatalf("cards: %d %s", l.Status, l.Body)
	}
	// save only, for an existing customer: SaveCard with the keyed card.
	s := e.do("POST", "/v1/phone_authorizations", `{"provider":"ivr","use":"save","save":{"customer_id":"`+cust+`","default":true,"card_name":"main"}}`, "")
	e.advance(s.str("receipt_no"), "tok_mastercard")
	g = e.do("GET", "/v1/phone_authorizations/"+s.str("receipt_no")+"?provider=ivr", "", "")
	if g.JSON["card_saved"] != true || g.str("card", "brand") != "MASTER" || g.JSON["payment"] != nil || g.str("card", "masked_number") != "*************444" {
		t.Fatalf("%s", g.Body)
	}
	if l := e.do("GET", "/v1/customers/"+cust+"/cards", "", ""); len(l.JSON["data"].([]any)) != 2 {
		t.Fatalf("cards: %s", l.Body)
	}
	// a token that is no card fails the registration with a card error
	s = e.do("POST", "/v1/phone_authorizations", `{"provider":"ivr","use":"save","save":{"customer_id":"`+cust+`"}}`, "")
	e.advance(s.str("receipt_no"), "tok_token_expired")
	g = e.do("GET", "/v1/phone_authorizations/"+s.str("receipt_no")+"?provider=ivr", "", "")
	if g.JSON["card_saved"] != false || g.str("card_error", "code") != "token_expired" {
		t.Fatalf("%s", g.Body)
	}
}

// Every result code and HTTP failure of the IVR API, through paynorm.
func TestPhoneResultCodes(t *testing.T) {
	e := newIVREnv(t)
	create := `{"provider":"ivr","use":"authorize","authorize":{"amount":100}}`
	ok := e.do("POST", "/v1/phone_authorizations", create, "")
	receipt := ok.str("receipt_no")
	cases := []struct {
		name, api, fault, method, path, body string
		provider                             string
		status                               int
		typ, code, param                     string
		calls                                int64
	}{
		{"regist 30", "AuthRegistApi", "result_30", "POST", "/v1/phone_authorizations", create, "", 400, "invalid_request_error", "parameter_invalid", "request", 1},
		{"regist 31", "AuthRegistApi", "result_31", "POST", "/v1/phone_authorizations", create, "", 400, "invalid_request_error", "parameter_invalid", "authorize", 1},
		{"regist 32", "AuthRegistApi", "result_32", "POST", "/v1/phone_authorizations", create, "", 400, "invalid_request_error", "parameter_invalid", "save", 1},
		{"regist 90", "AuthRegistApi", "result_90", "POST", "/v1/phone_authorizations", create, "", 503, "provider_unavailable", "provider_unavailable", "", 1},
		{"regist 5xx never retried", "AuthRegistApi", "5xx", "POST", "/v1/phone_authorizations", create, "", 503, "provider_unavailable", "provider_unavailable", "", 1},
		{"regist timeout never retried", "AuthRegistApi", "delay", "POST", "/v1/phone_authorizations", create, "", 504, "provider_timeout", "provider_timeout", "", 1},
		{"regist 401", "AuthRegistApi", "", "POST", "/v1/phone_authorizations", strings.Replace(create, `"ivr"`, `"ivr-badkey"`, 1), "", 502, "provider_error", "provider_misconfigured", "", 1},
		{"search 30 (bad receipt)", "AuthSearchApi", "", "GET", "/v1/phone_authorizations/12AB", "", "ivr", 400, "invalid_request_error", "parameter_invalid", "receipt_no", 1},
		{"search 40", "AuthSearchApi", "", "GET", "/v1/phone_authorizations/209901010000009999", "", "ivr", 404, "invalid_request_error", "resource_missing", "receipt_no", 1},
		{"search 90 retried", "AuthSearchApi", "result_90", "GET", "/v1/phone_authorizations/" + receipt, "", "ivr", 200, "", "", "", 2},
		{"search 5xx retried", "AuthSearchApi", "5xx", "GET", "/v1/phone_authorizations/" + receipt, "", "ivr", 200, "", "", "", 2},
		{"search 401", "AuthSearchApi", "", "GET", "/v1/phone_authorizations/" + receipt, "", "ivr-badkey", 502, "provider_error", "provider_misconfigured", "", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.fault != "" {
				e.ivr.InjectFault(sandbox.Fault{API: c.api, Kind: c.fault, Delay: 600 * time.Millisecond})
			}
			path := c.path
			if c.provider != "" {
				path += "?provider=" + c.provider
			}
			before := e.ivr.Calls(c.api)
			r := e.do(c.method, path, c.body, "")
			if n := e.ivr.Calls(c.api) - before; n != c.calls {
				t.Fatalf("%s called %d times, want %d", c.api, n, c.calls)
			}
			noSecrets(t, r)
			if r.Status != c.status || r.str("error", "type") != c.typ || r.str("error", "code") != c.code || r.str("error", "param") != c.param {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
			switch c.code {
			case "provider_misconfigured":
				if !strings.Contains(r.str("error", "message"), "api_key") || !strings.Contains(r.str("error", "message"), "IP") {
					t.Fatalf("401 does not tell the operator what to check: %s", r.Body)
				}
			case "parameter_invalid":
				if f, _ := r.JSON["error"].(map[string]any)["fields"].([]any); c.status == 400 && c.fault != "" && len(f) != 2 {
					t.Fatalf("fields: %s", r.Body)
				}
			}
			if c.status == 200 && r.str("status") != "waiting_for_call" {
				t.Fatalf("%s", r.Body)
			}
		})
	}
}

func TestPhoneValidationAndUnsupported(t *testing.T) {
	e := newIVREnv(t)
	cases := map[string]struct{ body, param string }{
		"use missing":      {`{"provider":"ivr","authorize":{"amount":1}}`, "use"},
		"auth missing":     {`{"provider":"ivr","use":"authorize"}`, "authorize"},
		"six items":        {`{"provider":"ivr","use":"save","items":[{"name":"a","value":"1"},{"name":"a","value":"1"},{"name":"a","value":"1"},{"name":"a","value":"1"},{"name":"a","value":"1"},{"name":"a","value":"1"}]}`, "items"},
		"amount":           {`{"provider":"ivr","use":"authorize","authorize":{"amount":0}}`, "authorize.amount"},
		"order id":         {`{"provider":"ivr","use":"authorize","authorize":{"amount":5,"order_id":"TOO-LONG-ORDER-ID-0123456789"}}`, "authorize.order_id"},
		"save with auth":   {`{"provider":"ivr","use":"authorize","authorize":{"amount":5},"save":{}}`, "save"},
		"card_seq w/ auth": {`{"provider":"ivr","use":"authorize_and_save","authorize":{"amount":5},"save":{"card_seq":1}}`, "save.card_seq"},
		"holder":           {`{"provider":"ivr","use":"save","save":{"holder_name":"山田"}}`, "save.holder_name"},
	}
	before := e.ivr.Calls("AuthRegistApi")
	for name, c := range cases {
		r := e.do("POST", "/v1/phone_authorizations", c.body, "")
		if r.Status != 400 || r.str("error", "param") != c.param || r.str("error", "message_ja") == "" {
			t.Errorf("%s: %d %s", name, r.Status, r.Body)
		}
	}
	if e.ivr.Calls("AuthRegistApi") != before {
		t.Fatal("invalid requests reached the IVR")
	}
	// A card account has no phone payments, an IVR account no card payments.
	if r := e.do("POST", "/v1/phone_authorizations", `{"provider":"gmo","use":"save"}`, ""); r.Status != 422 || r.str("error", "code") != "unsupported" {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	if r := e.do("POST", "/v1/payments", `{"provider":"ivr","amount":100,"payment_method":{"token":"tok_visa"}}`, ""); r.Status != 422 || r.str("error", "code") != "unsupported" {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	if r := e.do("GET", "/v1/customers/x?provider=ivr", "", ""); r.Status != 422 || r.str("error", "code") != "unsupported" {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
}
