package journal

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"

	"github.com/paynorm/paynorm/store"
)

// snapshot is the live state at one moment: where every record's latest
// entry is (or its bytes, when its group is not written yet) and the
// outbox, to be written out as a new journal.
type snapshot struct {
	epoch   uint64
	fpKey   []byte
	health  string
	records []snapRecord
	events  []*store.Event
	dead    []*store.Event
}

type snapRecord struct {
	sl    *slot
	seg   *segment
	off   int64
	frame []byte // the frame itself, when it is only in a group's buffer
}

// capture takes a snapshot; expired idempotency keys are dropped for good.
// Called with mu (or before the flusher starts), while the groups not yet
// written are the ones the caller holds (their buffers stay as they are).
func (s *Store) capture() *snapshot {
	now := s.now()
	sn := &snapshot{epoch: s.epoch, fpKey: s.fpKey, health: s.st.health,
		records: make([]snapRecord, 0, len(s.st.pays)+len(s.st.idem)),
		events:  make([]*store.Event, 0, len(s.st.events)), dead: make([]*store.Event, 0, len(s.st.dead))}
	add := func(sl *slot) {
		r := snapRecord{sl: sl}
		switch {
		case sl.g == nil:
			r.seg, r.off = sl.seg, sl.off
		case sl.g.seg != nil:
			r.seg, r.off = sl.g.seg, sl.g.base+sl.off
		default:
			r.frame = sl.g.buf[sl.off : sl.off+sl.n]
		}
		sn.records = append(sn.records, r)
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

// rawAt reads the n bytes at off.
func (sg *segment) rawAt(off, n int64) ([]byte, error) {
	sg.mu.RLock()
	defer sg.mu.RUnlock()
	if sg.closed {
		return nil, errMoved
	}
	buf := make([]byte, n)
	_, err := sg.f.ReadAt(buf, off)
	return buf, err
}

// rewrite replaces the journal with the snapshot: written to a new file,
// synced, renamed over the old one, and the directory synced, so a crash
// at any point leaves either the old journal or the new one. Records are
// copied as they are (no decoding); the records' places in the index move
// to the new file. gs are the groups whose changes the snapshot holds.
func (s *Store) rewrite(sn *snapshot, gs []*group) error {
	tmp := s.path + ".compact"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var size int64
	raw := func(b []byte) error {
		n, err := w.Write(b)
		size += int64(n)
		return err
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
		if sn.health != "" {
			if err := put(&entry{Kind: kindHealth, Health: sn.health}); err != nil {
				return err
			}
		}
		for i, r := range sn.records {
			frame := r.frame
			if frame == nil {
				var err error
				if frame, err = r.seg.rawAt(r.off, r.sl.n); err != nil {
					return fmt.Errorf("journal: copying a record into the snapshot: %w", err)
				}
			}
			offs[i] = size
			if err := raw(frame); err != nil {
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
	seg := &segment{f: f}
	s.extMu.Lock()
	s.mu.Lock()
	old := s.seg
	for i, r := range sn.records {
		r.sl.g, r.sl.seg, r.sl.off = nil, seg, offs[i]
	}
	s.seg, s.size, s.snapSize = seg, size, size
	s.alloc.Store(size)
	s.mu.Unlock()
	s.extMu.Unlock()
	if old != nil {
		old.retire()
	}
	s.extendSoon()
	return nil
}
