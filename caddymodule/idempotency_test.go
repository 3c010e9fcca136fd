package caddymodule

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/paynorm/paynorm/providers/sandbox"
)

// N identical requests with one key at once: exactly one charge; every
// answer is either that payment or 409 in flight.
func TestIdempotencyConcurrentOneCharge(t *testing.T) {
	e := newEnv(t, nil, nil)
	// Hold ExecTran so the other requests arrive while the first is in flight.
	e.gmo.InjectFault(sandbox.Fault{API: "ExecTran", Kind: sandbox.FaultDelay, Delay: 300 * time.Millisecond})
	const n = 50
	body := createBody("", "tok_visa", 1200)
	replies := make([]*reply, n)
	var wg sync.WaitGroup
	for i := range replies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i] = e.do("POST", "/v1/payments", body, "one-key")
		}()
	}
	wg.Wait()
	counts := map[int]int{}
	ids := map[string]bool{}
	for _, r := range replies {
		counts[r.Status]++
		if r.Status == 200 {
			ids[r.str("id")] = true
		} else if r.Status != 409 || r.str("error", "code") != "idempotency_key_in_use" {
			t.Fatalf("unexpected answer %d %s", r.Status, r.Body)
		}
	}
	// Once it finished, every retry replays the one answer.
	again := e.do("POST", "/v1/payments", body, "one-key")
	t.Logf("%d concurrent requests, one key: %d answered 200, %d answered 409; provider: EntryTran=%d ExecTran=%d charges=%d; replay after: %d %s",
		n, counts[200], counts[409], e.gmo.Calls("EntryTran"), e.gmo.Calls("ExecTran"), e.gmo.Charges(), again.Status, again.Header.Get("Idempotent-Replayed"))
	if e.gmo.Charges() != 1 || e.gmo.Calls("ExecTran") != 1 || e.gmo.Calls("EntryTran") != 1 {
		t.Fatalf("charges %d, ExecTran %d, EntryTran %d: want exactly one", e.gmo.Charges(), e.gmo.Calls("ExecTran"), e.gmo.Calls("EntryTran"))
	}
	if counts[200] < 1 || len(ids) != 1 {
		t.Fatalf("answers %v ids %v", counts, ids)
	}
	if again.Status != 200 || again.Header.Get("Idempotent-Replayed") != "true" || !ids[again.str("id")] {
		t.Fatalf("replay %d %s", again.Status, again.Body)
	}
}

func TestIdempotencyReplayMismatchAndScope(t *testing.T) {
	e := newEnv(t, nil, func(h *Handler) {
		a := h.Accounts[0]
		a.Name = "other"
		h.Accounts = append(h.Accounts, a)
		h.DefaultProvider = "gmo"
	})
	first := e.do("POST", "/v1/payments", `{"amount":1000,"payment_method":{"token":"tok_visa"},"capture":"manual"}`, "k-1")
	if first.Status != 200 || first.str("status") != "authorized" {
		t.Fatalf("first %d %s", first.Status, first.Body)
	}
	// The same request, spelled with other whitespace and key order.
	replay := e.do("POST", "/v1/payments", "{ \"capture\" : \"manual\",\n \"payment_method\":{\"token\":\"tok_visa\"}, \"amount\":1000 }", "k-1")
	if replay.Status != 200 || !bytes.Equal(replay.Body, first.Body) || replay.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay %d %s", replay.Status, replay.Body)
	}
	if replay.Header.Get("X-Request-Id") == first.Header.Get("X-Request-Id") {
		t.Fatal("a replay is a new request and gets its own X-Request-Id header")
	}
	other := e.do("POST", "/v1/payments", `{"amount":1001,"payment_method":{"token":"tok_visa"},"capture":"manual"}`, "k-1")
	if other.Status != 422 || other.str("error", "code") != "idempotency_key_reused" || other.str("error", "type") != "idempotency_error" {
		t.Fatalf("different body %d %s", other.Status, other.Body)
	}
	// Keys are per account: the same key on another account is new.
	scoped := e.do("POST", "/v1/payments", `{"provider":"other","amount":1001,"payment_method":{"token":"tok_visa"}}`, "k-1")
	if scoped.Status != 200 || scoped.str("provider") != "other" {
		t.Fatalf("other account %d %s", scoped.Status, scoped.Body)
	}
	// Follow-up POSTs are covered too; the route is part of the fingerprint.
	id := first.str("id")
	capture := e.do("POST", "/v1/payments/"+id+"/capture", "", "cap-1")
	capture2 := e.do("POST", "/v1/payments/"+id+"/capture", "", "cap-1")
	cancel := e.do("POST", "/v1/payments/"+id+"/cancel", "", "cap-1")
	if capture.Status != 200 || capture.str("status") != "captured" || !bytes.Equal(capture.Body, capture2.Body) || cancel.Status != 422 {
		t.Fatalf("capture %d %s / again %d / cancel with the same key %d %s", capture.Status, capture.Body, capture2.Status, cancel.Status, cancel.Body)
	}
	if n := e.gmo.Calls("AlterTran"); n != 1 {
		t.Fatalf("AlterTran called %d times", n)
	}
	t.Logf("replayed create and capture; ExecTran=%d AlterTran=%d charges=%d", e.gmo.Calls("ExecTran"), e.gmo.Calls("AlterTran"), e.gmo.Charges())
}

// A provider error (5xx included) is stored and replayed: the retry gets the
// same answer and the provider sees nothing more.
func TestIdempotencyReplaysProviderErrors(t *testing.T) {
	e := newEnv(t, nil, nil)
	for _, tok := range []string{"tok_declined", "tok_fault_5xx", "tok_fault_maintenance"} {
		body := createBody("", tok, 500)
		first := e.do("POST", "/v1/payments", body, "err-"+tok)
		calls := e.gmo.Calls("ExecTran") + e.gmo.Calls("EntryTran") + e.gmo.Calls("SearchTrade")
		again := e.do("POST", "/v1/payments", body, "err-"+tok)
		after := e.gmo.Calls("ExecTran") + e.gmo.Calls("EntryTran") + e.gmo.Calls("SearchTrade")
		t.Logf("%s: %d %s -> replay %d, provider calls %d -> %d", tok, first.Status, first.str("error", "code"), again.Status, calls, after)
		if first.Status < 400 || again.Status != first.Status || !bytes.Equal(again.Body, first.Body) || after != calls {
			t.Fatalf("%s: first %d %s, again %d %s, calls %d -> %d", tok, first.Status, first.Body, again.Status, again.Body, calls, after)
		}
	}
	if e.gmo.Charges() != 0 {
		t.Fatalf("charges %d", e.gmo.Charges())
	}
}

// Validation errors never reached a provider: the key is released and may
// carry the corrected request.
func TestIdempotencyValidationReleasesKey(t *testing.T) {
	e := newEnv(t, nil, nil)
	bad := e.do("POST", "/v1/payments", `{"amount":0,"payment_method":{"token":"tok_visa"}}`, "fix-me")
	if bad.Status != 400 {
		t.Fatalf("bad %d %s", bad.Status, bad.Body)
	}
	good := e.do("POST", "/v1/payments", createBody("", "tok_visa", 700), "fix-me")
	if good.Status != 200 || good.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("good %d %s", good.Status, good.Body)
	}
	long := e.do("POST", "/v1/payments", createBody("", "tok_visa", 700), string(bytes.Repeat([]byte("k"), 256)))
	if long.Status != 400 || long.str("error", "param") != "Idempotency-Key" {
		t.Fatalf("long key %d %s", long.Status, long.Body)
	}
}

// Without a key, a repeated create with the same order id is answered with
// the existing payment (GMO E01040010), not a second charge.
func TestCreateWithoutKeyCannotDoubleCharge(t *testing.T) {
	e := newEnv(t, nil, nil)
	body := createBody("DUP-1", "tok_visa", 3000)
	first := e.do("POST", "/v1/payments", body, "")
	second := e.do("POST", "/v1/payments", body, "")
	t.Logf("same order id twice without a key: %d then %d, ExecTran=%d charges=%d", first.Status, second.Status, e.gmo.Calls("ExecTran"), e.gmo.Charges())
	if first.Status != 200 || second.Status != 200 || second.str("id") != "gmo_DUP-1" || second.str("status") != "captured" {
		t.Fatalf("first %d %s, second %d %s", first.Status, first.Body, second.Status, second.Body)
	}
	if e.gmo.Charges() != 1 || e.gmo.Calls("ExecTran") != 1 {
		t.Fatalf("charges %d ExecTran %d", e.gmo.Charges(), e.gmo.Calls("ExecTran"))
	}
	other := e.do("POST", "/v1/payments", createBody("DUP-1", "tok_visa", 3001), "")
	if other.Status != 409 || other.str("error", "code") != "order_id_exists" {
		t.Fatalf("other amount %d %s", other.Status, other.Body)
	}
}

// The order id derived from the key makes even a retry whose claim was lost
// (a new store) land on the same GMO order: still one charge.
func TestDerivedOrderIDSurvivesLostClaim(t *testing.T) {
	gmo := sandbox.NewGMO()
	a := newEnv(t, gmo, nil)
	first := a.do("POST", "/v1/payments", createBody("", "tok_visa", 800), "lost-claim")
	b := newEnv(t, gmo, nil) // an empty store: the key is unknown there
	second := b.do("POST", "/v1/payments", createBody("", "tok_visa", 800), "lost-claim")
	if first.Status != 200 || second.Status != 200 || first.str("id") != second.str("id") || gmo.Charges() != 1 {
		t.Fatalf("first %s, second %s, charges %d", first.Body, second.Body, gmo.Charges())
	}
}

func TestFingerprintCanonical(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	fp := func(method, route, id string, body []byte) string { return fingerprint(key, method, route, id, body) }
	same := [][2]string{
		{`{"a":1,"b":[1,2,{"c":"d"}]}`, " { \"b\" : [1, 2, {\"c\":\"d\"}] ,\n\"a\":1 }"},
		{"", "  "},
		// Card data is no part of the request's identity.
		{`{"amount":1,"payment_method":{"token":"tok_a","security_code":"737"}}`, `{"amount":1,"payment_method":{"token":"tok_b","security_code":"123"}}`},
		{`{"orderID":"A","cardNo":"4111111111111111","expire":"3012","securityCode":"737","PIN":"1234"}`, `{"orderID":"A"}`},
	}
	for _, p := range same {
		if fp("POST", "r", "", []byte(p[0])) != fp("POST", "r", "", []byte(p[1])) {
			t.Errorf("%q and %q differ", p[0], p[1])
		}
	}
	differ := [][2]string{{`{"a":1}`, `{"a":2}`}, {`{"a":1}`, `{"a":"1"}`}, {`{"a":1}`, `{"a":1,"b":null}`}, {`x`, `y`},
		{`{"amount":1,"payment_method":{"token":"t"}}`, `{"amount":2,"payment_method":{"token":"t"}}`}}
	for _, p := range differ {
		if fp("POST", "r", "", []byte(p[0])) == fp("POST", "r", "", []byte(p[1])) {
			t.Errorf("%q and %q match", p[0], p[1])
		}
	}
	if fp("POST", "capture", "gmo_A", nil) == fp("POST", "cancel", "gmo_A", nil) ||
		fp("POST", "capture", "gmo_A", nil) == fp("POST", "capture", "gmo_B", nil) {
		t.Error("route and id must be part of the fingerprint")
	}
	if fingerprint([]byte("another store's key 0123456789ab"), "POST", "r", "", []byte(`{"a":1}`)) == fp("POST", "r", "", []byte(`{"a":1}`)) {
		t.Error("the store's key must be part of the fingerprint")
	}
}

func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `[1,"x",null,true]`, `{"b":{"c":[]},"a":1e3}`, ``, `{`, "\xff", `"\u00e9"`, `{"a":1}{"b":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c := canonicalJSON(body)
		if !bytes.Equal(canonicalJSON(c), c) {
			t.Fatalf("not stable: %q -> %q -> %q", body, c, canonicalJSON(c))
		}
	})
}

func TestStoreCaddyfile(t *testing.T) {
	h := parse(t, `paynorm {
		store redis 10.0.0.1:6379 10.0.0.2:6379 {
			password {env.REDIS_PASSWORD}
			db 2
			prefix shop1:
		}
		resolve_after 30s
	}`)
	want := StoreConfig{Backend: "redis", Addrs: []string{"10.0.0.1:6379", "10.0.0.2:6379"}, Password: "{env.REDIS_PASSWORD}", DB: 2, Prefix: "shop1:"}
	if fmt.Sprint(*h.Store) != fmt.Sprint(want) || h.ResolveAfter != caddy.Duration(30*time.Second) {
		t.Fatalf("got %+v %v", *h.Store, h.ResolveAfter)
	}
	if h := parse(t, "paynorm {\n store bolt /var/lib/paynorm.db\n}"); h.Store.Backend != "bolt" || h.Store.Path != "/var/lib/paynorm.db" {
		t.Fatalf("bolt %+v", h.Store)
	}
	if h := parse(t, "paynorm {\n store bolt\n}"); h.Store.Backend != "bolt" || h.Store.Path != "" {
		t.Fatalf("bolt default %+v", h.Store)
	}
	if h := parse(t, "paynorm {\n store journal /var/lib/paynorm.journal\n}"); h.Store.Backend != "journal" || h.Store.Path != "/var/lib/paynorm.journal" {
		t.Fatalf("journal %+v", h.Store)
	}
	if h := parse(t, "paynorm {\n store journal\n}"); h.Store.Backend != "journal" || h.Store.Path != "" {
		t.Fatalf("journal default %+v", h.Store)
	}
	for _, bad := range []string{`paynorm { store }`, `paynorm { store etcd x }`, "paynorm {\n store redis\n}", `paynorm { store bolt a b }`,
		`paynorm { store journal a b }`, `paynorm { store memory x }`, `paynorm { store redis a { db x } }`, `paynorm { store redis a { colour red } }`, `paynorm { resolve_after -1s }`} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfileDispenser(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func caddyfileDispenser(s string) *caddyfile.Dispenser { return caddyfile.NewTestDispenser(s) }

func parse(t *testing.T, s string) *Handler {
	t.Helper()
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(s)); err != nil {
		t.Fatal(err)
	}
	return &h
}

// Without a store line the journal is the store, unless an earlier
// version's bolt file is at the default path and no journal is: its
// records must not be left behind by an upgrade.
func TestDefaultStoreKeepsAnEarlierBoltFile(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_DATA_HOME", dir)
	repl := caddy.NewReplacer()
	pick := func() StoreConfig {
		t.Helper()
		c, err := StoreConfig{}.resolved(repl)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := pick(); c.Backend != "journal" || c.Path != filepath.Join(dir, "caddy", "paynorm", "paynorm.journal") {
		t.Fatalf("fresh host: %+v", c)
	}
	if err := os.MkdirAll(filepath.Join(dir, "caddy", "paynorm"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "caddy", "paynorm", "paynorm.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if c := pick(); c.Backend != "bolt" || c.Path != filepath.Join(dir, "caddy", "paynorm", "paynorm.db") {
		t.Fatalf("host with an earlier bolt file: %+v", c)
	}
	if err := os.WriteFile(filepath.Join(dir, "caddy", "paynorm", "paynorm.journal"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if c := pick(); c.Backend != "journal" {
		t.Fatalf("host with both: %+v", c)
	}
}
