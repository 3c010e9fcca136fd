package caddymodule

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/paynorm/paynorm/ledger"
	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers"
	"github.com/paynorm/paynorm/store"
)

// unexecuted is a provider whose every order reads as registered but not
// executed (GMO UNPROCESSED).
type unexecuted struct{ providers.Provider }

func (unexecuted) GetPayment(_ context.Context, key string) (*normalize.Payment, error) {
	p := normalize.NewPayment("gmo", key)
	p.Status = normalize.StatusPending
	return p, nil
}

// An order the provider has not executed is settled as failed only once
// twice the longest provider timeout has passed since paynorm's last call:
// before that, a late execution may still charge the card.
func TestUnexecutedOrderIsNotFailedBeforeTheGrace(t *testing.T) {
	st := store.NewMemory()
	r := &resolver{st: st, log: zap.NewNop(), provs: map[string]providers.Provider{}}
	r.register(map[string]providers.Provider{"gmo": unexecuted{}}, ledger.New(st, nil, false), 10*time.Millisecond, 400*time.Millisecond, nil)
	ctx := context.Background()
	written := time.Now()
	rec := &store.PaymentRecord{ID: "gmo_G-1", Account: "gmo", Key: "G-1", Status: normalize.StatusUnknown, CreatedAt: written, UpdatedAt: written}
	if err := st.SwapPayment(ctx, rec); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	r.pass(ctx)
	got, _ := st.GetPayment(ctx, "gmo_G-1")
	if got.Status != normalize.StatusUnknown || !got.NextCheck.Equal(written.Add(400*time.Millisecond)) {
		t.Fatalf("settled too early: %+v", got)
	}
	time.Sleep(time.Until(got.NextCheck) + 10*time.Millisecond)
	r.pass(ctx)
	got, _ = st.GetPayment(ctx, "gmo_G-1")
	if got.Status != normalize.StatusFailed {
		t.Fatalf("after the grace: %+v", got)
	}
}

// A payment waiting for its card holder (3-D Secure) whose provider reads
// it as not executed expires to voided after the account's action_expiry,
// never earlier, and never by calling the provider to complete it.
func TestRequiresActionExpiresUncharged(t *testing.T) {
	st := store.NewMemory()
	r := &resolver{st: st, log: zap.NewNop(), provs: map[string]providers.Provider{}}
	r.register(map[string]providers.Provider{"gmo": unexecuted{}}, ledger.New(st, nil, false), 10*time.Millisecond, 10*time.Millisecond,
		map[string]time.Duration{"gmo": 300 * time.Millisecond})
	ctx := context.Background()
	created := time.Now()
	pay := normalize.NewPayment("gmo", "TDS-1")
	pay.Status, pay.NextAction = normalize.StatusRequiresAction, &normalize.NextAction{Type: "redirect_to_url", URL: "https://acs.example/1"}
	raw, _ := json.Marshal(pay)
	rec := &store.PaymentRecord{ID: "gmo_TDS-1", Account: "gmo", Key: "TDS-1", Status: normalize.StatusRequiresAction, Op: "create", Payment: raw, CreatedAt: created, UpdatedAt: created}
	if err := st.SwapPayment(ctx, rec); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	r.pass(ctx)
	got, _ := st.GetPayment(ctx, "gmo_TDS-1")
	if got.Status != normalize.StatusRequiresAction || !got.NextCheck.Equal(created.Add(300*time.Millisecond)) {
		t.Fatalf("expired too early: %+v", got)
	}
	time.Sleep(time.Until(got.NextCheck) + 10*time.Millisecond)
	r.pass(ctx)
	got, _ = st.GetPayment(ctx, "gmo_TDS-1")
	if got.Status != normalize.StatusVoided || strings.Contains(string(got.Payment), "next_action") || !strings.Contains(string(got.Payment), "nothing was charged") {
		t.Fatalf("after action_expiry: %+v %s", got, got.Payment)
	}
}
