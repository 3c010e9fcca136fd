package caddymodule

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/paynorm/paynorm/providers/sandbox"
)

const testGMONotifyToken = "gmo-notify-0123456789"

func (e *env) notifyGMO(token string, form url.Values) (int, string) {
	e.t.Helper()
	resp, err := http.Post(e.api.URL+"/v1/webhooks/gmo/"+token, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// GMO result notifications are claims: the path token keeps strangers
// out, and even with it a notification changes only what GMO itself
// confirms (SearchTrade) about a payment paynorm made.
func TestGMONotificationsAreVerifiedClaims(t *testing.T) {
	e := newEnv(t, nil, func(h *Handler) {
		h.GMONotifyToken = testGMONotifyToken
		h.ResolveAfter = caddy.Duration(time.Hour) // only the notification may settle
	})
	// An authorized payment; a forged "voided" for it changes nothing.
	a := e.do("POST", "/v1/payments", `{"order_id":"NT-1","amount":1000,"capture":"manual","payment_method":{"token":"tok_visa"}}`, "")
	if a.Status != 200 || a.str("status") != "authorized" {
		t.Fatalf("create %d %s", a.Status, a.Body)
	}
	forged := url.Values{"ShopID": {"tshop1"}, "OrderID": {"NT-1"}, "Status": {"VOID"}, "JobCd": {"VOID"}, "Amount": {"1"}, "ShopPass": {"**********"}}
	if code, _ := e.notifyGMO("wrong-token-0123456789", forged); code != 404 {
		t.Fatalf("wrong token: %d", code)
	}
	calls := e.gmo.Calls("SearchTrade")
	if code, body := e.notifyGMO(testGMONotifyToken, forged); code != 200 || body != "0" {
		t.Fatalf("forged notification: %d %q", code, body)
	}
	if e.gmo.Calls("SearchTrade") != calls+1 {
		t.Fatal("the notification was not checked with SearchTrade")
	}
	if r := e.record("gmo_NT-1"); r.Status != "authorized" || strings.Contains(string(r.Payment), `"amount":1,`) {
		t.Fatalf("a forged notification changed the record: %+v", r)
	}
	// A notification for an order paynorm never made creates nothing.
	if code, body := e.notifyGMO(testGMONotifyToken, url.Values{"ShopID": {"tshop1"}, "OrderID": {"NOT-MINE"}, "Status": {"CAPTURE"}}); code != 200 || body != "0" {
		t.Fatalf("unknown order: %d %q", code, body)
	}
	if g := e.do("GET", "/v1/payments/gmo_NOT-MINE", "", ""); g.Status != 404 {
		t.Fatalf("GET of an order only a notification named: %d %s", g.Status, g.Body)
	}
	// Another shop's notification is refused.
	if code, _ := e.notifyGMO(testGMONotifyToken, url.Values{"ShopID": {"tshop999"}, "OrderID": {"NT-1"}}); code != 400 {
		t.Fatalf("other shop: %d", code)
	}

	// A create whose answer was lost (GMO charged it): the notification
	// settles it with what SearchTrade says.
	e.gmo.InjectFault(sandbox.Fault{API: "ExecTran", Kind: sandbox.FaultCommitHang, Delay: time.Second})
	e.gmo.InjectFault(sandbox.Fault{API: "SearchTrade", Kind: sandbox.Fault5xx, Count: 3})
	u := e.do("POST", "/v1/payments", `{"order_id":"NT-2","amount":2000,"capture":"automatic","payment_method":{"token":"tok_visa"}}`, "")
	if u.Status != 504 || e.record("gmo_NT-2").Status != "unknown" {
		t.Fatalf("lost answer: %d %s, record %+v", u.Status, u.Body, e.record("gmo_NT-2"))
	}
	time.Sleep(time.Second) // the hung ExecTran finishes at GMO
	e.gmo.ClearFaults()
	if code, body := e.notifyGMO(testGMONotifyToken, url.Values{"ShopID": {"tshop1"}, "OrderID": {"NT-2"}, "Status": {"CAPTURE"}, "Amount": {"2000"}}); code != 200 || body != "0" {
		t.Fatalf("true notification: %d %q", code, body)
	}
	if r := e.record("gmo_NT-2"); r.Status != "captured" {
		t.Fatalf("after the notification: %+v", r)
	}
	if e.gmo.Charges() != 2 {
		t.Fatalf("charges %d", e.gmo.Charges())
	}
}
