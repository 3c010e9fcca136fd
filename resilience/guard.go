// Package resilience guards one provider account: a token-bucket rate limiter
// with a bounded wait in front of a circuit breaker that counts only the
// provider's own faults.
package resilience

import (
	"context"
	"errors"
	"time"

	"github.com/sony/gobreaker"
	"golang.org/x/time/rate"

	"github.com/paynorm/paynorm/normalize"
)

// Settings configures one Guard. Zero values take the defaults.
type Settings struct {
	Name string
	// Rate is requests per second; 0 disables the limiter.
	Rate float64
	// Burst is the bucket size (default: max(1, Rate)).
	Burst int
	// MaxWait bounds how long a call waits for a token before 429.
	MaxWait time.Duration
	// FailureThreshold provider faults in a row, or that many making up a
	// third of the calls in the window, open the breaker (default 5).
	FailureThreshold uint32
	// OpenTimeout is how long the breaker stays open before a trial (default 30s).
	OpenTimeout time.Duration
	// Window is how often the closed breaker's counts restart (default 60s).
	Window time.Duration
	// HalfOpenRequests may pass while half-open (default 1).
	HalfOpenRequests uint32
	// OnStateChange is told of every breaker transition.
	OnStateChange func(name string, from, to gobreaker.State)
}

// Guard is shared by every call to one provider account.
type Guard struct {
	s       Settings
	limiter *rate.Limiter
	breaker *gobreaker.CircuitBreaker
}

// New builds a Guard from s.
func New(s Settings) *Guard {
	if s.FailureThreshold == 0 {
		s.FailureThreshold = 5
	}
	if s.OpenTimeout <= 0 {
		s.OpenTimeout = 30 * time.Second
	}
	if s.Window <= 0 {
		s.Window = time.Minute
	}
	if s.HalfOpenRequests == 0 {
		s.HalfOpenRequests = 1
	}
	if s.Burst <= 0 {
		s.Burst = max(1, int(s.Rate))
	}
	g := &Guard{s: s}
	if s.Rate > 0 {
		g.limiter = rate.NewLimiter(rate.Limit(s.Rate), s.Burst)
	}
	threshold := s.FailureThreshold
	g.breaker = gobreaker.NewCircuitBreaker(gobreaker.Settings{
		Name:        s.Name,
		MaxRequests: s.HalfOpenRequests,
		Timeout:     s.OpenTimeout,
		// Counts restart every Interval. A run of faults trips the breaker, and
		// so does a fault rate of a third or more: a GMO payment is EntryTran,
		// ExecTran and, after a fault, a SearchTrade; faults hit ExecTran while
		// the calls around it succeed, so they rarely come in a row.
		Interval: s.Window,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= threshold || c.TotalFailures >= threshold && c.TotalFailures*3 >= c.Requests
		},
		// Declines, validation errors and other business answers prove the
		// provider is healthy: only faults count as failures.
		IsSuccessful:  func(err error) bool { return !IsFault(err) },
		OnStateChange: s.OnStateChange,
	})
	return g
}

// IsFault reports whether err is the provider's fault.
func IsFault(err error) bool {
	if err == nil {
		return false
	}
	var ne *normalize.Error
	if errors.As(err, &ne) {
		return ne.Fault
	}
	return true
}

// State is the breaker state ("closed", "half-open", "open").
func (g *Guard) State() string { return g.breaker.State().String() }

// StateValue is the breaker state as a gauge value: 0 closed, 1 half-open, 2 open.
func (g *Guard) StateValue() float64 { return float64(g.breaker.State()) }

// Wait takes a token from the limiter, waiting at most MaxWait. It answers a
// rate_limited error with Retry-After when the wait would be longer.
func (g *Guard) Wait(ctx context.Context) *normalize.Error {
	if g.limiter == nil {
		return nil
	}
	r := g.limiter.Reserve()
	if !r.OK() {
		return rateLimited(time.Second)
	}
	d := r.Delay()
	if d == 0 {
		return nil
	}
	if d > g.s.MaxWait {
		r.Cancel()
		return rateLimited(d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.Cancel()
		return rateLimited(d)
	}
}

func rateLimited(d time.Duration) *normalize.Error {
	e := normalize.New("rate_limited")
	e.Message = "paynorm's rate limit for this provider account is reached; retry after the indicated time."
	e.RetryAfter = d
	return e
}

// Do runs call through the rate limiter and the breaker. An open breaker
// answers circuit_open without calling the provider.
func (g *Guard) Do(ctx context.Context, call func() error) error {
	if err := g.Wait(ctx); err != nil {
		return err
	}
	err := func() error {
		_, err := g.breaker.Execute(func() (any, error) { return nil, call() })
		return err
	}()
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		e := normalize.New("circuit_open")
		e.RetryAfter = g.s.OpenTimeout
		e.Fault = false // not a new fault: nothing was sent
		return e
	}
	return err
}
