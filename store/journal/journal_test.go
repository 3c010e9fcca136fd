package journal

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paynorm/paynorm/store"
	"github.com/paynorm/paynorm/store/storetest"
)

func open(t *testing.T, path string, opt Options) *Store {
	t.Helper()
	s, err := Open(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestJournalConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "paynorm.journal"), Options{})
	})
}

// The same suite with a journal rewritten as a snapshot every few hundred
// bytes: compaction must lose nothing and keep every rule.
func TestJournalConformanceWhileCompacting(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "paynorm.journal"), Options{CompactAt: 512})
	})
}

// The same suite with every record read back from the file (one record
// kept decoded) while the journal is rewritten every few hundred bytes: the
// index's places must follow every write and every snapshot.
func TestJournalConformanceColdReads(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "paynorm.journal"), Options{CompactAt: 700, Hot: 1})
	})
}

// A reopened journal keeps answers, records, events and dead letters; a
// claim left in flight by the process that had it open no longer blocks.
func TestJournalSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "paynorm.journal")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	fp := s.FingerprintKey()
	_, _, _ = s.ClaimIdempotency(ctx, "gmo", "done", "fp", time.Hour, time.Hour)
	_ = s.FinishIdempotency(ctx, "gmo", "done", store.Response{Status: 402, Body: []byte("declined")}, time.Hour)
	_, _, _ = s.ClaimIdempotency(ctx, "gmo", "inflight", "fp", time.Hour, time.Hour)
	_, _, _ = s.ClaimIdempotency(ctx, "gmo", "released", "fp", time.Hour, time.Hour)
	_ = s.ReleaseIdempotency(ctx, "gmo", "released")
	rec := &store.PaymentRecord{ID: "gmo_A", Account: "gmo", Key: "A", Status: "pending", CreatedAt: time.Now()}
	if err := s.SwapPayment(ctx, rec, &store.Event{ID: "ev1", Type: "payment.authorized"}); err != nil {
		t.Fatal(err)
	}
	rec.Status = "authorized"
	if err := s.SwapPayment(ctx, rec); err != nil {
		t.Fatal(err)
	}
	_ = s.AddEvent(ctx, &store.Event{ID: "ev2"})
	_ = s.BuryEvent(ctx, &store.Event{ID: "ev2", DeadAt: time.Now()})
	if _, err := Open(path, Options{Timeout: 100 * time.Millisecond}); err == nil {
		t.Fatal("a second open of a locked journal must fail")
	}
	s.Close()

	s = open(t, path, Options{})
	if !bytes.Equal(s.FingerprintKey(), fp) {
		t.Fatal("the fingerprint key changed across a reopen")
	}
	if st, r, _ := s.ClaimIdempotency(ctx, "gmo", "done", "fp", time.Hour, time.Hour); st != store.IdemReplay || r.Status != 402 {
		t.Fatalf("finished key after reopen: %v", st)
	}
	if st, _, _ := s.ClaimIdempotency(ctx, "gmo", "inflight", "fp", time.Hour, time.Hour); st != store.IdemNew {
		t.Fatalf("claim of a dead process after reopen: %v", st)
	}
	if st, _, _ := s.ClaimIdempotency(ctx, "gmo", "inflight", "fp", time.Hour, time.Hour); st != store.IdemInFlight {
		t.Fatalf("claim of this process: %v", st)
	}
	if st, _, _ := s.ClaimIdempotency(ctx, "gmo", "released", "other", time.Hour, time.Hour); st != store.IdemNew {
		t.Fatalf("released key after reopen: %v", st)
	}
	got, err := s.GetPayment(ctx, "gmo_A")
	if err != nil || got.Status != "authorized" || got.Version != 2 {
		t.Fatalf("record after reopen: %+v %v", got, err)
	}
	if u, _ := s.Unresolved(ctx, 0); len(u) != 0 {
		t.Fatalf("a settled record is unresolved after reopen: %+v", u)
	}
	due, _ := s.DueEvents(ctx, time.Now(), 0)
	dead, _ := s.DeadEvents(ctx, 0)
	if len(due) != 1 || due[0].ID != "ev1" || len(dead) != 1 || dead[0].ID != "ev2" {
		t.Fatalf("outbox %v, dead letters %v after reopen", due, dead)
	}
}

// A write a crash cut short (any prefix of its frame, or a frame whose
// bytes are damaged) is cut off at the next open and saved beside the
// journal; everything before it is kept.
func TestJournalCutsATornTail(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "paynorm.journal")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SwapPayment(ctx, &store.PaymentRecord{ID: "gmo_kept", Status: "authorized"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The entries, without the preallocated zeros after them (an entry
	// may end in zeros itself).
	whole = whole[:s.size]
	frame, err := appendFrame(nil, &entry{Kind: kindPayment, Rec: &store.PaymentRecord{ID: "gmo_torn", Status: "pending", Version: 1}})
	if err != nil {
		t.Fatal(err)
	}
	damaged := append([]byte(nil), frame...)
	damaged[len(damaged)-3] ^= 0xff
	tails := map[string][]byte{"damaged": damaged}
	for _, n := range []int{1, 4, 8, 9, len(frame) / 2, len(frame) - 1} {
		tails[fmt.Sprintf("first %d bytes", n)] = frame[:n]
	}
	for name, tail := range tails {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(path, append(append([]byte(nil), whole...), tail...), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// Zeros at the very end are preallocated space, not data.
			torn := bytes.TrimRight(tail, "\x00")
			if s.Recovered != int64(len(torn)) {
				t.Fatalf("recovered %d bytes, want %d", s.Recovered, len(torn))
			}
			if len(torn) > 0 {
				saved, err := os.ReadFile(s.TornCopy)
				if err != nil || !bytes.Equal(saved, torn) {
					t.Fatalf("torn copy %q: %v", s.TornCopy, err)
				}
			}
			if _, err := s.GetPayment(ctx, "gmo_kept"); err != nil {
				t.Fatalf("the record before the tail: %v", err)
			}
			if _, err := s.GetPayment(ctx, "gmo_torn"); err != store.ErrNotFound {
				t.Fatalf("the torn record: %v", err)
			}
			// The journal goes on after the cut.
			if err := s.SwapPayment(ctx, &store.PaymentRecord{ID: "gmo_after", Status: "pending"}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestJournalRefusesAForeignFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "paynorm.journal")
	if err := os.WriteFile(path, []byte("SQLite format 3\x00..."), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), "not a paynorm journal") {
		t.Fatalf("open of a foreign file: %v", err)
	}
}

// Concurrent writers share fdatasyncs: while one group is on its way to
// the disk the next one fills.
func TestJournalGroupsConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "paynorm.journal"), Options{})
	before := s.Flushes()
	const writers, each = 32, 20
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				rec := &store.PaymentRecord{ID: fmt.Sprintf("gmo_%d_%d", w, i), Status: "pending"}
				if err := s.SwapPayment(ctx, rec); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	flushes := s.Flushes() - before
	t.Logf("%d writes in %d flushes", writers*each, flushes)
	if flushes >= writers*each {
		t.Fatalf("%d writes took %d flushes: no grouping", writers*each, flushes)
	}
}

// Compaction keeps the journal near the size of the live state, and what
// a reopen reads is exactly what was acknowledged.
func TestJournalCompactionBoundsTheFileAndKeepsState(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "paynorm.journal")
	s, err := Open(path, Options{CompactAt: 16 << 10, Prealloc: 4 << 10, Hot: 7})
	if err != nil {
		t.Fatal(err)
	}
	recs := map[string]*store.PaymentRecord{}
	for i := range 50 {
		id := fmt.Sprintf("gmo_%d", i)
		recs[id] = &store.PaymentRecord{ID: id, Status: "pending", Payment: bytes.Repeat([]byte("x"), 200)}
	}
	for round := range 40 {
		for _, rec := range recs {
			rec.Attempts = round
			if err := s.SwapPayment(ctx, rec); err != nil {
				t.Fatal(err)
			}
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(bytes.TrimRight(raw, "\x00")); n > 3*(16<<10)+50*1024 {
		t.Fatalf("journal holds %d bytes of entries after 2,000 writes of 50 records", n)
	}
	s.Close()
	s = open(t, path, Options{CompactAt: 16 << 10, Prealloc: 4 << 10})
	for id, want := range recs {
		got, err := s.GetPayment(ctx, id)
		if err != nil || got.Version != want.Version || got.Attempts != 39 {
			t.Fatalf("%s after compaction and reopen: %+v %v (want version %d)", id, got, err, want.Version)
		}
	}
	if _, err := os.Stat(path + ".compact"); !os.IsNotExist(err) {
		t.Fatalf("a compaction left its temporary file: %v", err)
	}
}

// After a write fails the journal serves nothing (memory may hold changes
// the disk does not), the probe says so, and a reopen serves what the
// disk has.
func TestJournalFailedWriteStopsServing(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "paynorm.journal")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SwapPayment(ctx, &store.PaymentRecord{ID: "gmo_ok", Status: "pending"}); err != nil {
		t.Fatal(err)
	}
	s.seg.f.Close() // the disk goes away under the store
	if err := s.SwapPayment(ctx, &store.PaymentRecord{ID: "gmo_lost", Status: "pending"}); err == nil {
		t.Fatal("a write to a closed file succeeded")
	}
	if _, err := s.GetPayment(ctx, "gmo_ok"); err == nil {
		t.Fatal("a broken journal still serves reads")
	}
	if err := s.Probe(ctx); err == nil {
		t.Fatal("the probe of a broken journal passed")
	}
	s.Close()
	s = open(t, path, Options{})
	if _, err := s.GetPayment(ctx, "gmo_ok"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetPayment(ctx, "gmo_lost"); err != store.ErrNotFound {
		t.Fatalf("a write that failed is there after reopen: %v", err)
	}
}

// A pipelined write is decided at once (a second writer of the same
// version loses) and its wait returns once it is durable.
func TestJournalPipelinedSwap(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "paynorm.journal"), Options{})
	rec := &store.PaymentRecord{ID: "gmo_P", Status: "pending"}
	wait, err := s.SwapPaymentPipelined(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Version != 1 {
		t.Fatalf("version after a pipelined swap: %d", rec.Version)
	}
	if _, err := s.SwapPaymentPipelined(ctx, &store.PaymentRecord{ID: "gmo_P", Status: "pending"}); err != store.ErrConflict {
		t.Fatalf("a second create of the record: %v", err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetPayment(ctx, "gmo_P")
	if err != nil || got.Version != 1 {
		t.Fatalf("%+v %v", got, err)
	}
}

// The journal keeps zeroed space ahead of its end, so an append overwrites
// blocks the file has; a reopen reads the zeros as the end, not as damage.
func TestJournalPreallocatesSpaceAhead(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "paynorm.journal")
	s, err := Open(path, Options{Prealloc: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		if err := s.SwapPayment(ctx, &store.PaymentRecord{ID: fmt.Sprintf("gmo_%d", i), Status: "pending", Payment: make([]byte, 300)}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	entries := len(bytes.TrimRight(raw, "\x00"))
	if len(raw)-entries < 32<<10 || entries < 300*300 {
		t.Fatalf("file %d bytes, entries %d: want at least half a Prealloc of zeros ahead", len(raw), entries)
	}
	s = open(t, path, Options{Prealloc: 64 << 10})
	if s.Recovered != 0 {
		t.Fatalf("the preallocated zeros were taken for a torn write (%d bytes)", s.Recovered)
	}
	if _, err := s.GetPayment(ctx, "gmo_299"); err != nil {
		t.Fatal(err)
	}
}

// A burst larger than one group (pipelined, so it all queues before the
// flusher writes) is split into sealed groups and written whole.
func TestJournalBurstSpansSealedGroups(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "paynorm.journal")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var waits []func() error
	for i := range 3000 {
		w, err := s.SwapPaymentPipelined(ctx, &store.PaymentRecord{ID: fmt.Sprintf("gmo_%d", i), Status: "pending", Payment: make([]byte, 1000)})
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, w)
	}
	for _, w := range waits {
		if err := w(); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = open(t, path, Options{})
	for i := range 3000 {
		if _, err := s.GetPayment(ctx, fmt.Sprintf("gmo_%d", i)); err != nil {
			t.Fatalf("record %d after reopen: %v", i, err)
		}
	}
}

// While a snapshot is written in the background, writes go on into the old
// journal; at the switch they follow the snapshot into the new one, and
// a reopen reads the last version of every record.
func TestJournalCompactsWhileWriting(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "paynorm.journal")
	opt := Options{CompactAt: 32 << 10, Prealloc: 16 << 10, Hot: 5}
	s, err := Open(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	const writers, records, rounds = 8, 40, 30
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for round := range rounds {
				for i := range records {
					id := fmt.Sprintf("gmo_%d_%d", w, i)
					for {
						cur, err := s.GetPayment(ctx, id)
						rec := &store.PaymentRecord{ID: id, Status: "pending", Payment: bytes.Repeat([]byte("p"), 150)}
						if err == nil {
							rec = cur
						}
						rec.Attempts = round
						if err := s.SwapPayment(ctx, rec, &store.Event{ID: fmt.Sprintf("ev_%d_%d_%d", w, i, round)}); err == nil {
							break
						} else if err != store.ErrConflict {
							t.Error(err)
							return
						}
					}
				}
			}
		})
	}
	wg.Wait()
	if n := s.compactions.Load(); n < 2 {
		t.Fatalf("%d compactions while writing: the test did not test them", n)
	}
	t.Logf("%d compactions while %d writers wrote", s.compactions.Load(), writers)
	if err := s.DeleteEvent(ctx, "ev_0_0_0"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path, opt)
	for w := range writers {
		for i := range records {
			got, err := s.GetPayment(ctx, fmt.Sprintf("gmo_%d_%d", w, i))
			if err != nil || got.Version != rounds || got.Attempts != rounds-1 {
				t.Fatalf("gmo_%d_%d after reopen: %+v %v", w, i, got, err)
			}
		}
	}
	due, err := s.DueEvents(ctx, time.Now(), 0)
	if err != nil || len(due) != writers*records*rounds-1 {
		t.Fatalf("%d events in the outbox after reopen (want %d): %v", len(due), writers*records*rounds-1, err)
	}
	for _, ev := range due {
		if ev.ID == "ev_0_0_0" {
			t.Fatal("a deleted event came back from a snapshot")
		}
	}
}
