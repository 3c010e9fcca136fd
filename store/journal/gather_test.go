package journal

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paynorm/paynorm/store"
)

// While the process is CPU-bound, changes that come within Gather share
// one fdatasync; while it is not, a change is written at once.
func TestGatherWaitsOnlyWhileSaturated(t *testing.T) {
	ctx := context.Background()
	const window = 300 * time.Millisecond
	s := open(t, filepath.Join(t.TempDir(), "paynorm.journal"), Options{Gather: window})
	defer s.Close()
	var sat atomic.Bool
	s.saturated = sat.Load // read by the flusher only, set before any write

	t0 := time.Now()
	if err := s.SwapPayment(ctx, &store.PaymentRecord{ID: "gmo_free", Status: "pending"}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d >= window {
		t.Fatalf("a write on a free CPU took %v: it waited for a window", d)
	}
	if s.gathered.Load() != 0 {
		t.Fatal("a flush gathered on a free CPU")
	}

	sat.Store(true)
	flushes := s.Flushes()
	t0 = time.Now()
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if err := s.SwapPayment(ctx, &store.PaymentRecord{ID: fmt.Sprintf("gmo_busy%d", i), Status: "pending"}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if d := time.Since(t0); d < window*3/4 {
		t.Fatalf("16 writes on a saturated CPU were durable after %v, within the %v window", d, window)
	}
	if n := s.Flushes() - flushes; n > 2 {
		t.Fatalf("16 writes within one window took %d flushes", n)
	}
	if s.gathered.Load() == 0 {
		t.Fatal("no flush gathered")
	}
	for i := range 16 {
		if _, err := s.GetPayment(ctx, fmt.Sprintf("gmo_busy%d", i)); err != nil {
			t.Fatal(err)
		}
	}
}

// The runtime's scheduling latencies tell a CPU-bound process from an idle
// one.
func TestSaturationFollowsSchedulingLatency(t *testing.T) {
	sa := newSaturation()
	within := func(want bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for sa.saturated() != want {
			if time.Now().After(deadline) {
				t.Fatalf("saturated never became %v", want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	within(false)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// Goroutines that yield every ~100 us, many per processor: each waits
	// milliseconds for its turn.
	for range 32 * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for t0 := time.Now(); time.Since(t0) < 100*time.Microsecond; {
				}
				runtime.Gosched()
			}
		})
	}
	within(true)
	close(stop)
	wg.Wait()
	within(false)
}

// A deferred write costs no fdatasync of its own: it goes to the disk with
// the next write somebody waits for, when a reader waits for it, or after
// deferMax; and it is never lost to a clean close.
func TestDeferredWriteRidesWithTheNextFlush(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "paynorm.journal")
	s := open(t, path, Options{Gather: -1})
	rec := &store.PaymentRecord{ID: "gmo_D", Status: "pending"}
	if err := s.SwapPayment(ctx, rec); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.deferAfter = time.Hour // only the next waited write may flush it
	s.mu.Unlock()
	flushes := s.Flushes()
	rec.Status = "authorized"
	if err := s.SwapPaymentDeferred(ctx, rec); err != nil {
		t.Fatal(err)
	}
	// Another write that is waited for carries the deferred one.
	if err := s.SwapPayment(ctx, &store.PaymentRecord{ID: "gmo_E", Status: "pending"}); err != nil {
		t.Fatal(err)
	}
	if n := s.Flushes() - flushes; n != 1 {
		t.Fatalf("a deferred and a waited write took %d flushes, want 1", n)
	}
	// A reader waits for a deferred write and has it written now.
	rec.Status = "captured"
	if err := s.SwapPaymentDeferred(ctx, rec); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	got, err := s.GetPayment(ctx, "gmo_D")
	if err != nil || got.Status != "captured" || got.Version != 3 {
		t.Fatalf("read %+v %v", got, err)
	}
	if d := time.Since(t0); d >= deferMax*4 {
		t.Logf("a reader waited %v for a deferred write", d) // a slow disk, not a rule
	}
	// Alone, a deferred write is flushed within deferMax.
	s.mu.Lock()
	s.deferAfter, s.deferArmed = deferMax, false // forget the hour-long timer
	s.mu.Unlock()
	flushes = s.Flushes()
	rec.Status = "refunded"
	if err := s.SwapPaymentDeferred(ctx, rec); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Flushes() == flushes {
		if time.Now().After(deadline) {
			t.Fatal("a deferred write alone was never flushed")
		}
		time.Sleep(time.Millisecond)
	}
	// And Close writes what is deferred.
	rec.Status = "canceled"
	if err := s.SwapPaymentDeferred(ctx, rec); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path, Options{})
	defer s.Close()
	if got, err := s.GetPayment(ctx, "gmo_D"); err != nil || got.Status != "canceled" || got.Version != 5 {
		t.Fatalf("after reopen %+v %v", got, err)
	}
}
