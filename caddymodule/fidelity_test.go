package caddymodule

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/paynorm/paynorm/providers/sandbox"
	"github.com/paynorm/paynorm/store"
)

// Issue 15 item 10: a j-payment create that got no answer (so no gid) is
// answered with the id of its order's record, never "", and GET of that
// id reads it.
func TestJPaymentCreateWithoutGIDHasAReadableID(t *testing.T) {
	sim := sandbox.NewJPayment()
	sim.SlowDelay = 1500 * time.Millisecond
	simSrv := httptest.NewServer(sim)
	defer simSrv.Close()
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer sink.Close()
	h := jpHandler(simSrv.URL, sink.URL)
	h.Accounts[0].Timeout = caddy.Duration(300 * time.Millisecond)
	pn := startPaynorm(t, h, store.NewMemory())
	status, body := postJSON(t, pn.srv.URL+"/v1/payments", `{"order_id":"ORD-T1","amount":1000,"payment_method":{"token":"tok_fault_slow"},"customer":{"phone":"0312345678"}}`)
	pay, _ := body["error"].(map[string]any)["payment"].(map[string]any)
	if status != 504 || pay["id"] != "jp_order.ORD-T1" || pay["status"] != "unknown" {
		t.Fatalf("%d %v", status, body)
	}
	resp, err := http.Get(pn.srv.URL + "/v1/payments/jp_order.ORD-T1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&got)
	if resp.StatusCode != 200 || got["id"] != "jp_order.ORD-T1" || got["status"] != "unknown" {
		t.Fatalf("GET: %d %v", resp.StatusCode, got)
	}
	// Nothing but GET acts on an order's record.
	if s, _ := postJSON(t, pn.srv.URL+"/v1/payments/jp_order.ORD-T1/capture", ``); s != 404 {
		t.Fatalf("capture of an order record: %d", s)
	}
}

// Issue 15 item 6: a declined re-authorization (seed 002: re_auth cancels
// the original, then authorizes again) is recorded as what the provider
// reported: the original canceled, not "unchanged".
func TestJPaymentDeclinedReauthorizationIsRecordedCanceled(t *testing.T) {
	sim := sandbox.NewJPayment()
	simSrv := httptest.NewServer(sim)
	defer simSrv.Close()
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer sink.Close()
	pn := startPaynorm(t, jpHandler(simSrv.URL, sink.URL), store.NewMemory())
	status, pay := postJSON(t, pn.srv.URL+"/v1/payments", `{"order_id":"ORD-R1","amount":1000,"capture":"manual","payment_method":{"token":"tok_visa"},"customer":{"phone":"0312345678"}}`)
	if status != 200 {
		t.Fatalf("create: %d %v", status, pay)
	}
	id := pay["id"].(string)
	status, body := postJSON(t, pn.srv.URL+"/v1/payments/"+id+"/reauthorize", `{"amount":2000000}`)
	errPay, _ := body["error"].(map[string]any)["payment"].(map[string]any)
	if status != 402 || errPay["status"] != "voided" {
		t.Fatalf("reauthorize: %d %v", status, body)
	}
	resp, err := http.Get(pn.srv.URL + "/v1/payments/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&got)
	pd, _ := got["provider_data"].(map[string]any)
	if got["status"] != "voided" || pd["reauthorization_declined"] != true {
		t.Fatalf("GET after the declined re-authorization: %v", got)
	}
}

// Issue 15 item 9: GMO's SearchTrade has no creation date; GET and a
// capture keep the one paynorm recorded, in one format (seconds, JST).
func TestGMOReadBackKeepsCreatedAt(t *testing.T) {
	e := newEnv(t, nil, nil)
	c := e.do("POST", "/v1/payments", `{"order_id":"CA-1","amount":1000,"capture":"manual","payment_method":{"token":"tok_visa"}}`, "")
	created := c.str("created_at")
	if c.Status != 200 || len(created) != len("2006-01-02T15:04:05+09:00") {
		t.Fatalf("create: %d %s", c.Status, c.Body)
	}
	for _, r := range []*reply{e.do("GET", "/v1/payments/gmo_CA-1", "", ""), e.do("POST", "/v1/payments/gmo_CA-1/capture", "", ""), e.do("GET", "/v1/payments/gmo_CA-1", "", "")} {
		if r.str("created_at") != created {
			t.Fatalf("created_at %q, want %q: %s", r.str("created_at"), created, r.Body)
		}
	}
}
