package bolt

import (
	"context"
	"path/filepath"
	"testing"
	"time"

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
	_ = s.PutPayment(ctx, &store.PaymentRecord{ID: "gmo_A", Account: "gmo", Key: "A", Status: "pending", CreatedAt: time.Now()})
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
