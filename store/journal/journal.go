// Package journal is the embedded store backend: the store's state lives
// in memory and every change is appended to one file, written and
// fdatasync'd before the change is acknowledged. Changes that arrive while
// a write is on its way to the disk wait and go to the disk together, so
// under load one fdatasync covers many changes, and an idle store pays one
// fdatasync per change. Redis's append-only file with "appendfsync always"
// is the same design. The file is rewritten as a snapshot of the live
// state when it has grown past twice its last snapshot (and CompactAt).
// Only one process can open a journal at a time.
package journal

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/paynorm/paynorm/store"
)

// DefaultCompactAt is the smallest journal that is rewritten as a
// snapshot.
const DefaultCompactAt = 64 << 20

// ErrClosed is returned after Close.
var ErrClosed = errors.New("journal: store is closed")

// Options tune Open.
type Options struct {
	// Timeout bounds the wait for another process holding the journal
	// (default 5s).
	Timeout time.Duration
	// CompactAt is the journal size from which it is rewritten as a
	// snapshot once it is also twice its last snapshot (default 64 MiB).
	CompactAt int64
	// Prealloc is how much zeroed, synced space the journal keeps ahead of
	// its end (default 8 MiB): an append then overwrites blocks the file
	// already has, and its fdatasync need not commit a new file size.
	Prealloc int64
}

// DefaultPrealloc is the default Options.Prealloc.
const DefaultPrealloc = 8 << 20

// Store is a store.Store kept in memory and made durable by one journal
// file.
type Store struct {
	path      string
	lock      *os.File
	compactAt int64
	now       func() time.Time
	// Recovered is how many bytes of an unfinished write Open cut off the
	// end of the journal (0: none), and TornCopy the file it saved them to.
	Recovered int64
	TornCopy  string

	// Owned by the flusher (and Open, before the flusher starts); f is
	// replaced only with extMu held.
	f        *os.File
	size     int64 // bytes of entries in f (the zeros after them are space)
	snapSize int64 // size of f right after its snapshot

	// extMu serializes growing the preallocated space (in the background)
	// with the flusher going past it or replacing the file.
	extMu     sync.Mutex
	prealloc  int64
	alloc     atomic.Int64 // bytes of f that exist: entries and zeros
	extending atomic.Bool
	extWG     sync.WaitGroup

	mu     sync.Mutex
	st     state
	epoch  uint64
	fpKey  []byte
	open   *group // the group new changes join
	sealed []*group  // full groups waiting for the flusher, in order
	free   [][]byte // buffers of written groups, for new ones
	broken error  // set by a failed write: nothing is served after it
	closed bool

	wake    chan struct{} // capacity 1: "the open group may have changes"
	done    chan struct{} // closed when the flusher has ended
	flushes atomic.Int64  // groups written, for tests
}

var (
	_ store.Store     = (*Store)(nil)
	_ store.Pipelined = (*Store)(nil)
)

// maxGroupBytes seals a group: a burst of changes fills several groups of
// this size (written with one fdatasync) instead of one buffer doubling in
// size, which would raise the peak memory of a burst.
const maxGroupBytes = 1 << 20

// group is the changes that go to the disk in one write and one
// fdatasync. done is closed once they are durable (err nil) or lost.
type group struct {
	buf  []byte
	done chan struct{}
	err  error
}

// wait returns once g is durable; nil g is a change read from the file.
func (g *group) wait() error {
	if g == nil {
		return nil
	}
	<-g.done
	return g.err
}

// held is a value of the state with the group that wrote it last: a reader
// waits for that group, so nobody acts on a change before it is durable.
type held[T any] struct {
	v T
	g *group
}

type state struct {
	idem       map[string]held[store.IdemEntry]
	pays       map[string]held[*store.PaymentRecord]
	unresolved map[string]struct{}
	events     map[string]held[*store.Event]
	dead       map[string]held[*store.Event]
	health     held[string]
}

func newState() state {
	return state{idem: map[string]held[store.IdemEntry]{}, pays: map[string]held[*store.PaymentRecord]{},
		unresolved: map[string]struct{}{}, events: map[string]held[*store.Event]{}, dead: map[string]held[*store.Event]{}}
}

// Open opens (or creates) the journal at path and replays it.
func Open(path string, opt Options) (*Store, error) {
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Second
	}
	if opt.CompactAt <= 0 {
		opt.CompactAt = DefaultCompactAt
	}
	if opt.Prealloc <= 0 {
		opt.Prealloc = DefaultPrealloc
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	lock, err := lockFile(path+".lock", opt.Timeout)
	if err != nil {
		return nil, err
	}
	s := &Store{path: path, lock: lock, compactAt: opt.CompactAt, prealloc: opt.Prealloc, now: time.Now, st: newState(),
		open: &group{done: make(chan struct{})}, wake: make(chan struct{}, 1), done: make(chan struct{})}
	if err := s.load(); err != nil {
		unlockFile(lock)
		if s.f != nil {
			s.f.Close()
		}
		return nil, err
	}
	go s.flusher()
	return s, nil
}

// load replays the journal (or starts one), counts this open in the epoch
// and writes it down before anything is served.
func (s *Store) load() error {
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	s.f = f
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		s.fpKey = store.NewFingerprintKey()
		s.epoch = 1
		return s.rewrite(s.capture())
	}
	good, err := s.replay()
	if err != nil {
		return err
	}
	if good < fi.Size() {
		if err := s.cutTail(good, fi.Size()); err != nil {
			return err
		}
	}
	s.alloc.Store(good)
	if len(s.fpKey) != store.FingerprintKeySize {
		return fmt.Errorf("journal %s has no fingerprint key: not a file paynorm wrote", s.path)
	}
	s.epoch++
	s.size = good
	if s.size >= s.compactAt && s.size >= 2*s.snapSize {
		return s.rewrite(s.capture())
	}
	buf, err := appendFrame(nil, &entry{Kind: kindMeta, Epoch: s.epoch, FP: s.fpKey})
	if err != nil {
		return err
	}
	return s.write([]*group{{buf: buf}})
}

// replay applies every whole entry of the journal and returns the offset
// after the last one.
func (s *Store) replay() (int64, error) {
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	r := bufio.NewReaderSize(s.f, 1<<20)
	head := make([]byte, len(magic))
	if _, err := io.ReadFull(r, head); err != nil || string(head) != string(magic) {
		return 0, fmt.Errorf("%s is not a paynorm journal (it does not start with %q)", s.path, magic[:len(magic)-1])
	}
	off := int64(len(magic))
	var buf []byte
	for {
		e, b, n, err := readFrame(r, buf)
		buf = b
		if err != nil {
			// io.EOF: the clean end; errTorn: a write a crash cut short.
			return off, nil
		}
		s.apply(e, nil)
		off += int64(n)
		if e.Kind == kindSnapshot {
			s.snapSize = off
		}
	}
}

// cutTail cuts off what follows the last whole entry: preallocated zeros,
// and perhaps a write a crash cut short (never acknowledged), which is
// saved to a file beside the journal first.
func (s *Store) cutTail(good, size int64) error {
	tail := make([]byte, size-good)
	if _, err := s.f.ReadAt(tail, good); err != nil && err != io.EOF {
		return err
	}
	if torn := bytes.TrimRight(tail, "\x00"); len(torn) > 0 {
		s.TornCopy = s.path + ".torn-" + strconv.FormatInt(time.Now().UnixNano(), 10)
		if err := os.WriteFile(s.TornCopy, torn, 0o600); err != nil {
			return err
		}
		s.Recovered = int64(len(torn))
	}
	if err := s.f.Truncate(good); err != nil {
		return err
	}
	return datasync(s.f)
}

// zeros is what preallocated space is written with.
var zeros = make([]byte, 1<<20)

// extend adds one Prealloc of zeroed, synced space after alloc. Called with
// extMu held.
func (s *Store) extend() error {
	at := s.alloc.Load()
	for off := int64(0); off < s.prealloc; off += int64(len(zeros)) {
		if _, err := s.f.WriteAt(zeros[:min(int64(len(zeros)), s.prealloc-off)], at+off); err != nil {
			return err
		}
	}
	if err := datasync(s.f); err != nil {
		return err
	}
	s.alloc.Store(at + s.prealloc)
	return nil
}

// extendSoon grows the space in the background when the end of the
// entries comes within half a Prealloc of it.
func (s *Store) extendSoon() {
	if s.alloc.Load()-s.size > s.prealloc/2 || !s.extending.CompareAndSwap(false, true) {
		return
	}
	s.extWG.Add(1)
	go func() {
		defer s.extWG.Done()
		defer s.extending.Store(false)
		s.extMu.Lock()
		defer s.extMu.Unlock()
		// A failure leaves the space as it is: appends past it still work,
		// with a slower fdatasync.
		_ = s.extend()
	}()
}

// apply makes one change to the state; g is the group it is written in
// (nil when it comes from the file).
func (s *Store) apply(e *entry, g *group) {
	st := &s.st
	switch e.Kind {
	case kindMeta:
		s.epoch = max(s.epoch, e.Epoch)
		if len(e.FP) > 0 {
			s.fpKey = e.FP
		}
	case kindHealth:
		st.health = held[string]{e.Health, g}
	case kindIdem:
		if e.Idem != nil {
			st.idem[e.Key] = held[store.IdemEntry]{*e.Idem, g}
		}
	case kindIdemDel:
		delete(st.idem, e.Key)
	case kindPayment:
		if e.Rec == nil {
			return
		}
		st.pays[e.Rec.ID] = held[*store.PaymentRecord]{e.Rec, g}
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

// newGroup starts a group, with a buffer of a written one when there is
// one. Called with mu.
func (s *Store) newGroup() *group {
	g := &group{done: make(chan struct{})}
	if n := len(s.free); n > 0 {
		g.buf, s.free = s.free[n-1], s.free[:n-1]
	}
	return g
}

// usable reports why nothing can be served (nil: it can). Called with mu.
func (s *Store) usable() error {
	switch {
	case s.broken != nil:
		return fmt.Errorf("journal: a write failed, restart paynorm to reload the journal: %w", s.broken)
	case s.closed:
		return ErrClosed
	}
	return nil
}

// change applies e, framed in frame (nil: encoded here), and adds it to the
// open group. Called with mu; the caller waits for the group it returns.
func (s *Store) change(e *entry, frame []byte) (*group, error) {
	var err error
	if frame == nil {
		if frame, err = appendFrame(nil, e); err != nil {
			return nil, err
		}
	}
	g := s.open
	g.buf = append(g.buf, frame...)
	s.apply(e, g)
	if len(g.buf) >= maxGroupBytes {
		s.sealed = append(s.sealed, g)
		s.open = s.newGroup()
	}
	select {
	case s.wake <- struct{}{}:
	default: // the flusher is already told
	}
	return g, nil
}

// commit applies e under the lock and waits until it is durable.
func (s *Store) commit(e *entry) error {
	s.mu.Lock()
	if err := s.usable(); err != nil {
		s.mu.Unlock()
		return err
	}
	g, err := s.change(e, nil)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return g.wait()
}

// flusher writes the groups in order: while one is being written and
// synced, the next one fills.
func (s *Store) flusher() {
	defer close(s.done)
	for range s.wake {
		for {
			s.mu.Lock()
			gs := s.sealed
			if len(s.open.buf) > 0 {
				gs = append(gs, s.open)
				s.open = s.newGroup()
			}
			s.sealed = nil
			if len(gs) == 0 {
				closed := s.closed
				s.mu.Unlock()
				if closed {
					return
				}
				break
			}
			var snap *snapshot
			err := s.broken
			if err == nil && s.size >= s.compactAt && s.size >= 2*s.snapSize {
				snap = s.capture() // holds gs's changes too: the snapshot makes them durable
			}
			s.mu.Unlock()
			if err == nil {
				if snap != nil {
					err = s.rewrite(snap)
				} else {
					err = s.write(gs)
				}
			}
			s.mu.Lock()
			if err != nil && s.broken == nil {
				s.broken = err
			}
			for _, g := range gs {
				g.err = err
				close(g.done)
				// Buffers are reused: a flush under steady load allocates none.
				if len(s.free) < 4 {
					s.free = append(s.free, g.buf[:0])
				}
				g.buf = nil
			}
			s.mu.Unlock()
			s.flushes.Add(1)
		}
	}
}

// write appends the groups to the journal and waits for the disk: one
// fdatasync for all of them. Past the preallocated space it waits for a
// growth under way, so the zeros of a growth never land on entries.
func (s *Store) write(gs []*group) error {
	for _, g := range gs {
		if err := s.writeAt(g.buf); err != nil {
			return err
		}
	}
	if err := datasync(s.f); err != nil {
		return err
	}
	s.extendSoon()
	return nil
}

func (s *Store) writeAt(buf []byte) error {
	if s.size+int64(len(buf)) > s.alloc.Load() {
		s.extMu.Lock()
		defer s.extMu.Unlock()
		n, err := s.f.WriteAt(buf, s.size)
		s.size += int64(n)
		s.alloc.Store(max(s.alloc.Load(), s.size))
		return err
	}
	n, err := s.f.WriteAt(buf, s.size)
	s.size += int64(n)
	return err
}

// snapshot is the state at one moment: the values are never changed in
// place (a change replaces them), so copying the maps is enough.
type snapshot struct {
	epoch  uint64
	fpKey  []byte
	health string
	idem   map[string]store.IdemEntry
	pays   []*store.PaymentRecord
	events []*store.Event
	dead   []*store.Event
}

// capture takes a snapshot; expired idempotency keys are dropped for good.
// Called with mu (or before the flusher starts).
func (s *Store) capture() *snapshot {
	now := s.now()
	sn := &snapshot{epoch: s.epoch, fpKey: s.fpKey, health: s.st.health.v, idem: make(map[string]store.IdemEntry, len(s.st.idem)),
		pays: make([]*store.PaymentRecord, 0, len(s.st.pays)), events: make([]*store.Event, 0, len(s.st.events)),
		dead: make([]*store.Event, 0, len(s.st.dead))}
	for k, h := range s.st.idem {
		if !now.Before(h.v.Expires) {
			delete(s.st.idem, k)
			continue
		}
		sn.idem[k] = h.v
	}
	for _, h := range s.st.pays {
		sn.pays = append(sn.pays, h.v)
	}
	for _, h := range s.st.events {
		sn.events = append(sn.events, h.v)
	}
	for _, h := range s.st.dead {
		sn.dead = append(sn.dead, h.v)
	}
	return sn
}

// rewrite replaces the journal with the snapshot: written to a new file,
// synced, renamed over the old one, and the directory synced, so a crash
// at any point leaves either the old journal or the new one.
func (s *Store) rewrite(sn *snapshot) error {
	tmp := s.path + ".compact"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var size int64
	var buf []byte
	put := func(e *entry) error {
		var err error
		if buf, err = appendFrame(buf[:0], e); err != nil {
			return err
		}
		n, err := w.Write(buf)
		size += int64(n)
		return err
	}
	err = func() error {
		n, err := w.Write(magic)
		size += int64(n)
		if err != nil {
			return err
		}
		if err := put(&entry{Kind: kindMeta, Epoch: sn.epoch, FP: sn.fpKey}); err != nil {
			return err
		}
		if sn.health != "" {
			if err := put(&entry{Kind: kindHealth, Health: sn.health}); err != nil {
				return err
			}
		}
		for k, v := range sn.idem {
			if err := put(&entry{Kind: kindIdem, Key: k, Idem: &v}); err != nil {
				return err
			}
		}
		for _, r := range sn.pays {
			if err := put(&entry{Kind: kindPayment, Rec: r}); err != nil {
				return err
			}
		}
		for _, ev := range sn.events {
			if err := put(&entry{Kind: kindEvent, Event: ev}); err != nil {
				return err
			}
		}
		for _, ev := range sn.dead {
			if err := put(&entry{Kind: kindDeadOnly, Event: ev}); err != nil {
				return err
			}
		}
		if err := put(&entry{Kind: kindSnapshot}); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if err := datasync(f); err != nil {
			return err
		}
		if err := os.Rename(tmp, s.path); err != nil {
			return err
		}
		return syncDir(filepath.Dir(s.path))
	}()
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	s.extMu.Lock()
	if s.f != nil {
		s.f.Close()
	}
	s.f, s.size, s.snapSize = f, size, size
	s.alloc.Store(size)
	s.extMu.Unlock()
	s.extendSoon()
	return nil
}

// ClaimIdempotency implements store.Store. A claim left in flight by an
// earlier open of the journal belongs to a process that died and no
// longer blocks.
func (s *Store) ClaimIdempotency(_ context.Context, scope, key, fp string, lease, _ time.Duration) (store.IdemState, *store.Response, error) {
	k := scope + "\x00" + key
	s.mu.Lock()
	if err := s.usable(); err != nil {
		s.mu.Unlock()
		return 0, nil, err
	}
	now := s.now()
	if h, ok := s.st.idem[k]; ok && now.Before(h.v.Expires) && (h.v.Done || h.v.Epoch == s.epoch) {
		state, resp := h.v.Decide(fp)
		s.mu.Unlock()
		return state, resp, h.g.wait()
	}
	g, err := s.change(&entry{Kind: kindIdem, Key: k, Idem: &store.IdemEntry{Fingerprint: fp, Expires: now.Add(lease), Epoch: s.epoch}}, nil)
	s.mu.Unlock()
	if err != nil {
		return 0, nil, err
	}
	return store.IdemNew, nil, g.wait()
}

// FinishIdempotency implements store.Store.
func (s *Store) FinishIdempotency(_ context.Context, scope, key string, resp store.Response, ttl time.Duration) error {
	k := scope + "\x00" + key
	s.mu.Lock()
	if err := s.usable(); err != nil {
		s.mu.Unlock()
		return err
	}
	e := s.st.idem[k].v
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
	next := cloneRecord(rec)
	next.Version = rec.Version + 1
	evs := make([]*store.Event, len(events))
	for i, ev := range events {
		c := *ev
		evs[i] = &c
	}
	e := &entry{Kind: kindPayment, Rec: next, Events: evs}
	// Encoded before the lock: the lock is held only to compare and append.
	frame, err := appendFrame(nil, e)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if err := s.usable(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	cur, ok := s.st.pays[rec.ID]
	if ok != (rec.Version != 0) || ok && cur.v.Version != rec.Version {
		s.mu.Unlock()
		return nil, store.ErrConflict
	}
	g, err := s.change(e, frame)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	rec.Version = next.Version
	return g.wait, nil
}

// cloneRecord copies what a caller could change through rec, so a stored
// record changes only by SwapPayment.
func cloneRecord(rec *store.PaymentRecord) *store.PaymentRecord {
	c := *rec
	c.Payment = append([]byte(nil), rec.Payment...)
	if rec.Lease != nil {
		l := *rec.Lease
		c.Lease = &l
	}
	return &c
}

// GetPayment implements store.Store.
func (s *Store) GetPayment(_ context.Context, id string) (*store.PaymentRecord, error) {
	s.mu.Lock()
	if err := s.usable(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	h, ok := s.st.pays[id]
	s.mu.Unlock()
	if !ok {
		return nil, store.ErrNotFound
	}
	if err := h.g.wait(); err != nil {
		return nil, err
	}
	return cloneRecord(h.v), nil
}

// Unresolved implements store.Store, oldest first.
func (s *Store) Unresolved(_ context.Context, limit int) ([]*store.PaymentRecord, error) {
	s.mu.Lock()
	if err := s.usable(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	hs := make([]held[*store.PaymentRecord], 0, len(s.st.unresolved))
	for id := range s.st.unresolved {
		hs = append(hs, s.st.pays[id])
	}
	s.mu.Unlock()
	sort.Slice(hs, func(i, j int) bool { return hs[i].v.CreatedAt.Before(hs[j].v.CreatedAt) })
	if limit > 0 && len(hs) > limit {
		hs = hs[:limit]
	}
	out := make([]*store.PaymentRecord, len(hs))
	for i, h := range hs {
		if err := h.g.wait(); err != nil {
			return nil, err
		}
		out[i] = cloneRecord(h.v)
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
	go func() {
		// The state is memory: what can fail is the write and its sync.
		done <- s.commit(&entry{Kind: kindHealth, Health: want})
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("journal: no write within the probe's time: %w", ctx.Err())
	}
}

// Close writes what is queued, then closes the journal and lets another
// process open it.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	close(s.wake)
	<-s.done
	s.extWG.Wait()
	err := s.f.Close()
	unlockFile(s.lock)
	return err
}

// Exclusive implements store.Exclusive: the journal is locked by one
// process.
func (s *Store) Exclusive() bool { return true }

// Path is the journal file.
func (s *Store) Path() string { return s.path }

// Flushes counts the groups written so far (for tests and benchmarks).
func (s *Store) Flushes() int64 { return s.flushes.Load() }
