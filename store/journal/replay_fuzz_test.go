package journal

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/paynorm/paynorm/store"
)

// Whatever follows the magic (a torn write, a damaged disk, hostile bytes),
// Open keeps the whole entries before the first bad one, cuts the rest off
// and goes on: a write after the cut survives the next open.
func FuzzJournalReplay(f *testing.F) {
	good, _ := appendFrame(nil, &entry{Kind: kindMeta, Epoch: 3, FP: make([]byte, store.FingerprintKeySize)})
	pay, _ := appendFrame(nil, &entry{Kind: kindPayment, Rec: &store.PaymentRecord{ID: "gmo_A", Version: 1, Status: "pending"},
		Events: []*store.Event{{ID: "e1"}}})
	f.Add(good)
	f.Add(append(append([]byte(nil), good...), pay...))
	f.Add(append(append([]byte(nil), good...), pay[:len(pay)-2]...))
	f.Add(append(append([]byte(nil), good...), []byte{0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0}...))
	// An entry as earlier versions wrote it (JSON).
	old := []byte(`{"k":"pay","rec":{"id":"gmo_J","version":1,"status":"pending","payment":"e30="}}`)
	h := make([]byte, frameHeader, frameHeader+len(old))
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(old)))
	binary.LittleEndian.PutUint32(h[4:8], crc32.Checksum(old, castagnoli))
	f.Add(append(append([]byte(nil), good...), append(h, old...)...))
	f.Fuzz(func(t *testing.T, tail []byte) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "j")
		if err := os.WriteFile(path, append(append([]byte(nil), magic...), tail...), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path, Options{Prealloc: 4096}) // small: each input opens twice
		if err != nil {
			return // no fingerprint key: refused, not guessed
		}
		if err := s.SwapPayment(ctx, &store.PaymentRecord{ID: "fuzz_after", Status: "pending"}); err != nil {
			// A record the tail made may hold the id at some version.
			if err != store.ErrConflict {
				t.Fatal(err)
			}
		}
		before, _ := s.GetPayment(ctx, "fuzz_after")
		s.Close()
		s, err = Open(path, Options{Prealloc: 4096})
		if err != nil {
			t.Fatalf("reopen after a cut: %v", err)
		}
		defer s.Close()
		if s.Recovered != 0 {
			t.Fatalf("a second open cut %d more bytes", s.Recovered)
		}
		after, err := s.GetPayment(ctx, "fuzz_after")
		if err != nil || after.Version != before.Version {
			t.Fatalf("record after reopen %+v %v, before %+v", after, err, before)
		}
	})
}
