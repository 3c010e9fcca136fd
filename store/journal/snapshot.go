package journal

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/paynorm/paynorm/store"
)

// snapshot is the live state at one moment: where every record's latest
// entry is (or its bytes, when its group is not written yet) and the
// outbox, to be written out as a new journal.
type snapshot struct {
	epoch   uint64
	fpKey   []byte
	records []snapRecord
	events  []*store.Event
	dead    []*store.Event
}

type snapRecord struct {
	sl  *slot
	seg *segment
	off int64
}

// capture takes a snapshot of what is written; expired idempotency keys
// are dropped for good. Called with mu (or before the flusher starts) by
// the flusher, between its writes. Changes not written yet are left out:
// they reach the new journal with the tail of the old one.
func (s *Store) capture() *snapshot {
	now := s.now()
	sn := &snapshot{epoch: s.epoch, fpKey: s.fpKey,
		records: make([]snapRecord, 0, len(s.st.pays)+len(s.st.idem)),
		events:  make([]*store.Event, 0, len(s.st.events)), dead: make([]*store.Event, 0, len(s.st.dead))}
	add := func(sl *slot) {
		seg, off, ok := sl.located()
		if !ok || sl.g != nil && !isDone(sl.g) {
			return // not written yet: it comes after the snapshot, in the tail
		}
		sn.records = append(sn.records, snapRecord{sl: sl, seg: seg, off: off})
	}
	for k, sl := range s.st.idem {
		if !now.Before(sl.idem.Expires) {
			delete(s.st.idem, k)
			continue
		}
		add(sl)
	}
	for _, sl := range s.st.pays {
		add(sl)
	}
	for _, h := range s.st.events {
		sn.events = append(sn.events, h.v)
	}
	for _, h := range s.st.dead {
		sn.dead = append(sn.dead, h.v)
	}
	return sn
}

// copyRecords hands each record's frame to put, reading each segment once
// from start to end in large reads (records in file order, the dead
// entries between them skipped) rather than one read per record.
func copyRecords(recs []snapRecord, put func(i int, frame []byte) error) error {
	order := make([]int, len(recs))
	segNo := map[*segment]int{}
	for i := range order {
		order[i] = i
		if _, ok := segNo[recs[i].seg]; !ok {
			segNo[recs[i].seg] = len(segNo)
		}
	}
	sort.Slice(order, func(a, b int) bool {
		ra, rb := recs[order[a]], recs[order[b]]
		if sa, sb := segNo[ra.seg], segNo[rb.seg]; sa != sb {
			return sa < sb
		}
		return ra.off < rb.off
	})
	var (
		seg   *segment
		r     *bufio.Reader
		pos   int64
		frame []byte
	)
	defer func() {
		if seg != nil {
			seg.mu.RUnlock()
		}
	}()
	for _, i := range order {
		rec := recs[i]
		if rec.seg != seg {
			if seg != nil {
				seg.mu.RUnlock()
			}
			seg = rec.seg
			seg.mu.RLock() // the segment is retired only after the switch
			if seg.closed {
				return errMoved
			}
			r, pos = bufio.NewReaderSize(io.NewSectionReader(seg.f, 0, 1<<62), 1<<20), 0
		}
		if _, err := r.Discard(int(rec.off - pos)); err != nil {
			return err
		}
		if cap(frame) < int(rec.sl.n) {
			frame = make([]byte, rec.sl.n)
		}
		frame = frame[:rec.sl.n]
		if _, err := io.ReadFull(r, frame); err != nil {
			return err
		}
		pos = rec.off + rec.sl.n
		if err := put(i, frame); err != nil {
			return err
		}
	}
	return nil
}

// snapshotSyncEvery is how much of a snapshot is written between two
// fdatasyncs.
const snapshotSyncEvery = 4 << 20

// writeSnapshot writes the snapshot to a new file beside the journal and
// syncs it; records are copied as they are (no decoding). It returns the
// file, each record's offset in it and its size.
func (s *Store) writeSnapshot(sn *snapshot) (*os.File, []int64, int64, error) {
	f, err := os.OpenFile(s.path+".compact", os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, nil, 0, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var size, synced int64
	raw := func(b []byte) error {
		n, err := w.Write(b)
		size += int64(n)
		if err != nil {
			return err
		}
		// Synced as it goes, a few MiB at a time: one fdatasync of the
		// whole snapshot at the end would queue hundreds of MiB at the
		// disk, and every payment's fdatasync behind them.
		if size-synced >= snapshotSyncEvery {
			if err := w.Flush(); err != nil {
				return err
			}
			synced = size
			return datasync(f)
		}
		return nil
	}
	var buf []byte
	put := func(e *entry) error {
		var err error
		if buf, err = appendFrame(buf[:0], e); err != nil {
			return err
		}
		return raw(buf)
	}
	offs := make([]int64, len(sn.records))
	err = func() error {
		if err := raw(magic); err != nil {
			return err
		}
		if err := put(&entry{Kind: kindMeta, Epoch: sn.epoch, FP: sn.fpKey}); err != nil {
			return err
		}
		if err := copyRecords(sn.records, func(i int, frame []byte) error {
			offs[i] = size
			return raw(frame)
		}); err != nil {
			return fmt.Errorf("journal: copying records into the snapshot: %w", err)
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
		return datasync(f)
	}()
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, nil, 0, err
	}
	return f, offs, size, nil
}

// compaction is a snapshot being written in the background while the
// flusher goes on appending to the old journal; tail lists the groups it
// appended after from, which are copied after the snapshot at the switch.
type compaction struct {
	sn   *snapshot
	from int64
	tail []*group
	done chan struct{}
	f    *os.File
	offs []int64
	size int64
	err  error
}

// install makes the compaction's file the journal: the old journal's tail
// copied after the snapshot, synced, renamed over the old one and the
// directory synced, so a crash at any point leaves either the old journal
// or the new one; then the index's places move to the new file. Called by
// the flusher.
func (s *Store) install(c *compaction) error {
	if n := s.size - c.from; n > 0 {
		if _, err := io.Copy(io.NewOffsetWriter(c.f, c.size), io.NewSectionReader(s.seg.f, c.from, n)); err != nil {
			return err
		}
		if err := datasync(c.f); err != nil { // the snapshot itself is synced already
			return err
		}
	}
	if err := os.Rename(c.f.Name(), s.path); err != nil {
		return err
	}
	s.switchTo(c.f, c.sn, c.offs, c.size, c.from, c.tail)
	// Past the rename the new file is the journal: a directory that cannot
	// be synced may bring the old one back after a crash, without what is
	// written from now on, so nothing more may be acknowledged.
	return syncDir(filepath.Dir(s.path))
}

// switchTo moves the index to a new journal file: the snapshot's records
// to their offsets in it, the tail's groups after the snapshot.
func (s *Store) switchTo(f *os.File, sn *snapshot, offs []int64, snapEnd, from int64, tail []*group) {
	seg := &segment{f: f}
	s.extMu.Lock()
	s.mu.Lock()
	old := s.seg
	for i, r := range sn.records {
		r.sl.g, r.sl.seg, r.sl.off = nil, seg, offs[i]
	}
	for _, g := range tail {
		g.seg, g.base = seg, g.base-from+snapEnd
	}
	s.seg, s.size, s.snapSize = seg, snapEnd+(s.size-from), snapEnd
	s.alloc.Store(s.size)
	s.mu.Unlock()
	s.extMu.Unlock()
	if old != nil {
		old.retire()
	}
	s.extendSoon()
}

// rewrite replaces the journal with a snapshot at once (at open, before
// anything is served): an install with no tail.
func (s *Store) rewrite(sn *snapshot) error {
	f, offs, size, err := s.writeSnapshot(sn)
	if err != nil {
		return err
	}
	err = s.install(&compaction{sn: sn, from: s.size, f: f, offs: offs, size: size})
	if err != nil && s.seg.f != f { // not installed: the old journal stays
		f.Close()
		os.Remove(f.Name())
	}
	return err
}

// compactStep starts a compaction when the journal has grown enough, and
// installs the one under way once its snapshot is written (at close, it
// waits for it). Called by the flusher after each round; wrote are the
// groups that round appended.
func (s *Store) compactStep(wrote []*group, closing bool) {
	if c := s.compaction; c != nil {
		c.tail = append(c.tail, wrote...)
		if closing {
			<-c.done
		}
		select {
		case <-c.done:
		default:
			return
		}
		s.compaction = nil
		s.mu.Lock()
		broken := s.broken
		s.mu.Unlock()
		if broken != nil && c.err == nil {
			c.f.Close() // a failed write stops everything, compactions too
			os.Remove(c.f.Name())
			return
		}
		err := c.err
		if err == nil {
			if err = s.install(c); err == nil {
				s.compactions.Add(1)
			} else if s.seg.f != c.f {
				c.f.Close() // not installed: the old journal stays
				os.Remove(c.f.Name())
				err = nil
			}
		}
		s.mu.Lock()
		if err != nil && s.broken == nil {
			s.broken = err
		}
		if c.err != nil {
			s.snapSize = s.size // try again once it has doubled again
		}
		s.mu.Unlock()
		return
	}
	s.mu.Lock()
	start := !closing && s.broken == nil && s.size >= s.compactAt && s.size >= 2*s.snapSize
	var sn *snapshot
	if start {
		sn = s.capture()
	}
	s.mu.Unlock()
	if !start {
		return
	}
	c := &compaction{sn: sn, from: s.size, done: make(chan struct{})}
	s.compaction = c
	go func() {
		c.f, c.offs, c.size, c.err = s.writeSnapshot(sn)
		close(c.done)
	}()
}
