package journal

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/paynorm/paynorm/store"
)

// BenchmarkJournalMemoryPerPayment reports the heap the index keeps per
// payment once the records are no longer recent (written, then reopened:
// nothing decoded stays), for a record the size paynorm writes (~1 KB).
// go test ./store/journal -run '^$' -bench MemoryPerPayment -benchtime 1x
func BenchmarkJournalMemoryPerPayment(b *testing.B) {
	const n = 100_000
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "paynorm.journal")
	s, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	payment := make([]byte, 900)
	var waits []func() error
	for i := range n {
		rec := &store.PaymentRecord{ID: fmt.Sprintf("gmo_ORDER-%08d", i), Account: "gmo", Key: fmt.Sprintf("ORDER-%08d", i),
			Status: "authorized", Op: "create", Payment: payment, CreatedAt: time.Now(), UpdatedAt: time.Now()}
		w, err := s.SwapPaymentPipelined(ctx, rec)
		if err != nil {
			b.Fatal(err)
		}
		waits = append(waits, w)
	}
	for _, w := range waits {
		if err := w(); err != nil {
			b.Fatal(err)
		}
	}
	waits = nil
	s.Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for range b.N {
		s, err = Open(path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-bytes/payment")
		if _, err := s.GetPayment(ctx, "gmo_ORDER-00000007"); err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}
