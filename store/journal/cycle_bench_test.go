package journal

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/paynorm/paynorm/store"
)

// BenchmarkPaymentCycle runs what a card create asks of the store from
// many goroutines at once (p: goroutines per CPU): a read (none), the
// write-ahead record (pipelined), a provider call's pause, the wait for
// durability, a read, the outcome record. It reports the CPU time of the
// whole process per cycle and the fdatasyncs per cycle, against the memory
// store. go test ./store/journal -run '^$' -bench PaymentCycle -benchtime 20000x
func BenchmarkPaymentCycle(b *testing.B) {
	payment := []byte(`{"id":"gmo_ORDER-00000000","object":"payment","provider":"gmo","order_id":"ORDER-00000000","status":"authorized","amount":1000,"tax":0,"shipping":0,"total":1000,"currency":"JPY","capture":"manual","method":"card","card":{"brand":"VISA","last4":"1111","exp_month":12,"exp_year":2030,"fingerprint":"0123456789abcdef0123456789abcdef"},"provider_ref":{"access_id":"a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6","tran_id":"2612011234567890","approve":"1234567","forward":"2a99662"},"created_at":"2026-12-01T10:00:00+09:00","updated_at":"2026-12-01T10:00:00+09:00","metadata":{"customer":"c-000123","cart":"k-98765"}}`)
	for _, par := range []int{1, 32} {
		for _, kind := range []string{"journal", "memory"} {
			b.Run(fmt.Sprintf("%s/p%d", kind, par), func(b *testing.B) {
				var st store.Store
				var j *Store
				if kind == "journal" {
					var err error
					if j, err = Open(filepath.Join(b.TempDir(), "paynorm.journal"), Options{}); err != nil {
						b.Fatal(err)
					}
					st = j
				} else {
					st = store.NewMemory()
				}
				defer st.Close()
				ctx := context.Background()
				var seq atomic.Int64
				b.SetParallelism(par)
				before := cpuTime()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := cycle(ctx, st, fmt.Sprintf("gmo_ORDER-%08d", seq.Add(1)), payment); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.StopTimer()
				b.ReportMetric(float64((cpuTime()-before).Microseconds())/float64(b.N), "cpu-us/op")
				if j != nil {
					b.ReportMetric(float64(j.Flushes())/float64(b.N), "fdatasyncs/op")
				}
			})
		}
	}
}

// cycle is one create's store calls.
func cycle(ctx context.Context, st store.Store, id string, payment []byte) error {
	if _, err := st.GetPayment(ctx, id); err != store.ErrNotFound {
		return fmt.Errorf("a new payment read back: %v", err)
	}
	swap := func(rec *store.PaymentRecord) (func() error, error) {
		if p, ok := st.(store.Pipelined); ok {
			return p.SwapPaymentPipelined(ctx, rec)
		}
		return func() error { return nil }, st.SwapPayment(ctx, rec)
	}
	now := time.Now()
	wait, err := swap(&store.PaymentRecord{ID: id, Account: "gmo", Key: id[4:], Status: "pending", Op: "create", Payment: payment,
		CreatedAt: now, UpdatedAt: now, Lease: &store.Lease{Owner: "0123456789abcdef", Op: "create", Until: now.Add(5 * time.Minute)}})
	if err != nil {
		return err
	}
	time.Sleep(time.Millisecond) // EntryTran
	if err := wait(); err != nil {
		return err
	}
	got, err := st.GetPayment(ctx, id)
	if err != nil {
		return err
	}
	next := got.Clone()
	next.Status, next.Lease, next.UpdatedAt = "authorized", nil, time.Now()
	_, err = swap(next)
	return err
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
