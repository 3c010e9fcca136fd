package journal

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"sync"

	"github.com/paynorm/paynorm/store"
)

// magic starts every journal file: a file without it is not one. A
// version number per entry format: a paynorm that knows only JSON entries
// (magicJSON) refuses a file of binary ones instead of cutting them off as
// damage, so rolling back an upgrade loses nothing.
var (
	magic     = []byte("PAYNORM-JOURNAL-2\n")
	magicJSON = []byte("PAYNORM-JOURNAL-1\n") // entries in JSON (until 2026-12-01)
)

// An entry is one change, framed as
//
//	uint32 little-endian payload length | uint32 CRC-32C of the payload | payload (codec.go)
//
// so a write cut short by a crash is recognised at the next open (a short
// frame or a checksum that does not match) and cut off: it was never
// acknowledged, since an answer waits for the fsync that follows the write.
const frameHeader = 8

// maxEntry bounds one entry: anything larger is a corrupt length field.
const maxEntry = 64 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// entry kinds.
const (
	kindMeta      = "meta"    // Epoch and FP
	kindHealth    = "health"  // Health
	kindIdem      = "idem"    // Key and Idem
	kindIdemDel   = "idem-"   // Key
	kindPayment   = "pay"     // Rec and Events (one atomic step)
	kindEvent     = "event"   // Event
	kindEventDel  = "event-"  // ID
	kindEventDead = "buried"  // Event: out of the outbox, into the dead letters
	kindDeadOnly  = "dead"    // Event: a dead letter (snapshots)
	kindSnapshot  = "snapend" // closes a snapshot: what follows are changes
)

// entry is one change of the store's state.
type entry struct {
	Kind   string               `json:"k"`
	Key    string               `json:"key,omitempty"`
	ID     string               `json:"id,omitempty"`
	Epoch  uint64               `json:"epoch,omitempty"`
	FP     []byte               `json:"fp,omitempty"`
	Health string               `json:"health,omitempty"`
	Idem   *store.IdemEntry     `json:"idem,omitempty"`
	Rec    *store.PaymentRecord `json:"rec,omitempty"`
	Events []*store.Event       `json:"events,omitempty"`
	Event  *store.Event         `json:"event,omitempty"`
}

// appendFrame appends e, framed, to buf.
func appendFrame(buf []byte, e *entry) ([]byte, error) {
	f, err := encodeFrame(e)
	if err != nil {
		return buf, err
	}
	buf = append(buf, f.Bytes()...)
	f.release()
	return buf, nil
}

// frameBuf is a pooled buffer holding one framed entry.
type frameBuf struct{ b []byte }

var framePool = sync.Pool{New: func() any { return new(frameBuf) }}

func (f *frameBuf) release() {
	if cap(f.b) <= 64<<10 {
		framePool.Put(f)
	}
}

// Bytes is the framed entry.
func (f *frameBuf) Bytes() []byte { return f.b }

// encodeFrame frames e in a pooled buffer (release it after use): the hot
// path encodes without allocating a buffer per write.
func encodeFrame(e *entry) (*frameBuf, error) {
	f := framePool.Get().(*frameBuf)
	b, err := appendEntry(append(f.b[:0], 0, 0, 0, 0, 0, 0, 0, 0), e) // the header, filled in below
	f.b = b
	if err != nil {
		f.release()
		return nil, err
	}
	payload := b[frameHeader:]
	binary.LittleEndian.PutUint32(b[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[4:8], crc32.Checksum(payload, castagnoli))
	return f, nil
}

// errTorn marks the end of the readable part of a journal.
var errTorn = errors.New("journal: unfinished or damaged entry")

// readFrame reads one entry from r. It returns io.EOF at a clean end (the
// end of the file, or a zero header: the journal's preallocated space) and
// errTorn for a frame that is short, too long or fails its checksum.
func readFrame(r io.Reader, buf []byte) (*entry, []byte, int, error) {
	var h [frameHeader]byte
	n, err := io.ReadFull(r, h[:])
	if err == io.EOF {
		return nil, buf, 0, io.EOF
	}
	if err != nil {
		return nil, buf, n, errTorn
	}
	size := binary.LittleEndian.Uint32(h[0:4])
	if size == 0 && binary.LittleEndian.Uint32(h[4:8]) == 0 {
		return nil, buf, 0, io.EOF // the zeros of preallocated space
	}
	if size == 0 || size > maxEntry {
		return nil, buf, n, errTorn
	}
	if cap(buf) < int(size) {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	m, err := io.ReadFull(r, buf)
	if err != nil {
		return nil, buf, n + m, errTorn
	}
	if crc32.Checksum(buf, castagnoli) != binary.LittleEndian.Uint32(h[4:8]) {
		return nil, buf, n + m, errTorn
	}
	e, err := decodePayload(buf)
	if err != nil {
		return nil, buf, n + m, errTorn
	}
	return e, buf, n + m, nil
}

// decodePayload decodes a binary payload, or the JSON of an entry an
// earlier version wrote.
func decodePayload(p []byte) (*entry, error) {
	if p[0] != '{' {
		return decodeEntry(p)
	}
	var e entry
	if err := json.Unmarshal(p, &e); err != nil || e.Kind == "" {
		return nil, errBadEntry
	}
	return &e, nil
}
