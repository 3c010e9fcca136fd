package journal

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/paynorm/paynorm/store"
)

// fill sets every field reachable from v to a random non-zero value, so a
// field the codec does not write fails the round trip: a field added to a
// record later cannot be dropped by the journal unnoticed.
func fill(r *rand.Rand, v reflect.Value) {
	if v.Type() == reflect.TypeOf(time.Time{}) {
		v.Set(reflect.ValueOf(time.Unix(r.Int64N(1<<34)-1<<33, r.Int64N(1e9))))
		return
	}
	switch v.Kind() {
	case reflect.String:
		b := make([]byte, 1+r.IntN(20))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		v.SetString(string(b))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(r.Int64() - 1<<62)
	case reflect.Uint64:
		v.SetUint(r.Uint64() | 1)
	case reflect.Slice:
		n := 1 + r.IntN(3)
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range s.Len() {
			fill(r, s.Index(i))
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for range 1 + r.IntN(3) {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(r, k)
			fill(r, e)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(r, p.Elem())
		v.Set(p)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(r, v.Field(i))
			}
		}
	case reflect.Uint8:
		v.SetUint(uint64(r.IntN(256)))
	default:
		panic("fill: no rule for " + v.Type().String())
	}
}

func TestCodecKeepsEveryField(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for kind := range kindCodes {
		for range 50 {
			var e entry
			fill(r, reflect.ValueOf(&e).Elem())
			e.Kind = kind
			p, err := appendEntry(nil, &e)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeEntry(p)
			if err != nil {
				t.Fatalf("%s: %v", kind, err)
			}
			if !reflect.DeepEqual(got, &e) {
				a, _ := json.Marshal(&e)
				b, _ := json.Marshal(got)
				t.Fatalf("%s: round trip changed the entry\nwant %s\ngot  %s", kind, a, b)
			}
			// Every shorter payload is refused, never half taken.
			for n := range len(p) {
				if _, err := decodeEntry(p[:n]); err == nil {
					t.Fatalf("%s: a payload cut to %d of %d bytes decoded", kind, n, len(p))
				}
			}
		}
	}
	if _, err := appendEntry(nil, &entry{Kind: "nonsense"}); err == nil {
		t.Fatal("an unknown kind was encoded")
	}
}

// jsonFrame frames e as paynorm wrote entries before the binary codec.
func jsonFrame(t *testing.T, e *entry) []byte {
	p, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	h := make([]byte, frameHeader)
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(p)))
	binary.LittleEndian.PutUint32(h[4:8], crc32.Checksum(p, castagnoli))
	return append(h, p...)
}

// A journal an earlier version wrote (JSON entries) opens, keeps serving
// its records beside new binary entries, and survives a snapshot.
func TestJournalReadsEarlierJSONEntries(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "paynorm.journal")
	fp := store.NewFingerprintKey()
	created := time.Date(2026, 11, 30, 9, 0, 0, 123456789, time.UTC)
	old := append([]byte(nil), magicJSON...)
	old = append(old, jsonFrame(t, &entry{Kind: kindMeta, Epoch: 4, FP: fp})...)
	old = append(old, jsonFrame(t, &entry{Kind: kindSnapshot})...)
	old = append(old, jsonFrame(t, &entry{Kind: kindPayment, Rec: &store.PaymentRecord{ID: "gmo_old", Version: 2, Account: "gmo", Key: "old",
		Status: "authorized", Payment: []byte(`{"id":"gmo_old"}`), CreatedAt: created, UpdatedAt: created},
		Events: []*store.Event{{ID: "ev_old", Type: "payment.authorized", Body: []byte(`{}`), CreatedAt: created}}})...)
	old = append(old, jsonFrame(t, &entry{Kind: kindIdem, Key: "c\x00k1", Idem: &store.IdemEntry{Fingerprint: "f", Done: true,
		Response: &store.Response{Status: 201, Headers: map[string]string{"Content-Type": "application/json"}, Body: []byte(`{"ok":true}`)},
		Expires:  time.Now().Add(time.Hour)}})...)
	if err := os.WriteFile(path, old, 0o600); err != nil {
		t.Fatal(err)
	}
	check := func(s *Store, version int64) {
		t.Helper()
		rec, err := s.GetPayment(ctx, "gmo_old")
		if err != nil || rec.Version != version || string(rec.Payment) != `{"id":"gmo_old"}` || !rec.CreatedAt.Equal(created) {
			t.Fatalf("old record %+v %v", rec, err)
		}
		if !reflect.DeepEqual(s.FingerprintKey(), fp) {
			t.Fatal("fingerprint key lost")
		}
		st, resp, err := s.ClaimIdempotency(ctx, "c", "k1", "f", time.Minute, time.Hour)
		if err != nil || st != store.IdemReplay || resp.Status != 201 || string(resp.Body) != `{"ok":true}` || resp.Headers["Content-Type"] != "application/json" {
			t.Fatalf("old idempotency answer %v %+v %v", st, resp, err)
		}
		evs, err := s.DueEvents(ctx, time.Now(), 0)
		if err != nil || len(evs) != 1 || evs[0].ID != "ev_old" {
			t.Fatalf("old event %+v %v", evs, err)
		}
	}
	s := open(t, path, Options{})
	if s.Recovered != 0 {
		t.Fatalf("an earlier version's entries were cut (%d bytes)", s.Recovered)
	}
	check(s, 2)
	// Rewritten under the new magic at once: the version that wrote the
	// file refuses it rather than cutting binary entries off as damage.
	head := make([]byte, len(magic))
	if f, err := os.Open(path); err != nil {
		t.Fatal(err)
	} else {
		f.Read(head)
		f.Close()
	}
	if string(head) != string(magic) {
		t.Fatalf("the JSON-era file still starts with %q", head)
	}
	rec, _ := s.GetPayment(ctx, "gmo_old")
	rec.Status = "captured"
	if err := s.SwapPayment(ctx, rec); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Reopened with a snapshot at once: the old entries are rewritten.
	s = open(t, path, Options{CompactAt: 1})
	defer s.Close()
	if s.snapSize == 0 {
		t.Fatal("no snapshot at open")
	}
	check(s, 3)
}

// Any payload either decodes into an entry that encodes back to the same
// bytes (its one encoding) or is refused; it never panics or allocates
// by a length it does not have.
func FuzzEntryCodec(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for kind := range kindCodes {
		var e entry
		fill(r, reflect.ValueOf(&e).Elem())
		e.Kind = kind
		p, _ := appendEntry(nil, &e)
		f.Add(p)
	}
	p, _ := appendEntry(nil, &entry{Kind: kindPayment, Rec: &store.PaymentRecord{ID: "gmo_A", Version: 1, Status: "pending"}})
	f.Add(p)
	f.Add([]byte{binaryV1, 5, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, p []byte) {
		e, err := decodeEntry(p)
		if err != nil {
			return
		}
		again, err := appendEntry(nil, e)
		if err != nil {
			t.Fatal(err)
		}
		e2, err := decodeEntry(again)
		if err != nil || !reflect.DeepEqual(e, e2) {
			t.Fatalf("re-encoded entry does not decode the same: %v", err)
		}
	})
}
