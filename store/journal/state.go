package journal

import (
	"errors"

	"github.com/paynorm/paynorm/store"
)

// slot is the index entry of one record (a payment or an idempotency key):
// where its latest entry is, what decisions need without reading it, and
// the entry itself while it is recent.
type slot struct {
	// The entry's frame: at off in g's buffer and, once g is written, at
	// g.base+off in g.seg; with g nil, at off in seg.
	g   *group
	seg *segment
	off int64
	n   int64
	// hot is the decoded entry while the record is recent (nil: read it).
	hot *entry
	// version is a payment's version, for the compare-and-set.
	version int64
	// idem is an idempotency key without its stored answer.
	idem store.IdemEntry
}

// place says where an applied entry's frame is.
type place struct {
	g   *group // a change: its group (off is within the group's buffer)
	seg *segment
	off int64
	n   int64
	hot bool // keep the entry decoded
}

// located returns where the slot's frame is on disk; ok is false when the
// slot's group went into a snapshot instead (the index has the new place).
// Called with mu, after the slot's group is done.
func (sl *slot) located() (*segment, int64, bool) {
	if sl.g == nil {
		return sl.seg, sl.off, true
	}
	if sl.g.seg == nil {
		return nil, 0, false
	}
	return sl.g.seg, sl.g.base + sl.off, true
}

type state struct {
	pays       map[string]*slot
	idem       map[string]*slot
	unresolved map[string]struct{}
	events     map[string]held[*store.Event]
	dead       map[string]held[*store.Event]
	// hot is a ring of the slots written last; a slot pushed out of it
	// lets its decoded entry go.
	hot    []*slot
	hotPos int
}

// held is an outbox event with the group that wrote it last: a reader
// waits for that group, so nobody acts on a change before it is durable.
// Events stay in memory: the outbox is small, and they are deleted once
// delivered.
type held[T any] struct {
	v T
	g *group
}

func newState(hot int) state {
	return state{pays: map[string]*slot{}, idem: map[string]*slot{}, unresolved: map[string]struct{}{},
		events: map[string]held[*store.Event]{}, dead: map[string]held[*store.Event]{}, hot: make([]*slot, hot)}
}

// newSlot makes the slot of an applied entry.
func (st *state) newSlot(e *entry, p place) *slot {
	sl := &slot{g: p.g, seg: p.seg, off: p.off, n: p.n}
	if p.hot {
		st.makeHot(sl, e)
	}
	return sl
}

// makeHot keeps e decoded in sl, pushing the oldest hot slot out of the
// ring.
func (st *state) makeHot(sl *slot, e *entry) {
	sl.hot = e
	if old := st.hot[st.hotPos]; old != nil {
		old.hot = nil
	}
	st.hot[st.hotPos] = sl
	st.hotPos = (st.hotPos + 1) % len(st.hot)
}

// apply makes one change to the state. Called with mu (or before the
// flusher starts).
func (s *Store) apply(e *entry, p place) {
	st := &s.st
	g := p.g
	switch e.Kind {
	case kindMeta:
		s.epoch = max(s.epoch, e.Epoch)
		if len(e.FP) > 0 {
			s.fpKey = e.FP
		}
	case kindHealth:
		// The probe's entry tests the write; its value is never read.
	case kindIdem:
		if e.Idem == nil {
			return
		}
		sl := st.newSlot(e, p)
		sl.idem = *e.Idem
		sl.idem.Response = nil
		st.idem[e.Key] = sl
	case kindIdemDel:
		delete(st.idem, e.Key)
	case kindPayment:
		if e.Rec == nil {
			return
		}
		sl := st.newSlot(e, p)
		sl.version = e.Rec.Version
		st.pays[e.Rec.ID] = sl
		if e.Rec.Unresolved() {
			st.unresolved[e.Rec.ID] = struct{}{}
		} else {
			delete(st.unresolved, e.Rec.ID)
		}
		for _, ev := range e.Events {
			st.events[ev.ID] = held[*store.Event]{ev, g}
		}
	case kindEvent:
		if e.Event != nil {
			st.events[e.Event.ID] = held[*store.Event]{e.Event, g}
		}
	case kindEventDel:
		delete(st.events, e.ID)
	case kindEventDead:
		if e.Event != nil {
			delete(st.events, e.Event.ID)
			st.dead[e.Event.ID] = held[*store.Event]{e.Event, g}
		}
	case kindDeadOnly:
		if e.Event != nil {
			st.dead[e.Event.ID] = held[*store.Event]{e.Event, g}
		}
	}
}

// read returns the entry of the slot find gives, once it is durable: from
// memory while it is recent, else from the file. A slot replaced or moved
// meanwhile is looked up again. nil, nil: there is none.
func (s *Store) read(find func(*state) *slot) (*entry, error) {
	for {
		s.mu.Lock()
		if err := s.usable(); err != nil {
			s.mu.Unlock()
			return nil, err
		}
		sl := find(&s.st)
		if sl == nil {
			s.mu.Unlock()
			return nil, nil
		}
		g, hot := sl.g, sl.hot
		s.mu.Unlock()
		if err := g.wait(); err != nil {
			return nil, err
		}
		if hot != nil {
			return hot, nil
		}
		s.mu.Lock()
		seg, off, ok := sl.located()
		n := sl.n
		s.mu.Unlock()
		if !ok {
			continue
		}
		e, err := seg.frameAt(off, n)
		if errors.Is(err, errMoved) {
			continue
		}
		if err == nil {
			// A record read is often read again soon (an operation reads
			// it, then writes it): keep it decoded for a while.
			s.mu.Lock()
			if sl.hot == nil {
				s.st.makeHot(sl, e)
			}
			s.mu.Unlock()
		}
		return e, err
	}
}

// isDone reports whether g has been written (or failed).
func isDone(g *group) bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}
