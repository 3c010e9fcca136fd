package caddymodule

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/paynorm/paynorm/ledger"
	"github.com/paynorm/paynorm/notify"
	"github.com/paynorm/paynorm/providers/sandbox"
	"github.com/paynorm/paynorm/store"
)

const testSecret = "whsec_0123456789abcdef"

// eventReceiver is the merchant's webhook endpoint: it verifies every
// delivery as the README shows and can be taken down.
type eventReceiver struct {
	t    *testing.T
	up   atomic.Bool
	mu   sync.Mutex
	evs  []ledger.Event
	hits atomic.Int64
}

func (rc *eventReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.hits.Add(1)
	if !rc.up.Load() {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	body, _ := io.ReadAll(r.Body)
	if err := notify.Verify(testSecret, r.Header.Get(notify.HeaderTimestamp), r.Header.Get(notify.HeaderSignature), body, 5*time.Minute, time.Now()); err != nil {
		rc.t.Errorf("delivery fails verification: %v", err)
		http.Error(w, "bad signature", http.StatusBadRequest)
		return
	}
	var ev ledger.Event
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID != r.Header.Get(notify.HeaderID) || ev.Type != r.Header.Get(notify.HeaderType) {
		rc.t.Errorf("event body %s does not match its headers (%v)", body, err)
	}
	if strings.Contains(string(body), "secretpw") {
		rc.t.Errorf("the issued password leaked: %s", body)
	}
	rc.mu.Lock()
	rc.evs = append(rc.evs, ev)
	rc.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (rc *eventReceiver) events() []ledger.Event {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]ledger.Event(nil), rc.evs...)
}

func (rc *eventReceiver) byType(typ string) []ledger.Event {
	var out []ledger.Event
	for _, e := range rc.events() {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// paynorm runs a provisioned handler on a loopback server.
type paynorm struct {
	h   *Handler
	srv *httptest.Server
}

func startPaynorm(t *testing.T, h *Handler, st store.Store) *paynorm {
	t.Helper()
	h.store = st
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { http.NotFound(w, r); return nil })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _ = h.ServeHTTP(w, r, next) }))
	p := &paynorm{h: h, srv: srv}
	t.Cleanup(p.stop)
	return p
}

func (p *paynorm) stop() {
	p.srv.Close()
	_ = p.h.Cleanup()
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func postJSON(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// testKickbackToken is the secret path segment of the tests' kickback URL.
const testKickbackToken = "kbt_0123456789abcdef"

// kickbackPath is where the tests' paynorm takes j-payment kickbacks.
const kickbackPath = "/v1/webhooks/jpayment/" + testKickbackToken

func jpHandler(simURL, notifyURL string) *Handler {
	return &Handler{NotifyURL: notifyURL, NotifySecret: testSecret, KickbackToken: testKickbackToken, Accounts: []Account{{Name: "jp", Type: "jpayment", Endpoint: simURL, AID: "123456", Timeout: caddy.Duration(5 * time.Second)}}}
}

// kickback -> paynorm -> receiver, with the receiver down first: the event
// waits in the outbox and arrives signed once the receiver is back.
func TestKickbackReachesReceiverAfterItComesBack(t *testing.T) {
	rc := &eventReceiver{t: t}
	recv := httptest.NewServer(rc)
	defer recv.Close()
	sim := sandbox.NewJPayment()
	simSrv := httptest.NewServer(sim)
	defer simSrv.Close()
	st := store.NewMemory()
	pn := startPaynorm(t, jpHandler(simSrv.URL, recv.URL), st)
	sim.KickbackURL = pn.srv.URL + kickbackPath

	status, pay := postJSON(t, pn.srv.URL+"/v1/payments", `{"amount":1000,"tax":80,"capture":"manual","payment_method":{"token":"tok_visa"},"customer":{"phone":"0312345678"}}`)
	if status != 200 || pay["status"] != "authorized" {
		t.Fatalf("create: %d %v", status, pay)
	}
	gid := pay["provider_data"].(map[string]any)["gid"].(string)

	// The simulator sends the kickback for that payment: it agrees with
	// what paynorm recorded, so it is acknowledged and adds no event.
	resp, err := http.PostForm(simSrv.URL+"/gateway/sandbox/kickback", url.Values{"gid": {gid}, "ps": {"secretpw"}})
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("kickback: %v %v", resp, err)
	}
	resp.Body.Close()
	if sim.Kickbacks() != 1 {
		t.Fatal("kickback not acknowledged")
	}
	waitUntil(t, "failed deliveries", func() bool { return rc.hits.Load() >= 2 })
	if len(rc.events()) != 0 {
		t.Fatal("delivered while down")
	}
	due, _ := st.DueEvents(context.Background(), time.Now().Add(48*time.Hour), 0)
	if len(due) != 1 { // payment.authorized from the API call
		t.Fatalf("outbox holds %d events", len(due))
	}

	rc.up.Store(true)
	// Backoff after two failures is a few seconds at most.
	waitUntil(t, "delivery", func() bool { return len(rc.byType("payment.authorized")) == 1 })
	ev := rc.byType("payment.authorized")[0]
	if ev.Data.Payment.ID != "jp_"+gid || ev.Provider != "jp" || ev.Object != "event" || !strings.HasPrefix(ev.ID, "evt_") || !ev.Verified {
		t.Fatalf("event: %+v", ev)
	}
	waitUntil(t, "empty outbox", func() bool {
		due, _ := st.DueEvents(context.Background(), time.Now().Add(48*time.Hour), 0)
		return len(due) == 0
	})
}

// A failure notice for a payment paynorm never started creates nothing and
// announces nothing (it is a claim nobody can check); a recurring stop
// notice becomes subscription.canceled, marked unverified.
func TestKickbackEventsAndRecords(t *testing.T) {
	rc := &eventReceiver{t: t}
	rc.up.Store(true)
	recv := httptest.NewServer(rc)
	defer recv.Close()
	st := store.NewMemory()
	pn := startPaynorm(t, jpHandler("http://127.0.0.1:1", recv.URL), st)
	kick := func(q string) (int, string) {
		resp, err := http.Get(pn.srv.URL + kickbackPath + "?" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	q := "gid=5001&rst=2&ec=G0442G040000&cod=LINK-1&am=1000&tx=0&sf=0&ta=1000"
	for i := 0; i < 2; i++ {
		if code, body := kick(q); code != 200 || body != "OK" {
			t.Fatalf("%d %q", code, body)
		}
	}
	if code, body := kick("gid=5002&rst=4&cod=SUB-1&acid=777&ec="); code != 200 || body != "OK" {
		t.Fatalf("%d %q", code, body)
	}
	waitUntil(t, "the subscription event", func() bool { return len(rc.byType("subscription.canceled")) == 1 })
	sub := rc.byType("subscription.canceled")
	if sub[0].Data.Subscription.ID != "jp_777" || sub[0].Data.Subscription.Status != "canceled" || sub[0].Verified {
		t.Fatalf("subscription events: %+v", sub)
	}
	if n := len(rc.events()); n != 1 {
		t.Fatalf("%d events, want only the subscription one: %+v", n, rc.events())
	}
	resp, err := http.Get(pn.srv.URL + "/v1/payments/jp_5001")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("GET of a payment only a kickback named: %d", resp.StatusCode)
	}
	// Bad parameters get a normalized 400 and no event.
	if code, body := kick("gid=abc&rst=1"); code != 400 || !strings.Contains(body, `"param":"gid"`) {
		t.Fatalf("%d %s", code, body)
	}
}

func TestKickbackAllowList(t *testing.T) {
	st := store.NewMemory()
	h := jpHandler("http://127.0.0.1:1", "")
	h.NotifySecret = ""
	h.KickbackAllow = []string{"203.0.113.0/24", "10.1.2.3"}
	pn := startPaynorm(t, h, st)
	resp, err := http.Get(pn.srv.URL + kickbackPath + "?gid=1&rst=1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(b), "source_not_allowed") {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if _, err := st.GetPayment(context.Background(), "jp_1"); err == nil {
		t.Fatal("a rejected kickback was recorded")
	}
	h2 := jpHandler("http://127.0.0.1:1", "")
	h2.NotifySecret = ""
	h2.KickbackAllow = []string{"127.0.0.0/8"}
	pn2 := startPaynorm(t, h2, st)
	resp, err = http.Get(pn2.srv.URL + kickbackPath + "?gid=1&rst=1")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	resp.Body.Close()
}

// paynorm restarts while the receiver is down: the next instance over the
// same store delivers what the first one could not.
func TestPendingEventsDeliveredAfterRestart(t *testing.T) {
	rc := &eventReceiver{t: t}
	recv := httptest.NewServer(rc)
	defer recv.Close()
	st := store.NewMemory()
	first := startPaynorm(t, jpHandler("http://127.0.0.1:1", recv.URL), st)
	resp, err := http.Get(first.srv.URL + kickbackPath + "?gid=9001&rst=1&acid=42&am=500&tx=0&sf=0")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	resp.Body.Close()
	waitUntil(t, "a failed delivery", func() bool { return rc.hits.Load() >= 1 })
	first.stop()

	rc.up.Store(true)
	startPaynorm(t, jpHandler("http://127.0.0.1:1", recv.URL), st)
	waitUntil(t, "delivery by the new instance", func() bool { return len(rc.events()) == 1 })
	ev := rc.events()[0]
	if ev.Type != "subscription.payment_succeeded" || ev.Data.Payment.Status != "captured" || ev.Data.Subscription.ID != "jp_42" || ev.Verified {
		t.Fatalf("%+v", ev)
	}
}

func TestWebhookSettingsValidated(t *testing.T) {
	for name, h := range map[string]*Handler{
		"short secret":                     {NotifyURL: "https://example.jp/hook", NotifySecret: "short"},
		"bad url":                          {NotifyURL: "ftp://example.jp", NotifySecret: testSecret},
		"secret without url":               {NotifySecret: testSecret},
		"bad cidr":                         {KickbackAllow: []string{"10.0.0.0/99"}},
		"j-payment without kickback token": {Accounts: []Account{{Name: "jp", Type: "jpayment", AID: "123456", Endpoint: "production"}}},
		"plain http notify_url":            {NotifyURL: "http://hooks.example.jp/paynorm", NotifySecret: testSecret},
		"short kickback token":             {KickbackToken: "short", Accounts: []Account{{Name: "jp", Type: "jpayment", AID: "123456", Endpoint: "http://127.0.0.1:1"}}},
	} {
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		if err := h.Provision(ctx); err == nil {
			t.Errorf("%s accepted", name)
		}
		_ = h.Cleanup()
		cancel()
	}
}

func TestUnmarshalCaddyfileJPayment(t *testing.T) {
	d := caddyfile.NewTestDispenser(`paynorm {
		notify_url {env.NOTIFY_URL}
		notify_secret {env.NOTIFY_SECRET}
		kickback_allow 203.0.113.0/24 198.51.100.7
		account jp {
			type jpayment
			aid {env.JPAYMENT_AID}
			endpoint production
			timeout 20s
			rate_limit 5
			breaker 3 1m
			source_address 192.0.2.10
			proxy_url http://proxy.internal:3128
		}
	}`)
	var h Handler
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	want := Account{Name: "jp", Type: "jpayment", AID: "{env.JPAYMENT_AID}", Endpoint: "production", Timeout: caddy.Duration(20 * time.Second),
		Rate: 5, BreakerFailures: 3, BreakerOpen: caddy.Duration(time.Minute), SourceAddress: "192.0.2.10", ProxyURL: "http://proxy.internal:3128"}
	if h.NotifyURL != "{env.NOTIFY_URL}" || h.NotifySecret != "{env.NOTIFY_SECRET}" || len(h.KickbackAllow) != 2 || len(h.Accounts) != 1 || !reflect.DeepEqual(h.Accounts[0], want) {
		t.Fatalf("got %+v", h)
	}
	if err := (&Account{Name: "jp", Type: "jpayment"}).Validate(); err == nil || !strings.Contains(err.Error(), "aid") {
		t.Fatalf("missing aid: %v", err)
	}
	for _, in := range []string{"paynorm {\n notify_url\n}", "paynorm {\n kickback_allow\n}", "paynorm {\n account jp {\n aid\n }\n}"} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err == nil {
			t.Errorf("accepted %s", in)
		}
	}
}

func TestUnmarshalSandboxJPayment(t *testing.T) {
	var s Sandbox
	err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`paynorm_sandbox lab {
		jpayment_kickback http://127.0.0.1:8080/v1/webhooks/jpayment
		jpayment_allowed_ip 127.0.0.2
	}`))
	if err != nil || s.Name != "lab" || s.JPaymentKickbackURL != "http://127.0.0.1:8080/v1/webhooks/jpayment" || s.JPaymentAllowedIP != "127.0.0.2" {
		t.Fatalf("%+v %v", s, err)
	}
	if err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser("paynorm_sandbox {\n jpayment_allowed_ip\n}")); err == nil {
		t.Fatal("missing argument accepted")
	}
}

// A create whose answer was lost is recorded under its order id (in the
// "order." namespace, providers.CreateRecordKey) with status
// unknown; the kickback for that order settles it and keeps the capture mode.
func TestKickbackSettlesAnUnknownCreate(t *testing.T) {
	st := store.NewMemory()
	h := jpHandler("http://127.0.0.1:1", "")
	h.NotifySecret = ""
	pn := startPaynorm(t, h, st)
	seed := []byte(`{"id":"","object":"payment","provider":"jp","order_id":"ORD-LOST","status":"unknown","amount":1000,"tax":0,"shipping":0,"total":1000,"capture":"manual","provider_data":{}}`)
	now := time.Now()
	if err := st.SwapPayment(context.Background(), &store.PaymentRecord{ID: "jp_order.ORD-LOST", Account: "jp", Key: "order.ORD-LOST", Status: "unknown", Op: "create", Payment: seed, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(pn.srv.URL + kickbackPath + "?gid=8080&rst=1&ap=123456&cod=ORD-LOST&am=1000&tx=0&sf=0&ta=1000")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	resp.Body.Close()
	rec, err := st.GetPayment(context.Background(), "jp_order.ORD-LOST")
	if err != nil || rec.Status != "authorized" || rec.LinkedID != "jp_8080" || !strings.Contains(string(rec.Payment), `"id":"jp_8080"`) {
		t.Fatalf("order record: %+v %v", rec, err)
	}
	var got map[string]any
	r2, _ := http.Get(pn.srv.URL + "/v1/payments/jp_8080")
	_ = json.NewDecoder(r2.Body).Decode(&got)
	r2.Body.Close()
	if got["status"] != "authorized" || got["capture"] != "manual" || got["approval_code"] != "123456" {
		t.Fatalf("GET: %v", got)
	}
}
