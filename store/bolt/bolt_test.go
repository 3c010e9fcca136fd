package bolt

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/paynorm/paynorm/store"
	"github.com/paynorm/paynorm/store/storetest"
)

func TestBoltConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(filepath.Join(t.TempDir(), "paynorm.db"), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// A reopened file keeps answers and records, and a claim left in flight by
// the process that had it open no longer blocks: that process is gone.
func TestBoltSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "paynorm.db")
	s, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, _, _ = s.ClaimIdempotency(ctx, "gmo", "done", "fp", time.Hour, time.Hour)
	_ = s.FinishIdempotency(ctx, "gmo", "done", store.Response{Status: 402, Body: []byte("declined")}, time.Hour)
	_, _, _ = s.ClaimIdempotency(ctx, "gmo", "inflight", "fp", time.Hour, time.Hour)
	_ = s.SwapPayment(ctx, &store.PaymentRecord{ID: "gmo_A", Account: "gmo", Key: "A", Status: "pending", CreatedAt: time.Now()})
	if _, err := Open(path, 100*time.Millisecond); err == nil {
		t.Fatal("a second open of a locked file must fail")
	}
	s.Close()

	s, err = Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if st, r, _ := s.ClaimIdempotency(ctx, "gmo", "done", "fp", time.Hour, time.Hour); st != store.IdemReplay || r.Status != 402 {
		t.Fatalf("finished key after reopen: %v", st)
	}
	if st, _, _ := s.ClaimIdempotency(ctx, "gmo", "inflight", "fp", time.Hour, time.Hour); st != store.IdemNew {
		t.Fatalf("claim of a dead process after reopen: %v", st)
	}
	if st, _, _ := s.ClaimIdempotency(ctx, "gmo", "inflight", "fp", time.Hour, time.Hour); st != store.IdemInFlight {
		t.Fatalf("claim of this process: %v", st)
	}
	if un, _ := s.Unresolved(ctx, 0); len(un) != 1 || un[0].ID != "gmo_A" {
		t.Fatalf("unresolved after reopen: %v", un)
	}
}

// Swaps queued behind an open transaction commit as one group: the lost
// races answer ErrConflict without failing the group, so the winner and an
// unrelated write commit in that one transaction (a failed group would be
// retried write by write and not counted).
func TestBoltConflictsDoNotFailTheirGroup(t *testing.T) {
	ctx := context.Background()
	s, err := Open(filepath.Join(t.TempDir(), "paynorm.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SwapPayment(ctx, &store.PaymentRecord{ID: "gmo_G", Status: "authorized"}); err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = s.writes.write(func(*bbolt.Tx) error { close(entered); <-release; return nil })
	})
	<-entered
	before := s.writes.groups.Load()
	const n = 30
	recs := make([]*store.PaymentRecord, n)
	errs := make([]error, n+1)
	for i := range n {
		recs[i] = &store.PaymentRecord{ID: "gmo_G", Version: 1, Status: "captured", Attempts: i}
		wg.Go(func() { errs[i] = s.SwapPayment(ctx, recs[i]) })
	}
	other := &store.PaymentRecord{ID: "gmo_other", Status: "pending"}
	wg.Go(func() { errs[n] = s.SwapPayment(ctx, other, &store.Event{ID: "ev-other"}) })
	for {
		s.writes.mu.Lock()
		queued := len(s.writes.queue)
		s.writes.mu.Unlock()
		if queued == n+1 {
			break
		}
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	wins := 0
	for i, err := range errs[:n] {
		switch {
		case err == nil && recs[i].Version == 2:
			wins++
		case errors.Is(err, store.ErrConflict) && recs[i].Version == 1:
		default:
			t.Errorf("swap %d: version %d, %v", i, recs[i].Version, err)
		}
	}
	if wins != 1 || errs[n] != nil || other.Version != 1 {
		t.Fatalf("%d winners; other write: version %d, %v", wins, other.Version, errs[n])
	}
	if g := s.writes.groups.Load() - before; g != 2 {
		t.Fatalf("%d transactions for the blocking write and one group, want 2", g)
	}
	if due, _ := s.DueEvents(ctx, time.Now(), 0); len(due) != 1 || due[0].ID != "ev-other" {
		t.Fatalf("events %v", due)
	}
}

// The fingerprint key is created once per file and read back on reopen:
// fingerprints stored before a restart still match after it. A store
// whose writes fail fails its probe (the health check's 503).
func TestBoltFingerprintKeySurvivesReopenAndProbeFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "paynorm.db")
	s, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	k := append([]byte(nil), s.FingerprintKey()...)
	s.Close()
	s, err = Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(s.FingerprintKey()) != string(k) {
		t.Fatal("the fingerprint key changed across a reopen")
	}
	other, err := Open(filepath.Join(t.TempDir(), "other.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if string(other.FingerprintKey()) == string(k) {
		t.Fatal("two files share a fingerprint key")
	}
	s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.Probe(ctx); err == nil {
		t.Fatal("the probe of a closed store passed")
	}
}
