// Package storetest is the conformance suite every store.Store backend
// passes: the same behaviour from memory, bbolt and redis.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paynorm/paynorm/store"
)

// Run runs the suite. open returns a fresh, empty store each call.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("ClaimFinishReplay", func(t *testing.T) { claimFinishReplay(t, open(t)) })
	t.Run("ConcurrentClaimHasOneWinner", func(t *testing.T) { concurrentClaim(t, open(t)) })
	t.Run("LeaseAndTTLExpire", func(t *testing.T) { leaseExpiry(t, open(t)) })
	t.Run("Release", func(t *testing.T) { release(t, open(t)) })
	t.Run("ScopesAreSeparate", func(t *testing.T) { scopes(t, open(t)) })
	t.Run("Payments", func(t *testing.T) { payments(t, open(t)) })
	t.Run("SwapCreate", func(t *testing.T) { swapCreate(t, open(t)) })
	t.Run("SwapUpdate", func(t *testing.T) { swapUpdate(t, open(t)) })
	t.Run("ConcurrentSwapHasOneWinner", func(t *testing.T) { concurrentSwap(t, open(t)) })
	t.Run("SwapRetryLoopLosesNoUpdate", func(t *testing.T) { swapRetryLoop(t, open(t)) })
	t.Run("SwapEvents", func(t *testing.T) { swapEvents(t, open(t)) })
	t.Run("UnresolvedLeaseAndUnconfirmed", func(t *testing.T) { unresolvedLease(t, open(t)) })
	t.Run("Events", func(t *testing.T) { events(t, open(t)) })
	t.Run("DeadLetters", func(t *testing.T) { deadLetters(t, open(t)) })
	t.Run("FingerprintKeyAndProbe", func(t *testing.T) { fingerprintKeyAndProbe(t, open(t)) })
}

// An event the notifier gives up on leaves the outbox (it is never due
// again) and is listed among the dead letters with its last error.
func deadLetters(t *testing.T, s store.Store) {
	now := time.Now().Truncate(time.Millisecond)
	for i := 0; i < 3; i++ {
		ev := &store.Event{ID: fmt.Sprintf("dl%d", i), Type: "payment.captured", Body: []byte(`{"n":1}`), NextTry: now, CreatedAt: now}
		if err := s.AddEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if dead, err := s.DeadEvents(ctx, 10); err != nil || len(dead) != 0 {
		t.Fatalf("dead letters of a new store: %v %v", dead, err)
	}
	for i, id := range []string{"dl2", "dl0"} {
		ev := &store.Event{ID: id, Type: "payment.captured", Body: []byte(`{"n":1}`), Attempts: 30, NextTry: now, CreatedAt: now,
			LastError: "receiver answered HTTP 500", DeadAt: now.Add(time.Duration(i) * time.Second)}
		if err := s.BuryEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	due, err := s.DueEvents(ctx, now.Add(time.Hour), 10)
	if err != nil || len(due) != 1 || due[0].ID != "dl1" {
		t.Fatalf("outbox after burying two of three: %+v %v", due, err)
	}
	dead, err := s.DeadEvents(ctx, 10)
	if err != nil || len(dead) != 2 || dead[0].ID != "dl2" || dead[1].ID != "dl0" {
		t.Fatalf("dead letters %+v %v", dead, err)
	}
	if d := dead[0]; d.Attempts != 30 || d.LastError != "receiver answered HTTP 500" || !d.DeadAt.Equal(now) || string(d.Body) != `{"n":1}` {
		t.Fatalf("dead letter lost fields: %+v", d)
	}
	if dead, _ = s.DeadEvents(ctx, 1); len(dead) != 1 {
		t.Fatalf("limit: %d", len(dead))
	}
}

// The fingerprint key is random, 32 bytes and stable for the store; the
// health probe passes on a working store.
func fingerprintKeyAndProbe(t *testing.T, s store.Store) {
	k := s.FingerprintKey()
	if len(k) != store.FingerprintKeySize || string(k) == string(make([]byte, store.FingerprintKeySize)) {
		t.Fatalf("fingerprint key %x", k)
	}
	if string(s.FingerprintKey()) != string(k) {
		t.Fatal("the fingerprint key changed")
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.Probe(pctx); err != nil {
		t.Fatalf("probe of a working store: %v", err)
	}
}

var ctx = context.Background()

func claimFinishReplay(t *testing.T, s store.Store) {
	st, _, err := s.ClaimIdempotency(ctx, "gmo", "k1", "fp-a", time.Minute, time.Hour)
	if err != nil || st != store.IdemNew {
		t.Fatalf("first claim: %v %v", st, err)
	}
	if st, _, _ = s.ClaimIdempotency(ctx, "gmo", "k1", "fp-a", time.Minute, time.Hour); st != store.IdemInFlight {
		t.Fatalf("second claim while in flight: %v", st)
	}
	if st, _, _ = s.ClaimIdempotency(ctx, "gmo", "k1", "fp-b", time.Minute, time.Hour); st != store.IdemMismatch {
		t.Fatalf("other fingerprint while in flight: %v", st)
	}
	resp := store.Response{Status: 503, Headers: map[string]string{"Retry-After": "2"}, Body: []byte("{\"x\":\"\\u00e9/\xe3\x81\x82\"}\n")}
	if err := s.FinishIdempotency(ctx, "gmo", "k1", resp, time.Hour); err != nil {
		t.Fatal(err)
	}
	st, got, err := s.ClaimIdempotency(ctx, "gmo", "k1", "fp-a", time.Minute, time.Hour)
	if err != nil || st != store.IdemReplay || got == nil {
		t.Fatalf("replay: %v %v %v", st, got, err)
	}
	if got.Status != 503 || string(got.Body) != string(resp.Body) || got.Headers["Retry-After"] != "2" {
		t.Fatalf("replayed %+v, want %+v", got, resp)
	}
	if st, _, _ = s.ClaimIdempotency(ctx, "gmo", "k1", "fp-b", time.Minute, time.Hour); st != store.IdemMismatch {
		t.Fatalf("finished key with another fingerprint: %v", st)
	}
}

func concurrentClaim(t *testing.T, s store.Store) {
	const n = 50
	var wins, inflight atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, _, err := s.ClaimIdempotency(ctx, "gmo", "race", "fp", time.Minute, time.Hour)
			if err != nil {
				t.Error(err)
				return
			}
			switch st {
			case store.IdemNew:
				wins.Add(1)
			case store.IdemInFlight:
				inflight.Add(1)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d concurrent claims: %d won, %d in flight", n, wins.Load(), inflight.Load())
	if wins.Load() != 1 || inflight.Load() != n-1 {
		t.Fatalf("%d winners and %d in flight out of %d", wins.Load(), inflight.Load(), n)
	}
}

func leaseExpiry(t *testing.T, s store.Store) {
	lease := 300 * time.Millisecond
	if st, _, _ := s.ClaimIdempotency(ctx, "gmo", "lease", "fp", lease, time.Hour); st != store.IdemNew {
		t.Fatal("claim")
	}
	time.Sleep(lease + 100*time.Millisecond)
	if st, _, _ := s.ClaimIdempotency(ctx, "gmo", "lease", "fp2", lease, time.Hour); st != store.IdemNew {
		t.Fatalf("claim after the lease of a dead owner ran out: %v", st)
	}
	if err := s.FinishIdempotency(ctx, "gmo", "lease", store.Response{Status: 200, Body: []byte("{}")}, lease); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := s.ClaimIdempotency(ctx, "gmo", "lease", "fp2", lease, time.Hour); st != store.IdemReplay {
		t.Fatalf("replay inside ttl: %v", st)
	}
	time.Sleep(lease + 100*time.Millisecond)
	if st, _, _ := s.ClaimIdempotency(ctx, "gmo", "lease", "fp3", lease, time.Hour); st != store.IdemNew {
		t.Fatalf("claim after the ttl: %v", st)
	}
}

func release(t *testing.T, s store.Store) {
	if st, _, _ := s.ClaimIdempotency(ctx, "gmo", "rel", "fp", time.Minute, time.Hour); st != store.IdemNew {
		t.Fatal("claim")
	}
	if err := s.ReleaseIdempotency(ctx, "gmo", "rel"); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := s.ClaimIdempotency(ctx, "gmo", "rel", "other", time.Minute, time.Hour); st != store.IdemNew {
		t.Fatalf("claim after release: %v", st)
	}
}

func scopes(t *testing.T, s store.Store) {
	for _, scope := range []string{"a", "b", "a:b", "a\x00"} {
		if st, _, _ := s.ClaimIdempotency(ctx, scope, "same", "fp-"+scope, time.Minute, time.Hour); st != store.IdemNew {
			t.Fatalf("scope %q shares keys with another", scope)
		}
	}
}

func payments(t *testing.T, s store.Store) {
	if _, err := s.GetPayment(ctx, "gmo_none"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing record: %v", err)
	}
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i := 0; i < 5; i++ {
		rec := &store.PaymentRecord{ID: fmt.Sprintf("gmo_O-%d", i), Account: "gmo", Key: fmt.Sprintf("O-%d", i),
			Status: "pending", Op: "create", Payment: []byte(`{"id":"x"}`), CreatedAt: base.Add(time.Duration(i) * time.Second), UpdatedAt: base}
		if i%2 == 1 {
			rec.Status = "unknown"
		}
		if err := s.SwapPayment(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.GetPayment(ctx, "gmo_O-1")
	if err != nil || got.Status != "unknown" || got.Key != "O-1" || got.Op != "create" || string(got.Payment) != `{"id":"x"}` || !got.CreatedAt.Equal(base.Add(time.Second)) {
		t.Fatalf("read back %+v %v", got, err)
	}
	// Resolve two: they leave the unresolved list.
	for _, id := range []string{"gmo_O-0", "gmo_O-3"} {
		rec, _ := s.GetPayment(ctx, id)
		rec.Status, rec.Attempts = "captured", 2
		if err := s.SwapPayment(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	un, err := s.Unresolved(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range un {
		ids = append(ids, r.ID)
	}
	if fmt.Sprint(ids) != "[gmo_O-1 gmo_O-2 gmo_O-4]" {
		t.Fatalf("unresolved %v", ids)
	}
	if un, _ = s.Unresolved(ctx, 2); len(un) != 2 || un[0].ID != "gmo_O-1" {
		t.Fatalf("limit 2: %d", len(un))
	}
	if r, _ := s.GetPayment(ctx, "gmo_O-3"); r.Attempts != 2 || r.Status != "captured" {
		t.Fatalf("resolved record %+v", r)
	}
}

func newRecord(id string) *store.PaymentRecord {
	now := time.Now().Truncate(time.Millisecond)
	return &store.PaymentRecord{ID: id, Account: "gmo", Key: id, Status: "authorized", Op: "create", CreatedAt: now, UpdatedAt: now}
}

func swapCreate(t *testing.T, s store.Store) {
	rec := newRecord("gmo_C")
	if err := s.SwapPayment(ctx, rec); err != nil || rec.Version != 1 {
		t.Fatalf("create: version %d, %v", rec.Version, err)
	}
	if got, err := s.GetPayment(ctx, "gmo_C"); err != nil || got.Version != 1 {
		t.Fatalf("read back %+v %v", got, err)
	}
	// A second create of the same id loses: the first one's record stays.
	dup := newRecord("gmo_C")
	dup.Status = "captured"
	if err := s.SwapPayment(ctx, dup); !errors.Is(err, store.ErrConflict) || dup.Version != 0 {
		t.Fatalf("second create: version %d, %v", dup.Version, err)
	}
	if got, _ := s.GetPayment(ctx, "gmo_C"); got.Version != 1 || got.Status != "authorized" {
		t.Fatalf("after a lost create %+v", got)
	}
	// An update of a record that does not exist is a conflict too.
	ghost := newRecord("gmo_ghost")
	ghost.Version = 3
	if err := s.SwapPayment(ctx, ghost); !errors.Is(err, store.ErrConflict) || ghost.Version != 3 {
		t.Fatalf("update of a missing record: version %d, %v", ghost.Version, err)
	}
	if _, err := s.GetPayment(ctx, "gmo_ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a lost update created the record: %v", err)
	}
}

func swapUpdate(t *testing.T, s store.Store) {
	rec := newRecord("gmo_U")
	if err := s.SwapPayment(ctx, rec); err != nil {
		t.Fatal(err)
	}
	stale, _ := s.GetPayment(ctx, "gmo_U")
	cur, _ := s.GetPayment(ctx, "gmo_U")
	cur.Status, cur.Op = "captured", "capture"
	if err := s.SwapPayment(ctx, cur); err != nil || cur.Version != 2 {
		t.Fatalf("update: version %d, %v", cur.Version, err)
	}
	stale.Status, stale.Op = "canceled", "cancel"
	if err := s.SwapPayment(ctx, stale); !errors.Is(err, store.ErrConflict) || stale.Version != 1 {
		t.Fatalf("stale update: version %d, %v", stale.Version, err)
	}
	got, err := s.GetPayment(ctx, "gmo_U")
	if err != nil || got.Version != 2 || got.Status != "captured" || got.Op != "capture" {
		t.Fatalf("after a stale update %+v %v", got, err)
	}
	// The winner's copy carries the new version, so it can write again.
	cur.Attempts = 1
	if err := s.SwapPayment(ctx, cur); err != nil || cur.Version != 3 {
		t.Fatalf("second update: version %d, %v", cur.Version, err)
	}
}

func concurrentSwap(t *testing.T, s store.Store) {
	if err := s.SwapPayment(ctx, newRecord("gmo_R")); err != nil {
		t.Fatal(err)
	}
	read, _ := s.GetPayment(ctx, "gmo_R")
	const n = 50
	var wins, conflicts atomic.Int32
	var winner atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := *read
			rec.Attempts = i + 1
			err := s.SwapPayment(ctx, &rec)
			switch {
			case err == nil:
				wins.Add(1)
				winner.Store(int32(i + 1))
			case errors.Is(err, store.ErrConflict):
				conflicts.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || conflicts.Load() != n-1 {
		t.Fatalf("%d winners and %d conflicts out of %d", wins.Load(), conflicts.Load(), n)
	}
	if got, _ := s.GetPayment(ctx, "gmo_R"); got.Version != 2 || int32(got.Attempts) != winner.Load() {
		t.Fatalf("stored %+v, winner wrote attempts %d", got, winner.Load())
	}
}

func swapRetryLoop(t *testing.T, s store.Store) {
	if err := s.SwapPayment(ctx, newRecord("gmo_N")); err != nil {
		t.Fatal(err)
	}
	const workers, each = 20, 10
	var retries atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < each; j++ {
				for {
					rec, err := s.GetPayment(ctx, "gmo_N")
					if err != nil {
						t.Error(err)
						return
					}
					rec.Attempts++
					err = s.SwapPayment(ctx, rec)
					if err == nil {
						break
					}
					if !errors.Is(err, store.ErrConflict) {
						t.Error(err)
						return
					}
					retries.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	got, err := s.GetPayment(ctx, "gmo_N")
	t.Logf("%d increments, %d retries", workers*each, retries.Load())
	if err != nil || got.Attempts != workers*each || got.Version != workers*each+1 {
		t.Fatalf("counter %d at version %d, want %d at %d (%v)", got.Attempts, got.Version, workers*each, workers*each+1, err)
	}
}

func swapEvents(t *testing.T, s store.Store) {
	now := time.Now().Truncate(time.Millisecond)
	ev := func(id string) *store.Event {
		return &store.Event{ID: id, Type: "payment.captured", Body: []byte(`{"id":"` + id + `"}`), NextTry: now, CreatedAt: now}
	}
	rec := newRecord("gmo_E")
	if err := s.SwapPayment(ctx, rec, ev("ev-create")); err != nil {
		t.Fatal(err)
	}
	stale := *rec
	rec.Status = "captured"
	if err := s.SwapPayment(ctx, rec, ev("ev-capture-1"), ev("ev-capture-2")); err != nil {
		t.Fatal(err)
	}
	// The loser's events describe a write that did not happen.
	stale.Status = "canceled"
	if err := s.SwapPayment(ctx, &stale, ev("ev-cancel")); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale swap: %v", err)
	}
	dup := newRecord("gmo_E")
	if err := s.SwapPayment(ctx, dup, ev("ev-dup-create")); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second create: %v", err)
	}
	due, err := s.DueEvents(ctx, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range due {
		got[e.ID] = string(e.Body)
	}
	if len(got) != 3 || got["ev-create"] != `{"id":"ev-create"}` || got["ev-capture-1"] == "" || got["ev-capture-2"] == "" {
		t.Fatalf("due events %v, want ev-create, ev-capture-1 and ev-capture-2", got)
	}
}

func unresolvedLease(t *testing.T, s store.Store) {
	ids := func() string {
		un, err := s.Unresolved(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range un {
			out = append(out, r.ID)
		}
		return fmt.Sprint(out)
	}
	leased, unconfirmed, plain := newRecord("gmo_L1"), newRecord("gmo_L2"), newRecord("gmo_L3")
	unconfirmed.CreatedAt = leased.CreatedAt.Add(time.Second)
	plain.CreatedAt = leased.CreatedAt.Add(2 * time.Second)
	for _, r := range []*store.PaymentRecord{leased, unconfirmed, plain} {
		if err := s.SwapPayment(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if got := ids(); got != "[]" {
		t.Fatalf("authorized records listed as unresolved: %s", got)
	}
	leased.Lease = &store.Lease{Owner: "inst-1", Op: "capture", Until: time.Now().Add(time.Minute).Truncate(time.Millisecond)}
	unconfirmed.Unconfirmed = "cancel"
	for _, r := range []*store.PaymentRecord{leased, unconfirmed} {
		if err := s.SwapPayment(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if got := ids(); got != "[gmo_L1 gmo_L2]" {
		t.Fatalf("unresolved %s, want the leased and the unconfirmed record", got)
	}
	if got, _ := s.GetPayment(ctx, "gmo_L1"); got.Lease == nil || got.Lease.Owner != "inst-1" || got.Lease.Op != "capture" || !got.Lease.Until.Equal(leased.Lease.Until) {
		t.Fatalf("lease read back %+v", got.Lease)
	}
	leased.Lease = nil
	if err := s.SwapPayment(ctx, leased); err != nil {
		t.Fatal(err)
	}
	if got := ids(); got != "[gmo_L2]" {
		t.Fatalf("unresolved after the lease ended %s", got)
	}
	unconfirmed.Unconfirmed = ""
	if err := s.SwapPayment(ctx, unconfirmed); err != nil {
		t.Fatal(err)
	}
	if got := ids(); got != "[]" {
		t.Fatalf("unresolved after the outcome was confirmed %s", got)
	}
}

func events(t *testing.T, s store.Store) {
	now := time.Now().Truncate(time.Millisecond)
	for i, d := range []time.Duration{-2 * time.Second, -time.Second, time.Hour} {
		ev := &store.Event{ID: fmt.Sprintf("ev%d", i), Type: "payment.captured", Body: []byte(`{}`), NextTry: now.Add(d), CreatedAt: now.Add(time.Duration(i) * time.Millisecond)}
		if err := s.AddEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	due, err := s.DueEvents(ctx, now, 10)
	if err != nil || len(due) != 2 || due[0].ID != "ev0" {
		t.Fatalf("due %v %v", due, err)
	}
	due[0].Attempts, due[0].NextTry = 1, now.Add(time.Minute)
	if err := s.UpdateEvent(ctx, due[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteEvent(ctx, "ev1"); err != nil {
		t.Fatal(err)
	}
	if due, _ = s.DueEvents(ctx, now, 10); len(due) != 0 {
		t.Fatalf("still due: %d", len(due))
	}
	if due, _ = s.DueEvents(ctx, now.Add(2*time.Minute), 10); len(due) != 1 || due[0].Attempts != 1 {
		t.Fatalf("after retry time: %+v", due)
	}
}
