package caddymodule

// Regression tests of "Payment state with one owner" (issue 10), each over
// real HTTP against the j-payment sandbox: forged kickbacks, stale writes,
// unserialized follow-ups, double charges of one order, notify_url hiding
// features, and kickback failure answers that looked like success.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/paynorm/paynorm/providers/sandbox"
	"github.com/paynorm/paynorm/store"
	"github.com/paynorm/paynorm/store/bolt"
	"github.com/paynorm/paynorm/store/journal"
	"github.com/paynorm/paynorm/store/redis"
)

// jpEnv is paynorm with one j-payment account in front of the sandbox, and
// a webhook receiver that verifies every event.
type jpEnv struct {
	t   *testing.T
	sim *sandbox.JPayment
	srv *httptest.Server
	pn  *paynorm
	rc  *eventReceiver
	st  store.Store
}

func newJPEnv(t *testing.T, st store.Store, timeout time.Duration) *jpEnv {
	t.Helper()
	e := &jpEnv{t: t, sim: sandbox.NewJPayment(), st: st}
	e.srv = httptest.NewServer(e.sim)
	t.Cleanup(e.srv.Close)
	e.rc = &eventReceiver{t: t}
	e.rc.up.Store(true)
	recv := httptest.NewServer(e.rc)
	t.Cleanup(recv.Close)
	h := jpHandler(e.srv.URL, recv.URL)
	h.Accounts[0].Timeout = caddy.Duration(timeout)
	h.Accounts[0].BreakerFailures = 1000
	e.pn = startPaynorm(t, h, st)
	e.sim.KickbackURL = e.pn.srv.URL + kickbackPath
	return e
}

// twin starts a second paynorm over the same store and gateway, as a
// second instance on a shared Redis would be: its own process-local locks,
// only the store's lease in common.
func (e *jpEnv) twin() *jpEnv {
	h := jpHandler(e.srv.URL, "")
	h.NotifySecret = ""
	h.Accounts[0].Timeout = caddy.Duration(5 * time.Second)
	h.Accounts[0].BreakerFailures = 1000
	t2 := *e
	t2.pn = startPaynorm(e.t, h, e.st)
	return &t2
}

func (e *jpEnv) do(method, path, body string) *reply {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.pn.srv.URL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	r := &reply{Status: resp.StatusCode, Header: resp.Header}
	r.Body, _ = io.ReadAll(resp.Body)
	_ = json.Unmarshal(r.Body, &r.JSON)
	return r
}

func jpCreate(order, token string, amount int, capture string) string {
	o := ""
	if order != "" {
		o = fmt.Sprintf(`"order_id":%q,`, order)
	}
	return fmt.Sprintf(`{%s"amount":%d,"capture":%q,"payment_method":{"token":%q},"customer":{"phone":"0312345678"}}`, o, amount, capture, token)
}

// kick sends a kickback as j-payment would, on path (with or without the token).
func (e *jpEnv) kick(path string, q url.Values) (int, string) {
	e.t.Helper()
	resp, err := http.Get(e.pn.srv.URL + path + "?" + q.Encode())
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (r *reply) num(path ...string) int64 {
	var v any = r.JSON
	for _, k := range path {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	f, _ := v.(float64)
	return int64(f)
}

// Symptom 1: with the right token, a kickback still cannot change a settled
// payment's amount or approval, create a payment paynorm never started, or
// settle an open create whose amounts it contradicts. Without the token it
// is not even heard.
func TestForgedKickbacksMoveNoMoney(t *testing.T) {
	e := newJPEnv(t, store.NewMemory(), 300*time.Millisecond)
	c := e.do("POST", "/v1/payments", jpCreate("FORGE-1", "tok_visa", 1200, "manual"))
	if c.Status != 200 || c.str("status") != "authorized" {
		t.Fatalf("create %d %s", c.Status, c.Body)
	}
	id, gid, ap := c.str("id"), strings.TrimPrefix(c.str("id"), "jp_"), c.str("approval_code")

	forged := url.Values{"gid": {gid}, "rst": {"1"}, "am": {"1"}, "tx": {"0"}, "sf": {"0"}, "ta": {"1"}, "ap": {"999999"}, "cod": {"FORGE-1"}}
	for _, path := range []string{"/v1/webhooks/jpayment", "/v1/webhooks/jpayment/wrong-token-0123456789"} {
		if code, _ := e.kick(path, forged); code != 404 {
			t.Fatalf("kickback on %s: %d, want 404", path, code)
		}
	}
	if code, body := e.kick(kickbackPath, forged); code != 200 || body != "OK" {
		t.Fatalf("forged kickback with the token: %d %q", code, body)
	}
	g := e.do("GET", "/v1/payments/"+id, "")
	if g.num("amount") != 1200 || g.str("approval_code") != ap || g.str("status") != "authorized" {
		t.Fatalf("a forged kickback changed the payment: %s", g.Body)
	}
	capt := e.do("POST", "/v1/payments/"+id+"/capture", "")
	if st, total := e.sim.Status(gid); capt.Status != 200 || capt.num("amount") != 1200 || st != "SALES" || total != 1200 {
		t.Fatalf("capture after the forgery: %d %s (gateway %s %d)", capt.Status, capt.Body, st, total)
	}

	// A gid paynorm never saw: acknowledged, nothing created.
	if code, _ := e.kick(kickbackPath, url.Values{"gid": {"777777"}, "rst": {"1"}, "am": {"500"}, "tx": {"0"}, "sf": {"0"}, "cod": {"NEVER-SEEN"}}); code != 200 {
		t.Fatalf("unknown gid: %d", code)
	}
	if g := e.do("GET", "/v1/payments/jp_777777", ""); g.Status != 404 {
		t.Fatalf("a kickback created a payment: %d %s", g.Status, g.Body)
	}

	// A create that timed out (the gateway charged 2,000 yen): a claim with
	// other amounts does not settle it, the true one does, marked unverified.
	e.sim.SlowDelay = time.Second
	u := e.do("POST", "/v1/payments", jpCreate("FORGE-2", "tok_fault_slow", 2000, "automatic"))
	if u.Status != 504 || u.str("error", "payment", "status") != "unknown" {
		t.Fatalf("slow create: %d %s", u.Status, u.Body)
	}
	waitUntil(t, "the gateway to book the slow charge", func() bool { return e.sim.Calls("gateway_token") == 2 })
	slowGID := strconv.Itoa(1095728 + 2)
	if st, _ := e.sim.Status(slowGID); st != "CAPTURE" {
		t.Fatalf("gateway status of %s: %q", slowGID, st)
	}
	lie := url.Values{"gid": {slowGID}, "rst": {"2"}, "am": {"1"}, "tx": {"0"}, "sf": {"0"}, "cod": {"FORGE-2"}, "ec": {"G12"}}
	if code, _ := e.kick(kickbackPath, lie); code != 200 {
		t.Fatalf("lying claim: %d", code)
	}
	if r := e.do("POST", "/v1/payments", jpCreate("FORGE-2", "tok_fault_slow", 2000, "automatic")); r.Status != 200 || r.str("status") != "unknown" {
		t.Fatalf("the order after a contradicting claim: %d %s", r.Status, r.Body)
	}
	truth := url.Values{"gid": {slowGID}, "rst": {"1"}, "am": {"2000"}, "tx": {"0"}, "sf": {"0"}, "ta": {"2000"}, "cod": {"FORGE-2"}, "ap": {"1234567"}}
	if code, _ := e.kick(kickbackPath, truth); code != 200 {
		t.Fatalf("true claim: %d", code)
	}
	r := e.do("POST", "/v1/payments", jpCreate("FORGE-2", "tok_fault_slow", 2000, "automatic"))
	if r.Status != 200 || r.str("status") != "captured" || r.str("id") != "jp_"+slowGID || r.num("amount") != 2000 {
		t.Fatalf("the order after the true claim: %d %s", r.Status, r.Body)
	}
	if n := e.sim.Calls("gateway_token"); n != 2 {
		t.Fatalf("gateway_token calls %d: an order was charged again", n)
	}
	waitUntil(t, "the settle event", func() bool { return len(e.rc.byType("payment.captured")) >= 2 })
	for _, ev := range e.rc.events() {
		p := ev.Data.Payment
		if p == nil {
			continue
		}
		if p.Total == 1 || p.ID == "jp_777777" || p.ApprovalCode == "999999" {
			t.Fatalf("an event announced a forgery: %+v", ev)
		}
		if p.ID == "jp_"+slowGID && ev.Verified {
			t.Fatalf("an event resting on a kickback claims to be verified: %+v", ev)
		}
		if p.ID == id && !ev.Verified {
			t.Fatalf("an event resting on the gateway's answer is unverified: %+v", ev)
		}
	}
}

// firstGID is the simulator's first payment number.
const firstGID = "1095729"

// Symptom 2a: a kickback that arrives while the create still waits for its
// answer settles the order; the late answer does not overwrite it.
func TestKickbackDuringCreateIsNotOverwritten(t *testing.T) {
	e := newJPEnv(t, store.NewMemory(), 5*time.Second)
	e.sim.SlowDelay = 400 * time.Millisecond
	done := make(chan *reply, 1)
	go func() { done <- e.do("POST", "/v1/payments", jpCreate("RACE-1", "tok_fault_slow", 1500, "manual")) }()
	waitUntil(t, "the charge at the gateway", func() bool { st, _ := e.sim.Status(firstGID); return st != "" })
	resp, err := http.PostForm(e.srv.URL+"/gateway/sandbox/kickback", url.Values{"gid": {firstGID}})
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("kickback: %v %v", resp, err)
	}
	resp.Body.Close()
	c := <-done
	if c.Status != 200 || c.str("id") != "jp_"+firstGID {
		t.Fatalf("create %d %s", c.Status, c.Body)
	}
	ctx := context.Background()
	order, err := e.st.GetPayment(ctx, "jp_order.RACE-1")
	if err != nil || order.Status != "authorized" || order.LinkedID != "jp_"+firstGID || order.Lease != nil {
		t.Fatalf("order record %+v %v", order, err)
	}
	if un, _ := e.st.Unresolved(ctx, 0); len(un) != 0 {
		t.Fatalf("records left unresolved: %+v", un[0])
	}
	if g := e.do("GET", "/v1/payments/jp_"+firstGID, ""); g.str("status") != "authorized" || g.num("amount") != 1500 {
		t.Fatalf("GET %s", g.Body)
	}
}

// Symptom 2b: after a re-authorization the old id still reads as the old
// payment, voided and pointing to its replacement.
func TestReauthorizeKeepsTheOldRecord(t *testing.T) {
	e := newJPEnv(t, store.NewMemory(), 5*time.Second)
	c := e.do("POST", "/v1/payments", jpCreate("RE-1", "tok_visa", 1000, "manual"))
	re := e.do("POST", "/v1/payments/"+c.str("id")+"/reauthorize", `{"amount":800}`)
	if re.Status != 200 || re.str("id") == c.str("id") || re.num("amount") != 800 {
		t.Fatalf("reauthorize %d %s", re.Status, re.Body)
	}
	old := e.do("GET", "/v1/payments/"+c.str("id"), "")
	if old.str("id") != c.str("id") || old.str("status") != "voided" || old.num("amount") != 1000 || old.str("provider_data", "replaced_by") != re.str("id") {
		t.Fatalf("old id reads %s", old.Body)
	}
	if nw := e.do("GET", "/v1/payments/"+re.str("id"), ""); nw.str("status") != "authorized" || nw.num("amount") != 800 {
		t.Fatalf("new id reads %s", nw.Body)
	}
}

// Symptom 4: one order is charged once, with or without an Idempotency-Key,
// also after a timeout; a different request for it is order_id_exists.
func TestJPaymentOrderIsChargedOnce(t *testing.T) {
	e := newJPEnv(t, store.NewMemory(), 300*time.Millisecond)
	first := e.do("POST", "/v1/payments", jpCreate("ONCE-1", "tok_visa", 3000, "automatic"))
	second := e.do("POST", "/v1/payments", jpCreate("ONCE-1", "tok_visa", 3000, "automatic"))
	if first.Status != 200 || second.Status != 200 || second.str("id") != first.str("id") || second.str("status") != "captured" {
		t.Fatalf("first %d %s, second %d %s", first.Status, first.Body, second.Status, second.Body)
	}
	other := e.do("POST", "/v1/payments", jpCreate("ONCE-1", "tok_visa", 3001, "automatic"))
	if other.Status != 409 || other.str("error", "code") != "order_id_exists" || other.str("error", "payment", "id") != first.str("id") {
		t.Fatalf("other amount %d %s", other.Status, other.Body)
	}
	e.sim.SlowDelay = time.Second
	slow := e.do("POST", "/v1/payments", jpCreate("ONCE-2", "tok_fault_slow", 500, "automatic"))
	retry := e.do("POST", "/v1/payments", jpCreate("ONCE-2", "tok_fault_slow", 500, "automatic"))
	if slow.Status != 504 || retry.Status != 200 || retry.str("status") != "unknown" {
		t.Fatalf("slow %d %s, retry %d %s", slow.Status, slow.Body, retry.Status, retry.Body)
	}
	if n := e.sim.Calls("gateway_token"); n != 2 {
		t.Fatalf("gateway_token calls %d, want 2 (one per order)", n)
	}
}

// Symptom 5: an order id that equals an existing payment's gid never
// touches that payment's record (the event wrapper used to lose this).
func TestOrderIDEqualToAGIDKeepsThatPayment(t *testing.T) {
	e := newJPEnv(t, store.NewMemory(), 5*time.Second)
	c := e.do("POST", "/v1/payments", jpCreate("", "tok_visa", 5000, "manual"))
	gid := strings.TrimPrefix(c.str("id"), "jp_")
	d := e.do("POST", "/v1/payments", jpCreate(gid, "tok_declined", 1, "manual"))
	if d.Status == 200 {
		t.Fatalf("decline answered %s", d.Body)
	}
	if g := e.do("GET", "/v1/payments/"+c.str("id"), ""); g.str("status") != "authorized" || g.num("amount") != 5000 {
		t.Fatalf("the earlier payment now reads %s", g.Body)
	}
}

// failingStore refuses payment writes while broken is set.
type failingStore struct {
	store.Store
	broken atomic.Bool
}

func (f *failingStore) SwapPayment(ctx context.Context, rec *store.PaymentRecord, evs ...*store.Event) error {
	if f.broken.Load() {
		return errors.New("disk full")
	}
	return f.Store.SwapPayment(ctx, rec, evs...)
}

// Symptom 6: a kickback paynorm could not record is answered with an empty
// body (j-payment then counts it as not delivered and sends it again); once
// the store is back the resent kickback settles the order.
func TestKickbackFailureAnswerIsEmpty(t *testing.T) {
	fs := &failingStore{Store: store.NewMemory()}
	e := newJPEnv(t, fs, 300*time.Millisecond)
	e.sim.SlowDelay = time.Second
	if u := e.do("POST", "/v1/payments", jpCreate("FAIL-1", "tok_fault_slow", 700, "manual")); u.Status != 504 {
		t.Fatalf("slow create %d %s", u.Status, u.Body)
	}
	waitUntil(t, "the gateway to book the slow charge", func() bool { st, _ := e.sim.Status(firstGID); return st != "" })
	fs.broken.Store(true)
	resp, err := http.Get(e.pn.srv.URL + kickbackPath + "?" + url.Values{"gid": {firstGID}, "rst": {"1"}, "am": {"700"}, "tx": {"0"}, "sf": {"0"}, "cod": {"FAIL-1"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || len(b) != 0 {
		t.Fatalf("failure answer %d %q: j-payment would count a non-empty body as delivered", resp.StatusCode, b)
	}
	fs.broken.Store(false)
	r, err := http.PostForm(e.srv.URL+"/gateway/sandbox/kickback", url.Values{"gid": {firstGID}})
	if err != nil || r.StatusCode != http.StatusNoContent {
		t.Fatalf("resent kickback: %v %v", r, err)
	}
	r.Body.Close()
	if g := e.do("GET", "/v1/payments/jp_"+firstGID, ""); g.str("status") != "authorized" || g.num("amount") != 700 {
		t.Fatalf("after the resend: %s", g.Body)
	}
}

// storesUnderTest opens each backend fresh: memory, bolt and journal in a temp dir and,
// when a Redis answers on 127.0.0.1:6379, redis under a unique prefix.
func storesUnderTest(t *testing.T) map[string]func(t *testing.T) store.Store {
	m := map[string]func(t *testing.T) store.Store{
		"memory": func(*testing.T) store.Store { return store.NewMemory() },
		"bolt": func(t *testing.T) store.Store {
			s, err := bolt.Open(filepath.Join(t.TempDir(), "p.db"), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		"journal": func(t *testing.T) store.Store {
			s, err := journal.Open(filepath.Join(t.TempDir(), "p.journal"), journal.Options{Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:6379", time.Second); err == nil {
		c.Close()
		m["redis"] = func(t *testing.T) store.Store {
			var b [6]byte
			_, _ = rand.Read(b[:])
			s, err := redis.Open(context.Background(), redis.Options{Addrs: []string{"127.0.0.1:6379"}, Prefix: "{paynorm-test-" + hex.EncodeToString(b[:]) + "}:"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
	} else {
		t.Logf("no Redis on 127.0.0.1:6379: the redis leg is skipped (.ci/run starts one)")
	}
	return m
}

// Symptom 3: 30 concurrent capture+cancel pairs per store leave every
// record equal to the gateway's truth, and every 200 answer is what
// happened there.
func TestConcurrentCaptureCancelMatchesGateway(t *testing.T) {
	const pairs = 30
	for name, open := range storesUnderTest(t) {
		t.Run(name, func(t *testing.T) {
			e := newJPEnv(t, open(t), 5*time.Second)
			// Cancels go through a second instance where the store can be
			// shared (memory in-process, redis): only the lease in the
			// record serializes them with the captures.
			other := e
			if name != "bolt" && name != "journal" {
				other = e.twin()
			}
			ids := make([]string, pairs)
			for i := range ids {
				c := e.do("POST", "/v1/payments", jpCreate(fmt.Sprintf("PAIR-%d", i), "tok_visa", 1000+i, "manual"))
				if c.Status != 200 {
					t.Fatalf("create %d %s", c.Status, c.Body)
				}
				ids[i] = c.str("id")
			}
			type result struct{ capture, cancel *reply }
			results := make([]result, pairs)
			var wg sync.WaitGroup
			for i, id := range ids {
				wg.Add(2)
				go func() { defer wg.Done(); results[i].capture = e.do("POST", "/v1/payments/"+id+"/capture", "") }()
				go func() { defer wg.Done(); results[i].cancel = other.do("POST", "/v1/payments/"+id+"/cancel", "") }()
			}
			wg.Wait()
			busy, bothOK := 0, 0
			for i, id := range ids {
				gid := strings.TrimPrefix(id, "jp_")
				truth, _ := e.sim.Status(gid)
				g := e.do("GET", "/v1/payments/"+id, "")
				capOK, canOK := results[i].capture.Status == 200, results[i].cancel.Status == 200
				for _, r := range []*reply{results[i].capture, results[i].cancel} {
					if r.Status == 409 && r.str("error", "code") == "payment_busy" {
						busy++
					}
				}
				var want string
				switch {
				case truth == "AUTH":
					want = "authorized"
				case truth == "SALES":
					want = "captured"
				case truth == "CANCEL" && capOK:
					want = "refunded"
					bothOK++
				case truth == "CANCEL":
					want = "voided"
				}
				if g.str("status") != want || (truth == "SALES") != (capOK && !canOK) || (truth == "CANCEL") != canOK {
					t.Errorf("%s: gateway %s, GET %s, capture %d %s, cancel %d %s", id, truth, g.str("status"),
						results[i].capture.Status, results[i].capture.Body, results[i].cancel.Status, results[i].cancel.Body)
				}
				if canOK && results[i].cancel.str("status") != want {
					t.Errorf("%s: cancel answered %s, record says %s", id, results[i].cancel.str("status"), want)
				}
			}
			if n := e.sim.Calls("gateway"); n > 2*pairs {
				t.Errorf("%d gateway calls for %d pairs", n, pairs)
			}
			t.Logf("%s: %d pairs, records equal the gateway; both succeeded (capture then refund) %d, payment_busy answers %d, gateway calls %d",
				name, pairs, bothOK, busy, e.sim.Calls("gateway"))
		})
	}
}
