//go:build linux

package main

import (
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// op performs one request and reports an error for anything but the
// expected answer.
type op func(ctx context.Context) error

// errExhausted ends a phase early: there is nothing left to operate on
// (the capture phase ran out of authorized payments).
var errExhausted = errors.New("no work left")

// newClient is the generator's client: enough idle keep-alive connections
// for every worker, so no request pays for a new connection. maxConns > 0
// caps connections per server: when a server stalls, an open-loop phase
// queues its requests in the pool (their latency still counts from the
// scheduled send) instead of dialing thousands of sockets at once, whose
// SYNs overflow the listen queue and come back 1 s or 3 s later.
func newClient(conns, maxConns int) *http.Client {
	return &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     maxConns,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// sample is the outcome of one phase.
type sample struct {
	n, errs   int
	firstErr  error
	elapsed   time.Duration
	latencies []time.Duration // successful requests only, sorted
	cpu       map[string]time.Duration
}

func (s *sample) rate() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.n) / s.elapsed.Seconds()
}

// merge adds another run of the same scenario; call sort afterwards.
func (s *sample) merge(o sample) {
	s.n += o.n
	s.errs += o.errs
	if s.firstErr == nil {
		s.firstErr = o.firstErr
	}
	s.elapsed += o.elapsed
	s.latencies = append(s.latencies, o.latencies...)
	if s.cpu == nil {
		s.cpu = map[string]time.Duration{}
	}
	for k, v := range o.cpu {
		s.cpu[k] += v
	}
}

func (s *sample) sort() { slices.Sort(s.latencies) }

// pct returns the p-th percentile (0 < p < 100) by nearest rank.
func (s *sample) pct(p float64) time.Duration {
	if len(s.latencies) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(s.latencies)))) - 1
	return s.latencies[max(0, min(i, len(s.latencies)-1))]
}

// recorder collects latencies from many goroutines.
type recorder struct {
	mu       sync.Mutex
	lat      []time.Duration
	errs     int
	firstErr error
}

func (r *recorder) add(d time.Duration, err error) {
	r.mu.Lock()
	if err != nil {
		r.errs++
		if r.firstErr == nil {
			r.firstErr = err
		}
	} else {
		r.lat = append(r.lat, d)
	}
	r.mu.Unlock()
}

func (r *recorder) sample(elapsed time.Duration) sample {
	slices.Sort(r.lat)
	return sample{n: len(r.lat) + r.errs, errs: r.errs, firstErr: r.firstErr, elapsed: elapsed, latencies: r.lat}
}

// closedLoop runs conc workers back to back for d (or until the op runs out
// of work): the maximum throughput.
func closedLoop(conc int, d time.Duration, do op) sample {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var rec recorder
	var wg sync.WaitGroup
	start := time.Now()
	var stopped atomic.Bool
	for range conc {
		wg.Go(func() {
			for ctx.Err() == nil && !stopped.Load() {
				t0 := time.Now()
				err := do(context.Background())
				if errors.Is(err, errExhausted) {
					stopped.Store(true)
					return
				}
				rec.add(time.Since(t0), err)
			}
		})
	}
	wg.Wait()
	return rec.sample(time.Since(start))
}

// fixedRate sends rate requests per second for d whatever the answers do
// (open loop). Latency counts from the scheduled send time, so a stalled
// server cannot hide its queueing (no coordinated omission).
func fixedRate(rate float64, d time.Duration, do op) sample {
	var rec recorder
	var wg sync.WaitGroup
	total := int(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	var exhausted atomic.Bool
	for i := 0; i < total && !exhausted.Load(); i++ {
		at := start.Add(time.Duration(i) * interval)
		if wait := time.Until(at); wait > 0 {
			time.Sleep(wait)
		}
		wg.Go(func() {
			err := do(context.Background())
			if errors.Is(err, errExhausted) {
				exhausted.Store(true)
				return
			}
			rec.add(time.Since(at), err)
		})
	}
	wg.Wait()
	return rec.sample(time.Since(start))
}
