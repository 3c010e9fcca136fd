package caddymodule

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/paynorm/paynorm/ledger"
	"github.com/paynorm/paynorm/providers/sandbox"
	"github.com/paynorm/paynorm/store"
	"github.com/paynorm/paynorm/store/bolt"
)

// send is do with request headers (name, value pairs).
func (e *env) send(method, path, body string, headers ...string) *reply {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.api.URL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := &reply{Status: resp.StatusCode, Header: resp.Header, Body: b}
	_ = json.Unmarshal(b, &r.JSON)
	return r
}

const (
	keyA = "app-a-key-0123456789abcdef0123456789abcdef"
	keyB = "app-b-key-0123456789abcdef0123456789abcdef"
)

func bearer(k string) []string { return []string{"Authorization", "Bearer " + k} }

// newClientEnv has two GMO accounts on one sandbox and two apps: app-a may
// use gmo (its key from the environment), app-b only gmo2.
func newClientEnv(t *testing.T, tune func(h *Handler)) *env {
	t.Setenv("PAYNORM_TEST_APP_A_KEY", keyA)
	t.Setenv("PAYNORM_TEST_APP_B_KEY", keyB)
	return newEnv(t, nil, func(h *Handler) {
		second := h.Accounts[0]
		second.Name = "gmo2"
		h.Accounts = append(h.Accounts, second)
		h.DefaultProvider = "gmo"
		h.Clients = []Client{
			{Name: "app-a", Key: "{env.PAYNORM_TEST_APP_A_KEY}", Accounts: []string{"gmo"}},
			{Name: "app-b", Key: "{env.PAYNORM_TEST_APP_B_KEY}", Accounts: []string{"gmo2"}},
		}
		if tune != nil {
			tune(h)
		}
	})
}

// With clients configured, every API call needs a known key (401 in the
// normalized shape otherwise, nothing sent to GMO) and reaches only its
// client's accounts (403), whichever way the account is named: provider
// in the body, the payment id's prefix, ?provider=.
func TestClientKeysGuardEveryRoute(t *testing.T) {
	e := newClientEnv(t, nil)
	body := createBody("", "tok_visa", 1000)
	for name, hdr := range map[string][]string{"none": nil, "basic": {"Authorization", "Basic " + keyA}, "empty bearer": {"Authorization", "Bearer "},
		"wrong": bearer("wrong-key-0123456789abcdef0123456789abcdef"), "prefix of a key": bearer(keyA[:20])} {
		r := e.send("POST", "/v1/payments", body, hdr...)
		want := "api_key_invalid"
		if name == "none" || name == "basic" || name == "empty bearer" {
			want = "api_key_missing"
		}
		if r.Status != 401 || r.str("error", "code") != want || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer realm=") {
			t.Fatalf("%s: %d %s %v", name, r.Status, r.Body, r.Header)
		}
	}
	if n := e.gmo.Calls("EntryTran"); n != 0 {
		t.Fatalf("unauthenticated requests reached GMO %d times", n)
	}

	a := e.send("POST", "/v1/payments", body, bearer(keyA)...)
	b := e.send("POST", "/v1/payments", body, bearer(keyB)...) // default gmo is not app-b's: its only account
	if a.Status != 200 || !strings.HasPrefix(a.str("id"), "gmo_") || b.Status != 200 || !strings.HasPrefix(b.str("id"), "gmo2_") {
		t.Fatalf("a %d %s\nb %d %s", a.Status, a.Body, b.Status, b.Body)
	}
	calls := func() int64 {
		return e.gmo.Calls("EntryTran") + e.gmo.Calls("SearchTrade") + e.gmo.Calls("AlterTran") + e.gmo.Calls("SearchMember")
	}
	before := calls()
	forbidden := []struct{ method, path, body string }{
		{"POST", "/v1/payments", `{"provider":"gmo2","amount":1000,"payment_method":{"token":"tok_visa"}}`},
		{"GET", "/v1/payments/" + b.str("id"), ""},
		{"POST", "/v1/payments/" + b.str("id") + "/capture", ""},
		{"POST", "/v1/payments/" + b.str("id") + "/cancel", ""},
		{"GET", "/v1/customers/cus-1?provider=gmo2", ""},
		{"POST", "/v1/customers?provider=gmo2", `{"id":"cus-1"}`},
	}
	for _, f := range forbidden {
		r := e.send(f.method, f.path, f.body, bearer(keyA)...)
		if r.Status != 403 || r.str("error", "code") != "account_not_permitted" || strings.Contains(string(r.Body), keyA) {
			t.Fatalf("%s %s: %d %s", f.method, f.path, r.Status, r.Body)
		}
	}
	// The passthrough answers in its own (seed 000) shape.
	r := e.send("POST", "/v1/gmo/SearchTrade?provider=gmo2", `{"orderID":"X"}`, bearer(keyA)...)
	if r.Status != 403 || r.Header.Get(PassthroughErrorHeader) != "invalid_request_error/account_not_permitted" {
		t.Fatalf("passthrough: %d %s", r.Status, r.Body)
	}
	if n := calls() - before; n != 0 {
		t.Fatalf("forbidden requests made %d provider calls", n)
	}
	// Messages name only the caller's accounts.
	if r := e.send("POST", "/v1/payments", `{"provider":"nope","amount":1,"payment_method":{"token":"t"}}`, bearer(keyA)...); r.Status != 400 || strings.Contains(r.str("error", "message"), "gmo2") {
		t.Fatalf("unknown provider: %s", r.Body)
	}

	// Health: the status alone without a key, the client's accounts with
	// one, 401 with a wrong one.
	h := e.send("GET", "/v1/health", "")
	if h.Status != 200 || h.str("status") != "ok" || h.JSON["providers"] != nil || h.JSON["store"] != nil {
		t.Fatalf("health without a key: %d %s", h.Status, h.Body)
	}
	h = e.send("GET", "/v1/health", "", bearer(keyA)...)
	if ps, _ := h.JSON["providers"].([]any); h.Status != 200 || len(ps) != 1 || ps[0].(map[string]any)["name"] != "gmo" || h.JSON["store_ok"] != true {
		t.Fatalf("health with a key: %s", h.Body)
	}
	if h = e.send("GET", "/v1/health", "", bearer("wrong-key-0123456789abcdef0123456789abcdef")...); h.Status != 401 {
		t.Fatalf("health with a wrong key: %d", h.Status)
	}
	// Provider notifications carry their own path token, not an app key.
	if r := e.send("POST", "/v1/webhooks/jpayment/0123456789abcdef0123", "gid=1"); r.Status == 401 {
		t.Fatalf("a provider notification was asked for an app key: %s", r.Body)
	}
}

// Two apps that happen to use the same Idempotency-Key on one account get
// their own payments: keys (and the order ids derived from them) are
// scoped per client.
func TestIdempotencyKeysArePerClient(t *testing.T) {
	e := newClientEnv(t, func(h *Handler) {
		h.Clients[1].Accounts = []string{"gmo", "gmo2"}
	})
	a := e.send("POST", "/v1/payments", createBody("", "tok_visa", 1000), append(bearer(keyA), "Idempotency-Key", "order-1")...)
	b := e.send("POST", "/v1/payments", `{"provider":"gmo","amount":2500,"payment_method":{"token":"tok_visa"}}`, append(bearer(keyB), "Idempotency-Key", "order-1")...)
	if a.Status != 200 || b.Status != 200 || a.str("id") == b.str("id") || b.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("a %d %s\nb %d %s", a.Status, a.Body, b.Status, b.Body)
	}
	again := e.send("POST", "/v1/payments", createBody("", "tok_visa", 1000), append(bearer(keyA), "Idempotency-Key", "order-1")...)
	if again.Header.Get("Idempotent-Replayed") != "true" || again.str("id") != a.str("id") || e.gmo.Charges() != 2 {
		t.Fatalf("replay %s, charges %d", again.Body, e.gmo.Charges())
	}
}

// The breaker counts failed payments, not calls: each create makes
// EntryTran (ok), ExecTran (503) and a SearchTrade read-back (ok), so the
// faults never come in a row, yet N such payments open the breaker and the
// next one is refused before anything reaches GMO (issue 11, item 12).
func TestBreakerOpensOnFailedPayments(t *testing.T) {
	e := newEnv(t, nil, func(h *Handler) {
		h.Accounts[0].BreakerFailures = 3
		h.Accounts[0].BreakerOpen = caddy.Duration(time.Minute)
		h.ResolveAfter = caddy.Duration(time.Hour) // no background reads in between
	})
	e.gmo.InjectFault(sandbox.Fault{API: "ExecTran", Kind: sandbox.Fault5xx, Count: 1000})
	reads := e.gmo.Calls("SearchTrade")
	for i := 0; i < 3; i++ {
		if st := e.h.providers["gmo"].Breaker(); st != "closed" {
			t.Fatalf("breaker %s after %d failed payments", st, i)
		}
		r := e.do("POST", "/v1/payments", createBody(fmt.Sprintf("BRK-%d", i), "tok_visa", 100), "")
		if r.Status != 503 || r.str("error", "code") != "provider_unavailable" {
			t.Fatalf("payment %d: %d %s", i, r.Status, r.Body)
		}
	}
	if n := e.gmo.Calls("SearchTrade") - reads; n < 3 {
		t.Fatalf("only %d read-backs: the reads around the faults must succeed for this test", n)
	}
	entries := e.gmo.Calls("EntryTran")
	r := e.do("POST", "/v1/payments", createBody("BRK-next", "tok_visa", 100), "")
	if r.Status != 503 || r.str("error", "code") != "circuit_open" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("after 3 failed payments: %d %s", r.Status, r.Body)
	}
	if e.gmo.Calls("EntryTran") != entries {
		t.Fatal("a payment went out with the breaker open")
	}
	if h := e.do("GET", "/v1/health", "", ""); h.str("status") != "degraded" {
		t.Fatalf("health %s", h.Body)
	}
}

// The same when the app reads each failed payment back: the successful
// reads do not hide the failing payments (a third or more of the
// operations failing opens it). Counted per call, a quarter of the calls
// failed and the breaker never opened.
func TestBreakerOpensWhenFailedPaymentsAlternateWithReads(t *testing.T) {
	e := newEnv(t, nil, func(h *Handler) {
		h.Accounts[0].BreakerFailures = 3
		h.Accounts[0].BreakerOpen = caddy.Duration(time.Minute)
		h.ResolveAfter = caddy.Duration(time.Hour)
	})
	e.gmo.InjectFault(sandbox.Fault{API: "ExecTran", Kind: sandbox.Fault5xx, Count: 1000})
	refused := 0
	for i := 0; i < 12; i++ {
		r := e.do("POST", "/v1/payments", createBody(fmt.Sprintf("ALT-%d", i), "tok_visa", 100), "")
		if r.str("error", "code") == "circuit_open" {
			refused++
			continue
		}
		if g := e.do("GET", "/v1/payments/gmo_"+fmt.Sprintf("ALT-%d", i), "", ""); g.Status != 200 && g.str("error", "code") != "circuit_open" {
			t.Fatalf("read-back %d %s", g.Status, g.Body)
		}
	}
	t.Logf("12 payments with ExecTran failing, each read back: %d refused by the open breaker, ExecTran sent %d times", refused, e.gmo.Calls("ExecTran"))
	if refused == 0 || e.gmo.Calls("ExecTran") > 3 {
		t.Fatalf("breaker never opened: ExecTran sent %d times", e.gmo.Calls("ExecTran"))
	}
}

// Declines are GMO working: any number of them leaves the breaker closed.
func TestBreakerIgnoresDeclines(t *testing.T) {
	e := newEnv(t, nil, func(h *Handler) { h.Accounts[0].BreakerFailures = 2 })
	for i := 0; i < 10; i++ {
		r := e.do("POST", "/v1/payments", createBody(fmt.Sprintf("DCL-%d", i), "tok_insufficient_funds", 100), "")
		if r.Status != 402 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	}
	if st := e.h.providers["gmo"].Breaker(); st != "closed" {
		t.Fatalf("breaker %s after declines", st)
	}
}

// A provider endpoint that redirects never gets the request re-sent to the
// Location: the shop password (and a card token) would go to another
// origin, and a write would be sent twice.
func TestProviderRedirectIsNotFollowed(t *testing.T) {
	var stolen atomic.Int64
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stolen.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer collector.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, collector.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	e := newEnv(t, nil, func(h *Handler) { h.Accounts[0].Endpoint = redirector.URL })
	r := e.do("POST", "/v1/payments", createBody("REDIR-1", "tok_visa", 100), "")
	if r.Status < 500 || r.str("error", "type") == "" {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	if n := stolen.Load(); n != 0 {
		t.Fatalf("the redirect target received %d requests", n)
	}
}

// A body trickling in one byte at a time is cut off after body_timeout
// with 408, instead of holding the connection open (issue 11, item 8).
func TestSlowBodyIsCutOff(t *testing.T) {
	e := newEnv(t, nil, func(h *Handler) { h.BodyTimeout = caddy.Duration(500 * time.Millisecond) })
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.api.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := createBody("SLOW-1", "tok_visa", 100)
	fmt.Fprintf(conn, "POST /v1/payments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	start := time.Now()
	go func() {
		for i := 0; i < len(body); i++ {
			if _, err := conn.Write([]byte{body[i]}); err != nil {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer within 5 s to a trickling body: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	took := time.Since(start)
	t.Logf("trickling body answered %d after %v: %s", resp.StatusCode, took.Round(10*time.Millisecond), b)
	if resp.StatusCode != 408 || !strings.Contains(string(b), `"code":"request_timeout"`) || took > 2*time.Second {
		t.Fatalf("%d after %v: %s", resp.StatusCode, took, b)
	}
	if e.gmo.Calls("EntryTran") != 0 {
		t.Fatal("the cut-off request reached GMO")
	}
}

// diskFullStore is a bolt store whose disk is full while fail is set: every
// write fails, reads work.
type diskFullStore struct {
	store.Store
	fail atomic.Bool
}

var errDiskFull = errors.New("write /data/paynorm.db: no space left on device")

func (f *diskFullStore) ClaimIdempotency(ctx context.Context, scope, key, fp string, lease, ttl time.Duration) (store.IdemState, *store.Response, error) {
	if f.fail.Load() {
		return 0, nil, errDiskFull
	}
	return f.Store.ClaimIdempotency(ctx, scope, key, fp, lease, ttl)
}

func (f *diskFullStore) SwapPayment(ctx context.Context, rec *store.PaymentRecord, evs ...*store.Event) error {
	if f.fail.Load() {
		return errDiskFull
	}
	return f.Store.SwapPayment(ctx, rec, evs...)
}

func (f *diskFullStore) Probe(ctx context.Context) error {
	if f.fail.Load() {
		return errDiskFull
	}
	return f.Store.Probe(ctx)
}

// With the store unable to take writes every payment answers 503
// store_unavailable, and so does the health check (503 "unavailable"), so a
// container health check fails instead of reporting ok (issue 11, item 9).
func TestHealthFailsWhenTheStoreCannotWrite(t *testing.T) {
	b, err := bolt.Open(filepath.Join(t.TempDir(), "paynorm.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	fs := &diskFullStore{Store: b}
	e := newEnv(t, nil, func(h *Handler) { h.store = fs })
	if r := e.do("GET", "/v1/health", "", ""); r.Status != 200 || r.str("status") != "ok" || r.JSON["store_ok"] != true {
		t.Fatalf("healthy: %d %s", r.Status, r.Body)
	}
	fs.fail.Store(true)
	if r := e.do("POST", "/v1/payments", createBody("FULL-1", "tok_visa", 100), ""); r.Status != 503 || r.str("error", "code") != "store_unavailable" {
		t.Fatalf("create with a full disk: %d %s", r.Status, r.Body)
	}
	r := e.do("GET", "/v1/health", "", "")
	if r.Status != 503 || r.str("status") != "unavailable" || r.JSON["store_ok"] != false || strings.Contains(string(r.Body), "no space") {
		t.Fatalf("health with a full disk: %d %s", r.Status, r.Body)
	}
	fs.fail.Store(false)
	if r := e.do("GET", "/v1/health", "", ""); r.Status != 200 || r.str("status") != "ok" {
		t.Fatalf("recovered: %d %s", r.Status, r.Body)
	}
}

// {"AMOUNT":5000,"amount":7} and the same keys swapped, with one
// Idempotency-Key: the decoder saw 7 and 5000 while the fingerprint saw one
// body, so the second was answered with the first's 7 yen payment. Now
// both are refused with 400 and nothing is charged (issue 11, item 7).
func TestCaseVariantKeysNeverReplayAnotherAmount(t *testing.T) {
	e := newEnv(t, nil, nil)
	for _, body := range []string{
		`{"AMOUNT":5000,"amount":7,"payment_method":{"token":"tok_visa"}}`,
		`{"amount":7,"AMOUNT":5000,"payment_method":{"token":"tok_visa"}}`,
	} {
		r := e.do("POST", "/v1/payments", body, "dup-key")
		if r.Status != 400 || r.str("error", "code") != "parameter_duplicate" || r.Header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("%s: %d %s", body, r.Status, r.Body)
		}
	}
	if e.gmo.Charges() != 0 {
		t.Fatalf("%d charges", e.gmo.Charges())
	}
}

// oldFingerprint is the fingerprint before issue 11: SHA-256 over method,
// route, id and the canonical body, card data included.
func oldFingerprint(method, route, id string, body []byte) string {
	h := sha256.New()
	for _, s := range []string{method, route, id} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	var v any
	_ = json.Unmarshal(body, &v)
	c, _ := json.Marshal(v)
	h.Write(c)
	return hex.EncodeToString(h.Sum(nil))
}

// The stored fingerprint of a create with a security code gives the code
// away to nobody: the brute force that recovered 737 from an unkeyed hash
// in milliseconds (issue 11, item 5) finds nothing, and even an attacker
// holding the store's key learns nothing, since card data is no part of
// the fingerprint. A retry with a fresh token replays the first answer.
func TestStoredFingerprintRevealsNoCardData(t *testing.T) {
	e := newEnv(t, nil, nil)
	body := func(code, tok string) string {
		return `{"order_id":"FP-1","amount":1000,"payment_method":{"token":"` + tok + `","security_code":"` + code + `"}}`
	}
	first := e.do("POST", "/v1/payments", body("737", "tok_visa"), "fp-key")
	if first.Status != 200 {
		t.Fatalf("%d %s", first.Status, first.Body)
	}
	ctx := context.Background()
	st := e.store()
	recovered := map[string][]string{}
	for n := 0; n < 1000; n++ {
		code := fmt.Sprintf("%03d", n)
		for name, fp := range map[string]string{
			"unkeyed hash":       oldFingerprint("POST", "create_payment", "", []byte(body(code, "tok_visa"))),
			"with the store key": fingerprint(st.FingerprintKey(), "POST", "create_payment", "", []byte(body(code, "tok_visa"))),
		} {
			state, _, err := st.ClaimIdempotency(ctx, "gmo", "fp-key", fp, time.Minute, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if state == store.IdemReplay {
				recovered[name] = append(recovered[name], code)
			}
		}
	}
	if got := recovered["unkeyed hash"]; len(got) != 0 {
		t.Fatalf("an unkeyed hash of the body matches the stored fingerprint for %v", got)
	}
	if got := recovered["with the store key"]; len(got) != 0 && len(got) != 1000 {
		t.Fatalf("the stored fingerprint singles out security codes %v", got)
	}
	retry := e.do("POST", "/v1/payments", body("123", "tok_fresh"), "fp-key")
	if retry.Status != 200 || retry.Header.Get("Idempotent-Replayed") != "true" || retry.str("id") != first.str("id") || e.gmo.Charges() != 1 {
		t.Fatalf("retry with a fresh token: %d %s, charges %d", retry.Status, retry.Body, e.gmo.Charges())
	}
}

// The passthrough refuses raw card data unless the account allows it, and
// checks every value with the unified API's rules: a client field that
// would forge "Status=VOID" in GMO's raw answer is refused, not relayed
// (issue 11, item 6).
func TestPassthroughRefusesCardDataAndForgedFields(t *testing.T) {
	e := newEnv(t, nil, nil)
	entry := e.do("POST", "/v1/gmo/EntryTran", `{"orderID":"PC-1","jobCd":"AUTH","amount":"1000"}`, "")
	if entry.Status != 200 {
		t.Fatalf("%d %s", entry.Status, entry.Body)
	}
	ids := `"accessID":"` + entry.str("accessID") + `","accessPass":"` + entry.str("accessPass") + `","orderID":"PC-1","method":"1"`
	execs := e.gmo.Calls("ExecTran")
	for _, c := range []struct{ body, header, param string }{
		{`{` + ids + `,"cardNo":"4111111111111111","expire":"3012","securityCode":"737"}`, "invalid_request_error/card_data_not_allowed", ""},
		{`{` + ids + `,"token":"tok_visa","securityCode":"737"}`, "invalid_request_error/card_data_not_allowed", ""},
		{`{` + ids + `,"token":"tok_visa","clientField3":"x&Status=VOID&Amount=1"}`, "invalid_request_error/parameter_invalid", "clientField3"},
		{`{` + ids + `,"token":"tok_visa","orderID":"PC-1"}`, "invalid_request_error/parameter_duplicate", ""},
	} {
		r := e.do("POST", "/v1/gmo/ExecTran", c.body, "")
		errs := passErrors(t, r)
		if r.Header.Get(PassthroughErrorHeader) != c.header || errs[0].ErrCode != "paynorm" || strings.Contains(string(r.Body), "4111111111111111") {
			t.Fatalf("%s: %d %s %s", c.body, r.Status, r.Header.Get(PassthroughErrorHeader), r.Body)
		}
	}
	if n := e.gmo.Calls("ExecTran") - execs; n != 0 {
		t.Fatalf("%d refused requests were relayed", n)
	}

	allowed := newEnv(t, nil, func(h *Handler) { h.Accounts[0].PassthroughCardData = "allow" })
	entry = allowed.do("POST", "/v1/gmo/EntryTran", `{"orderID":"PC-2","jobCd":"AUTH","amount":"1000"}`, "")
	allowed.do("POST", "/v1/gmo/ExecTran", `{"accessID":"`+entry.str("accessID")+`","accessPass":"`+entry.str("accessPass")+`","orderID":"PC-2","method":"1","cardNo":"4111111111111111","expire":"3012"}`, "")
	if allowed.gmo.Calls("ExecTran") != 1 {
		t.Fatal("passthrough_card_data allow did not relay the card data")
	}
}

// The in-flight lease of an Idempotency-Key outlasts the slowest create:
// measured here with every call running to its timeout (ExecTran hangs,
// each SearchTrade read-back attempt hangs), a retry with the same key
// during it is 409, and the lease of an account at the default timeouts
// covers the same sequence scaled to them. The fixed 2-minute lease did
// not (issue 11, item 13).
func TestIdempotencyLeaseOutlastsTheSlowestCreate(t *testing.T) {
	const timeout = 300 * time.Millisecond
	e := newEnv(t, nil, func(h *Handler) {
		h.Accounts[0].Timeout = caddy.Duration(timeout)
		h.ResolveAfter = caddy.Duration(time.Hour)
	})
	e.gmo.InjectFault(sandbox.Fault{API: "ExecTran", Kind: sandbox.FaultCommitHang, Delay: 2 * time.Second})
	e.gmo.InjectFault(sandbox.Fault{API: "SearchTrade", Kind: sandbox.FaultDelay, Delay: 2 * time.Second, Count: 3})
	body := createBody("LEASE-1", "tok_visa", 100)
	done := make(chan *reply, 1)
	start := time.Now()
	go func() {
		r, _ := e.try("POST", "/v1/payments", body, "lease-key")
		done <- r
	}()
	time.Sleep(3 * timeout)
	if r := e.do("POST", "/v1/payments", body, "lease-key"); r.Status != 409 || r.str("error", "code") != "idempotency_key_in_use" {
		t.Fatalf("retry during the create: %d %s", r.Status, r.Body)
	}
	first := <-done
	took := time.Since(start)
	if first == nil || first.Status != 504 {
		t.Fatalf("slow create: %+v", first)
	}
	if lease := e.h.idemLease("gmo"); lease < took {
		t.Fatalf("lease %v shorter than the create (%v)", lease, took)
	}
	// The same sequence at the default timeout (30s) and max_wait (1s).
	calls := float64(took) / float64(timeout)
	worst := time.Duration(calls * float64(defaultCallTimeout+defaultMaxWait))
	d := &Handler{Accounts: []Account{{Name: "gmo"}}, ledger: ledger.New(store.NewMemory(), nil, false)}
	t.Logf("slowest create took %v (%.1f timeouts of %v); at the defaults that is %v; idempotency lease %v, operation lease %v",
		took.Round(time.Millisecond), calls, timeout, worst.Round(time.Second), d.idemLease("gmo"), d.opLease("gmo"))
	if d.idemLease("gmo") < worst || d.opLease("gmo") < worst {
		t.Fatalf("leases %v / %v shorter than the worst case %v", d.idemLease("gmo"), d.opLease("gmo"), worst)
	}
	if d.idemLease("gmo") <= 2*time.Minute {
		t.Fatal("the lease is no longer than the old fixed 2 minutes")
	}
}

// An event the receiver never takes is given up after notify_max_attempts,
// counted in paynorm_webhook_dead_letters_total and listed by the admin
// API (issue 11, item 11).
func TestDeadLetteredEventIsCountedAndListed(t *testing.T) {
	var hits atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer sink.Close()
	count := func(c prometheus.Counter) float64 {
		var m dto.Metric
		_ = c.Write(&m)
		return m.GetCounter().GetValue()
	}
	before := count(sharedMetrics().deadLetters)
	e := newEnv(t, nil, func(h *Handler) {
		h.NotifyURL = sink.URL
		h.NotifyMaxAttempts = 2
	})
	if r := e.do("POST", "/v1/payments", createBody("DEAD-1", "tok_visa", 100), ""); r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	waitUntil(t, "the event to be dead-lettered", func() bool { return count(sharedMetrics().deadLetters) > before })
	rec := httptest.NewRecorder()
	if err := serveDeadLetters(rec, httptest.NewRequest("GET", "/paynorm/dead_letters", nil)); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Stores []struct {
			Path        string
			DeadLetters []struct {
				Type      string
				LastError string `json:"last_error"`
				Attempts  int
				Body      json.RawMessage
			} `json:"dead_letters"`
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	found := false
	for _, s := range out.Stores {
		if s.Path != e.h.Store.Path {
			continue
		}
		for _, d := range s.DeadLetters {
			found = found || d.Type == "payment.captured" && d.Attempts == 2 && strings.Contains(string(d.Body), "DEAD-1")
		}
	}
	if !found || hits.Load() != 2 {
		t.Fatalf("hits %d, admin answer %s", hits.Load(), rec.Body)
	}
}
