package caddymodule

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers/sandbox"
	"github.com/paynorm/paynorm/store"
)

// The write-ahead record exists while the provider works, and holds the
// outcome after.
func TestWriteAheadRecord(t *testing.T) {
	e := newEnv(t, nil, func(h *Handler) { h.ResolveAfter = 0 }) // default 1m: the resolver stays out
	e.gmo.InjectFault(sandbox.Fault{API: "ExecTran", Kind: sandbox.FaultDelay, Delay: 300 * time.Millisecond})
	done := make(chan *reply)
	go func() { done <- e.do("POST", "/v1/payments", createBody("WA-1", "tok_visa", 1500), "") }()
	time.Sleep(150 * time.Millisecond)
	during := e.record("gmo_WA-1")
	r := <-done
	after := e.record("gmo_WA-1")
	if during.Status != "pending" || during.Op != "create" || r.Status != 200 || after.Status != "captured" || !after.CreatedAt.Equal(during.CreatedAt) {
		t.Fatalf("during %+v, after %+v, answer %d", during, after, r.Status)
	}
	// A decline leaves GMO's entry UNPROCESSED (reads as pending): the
	// record's failed wins, on the answer and on every GET.
	d := e.do("POST", "/v1/payments", createBody("WA-2", "tok_declined", 1500), "")
	g := e.do("GET", "/v1/payments/gmo_WA-2", "", "")
	if d.Status != 402 || d.str("error", "payment", "status") != "failed" || g.Status != 200 || g.str("status") != "failed" {
		t.Fatalf("decline %d %s, GET %d %s", d.Status, d.Body, g.Status, g.Body)
	}
	if st, _ := e.gmo.TradeStatus("tshop1", "WA-2"); st != "UNPROCESSED" {
		t.Fatalf("ledger %s", st)
	}
}

// A store that lost everything rebuilds a payment from the provider on GET.
func TestLostRecordRebuiltOnGet(t *testing.T) {
	gmo := sandbox.NewGMO()
	a := newEnv(t, gmo, nil)
	if r := a.do("POST", "/v1/payments", `{"order_id":"LOST-1","amount":2000,"capture":"manual","payment_method":{"token":"tok_jcb"}}`, ""); r.Status != 200 {
		t.Fatal(string(r.Body))
	}
	b := newEnv(t, gmo, nil) // a new, empty store
	if _, err := b.store().GetPayment(context.Background(), "gmo_LOST-1"); err == nil {
		t.Fatal("the new store must start empty")
	}
	g := b.do("GET", "/v1/payments/gmo_LOST-1", "", "")
	rec := b.record("gmo_LOST-1")
	if g.Status != 200 || g.str("status") != "authorized" || rec.Status != "authorized" || rec.Key != "LOST-1" {
		t.Fatalf("GET %s, record %+v", g.Body, rec)
	}
	if r := b.do("POST", "/v1/payments/gmo_LOST-1/capture", "", ""); r.Status != 200 || b.record("gmo_LOST-1").Status != "captured" {
		t.Fatalf("capture after rebuild %s", r.Body)
	}
}

// Records a crash left behind: the resolver settles each from the provider.
func TestResolverSettlesCrashLeftovers(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	// GMO states a crash can leave: executed, entered only, never reached.
	if r := e.do("POST", "/v1/payments", createBody("CR-EXEC", "tok_visa", 100), ""); r.Status != 200 {
		t.Fatal(string(r.Body))
	}
	e.gmo.InjectFault(sandbox.Fault{API: "ExecTran", Kind: sandbox.Fault5xx})
	e.do("POST", "/v1/payments", createBody("CR-ENTRY", "tok_visa", 100), "")
	old := time.Now().Add(-time.Minute)
	for _, key := range []string{"CR-EXEC", "CR-ENTRY", "CR-NONE"} {
		seed, _ := json.Marshal(normalize.NewPayment("gmo", key))
		rec := &store.PaymentRecord{ID: "gmo_" + key, Account: "gmo", Key: key, Status: "pending", Op: "create", Payment: seed, CreatedAt: old, UpdatedAt: old}
		if err := overwrite(ctx, e.store(), rec); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{"CR-EXEC": "captured", "CR-ENTRY": "failed", "CR-NONE": "failed"}
	deadline := time.Now().Add(5 * time.Second)
	for key, w := range want {
		for {
			rec := e.record("gmo_" + key)
			if rec.Status == w {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: record %s, want %s", key, rec.Status, w)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if g := e.do("GET", "/v1/payments/gmo_CR-NONE", "", ""); g.Status != 200 || g.str("status") != "failed" {
		t.Fatalf("GET of a payment GMO never saw: %d %s", g.Status, g.Body)
	}
}

// While the provider cannot answer, the resolver backs off (bounded
// exponential) and settles once it can.
func TestResolverBacksOff(t *testing.T) {
	e := newEnv(t, nil, nil)
	// ExecTran commits but never answers in time, and the follow-up reads
	// fail: the answer is 504 unknown.
	e.gmo.InjectFault(sandbox.Fault{API: "ExecTran", Kind: sandbox.FaultCommitHang, Delay: time.Second})
	e.gmo.InjectFault(sandbox.Fault{API: "SearchTrade", Kind: sandbox.Fault5xx, Count: 9})
	r := e.do("POST", "/v1/payments", createBody("BO-1", "tok_visa", 100), "")
	if r.Status != 504 || r.str("error", "payment", "status") != "unknown" {
		t.Fatalf("answer %d %s", r.Status, r.Body)
	}
	deadline := time.Now().Add(8 * time.Second)
	var rec *store.PaymentRecord
	for {
		rec = e.record("gmo_BO-1")
		if rec.Status == "captured" || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("unknown payment settled as %s after %d resolver attempts; SearchTrade calls %d", rec.Status, rec.Attempts, e.gmo.Calls("SearchTrade"))
	if rec.Status != "captured" || rec.Attempts < 2 || e.gmo.Charges() != 1 || e.gmo.Calls("ExecTran") != 1 {
		t.Fatalf("record %+v, charges %d", rec, e.gmo.Charges())
	}
}

// overwrite replaces a record behind the ledger's back, as a crash leaves
// it (tests only: the ledger never writes without deciding on the record).
func overwrite(ctx context.Context, st store.Store, rec *store.PaymentRecord) error {
	if cur, err := st.GetPayment(ctx, rec.ID); err == nil {
		rec.Version = cur.Version
	}
	return st.SwapPayment(ctx, rec)
}
