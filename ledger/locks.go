package ledger

import (
	"context"
	"sync"
)

// Locks serializes operations on one payment inside this process, so a
// second operation waits in line instead of polling the store's lease. The
// lease in the record still serializes across instances (redis).
type Locks struct {
	mu sync.Mutex
	m  map[string]*lockEntry
}

type lockEntry struct {
	ch    chan struct{} // holds one token while the payment is free
	users int
}

// NewLocks builds an empty lock table; share one per store.
func NewLocks() *Locks { return &Locks{m: map[string]*lockEntry{}} }

// lock takes id's lock or gives up when ctx ends. unlock must be called
// exactly once after a successful lock.
func (l *Locks) lock(ctx context.Context, id string) (unlock func(), ok bool) {
	l.mu.Lock()
	e := l.m[id]
	if e == nil {
		e = &lockEntry{ch: make(chan struct{}, 1)}
		e.ch <- struct{}{}
		l.m[id] = e
	}
	e.users++
	l.mu.Unlock()
	release := func() {
		l.mu.Lock()
		if e.users--; e.users == 0 {
			delete(l.m, id)
		}
		l.mu.Unlock()
	}
	unlock = func() { e.ch <- struct{}{}; release() }
	select {
	case <-e.ch: // a free payment is taken even when the wait is already over
		return unlock, true
	default:
	}
	select {
	case <-e.ch:
		return unlock, true
	case <-ctx.Done():
		release()
		return nil, false
	}
}
