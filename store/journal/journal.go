// Package journal is the embedded store backend: every change is appended
// to one file, written and fdatasync'd before it is acknowledged, and an
// index in memory says where each record's latest entry is (Redis's
// append-only file with "appendfsync always" and Bitcask's in-memory key
// directory are the same ideas). Changes that arrive while a write is on
// its way to the disk wait and go to the disk together, so under load one
// fdatasync covers many changes and an idle store pays one per change;
// while the process is CPU-bound a group also waits a few milliseconds to
// fill (gather.go). Records recently written are kept decoded in memory;
// older ones are read back from the file (the page cache). The file is
// rewritten as a snapshot of the live records when it has grown past twice
// its last snapshot (and CompactAt). Only one process can open a journal
// at a time.
package journal

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/paynorm/paynorm/store"
)

// DefaultCompactAt is the smallest journal that is rewritten as a
// snapshot.
const DefaultCompactAt = 64 << 20

// DefaultPrealloc is the default Options.Prealloc.
const DefaultPrealloc = 8 << 20

// DefaultHot is the default Options.Hot.
const DefaultHot = 1024

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
	// Hot is how many recently written records stay decoded in memory
	// (default 1024); the others are read from the file when asked for.
	Hot int
	// Gather is how long, while this process is CPU-bound, the flusher
	// lets a group fill (counted from its first change) before writing it
	// (default DefaultGather; negative: never wait). See gather.go.
	Gather time.Duration
}

// Store is a store.Store in one journal file with its index in memory.
type Store struct {
	path      string
	lock      *os.File
	compactAt int64
	gather    time.Duration
	now       func() time.Time
	// Recovered is how many bytes of an unfinished write Open cut off the
	// end of the journal (0: none), and TornCopy the file it saved them to.
	Recovered int64
	TornCopy  string

	// Owned by the flusher (and Open, before the flusher starts); seg is
	// replaced only with extMu and mu held.
	seg      *segment
	size     int64 // bytes of entries in seg (the zeros after them are space)
	snapSize int64 // size of seg right after its snapshot
	jsonFile bool  // seg was written before the binary codec (magicJSON)

	// extMu serializes growing the preallocated space (in the background)
	// with the flusher going past it or replacing the file.
	extMu     sync.Mutex
	prealloc  int64
	alloc     atomic.Int64 // bytes of seg that exist: entries and zeros
	extending atomic.Bool
	extWG     sync.WaitGroup

	mu     sync.Mutex
	st     state
	epoch  uint64
	fpKey  []byte
	open   *group   // the group new changes join
	sealed []*group // full groups waiting for the flusher, in order
	free   [][]byte // buffers of written groups, for new ones
	broken error    // set by a failed write: nothing is served after it
	closed bool
	// deferArmed: a timer will poke the flusher for deferred changes.
	deferArmed bool
	deferAfter time.Duration // deferMax; longer in tests

	wake    chan struct{} // capacity 1: "a group may have changes"; never closed
	done    chan struct{} // closed when the flusher has ended
	flushes atomic.Int64  // flushes so far (Stats)
	// gathered counts flushes that waited for a group to fill (Stats).
	gathered atomic.Int64
	// saturated says whether the process is CPU-bound (flusher only).
	saturated func() bool
	// compactions counts snapshots installed while serving, for tests.
	compactions atomic.Int64
	// compaction is the snapshot being written in the background (flusher
	// only).
	compaction *compaction
}

var (
	_ store.Store     = (*Store)(nil)
	_ store.Pipelined = (*Store)(nil)
)

// maxGroupBytes seals a group: a burst of changes fills several groups of
// this size (written with one fdatasync) instead of one buffer doubling in
// size, which would raise the peak memory of a burst.
const maxGroupBytes = 256 << 10

// group is the changes that go to the disk in one write and one
// fdatasync. done is closed once they are durable (err nil) or lost.
type group struct {
	s   *Store
	buf []byte
	// first is when the group's first change came (for the gather window).
	first time.Time
	done  chan struct{}
	err   error
	// Where buf went, set before done is closed; nil seg: its changes went
	// into a snapshot, whose records carry their own place.
	seg  *segment
	base int64
}

// wait returns once g is durable; nil g is a change read from the file.
// A group not yet written may hold deferred changes only: waiting for it
// asks the flusher to write it now.
func (g *group) wait() error {
	if g == nil {
		return nil
	}
	select {
	case <-g.done:
		return g.err
	default:
	}
	g.s.poke()
	<-g.done
	return g.err
}

// segment is one journal file. Readers hold mu for reading while they
// read from it; a compaction closes the file it replaced with mu held.
type segment struct {
	f      *os.File
	mu     sync.RWMutex
	closed bool
}

// errMoved: the segment a record was read from was replaced; the index
// knows the new place.
var errMoved = errors.New("journal: record moved")

// frameAt reads and checks the frame of n bytes at off.
func (sg *segment) frameAt(off, n int64) (*entry, error) {
	sg.mu.RLock()
	defer sg.mu.RUnlock()
	if sg.closed {
		return nil, errMoved
	}
	buf := make([]byte, n)
	if _, err := sg.f.ReadAt(buf, off); err != nil {
		return nil, fmt.Errorf("journal: reading a record: %w", err)
	}
	e, _, _, err := readFrame(bytes.NewReader(buf), nil)
	if err != nil {
		return nil, fmt.Errorf("journal: the record at offset %d does not read back: %w", off, err)
	}
	return e, nil
}

// retire closes a segment a compaction replaced, once no reader uses it.
func (sg *segment) retire() {
	sg.mu.Lock()
	sg.closed = true
	sg.f.Close()
	sg.mu.Unlock()
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
	if opt.Hot <= 0 {
		opt.Hot = DefaultHot
	}
	if opt.Gather == 0 {
		opt.Gather = DefaultGather
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	lock, err := lockFile(path+".lock", opt.Timeout)
	if err != nil {
		return nil, err
	}
	s := &Store{saturated: newSaturation().saturated, path: path, lock: lock, compactAt: opt.CompactAt, prealloc: opt.Prealloc, gather: opt.Gather, now: time.Now, st: newState(opt.Hot),
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	s.open, s.deferAfter = s.newGroup(), deferMax
	if err := s.load(); err != nil {
		unlockFile(lock)
		if s.seg != nil {
			s.seg.f.Close()
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
	s.seg = &segment{f: f}
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
	// A file of the JSON era is rewritten at once under the new magic:
	// binary entries appended to it would look like damage to the version
	// that wrote it, were it started again.
	if s.jsonFile || s.size >= s.compactAt && s.size >= 2*s.snapSize {
		return s.rewrite(s.capture())
	}
	buf, err := appendFrame(nil, &entry{Kind: kindMeta, Epoch: s.epoch, FP: s.fpKey})
	if err != nil {
		return err
	}
	return s.write([]*group{{buf: buf}})
}

// replay indexes every whole entry of the journal and returns the offset
// after the last one.
func (s *Store) replay() (int64, error) {
	r := bufio.NewReaderSize(io.NewSectionReader(s.seg.f, 0, 1<<62), 1<<20)
	head := make([]byte, len(magic))
	_, err := io.ReadFull(r, head)
	s.jsonFile = err == nil && string(head) == string(magicJSON)
	if err != nil || string(head) != string(magic) && !s.jsonFile {
		return 0, fmt.Errorf("%s is not a paynorm journal (it does not start with %q)", s.path, magic[:len(magic)-1])
	}
	off := int64(len(magic))
	// Until its end marker the file is a snapshot, whose outbox is written
	// out on its own: the events a record's entry once carried are history.
	inSnapshot := true
	var buf []byte
	for {
		e, b, n, err := readFrame(r, buf)
		buf = b
		if err != nil {
			// io.EOF: the clean end; errTorn: a write a crash cut short.
			return off, nil
		}
		if inSnapshot && e.Kind == kindPayment {
			e.Events = nil
		}
		s.apply(e, place{seg: s.seg, off: off, n: int64(n)})
		off += int64(n)
		if e.Kind == kindSnapshot {
			s.snapSize, inSnapshot = off, false
		}
	}
}

// cutTail cuts off what follows the last whole entry: preallocated zeros,
// and perhaps a write a crash cut short (never acknowledged), which is
// saved to a file beside the journal first.
func (s *Store) cutTail(good, size int64) error {
	tail := make([]byte, size-good)
	if _, err := s.seg.f.ReadAt(tail, good); err != nil && err != io.EOF {
		return err
	}
	if torn := bytes.TrimRight(tail, "\x00"); len(torn) > 0 {
		s.TornCopy = s.path + ".torn-" + strconv.FormatInt(time.Now().UnixNano(), 10)
		if err := os.WriteFile(s.TornCopy, torn, 0o600); err != nil {
			return err
		}
		s.Recovered = int64(len(torn))
	}
	if err := s.seg.f.Truncate(good); err != nil {
		return err
	}
	return datasync(s.seg.f)
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

// newGroup starts a group, with a buffer of a written one when there is
// one. Called with mu.
func (s *Store) newGroup() *group {
	g := &group{s: s, done: make(chan struct{})}
	if n := len(s.free); n > 0 {
		g.buf, s.free = s.free[n-1], s.free[:n-1]
	}
	return g
}

// deferMax bounds how long a deferred change waits for a flush somebody
// needs before it is flushed on its own.
const deferMax = 5 * time.Millisecond

// change applies e, framed in frame (nil: encoded here), and adds it to the
// open group. Called with mu; the caller waits for the group it returns.
func (s *Store) change(e *entry, frame []byte) (*group, error) {
	return s.changeAs(e, frame, false)
}

// changeAs is change; a deferred change does not wake the flusher: it goes
// with the next change somebody waits for, the first reader that waits
// for it, or after deferMax.
func (s *Store) changeAs(e *entry, frame []byte, deferred bool) (*group, error) {
	if frame == nil {
		f, err := encodeFrame(e)
		if err != nil {
			return nil, err
		}
		defer f.release()
		frame = f.Bytes()
	}
	g := s.open
	at := int64(len(g.buf))
	if at == 0 && s.gather > 0 {
		g.first = time.Now() // only the gather window reads it
	}
	g.buf = append(g.buf, frame...)
	s.apply(e, place{g: g, off: at, n: int64(len(frame)), hot: true})
	if len(g.buf) >= maxGroupBytes {
		s.sealed = append(s.sealed, g)
		s.open = s.newGroup()
		deferred = false
	}
	if !deferred {
		s.poke()
	} else if !s.deferArmed {
		s.deferArmed = true
		time.AfterFunc(s.deferAfter, func() {
			s.mu.Lock()
			s.deferArmed = false
			s.mu.Unlock()
			s.poke()
		})
	}
	return g, nil
}

// poke tells the flusher there may be changes to write. The channel is
// never closed, so a poke after Close is harmless.
func (s *Store) poke() {
	select {
	case s.wake <- struct{}{}:
	default: // the flusher is already told
	}
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

// flusher writes the groups in order: while some are being written and
// synced, the next ones fill.
func (s *Store) flusher() {
	defer close(s.done)
	for range s.wake {
		for {
			s.gatherWait()
			s.mu.Lock()
			gs := s.sealed
			if len(s.open.buf) > 0 {
				gs = append(gs, s.open)
				s.open = s.newGroup()
			}
			s.sealed = nil
			closed := s.closed
			err := s.broken
			s.mu.Unlock()
			if len(gs) == 0 {
				if closed {
					s.compactStep(nil, true)
					return
				}
				break
			}
			if err == nil {
				err = s.write(gs)
			}
			s.flushes.Add(1) // before the writers learn of it: tests count on it
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
			if err == nil {
				s.compactStep(gs, false)
			}
		}
	}
}

// write appends the groups to the journal and waits for the disk: one
// fdatasync for all of them.
func (s *Store) write(gs []*group) error {
	for _, g := range gs {
		g.seg, g.base = s.seg, s.size
		if err := s.writeAt(g.buf); err != nil {
			return err
		}
	}
	if err := datasync(s.seg.f); err != nil {
		return err
	}
	s.extendSoon()
	return nil
}

// writeAt appends buf. Past the preallocated space it waits for a growth
// under way, so the zeros of a growth never land on entries.
func (s *Store) writeAt(buf []byte) error {
	if s.size+int64(len(buf)) > s.alloc.Load() {
		s.extMu.Lock()
		defer s.extMu.Unlock()
		n, err := s.seg.f.WriteAt(buf, s.size)
		s.size += int64(n)
		s.alloc.Store(max(s.alloc.Load(), s.size))
		return err
	}
	n, err := s.seg.f.WriteAt(buf, s.size)
	s.size += int64(n)
	return err
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
	s.poke()
	<-s.done
	s.extWG.Wait()
	s.seg.mu.Lock()
	s.seg.closed = true
	err := s.seg.f.Close()
	s.seg.mu.Unlock()
	unlockFile(s.lock)
	return err
}

// Exclusive implements store.Exclusive: the journal is locked by one
// process.
func (s *Store) Exclusive() bool { return true }

// Path is the journal file.
func (s *Store) Path() string { return s.path }

// Flushes counts the flushes so far (for tests and benchmarks).
func (s *Store) Flushes() int64 { return s.flushes.Load() }

// Stats are counters of the journal's work since it was opened.
type Stats struct {
	// Flushes are groups written with one fdatasync each.
	Flushes int64
	// Gathered are flushes that waited for their group to fill because
	// the process was CPU-bound (gather.go).
	Gathered int64
}

// Stats returns the journal's counters (for metrics).
func (s *Store) Stats() Stats {
	return Stats{Flushes: s.flushes.Load(), Gathered: s.gathered.Load()}
}
