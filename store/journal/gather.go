package journal

import (
	"runtime/metrics"
	"time"
)

// An fdatasync costs the machine far more than the CPU time the process is
// charged for it. On the 2-vCPU virtual machines paynorm is measured on, a
// loop of fdatasyncs in another process took 26% of the CPU capacity from
// a CPU-bound program: ~0.3 ms per fdatasync, of which the syncing process
// is charged 0.05 ms (the host's work for the flush is lost to the guest).
// While the CPU is free this does not matter and every group is written at
// once: latency is what counts. While paynorm is CPU-bound it does: 400
// fdatasyncs a second cost 12-19% of its throughput in `go run ./bench`,
// and a group that waits a few milliseconds for more changes halves or
// thirds their number for latency the run queue costs anyway.

// DefaultGather is the default Options.Gather: 3 ms gave 0.88x of the
// memory store's create throughput, 6 ms 0.94x.
const DefaultGather = 6 * time.Millisecond

// saturation tells whether this process is CPU-bound: whether its
// goroutines wait for a processor. The runtime keeps a histogram of how
// long runnable goroutines waited before they ran; in the bench, at full
// load 19-23% of them waited 1 ms or more, at half load at most 8%, and a
// process whose goroutines wake in bursts on a free CPU (64 at once every
// millisecond) 0.5%. That is a steadier sign than the momentary length of
// the run queue, which a burst fills just as the flusher is woken.
type saturation struct {
	sample  [1]metrics.Sample
	prev    []uint64
	at      time.Time
	verdict bool
	last    bool // the last window's own verdict
}

// satWindow is how often the verdict is renewed, from the goroutines
// scheduled since the last one.
const satWindow = 20 * time.Millisecond

func newSaturation() *saturation {
	return &saturation{sample: [1]metrics.Sample{{Name: "/sched/latencies:seconds"}}}
}

// saturated reports the verdict, renewed every satWindow. A runtime without
// the histogram never counts as saturated: the journal then never waits.
func (sa *saturation) saturated() bool {
	now := time.Now()
	if now.Sub(sa.at) < satWindow {
		return sa.verdict
	}
	sa.at = now
	metrics.Read(sa.sample[:])
	if sa.sample[0].Value.Kind() != metrics.KindFloat64Histogram {
		return false
	}
	h := sa.sample[0].Value.Float64Histogram()
	if len(sa.prev) != len(h.Counts) {
		sa.prev = append(sa.prev[:0], h.Counts...) // the first look: a baseline
		return false
	}
	var all, slow uint64
	for i, c := range h.Counts {
		d := c - sa.prev[i]
		all += d
		if h.Buckets[i] >= 1e-3 { // the bucket's lower bound
			slow += d
		}
	}
	copy(sa.prev, h.Counts)
	// Too few goroutines scheduled to judge is an idle process. Two windows
	// in a row must say so: a moment's spike at half load (a collection,
	// another process) is no reason to hold payments back.
	slowNow := all >= 32 && slow*8 >= all
	sa.verdict, sa.last = slowNow && sa.last, slowNow
	return sa.verdict
}

// gatherWait lets the open group fill until it is Gather old while the
// process is CPU-bound, unless a full group is already waiting or the store
// is closing. Flusher only.
func (s *Store) gatherWait() {
	if s.gather <= 0 || !s.saturated() {
		return
	}
	s.mu.Lock()
	first, skip := s.open.first, len(s.sealed) > 0 || s.closed || len(s.open.buf) == 0
	s.mu.Unlock()
	if skip {
		return
	}
	if d := s.gather - time.Since(first); d > 0 {
		// The run queue is long, so the scheduler looks at timers often:
		// time.Sleep is precise enough here and holds no thread.
		time.Sleep(d)
		s.gathered.Add(1)
	}
}
