package caddymodule

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"go.uber.org/zap"

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

	mu    sync.Mutex
	provs map[string]providers.Provider
	after time.Duration // how old a record must be before it is resolved
	// failAfter is how old a record must be before "the provider never
	// executed it" may settle it as failed: at least twice the longest
	// provider timeout, since a late execution may still be under way.
	failAfter time.Duration

	quit     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

func newResolver(st store.Store, log *zap.Logger) *resolver {
	r := &resolver{st: st, log: log, provs: map[string]providers.Provider{}, after: defaultResolveAfter,
		quit: make(chan struct{}), done: make(chan struct{})}
	go r.run()
	return r
}

// register hands the resolver a config's accounts; the newest config wins.
func (r *resolver) register(provs map[string]providers.Provider, after, failAfter time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, p := range provs {
		r.provs[name] = p
	}
	if after > 0 {
		r.after = after
	}
	r.failAfter = max(failAfter, r.after)
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

func (r *resolver) settings() (time.Duration, map[string]providers.Provider) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[string]providers.Provider, len(r.provs))
	for k, v := range r.provs {
		m[k] = v
	}
	return r.after, m
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
		after, _ := r.settings()
		tick := min(max(after/4, 100*time.Millisecond), 5*time.Second)
		select {
		case <-r.quit:
			return
		case <-time.After(tick):
		}
		r.pass(ctx)
	}
}

// pass looks once at every unresolved record that is due.
func (r *resolver) pass(ctx context.Context) {
	after, provs := r.settings()
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
		if now.Sub(rec.UpdatedAt) < after || now.Before(rec.NextCheck) {
			continue // maybe still in flight, or backing off
		}
		p := provs[rec.Account]
		if p == nil {
			continue // the account is not configured (any more)
		}
		r.resolve(ctx, p, rec, after)
	}
}

// resolve asks the provider once. A definite answer settles the record; a
// create the provider never executed (GMO UNPROCESSED or no trade at all)
// after the grace period moved no money, so it is failed; a provider fault
// backs off exponentially up to maxResolveBackoff.
func (r *resolver) resolve(ctx context.Context, p providers.Provider, rec *store.PaymentRecord, after time.Duration) {
	pay, err := p.GetPayment(ctx, rec.Key)
	var status string
	switch {
	case err == nil && pay.Status != normalize.StatusPending:
		status = pay.Status
	case err == nil || isMissing(err):
		if wait := rec.UpdatedAt.Add(r.failGrace()); time.Now().Before(wait) {
			// Not executed yet, but a late execution may still come: look
			// again once the longest provider timeout has surely passed.
			rec.NextCheck = wait
			_ = r.st.PutPayment(ctx, rec)
			return
		}
		status = normalize.StatusFailed
		if pay == nil {
			pay = storedPayment(rec)
		}
		if pay == nil {
			pay = normalize.NewPayment(rec.Account, rec.Key)
		}
		pay.Status = normalize.StatusFailed
	default:
		if ctx.Err() != nil {
			return
		}
		rec.Attempts++
		backoff := min(after<<min(rec.Attempts, 20), maxResolveBackoff)
		rec.NextCheck = time.Now().Add(backoff)
		_ = r.st.PutPayment(ctx, rec)
		return
	}
	// Skip if a request rewrote the record meanwhile: it knows better.
	if cur, err := r.st.GetPayment(ctx, rec.ID); err != nil || !cur.UpdatedAt.Equal(rec.UpdatedAt) {
		return
	}
	from := rec.Status
	rec.Status, rec.Op, rec.UpdatedAt, rec.NextCheck = status, "resolve", time.Now(), time.Time{}
	rec.Attempts++
	if pay != nil {
		rec.Payment, _ = json.Marshal(pay)
	}
	if err := r.st.PutPayment(ctx, rec); err != nil {
		return
	}
	r.log.Info("payment resolved from the provider", zap.String("payment", rec.ID),
		zap.String("from", from), zap.String("to", status), zap.Int("attempts", rec.Attempts))
}

func isMissing(err error) bool {
	var ne *normalize.Error
	return asNormalized(err, &ne) && ne.Code == "resource_missing"
}

// storedPayment decodes the payment object kept in a record.
func storedPayment(rec *store.PaymentRecord) *normalize.Payment {
	if rec == nil || len(rec.Payment) == 0 {
		return nil
	}
	var p normalize.Payment
	if json.Unmarshal(rec.Payment, &p) != nil {
		return nil
	}
	return &p
}
