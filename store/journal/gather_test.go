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
