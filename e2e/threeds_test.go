package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// plain talks to the sandbox's own pages (not the unified API, whose
// exchanges the default transport checks against openapi.yaml) and shows
// redirects instead of following them, as curl does.
var plain = &http.Client{Transport: &http.Transport{}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// A 3-D Secure challenge driven with plain HTTP, as the README's curl
// walk-through does, against the real binary: create answers
// requires_action with next_action.url; the issuer's page is read and its
// form posted; the browser would go back to return_url with the AccessID;
// complete charges once (a second complete is refused, nothing is sent
// twice); GMO's result notification reaches paynorm's receiver and is
// answered "0". A failed challenge is 402 authentication_failed, failed.
func TestThreeDSChallengeOverPlainHTTP(t *testing.T) {
	api, sim := freePort(t), freePort(t)
	t.Setenv("PAYNORM_E2E_GMO_NOTIFY_TOKEN", "e2e-gmo-notify-token-0123456789")
	cf := fmt.Sprintf(`{
	admin {ADMIN}
	auto_https off
}
:%[1]d {
	bind 127.0.0.1
	paynorm {
		gmo_notify_token {env.PAYNORM_E2E_GMO_NOTIFY_TOKEN}
		account gmo {
			type gmo
			endpoint http://127.0.0.1:%[2]d
			shop_id tshop00000001
			shop_pass e2eShopPass3DS
		}
	}
}
:%[2]d {
	bind 127.0.0.1
	paynorm_sandbox e2e-3ds {
		gmo_notify http://127.0.0.1:%[1]d/v1/webhooks/gmo/{env.PAYNORM_E2E_GMO_NOTIFY_TOKEN}
	}
}
`, api, sim)
	p := start(t, cf, fmt.Sprintf("http://127.0.0.1:%d", api))
	simURL := fmt.Sprintf("http://127.0.0.1:%d", sim)
	const ret = "https://shop.example.jp/checkout/return?order="

	challenge := func(t *testing.T, order, action string) {
		t.Helper()
		// No three_d_secure: a GMO account's default is required.
		a := do(t, "POST", p.API+"/v1/payments", `{"order_id":"`+order+`","amount":1000,"tax":100,"payment_method":{"token":"tok_3ds_challenge"},"return_url":"`+ret+order+`"}`)
		next := a.str("next_action", "url")
		if a.Status != 200 || a.str("status") != "requires_action" || a.str("next_action", "type") != "redirect_to_url" || !strings.HasPrefix(next, simURL+"/sandbox/acs/") {
			t.Fatalf("create: %d %s", a.Status, a.Body)
		}
		resp, err := plain.Get(next)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(page), "¥1,100") || !strings.Contains(string(page), `value="authenticate"`) {
			t.Fatalf("challenge page %d:\n%s", resp.StatusCode, page)
		}
		resp, err = plain.PostForm(next, url.Values{"action": {action}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, ret+order+"&AccessID=") {
			t.Fatalf("back to the shop: %d %q", resp.StatusCode, loc)
		}
		if g := do(t, "GET", p.API+"/v1/payments/gmo_"+order, ""); g.Status != 200 || g.str("status") != "requires_action" {
			t.Fatalf("before complete: %d %s", g.Status, g.Body)
		}
	}

	t.Run("passed", func(t *testing.T) {
		challenge(t, "E2E-3DS-1", "authenticate")
		a := do(t, "POST", p.API+"/v1/payments/gmo_E2E-3DS-1/complete", "")
		if a.Status != 200 || a.str("status") != "captured" || a.str("approval_code") == "" || a.JSON["next_action"] != nil {
			t.Fatalf("complete: %d %s", a.Status, a.Body)
		}
		if a := do(t, "POST", p.API+"/v1/payments/gmo_E2E-3DS-1/complete", ""); a.Status != 409 || a.str("error", "code") != "invalid_state" {
			t.Fatalf("second complete: %d %s", a.Status, a.Body)
		}
		if n := simCharges(t, simURL, "E2E-3DS-1"); n != 1 {
			t.Fatalf("charged %d times", n)
		}
		waitNotified(t, simURL, "E2E-3DS-1", "CAPTURE")
	})
	t.Run("failed", func(t *testing.T) {
		challenge(t, "E2E-3DS-2", "fail")
		a := do(t, "POST", p.API+"/v1/payments/gmo_E2E-3DS-2/complete", "")
		if a.Status != 402 || a.str("error", "code") != "authentication_failed" || a.str("error", "payment", "status") != "failed" {
			t.Fatalf("complete: %d %s", a.Status, a.Body)
		}
		if g := do(t, "GET", p.API+"/v1/payments/gmo_E2E-3DS-2", ""); g.str("status") != "failed" {
			t.Fatalf("after: %s", g.Body)
		}
		if n := simCharges(t, simURL, "E2E-3DS-2"); n != 0 {
			t.Fatalf("charged %d times", n)
		}
		waitNotified(t, simURL, "E2E-3DS-2", "UNPROCESSED")
	})
	t.Run("not enrolled", func(t *testing.T) {
		a := do(t, "POST", p.API+"/v1/payments", `{"amount":1000,"payment_method":{"token":"tok_visa"},"return_url":"`+ret+`x"}`)
		if a.Status != 402 || a.str("error", "code") != "card_not_enrolled" || a.str("error", "message_ja") == "" {
			t.Fatalf("%d %s", a.Status, a.Body)
		}
		a = do(t, "POST", p.API+"/v1/payments", `{"amount":1000,"payment_method":{"token":"tok_visa"},"three_d_secure":"attempt","return_url":"`+ret+`x"}`)
		if a.Status != 200 || a.str("status") != "captured" {
			t.Fatalf("attempt: %d %s", a.Status, a.Body)
		}
	})
}

// simCharges reads how often the simulator charged an order.
func simCharges(t *testing.T, sim, order string) int {
	t.Helper()
	resp, err := plain.Get(sim + "/sandbox/ledger")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rows []struct {
		OrderID string `json:"order_id"`
		Charges int    `json:"charges"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rows); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.OrderID == order {
			return r.Charges
		}
	}
	t.Fatalf("order %s not in the simulator's ledger", order)
	return 0
}

// waitNotified waits until the simulator's result notification of an
// order with a status was answered "0" by paynorm.
func waitNotified(t *testing.T, sim, order, status string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := plain.Get(sim + "/sandbox/notifications")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		last = string(b)
		var rows []struct {
			OrderID   string `json:"order_id"`
			Status    string `json:"status"`
			Answer    string `json:"answer"`
			Delivered bool   `json:"delivered"`
		}
		_ = json.Unmarshal(b, &rows)
		for _, r := range rows {
			if r.OrderID == order && r.Status == status && r.Delivered && r.Answer == "0" {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no delivered notification of %s %s: %s", order, status, last)
}
