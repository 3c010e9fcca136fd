package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/paynorm/paynorm/store"
)

// An entry's payload is binary: a version byte, the kind, then every field
// of the entry in a fixed order (strings and byte slices as a uvarint
// length and the bytes, integers as varints, optional parts behind a
// presence byte). It replaced JSON, which spent a third of the journal's
// CPU on reflection, time formatting and base64 of the payment object.
// Payloads that start with '{' are the JSON entries of earlier versions:
// they still replay, and the next snapshot rewrites them.
const binaryV1 = 0x01

// kindCodes numbers the entry kinds on disk; never renumber one.
var kindCodes = map[string]byte{
	kindMeta: 1, kindHealth: 2, kindIdem: 3, kindIdemDel: 4, kindPayment: 5,
	kindEvent: 6, kindEventDel: 7, kindEventDead: 8, kindDeadOnly: 9, kindSnapshot: 10,
}

var kindNames = func() map[byte]string {
	m := make(map[byte]string, len(kindCodes))
	for k, c := range kindCodes {
		m[c] = k
	}
	return m
}()

// appendEntry appends e's payload to b.
func appendEntry(b []byte, e *entry) ([]byte, error) {
	code, ok := kindCodes[e.Kind]
	if !ok {
		return b, fmt.Errorf("journal: unknown entry kind %q", e.Kind)
	}
	b = append(b, binaryV1, code)
	b = appendString(b, e.Key)
	b = appendString(b, e.ID)
	b = binary.AppendUvarint(b, e.Epoch)
	b = appendBytes(b, e.FP)
	b = appendString(b, e.Health)
	b = appendIdem(b, e.Idem)
	b = appendRecord(b, e.Rec)
	b = binary.AppendUvarint(b, uint64(len(e.Events)))
	for _, ev := range e.Events {
		b = appendEvent(b, ev)
	}
	if e.Event == nil {
		return append(b, 0), nil
	}
	return appendEvent(append(b, 1), e.Event), nil
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendBytes(b, p []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(p))), p...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// appendTime writes 0 for the zero time, else nanoseconds+1 and seconds.
func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(t.Nanosecond())+1)
	return binary.AppendVarint(b, t.Unix())
}

func appendIdem(b []byte, e *store.IdemEntry) []byte {
	if e == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	b = appendString(b, e.Fingerprint)
	b = appendBool(b, e.Done)
	b = appendTime(b, e.Expires)
	b = binary.AppendUvarint(b, e.Epoch)
	r := e.Response
	if r == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendVarint(b, int64(r.Status))
	b = appendBytes(b, r.Body)
	names := make([]string, 0, len(r.Headers))
	for k := range r.Headers {
		names = append(names, k)
	}
	sort.Strings(names) // the same answer is the same bytes
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, k := range names {
		b = appendString(appendString(b, k), r.Headers[k])
	}
	return b
}

func appendRecord(b []byte, r *store.PaymentRecord) []byte {
	if r == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	b = appendString(b, r.ID)
	b = binary.AppendVarint(b, r.Version)
	b = appendString(b, r.Account)
	b = appendString(b, r.Key)
	b = appendString(b, r.Status)
	b = appendString(b, r.Op)
	b = appendBytes(b, r.Payment)
	b = appendTime(b, r.CreatedAt)
	b = appendTime(b, r.UpdatedAt)
	b = binary.AppendVarint(b, int64(r.Attempts))
	b = appendTime(b, r.NextCheck)
	b = appendString(b, r.Unconfirmed)
	b = appendString(b, r.LinkedID)
	if r.Lease == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	b = appendString(b, r.Lease.Owner)
	b = appendString(b, r.Lease.Op)
	return appendTime(b, r.Lease.Until)
}

func appendEvent(b []byte, ev *store.Event) []byte {
	b = appendString(b, ev.ID)
	b = appendString(b, ev.Type)
	b = appendBytes(b, ev.Body)
	b = binary.AppendVarint(b, int64(ev.Attempts))
	b = appendTime(b, ev.NextTry)
	b = appendTime(b, ev.CreatedAt)
	b = appendString(b, ev.LastError)
	return appendTime(b, ev.DeadAt)
}

// errBadEntry: a payload whose checksum matched but that does not decode
// (written by a newer paynorm, or damaged before it was checksummed).
var errBadEntry = errors.New("journal: entry does not decode")

// decodeEntry decodes a binary payload. Nothing in the result shares p.
func decodeEntry(p []byte) (*entry, error) {
	d := decoder{b: p}
	if d.byte() != binaryV1 {
		return nil, errBadEntry
	}
	kind, ok := kindNames[d.byte()]
	if !ok {
		return nil, errBadEntry
	}
	e := &entry{Kind: kind}
	e.Key = d.string()
	e.ID = d.string()
	e.Epoch = d.uvarint()
	e.FP = d.bytes()
	e.Health = d.string()
	e.Idem = d.idem()
	e.Rec = d.record()
	if n := d.count(); n > 0 {
		e.Events = make([]*store.Event, n)
		for i := range e.Events {
			e.Events[i] = d.event()
		}
	}
	if d.present() {
		e.Event = d.event()
	}
	if d.bad || len(d.b) != 0 {
		return nil, errBadEntry
	}
	return e, nil
}

// decoder reads a payload; the first problem makes every later read a
// zero value and bad true.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) byte() byte {
	if d.bad || len(d.b) == 0 {
		d.bad = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) present() bool {
	switch d.byte() {
	case 0:
		return false
	case 1:
		return !d.bad
	}
	d.bad = true
	return false
}

func (d *decoder) uvarint() uint64 { return number(d, binary.Uvarint) }

func (d *decoder) varint() int64 { return number(d, binary.Varint) }

// number reads one varint with read (binary.Uvarint or binary.Varint).
func number[T uint64 | int64](d *decoder, read func([]byte) (T, int)) T {
	if d.bad {
		return 0
	}
	v, n := read(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

// int is a varint that must fit an int.
func (d *decoder) int() int {
	v := d.varint()
	if int64(int(v)) != v {
		d.bad = true
		return 0
	}
	return int(v)
}

// count is a number of items, each at least one byte long: more than the
// bytes left is damage (and no reason to allocate).
func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.bad = true
		return 0
	}
	return int(n)
}

// raw returns the next length-prefixed bytes, still inside the payload.
func (d *decoder) raw() []byte {
	n := d.count()
	if d.bad {
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) string() string { return string(d.raw()) }

func (d *decoder) bytes() []byte {
	p := d.raw()
	if len(p) == 0 {
		return nil
	}
	return append([]byte(nil), p...)
}

func (d *decoder) time() time.Time {
	ns := d.uvarint()
	if ns == 0 {
		return time.Time{}
	}
	sec := d.varint()
	if ns > 1e9 {
		d.bad = true
		return time.Time{}
	}
	return time.Unix(sec, int64(ns-1))
}

func (d *decoder) idem() *store.IdemEntry {
	if !d.present() {
		return nil
	}
	e := &store.IdemEntry{Fingerprint: d.string()}
	e.Done = d.present()
	e.Expires = d.time()
	e.Epoch = d.uvarint()
	if !d.present() {
		return e
	}
	r := &store.Response{Status: d.int(), Body: d.bytes()}
	if n := d.count(); n > 0 {
		r.Headers = make(map[string]string, n)
		for range n {
			k := d.string()
			r.Headers[k] = d.string()
		}
	}
	e.Response = r
	return e
}

func (d *decoder) record() *store.PaymentRecord {
	if !d.present() {
		return nil
	}
	r := &store.PaymentRecord{ID: d.string()}
	r.Version = d.varint()
	r.Account = d.string()
	r.Key = d.string()
	r.Status = d.string()
	r.Op = d.string()
	r.Payment = d.bytes()
	r.CreatedAt = d.time()
	r.UpdatedAt = d.time()
	r.Attempts = d.int()
	r.NextCheck = d.time()
	r.Unconfirmed = d.string()
	r.LinkedID = d.string()
	if d.present() {
		r.Lease = &store.Lease{Owner: d.string(), Op: d.string(), Until: d.time()}
	}
	return r
}

func (d *decoder) event() *store.Event {
	ev := &store.Event{ID: d.string(), Type: d.string(), Body: d.bytes()}
	ev.Attempts = d.int()
	ev.NextTry = d.time()
	ev.CreatedAt = d.time()
	ev.LastError = d.string()
	ev.DeadAt = d.time()
	return ev
}
