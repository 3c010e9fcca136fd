// Package resilience guards one provider account: a token-bucket rate limiter
// with a bounded wait in front of a circuit breaker that counts failed
// operations (a payment, a capture, a read), never single calls, and only
// the provider's own faults, never declines.
package resilience

import (
	"context"
	"errors"
	"sync"
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
	// FailureThreshold failed operations in a row, or that many making up a
	// third of the operations in the window, open the breaker (default 5).
	FailureThreshold uint32
	// OpenTimeout is how long the breaker stays open before a trial (default 30s).
	OpenTimeout time.Duration
	// Window is how often the closed breaker's counts restart (default 60s).
	Window time.Duration
	// HalfOpenRequests is how many trial operations may run while half-open
	// (default 1).
	HalfOpenRequests uint32
	// OnStateChange is told of every breaker transition.
	OnStateChange func(name string, from, to gobreaker.State)
}

// Guard is shared by every call to one provider account.
type Guard struct {
	s       Settings
	limiter *rate.Limiter
	breaker *gobreaker.TwoStepCircuitBreaker
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
	// The breaker's unit is an operation, not a call: a GMO payment is
	// EntryTran, ExecTran and, after a fault, a SearchTrade read-back, and
	// ExecTran may fail while the calls around it succeed. Counted per call,
	// those successes keep the faults from ever coming in a row and a
	// provider that takes no payments looks healthy (issue 11). Counted per
	// operation, a payment whose money-moving call faulted is one failure
	// however many reads succeeded around it.
	g.breaker = gobreaker.NewTwoStepCircuitBreaker(gobreaker.Settings{
		Name:        s.Name,
		MaxRequests: s.HalfOpenRequests,
		Timeout:     s.OpenTimeout,
		// Counts restart every Interval. A run of failed operations trips
		// the breaker, and so does a failure rate of a third or more, which
		// catches failing payments interleaved with reads that work.
		Interval: s.Window,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= threshold || c.TotalFailures >= threshold && c.TotalFailures*3 >= c.Requests
		},
		OnStateChange: s.OnStateChange,
	})
	return g
}

// IsFault reports whether err is the provider's fault. Declines,
// validation errors and other business answers prove the provider is
// healthy: only faults count as failures.
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

// operation collects the outcome of one operation's calls per guard: the
// breaker admits the operation at its first call and is told at its end
// whether any call faulted.
type operation struct {
	mu     sync.Mutex
	ended  bool
	guards map[*Guard]*admission
}

type admission struct {
	done    func(success bool)
	faulted bool
}

type opKey struct{}

// Operation starts an operation in ctx: every guarded call made with the
// returned context belongs to it, and end (which must be called, once)
// reports one success or one failure per account it touched. When ctx
// already carries an operation, the call joins it and end does nothing, so
// a provider call inside an API request counts as part of that request.
func Operation(ctx context.Context) (context.Context, func()) {
	if _, ok := ctx.Value(opKey{}).(*operation); ok {
		return ctx, func() {}
	}
	op := &operation{guards: map[*Guard]*admission{}}
	return context.WithValue(ctx, opKey{}, op), op.end
}

func (op *operation) end() {
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.ended {
		return
	}
	op.ended = true
	for _, a := range op.guards {
		a.done(!a.faulted)
	}
	op.guards = nil
}

// admit lets the operation in ctx through the breaker on its first call
// to this account; later calls of the same operation pass, so a trial
// operation while half-open runs all of its calls. Without an operation
// (or after it ended) the call is an operation of its own, and finish
// reports it.
func (g *Guard) admit(ctx context.Context) (finish func(err error), err error) {
	op, _ := ctx.Value(opKey{}).(*operation)
	if op != nil {
		op.mu.Lock()
		defer op.mu.Unlock()
		if !op.ended {
			if op.guards[g] != nil {
				return func(error) {}, nil
			}
			done, err := g.breaker.Allow()
			if err != nil {
				return nil, err
			}
			op.guards[g] = &admission{done: done}
			return func(error) {}, nil
		}
	}
	done, err := g.breaker.Allow()
	if err != nil {
		return nil, err
	}
	return func(err error) { done(!IsFault(err)) }, nil
}

// Report marks the operation in ctx failed for this account when err is a
// provider fault. Callers report a call's final outcome, after its own
// retries: a read that failed once and then answered is no failure.
func (g *Guard) Report(ctx context.Context, err error) {
	if !IsFault(err) {
		return
	}
	op, _ := ctx.Value(opKey{}).(*operation)
	if op == nil {
		return
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	if a := op.guards[g]; a != nil {
		a.faulted = true
	}
}

// Do runs one attempt of a call through the rate limiter and the breaker.
// An open breaker answers circuit_open without calling the provider. Inside
// an operation (see Operation) the breaker counts the operation, and the
// caller reports the call's outcome with Report; alone, the attempt counts
// as an operation of its own.
func (g *Guard) Do(ctx context.Context, call func() error) error {
	if err := g.Wait(ctx); err != nil {
		return err
	}
	finish, err := g.admit(ctx)
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		e := normalize.New("circuit_open")
		e.RetryAfter = g.s.OpenTimeout
		e.Fault = false // not a new fault: nothing was sent
		return e
	}
	if err != nil {
		return err
	}
	err = call()
	finish(err)
	return err
}
