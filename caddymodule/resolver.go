package caddymodule

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/paynorm/paynorm/ledger"
	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers"
	"github.com/paynorm/paynorm/store"
)

// Resolver defaults.
const (
	defaultResolveAfter = time.Minute
	maxResolveBackoff   = 5 * time.Minute
	resolveBatch        = 200
)

// resolver settles payment records left pending or unknown (a timeout, a
// crash, a kill -9) by asking the provider. There is one per store: it
// outlives config reloads, and each config hands it its provider accounts.
type resolver struct {
	st  store.Store
	log *zap.Logger

	mu     sync.Mutex
	provs  map[string]providers.Provider
	ledger *ledger.Ledger // the newest config's (its events setting)
	// expiry is each account's action_expiry: how long a payment may wait
	// for its card holder's 3-D Secure authentication.
	expiry map[string]time.Duration
	after  time.Duration // how old a record must be before it is resolved
	// failAfter is how old a record must be before "the provider never
	// executed it" may settle it as failed: at least twice the longest
	// provider timeout, since a late execution may still be under way.
	failAfter time.Duration

	quit chan struct{}
	done chan struct{}
	// wake restarts the wait when a config registers (its resolve_after
	// may be much shorter than the default the loop started with).
	wake     chan struct{}
	stopOnce sync.Once
}

func newResolver(st store.Store, log *zap.Logger) *resolver {
	r := &resolver{st: st, log: log, provs: map[string]providers.Provider{}, after: defaultResolveAfter,
		quit: make(chan struct{}), done: make(chan struct{}), wake: make(chan struct{}, 1)}
	go r.run()
	return r
}

// register hands the resolver a config's accounts; the newest config wins.
func (r *resolver) register(provs map[string]providers.Provider, l *ledger.Ledger, after, failAfter time.Duration, expiry map[string]time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ledger = l
	if r.expiry == nil {
		r.expiry = map[string]time.Duration{}
	}
	for name, d := range expiry {
		r.expiry[name] = d
	}
	for name, p := range provs {
		r.provs[name] = p
	}
	if after > 0 {
		r.after = after
	}
	r.failAfter = max(failAfter, r.after)
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// unregister drops a config's accounts unless a newer config replaced them.
func (r *resolver) unregister(provs map[string]providers.Provider) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, p := range provs {
		if r.provs[name] == p {
			delete(r.provs, name)
		}
	}
}

func (r *resolver) settings() (time.Duration, map[string]providers.Provider, *ledger.Ledger) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[string]providers.Provider, len(r.provs))
	for k, v := range r.provs {
		m[k] = v
	}
	return r.after, m, r.ledger
}

func (r *resolver) actionExpiry(account string) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d := r.expiry[account]; d > 0 {
		return d
	}
	return 30 * time.Minute
}

func (r *resolver) failGrace() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return max(r.failAfter, r.after)
}

func (r *resolver) stop() {
	r.stopOnce.Do(func() { close(r.quit) })
	<-r.done
}

func (r *resolver) run() {
	defer close(r.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-r.quit
		cancel()
	}()
	for {
		after, _, _ := r.settings()
		tick := min(max(after/4, 100*time.Millisecond), 5*time.Second)
		select {
		case <-r.quit:
			return
		case <-r.wake:
			continue
		case <-time.After(tick):
		}
		r.pass(ctx)
	}
}

// pass looks once at every unresolved record that is due.
func (r *resolver) pass(ctx context.Context) {
	after, provs, l := r.settings()
	if l == nil {
		return
	}
	recs, err := r.st.Unresolved(ctx, resolveBatch)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("resolver: cannot list unresolved payments", zap.Error(err))
		}
		return
	}
	now := time.Now()
	for _, rec := range recs {
		if ctx.Err() != nil {
			return
		}
		if l.Live(rec.Lease) {
			continue // an operation is running: it settles its own outcome
		}
		if now.Sub(rec.UpdatedAt) < after || now.Before(rec.NextCheck) {
			continue // maybe still in flight, or backing off
		}
		p := provs[rec.Account]
		if p == nil {
			continue // the account is not configured (any more)
		}
		r.resolve(ctx, l, p, rec, after)
	}
}

// resolve asks the provider once and hands the answer to the ledger, which
// drops it if the record changed meanwhile. A create the provider never
// executed (GMO UNPROCESSED or no trade at all) after the grace period
// moved no money, so it is failed; a provider fault backs off
// exponentially up to maxResolveBackoff. A provider that cannot be asked
// (j-payment) leaves the record to its kickback or to a person: a crashed
// operation is marked unknown (create) or unconfirmed (follow-up).
func (r *resolver) resolve(ctx context.Context, l *ledger.Ledger, p providers.Provider, rec *store.PaymentRecord, after time.Duration) {
	backoff := func() {
		attempts := rec.Attempts + 1
		_ = l.Note(ctx, rec.ID, rec.Version, attempts, time.Now().Add(min(after<<min(attempts, 20), maxResolveBackoff)))
	}
	if !providers.Queryable(p) {
		if rec.Lease != nil {
			if _, err := l.Abandon(ctx, rec.ID, rec.Version); err == nil {
				r.log.Warn("operation without an outcome on a provider that cannot be asked", zap.String("payment", rec.ID), zap.String("op", rec.Lease.Op))
			}
			return
		}
		backoff()
		return
	}
	pay, err := p.GetPayment(ctx, rec.Key)
	if rec.Status == ledger.StatusRequiresAction && rec.Lease == nil && (err == nil && pay.Status == normalize.StatusPending || isMissing(err)) {
		// The card holder has not come back (GMO: AUTHENTICATED or not
		// even that). paynorm never completes a payment on its own: past
		// the account's action_expiry it expires, uncharged.
		deadline := rec.CreatedAt.Add(r.actionExpiry(rec.Account))
		if time.Now().Before(deadline) {
			_ = l.Note(ctx, rec.ID, rec.Version, rec.Attempts, deadline)
			return
		}
		if after, err := l.Expire(ctx, rec.ID, rec.Version); err == nil && after.Rec.Version != rec.Version {
			r.log.Info("3-D Secure payment expired without authentication", zap.String("payment", rec.ID))
		}
		return
	}
	switch {
	case err == nil && pay.Status != normalize.StatusPending:
	case (err == nil || isMissing(err)) && ledger.Open(rec.Status):
		if wait := rec.UpdatedAt.Add(r.failGrace()); time.Now().Before(wait) {
			// Not executed yet, but a late execution may still come: look
			// again once the longest provider timeout has surely passed.
			_ = l.Note(ctx, rec.ID, rec.Version, rec.Attempts, wait)
			return
		}
		if pay == nil {
			if pay = ledger.PaymentOf(rec); pay == nil {
				pay = normalize.NewPayment(rec.Account, rec.Key)
			}
		}
		pay.Status = normalize.StatusFailed
	default:
		if ctx.Err() == nil {
			backoff()
		}
		return
	}
	if stored := ledger.PaymentOf(rec); stored != nil && pay.Status != normalize.StatusFailed {
		fillFromRecord(pay, stored)
	}
	after2, err := l.Observe(ctx, rec.ID, rec.Version, pay, "resolve")
	if err != nil || after2 == nil || after2.Rec.Version == rec.Version {
		return // the record changed meanwhile, or nothing was new
	}
	r.log.Info("payment resolved from the provider", zap.String("payment", rec.ID),
		zap.String("from", rec.Status), zap.String("to", after2.Rec.Status), zap.Int("attempts", rec.Attempts+1))
}

func isMissing(err error) bool {
	var ne *normalize.Error
	return asNormalized(err, &ne) && ne.Code == "resource_missing"
}
