package journal

// zeros is what preallocated space is written with.
var zeros = make([]byte, 1<<20)

// extend adds one Prealloc of zeroed, synced space after alloc. Called with
// extMu held.
func (s *Store) extend() error {
	at := s.alloc.Load()
	f := s.seg.f
	for off := int64(0); off < s.prealloc; off += int64(len(zeros)) {
		if _, err := f.WriteAt(zeros[:min(int64(len(zeros)), s.prealloc-off)], at+off); err != nil {
			return err
		}
	}
	if err := datasync(f); err != nil {
		return err
	}
	s.alloc.Store(at + s.prealloc)
	return nil
}

// extendSoon grows the space in the background when the end of the
// entries comes within half a Prealloc of it. Called by the flusher.
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
