package journal

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/paynorm/paynorm/store"
)

// ClaimIdempotency implements store.Store. A claim left in flight by an
// earlier open of the journal belongs to a process that died and no
// longer blocks.
func (s *Store) ClaimIdempotency(_ context.Context, scope, key, fp string, lease, _ time.Duration) (store.IdemState, *store.Response, error) {
	k := scope + "\x00" + key
	live := func(e *store.IdemEntry, now time.Time) bool {
		return now.Before(e.Expires) && (e.Done || e.Epoch == s.epoch)
	}
	for {
		s.mu.Lock()
		if err := s.usable(); err != nil {
			s.mu.Unlock()
			return 0, nil, err
		}
		now := s.now()
		if sl := s.st.idem[k]; sl != nil && live(&sl.idem, now) {
			s.mu.Unlock()
			// The stored answer is read (and waited for) only now.
			e, err := s.read(func(st *state) *slot { return st.idem[k] })
			if err != nil {
				return 0, nil, err
			}
			if e == nil || e.Idem == nil || !live(e.Idem, now) {
				continue // released or replaced meanwhile: claim again
			}
			state, resp := e.Idem.Decide(fp)
			return state, resp, nil
		}
		g, err := s.change(&entry{Kind: kindIdem, Key: k, Idem: &store.IdemEntry{Fingerprint: fp, Expires: now.Add(lease), Epoch: s.epoch}}, nil)
		s.mu.Unlock()
		if err != nil {
			return 0, nil, err
		}
		return store.IdemNew, nil, g.wait()
	}
}

// FinishIdempotency implements store.Store.
func (s *Store) FinishIdempotency(_ context.Context, scope, key string, resp store.Response, ttl time.Duration) error {
	k := scope + "\x00" + key
	s.mu.Lock()
	if err := s.usable(); err != nil {
		s.mu.Unlock()
		return err
	}
	var e store.IdemEntry
	if sl := s.st.idem[k]; sl != nil {
		e = sl.idem
	}
	r := resp
	e.Done, e.Response, e.Expires = true, &r, s.now().Add(ttl)
	g, err := s.change(&entry{Kind: kindIdem, Key: k, Idem: &e}, nil)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return g.wait()
}

// ReleaseIdempotency implements store.Store.
func (s *Store) ReleaseIdempotency(_ context.Context, scope, key string) error {
	return s.commit(&entry{Kind: kindIdemDel, Key: scope + "\x00" + key})
}

// SwapPayment implements store.Store.
func (s *Store) SwapPayment(ctx context.Context, rec *store.PaymentRecord, events ...*store.Event) error {
	wait, err := s.SwapPaymentPipelined(ctx, rec, events...)
	if err != nil {
		return err
	}
	return wait()
}

// SwapPaymentPipelined implements store.Pipelined: the compare-and-set is
// decided and the change takes its place in the journal's order at once;
// wait returns when it is durable. Readers of the record wait too.
func (s *Store) SwapPaymentPipelined(_ context.Context, rec *store.PaymentRecord, events ...*store.Event) (func() error, error) {
	g, err := s.swap(rec, events, false)
	if err != nil {
		return nil, err
	}
	return g.wait, nil
}

// SwapPaymentDeferred implements store.Pipelined: the change is decided
// and ordered, and waits for the next flush somebody needs (or deferMax).
func (s *Store) SwapPaymentDeferred(_ context.Context, rec *store.PaymentRecord, events ...*store.Event) error {
	_, err := s.swap(rec, events, true)
	return err
}

// swap decides the compare-and-set and appends the change to the open
// group, which it returns.
func (s *Store) swap(rec *store.PaymentRecord, events []*store.Event, deferred bool) (*group, error) {
	next := rec.Clone()
	next.Version = rec.Version + 1
	evs := make([]*store.Event, len(events))
	for i, ev := range events {
		c := *ev
		evs[i] = &c
	}
	e := &entry{Kind: kindPayment, Rec: next, Events: evs}
	// Encoded before the lock: the lock is held only to compare and append.
	frame, err := encodeFrame(e)
	if err != nil {
		return nil, err
	}
	defer frame.release()
	s.mu.Lock()
	if err := s.usable(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	cur := s.st.pays[rec.ID]
	if (cur != nil) != (rec.Version != 0) || cur != nil && cur.version != rec.Version {
		s.mu.Unlock()
		return nil, store.ErrConflict
	}
	g, err := s.changeAs(e, frame.Bytes(), deferred)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	rec.Version = next.Version
	return g, nil
}

// GetPayment implements store.Store.
func (s *Store) GetPayment(_ context.Context, id string) (*store.PaymentRecord, error) {
	e, err := s.read(func(st *state) *slot { return st.pays[id] })
	if err != nil {
		return nil, err
	}
	if e == nil || e.Rec == nil {
		return nil, store.ErrNotFound
	}
	return e.Rec.Clone(), nil
}

// Unresolved implements store.Store, oldest first.
func (s *Store) Unresolved(_ context.Context, limit int) ([]*store.PaymentRecord, error) {
	s.mu.Lock()
	if err := s.usable(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	ids := make([]string, 0, len(s.st.unresolved))
	for id := range s.st.unresolved {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	out := make([]*store.PaymentRecord, 0, len(ids))
	for _, id := range ids {
		e, err := s.read(func(st *state) *slot { return st.pays[id] })
		if err != nil {
			return nil, err
		}
		if e != nil && e.Rec != nil && e.Rec.Unresolved() {
			out = append(out, e.Rec.Clone())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// AddEvent implements store.Store.
func (s *Store) AddEvent(_ context.Context, ev *store.Event) error {
	c := *ev
	return s.commit(&entry{Kind: kindEvent, Event: &c})
}

// DueEvents implements store.Store, oldest first.
func (s *Store) DueEvents(_ context.Context, now time.Time, limit int) ([]*store.Event, error) {
	return s.listEvents(func(st *state) map[string]held[*store.Event] { return st.events }, func(ev *store.Event) bool { return !ev.NextTry.After(now) },
		func(a, b *store.Event) bool { return a.CreatedAt.Before(b.CreatedAt) }, limit)
}

// DeadEvents implements store.Store, oldest first.
func (s *Store) DeadEvents(_ context.Context, limit int) ([]*store.Event, error) {
	return s.listEvents(func(st *state) map[string]held[*store.Event] { return st.dead }, func(*store.Event) bool { return true },
		func(a, b *store.Event) bool { return a.DeadAt.Before(b.DeadAt) }, limit)
}

// listEvents lists the events of one map that keep, sorted by less, once
// they are durable.
func (s *Store) listEvents(of func(*state) map[string]held[*store.Event], keep func(*store.Event) bool, less func(a, b *store.Event) bool, limit int) ([]*store.Event, error) {
	s.mu.Lock()
	if err := s.usable(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	var hs []held[*store.Event]
	for _, h := range of(&s.st) {
		if keep(h.v) {
			hs = append(hs, h)
		}
	}
	s.mu.Unlock()
	sort.Slice(hs, func(i, j int) bool { return less(hs[i].v, hs[j].v) })
	if limit > 0 && len(hs) > limit {
		hs = hs[:limit]
	}
	out := make([]*store.Event, len(hs))
	for i, h := range hs {
		if err := h.g.wait(); err != nil {
			return nil, err
		}
		c := *h.v
		out[i] = &c
	}
	return out, nil
}

// UpdateEvent implements store.Store.
func (s *Store) UpdateEvent(ctx context.Context, ev *store.Event) error { return s.AddEvent(ctx, ev) }

// DeleteEvent implements store.Store.
func (s *Store) DeleteEvent(_ context.Context, id string) error {
	return s.commit(&entry{Kind: kindEventDel, ID: id})
}

// BuryEvent implements store.Store.
func (s *Store) BuryEvent(_ context.Context, ev *store.Event) error {
	c := *ev
	return s.commit(&entry{Kind: kindEventDead, Event: &c})
}

// FingerprintKey implements store.Store.
func (s *Store) FingerprintKey() []byte { return s.fpKey }

// Probe implements store.Store: a change through the journal, fdatasync
// included, so a full disk or a failed write fails it. It gives up when
// ctx ends; the write then finishes on its own.
func (s *Store) Probe(ctx context.Context) error {
	want := s.now().UTC().Format(time.RFC3339Nano)
	done := make(chan error, 1)
	go func() { done <- s.commit(&entry{Kind: kindHealth, Health: want}) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("journal: no write within the probe's time: %w", ctx.Err())
	}
}
