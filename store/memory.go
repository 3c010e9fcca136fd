package store

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Memory is an in-process Store for tests and single-run tools. It keeps
// nothing across restarts.
type Memory struct {
	mu       sync.Mutex
	idem     map[string]*idemEntry
	payments map[string]*PaymentRecord
	events   map[string]*Event
	dead     map[string]*Event
	fpKey    []byte
}

type idemEntry struct {
	fingerprint string
	done        bool
	resp        Response
	expires     time.Time
}

// NewMemory builds an empty memory store.
func NewMemory() *Memory {
	return &Memory{idem: map[string]*idemEntry{}, payments: map[string]*PaymentRecord{}, events: map[string]*Event{},
		dead: map[string]*Event{}, fpKey: NewFingerprintKey()}
}

var _ Store = (*Memory)(nil)

// ClaimIdempotency implements Store.
func (m *Memory) ClaimIdempotency(_ context.Context, scope, key, fp string, lease, ttl time.Duration) (IdemState, *Response, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := scope + "\x00" + key
	now := time.Now()
	if e := m.idem[k]; e != nil && now.Before(e.expires) {
		switch {
		case e.fingerprint != fp:
			return IdemMismatch, nil, nil
		case !e.done:
			return IdemInFlight, nil, nil
		}
		r := e.resp
		return IdemReplay, &r, nil
	}
	m.idem[k] = &idemEntry{fingerprint: fp, expires: now.Add(lease)}
	return IdemNew, nil, nil
}

// FinishIdempotency implements Store.
func (m *Memory) FinishIdempotency(_ context.Context, scope, key string, resp Response, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := scope + "\x00" + key
	e := m.idem[k]
	if e == nil {
		e = &idemEntry{}
		m.idem[k] = e
	}
	e.done, e.resp, e.expires = true, resp, time.Now().Add(ttl)
	return nil
}

// ReleaseIdempotency implements Store.
func (m *Memory) ReleaseIdempotency(_ context.Context, scope, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.idem, scope+"\x00"+key)
	return nil
}

// SwapPayment implements Store.
func (m *Memory) SwapPayment(_ context.Context, rec *PaymentRecord, events ...*Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.payments[rec.ID]
	if cur == nil && rec.Version != 0 || cur != nil && (rec.Version == 0 || cur.Version != rec.Version) {
		return ErrConflict
	}
	c := rec.Clone()
	c.Version++
	m.payments[rec.ID] = c
	for _, ev := range events {
		e := *ev
		m.events[ev.ID] = &e
	}
	rec.Version = c.Version
	return nil
}

// Clone copies what a caller could still change through rec, so a stored
// record changes only by SwapPayment.
func (rec *PaymentRecord) Clone() *PaymentRecord {
	c := *rec
	c.Payment = append([]byte(nil), rec.Payment...)
	if rec.Lease != nil {
		l := *rec.Lease
		c.Lease = &l
	}
	return &c
}

// GetPayment implements Store.
func (m *Memory) GetPayment(_ context.Context, id string) (*PaymentRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.payments[id]
	if r == nil {
		return nil, ErrNotFound
	}
	return r.Clone(), nil
}

// Unresolved implements Store.
func (m *Memory) Unresolved(_ context.Context, limit int) ([]*PaymentRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*PaymentRecord
	for _, r := range m.payments {
		if r.Unresolved() {
			out = append(out, r.Clone())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// AddEvent implements Store.
func (m *Memory) AddEvent(_ context.Context, ev *Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := *ev
	m.events[ev.ID] = &c
	return nil
}

// DueEvents implements Store.
func (m *Memory) DueEvents(_ context.Context, now time.Time, limit int) ([]*Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*Event
	for _, e := range m.events {
		if !e.NextTry.After(now) {
			c := *e
			out = append(out, &c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// UpdateEvent implements Store.
func (m *Memory) UpdateEvent(ctx context.Context, ev *Event) error { return m.AddEvent(ctx, ev) }

// DeleteEvent implements Store.
func (m *Memory) DeleteEvent(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.events, id)
	return nil
}

// BuryEvent implements Store.
func (m *Memory) BuryEvent(_ context.Context, ev *Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.events, ev.ID)
	c := *ev
	m.dead[ev.ID] = &c
	return nil
}

// DeadEvents implements Store.
func (m *Memory) DeadEvents(_ context.Context, limit int) ([]*Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Event, 0, len(m.dead))
	for _, e := range m.dead {
		c := *e
		out = append(out, &c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DeadAt.Before(out[j].DeadAt) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// FingerprintKey implements Store.
func (m *Memory) FingerprintKey() []byte { return m.fpKey }

// Probe implements Store: memory always takes writes.
func (m *Memory) Probe(context.Context) error { return nil }

// Close implements Store.
func (m *Memory) Close() error { return nil }

// Exclusive implements Exclusive: a memory store lives in one process.
func (m *Memory) Exclusive() bool { return true }
