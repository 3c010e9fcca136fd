// Package store keeps what paynorm must not lose: idempotency records (the
// first answer to a key, replayed for 24 h), write-ahead payment records and
// the outbox of webhook events. Backends: memory (tests), bbolt (embedded
// default) and redis (several instances).
package store

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned for a missing record.
var ErrNotFound = errors.New("store: not found")

// ErrConflict is returned by SwapPayment when the stored record's version is
// not the one the writer read: someone else wrote first. The writer must
// read again and decide again; it never writes its stale copy.
var ErrConflict = errors.New("store: version conflict")

// IdemState is the outcome of claiming an idempotency key.
type IdemState int

const (
	// IdemNew: the caller owns the key and must Finish (or Release) it.
	IdemNew IdemState = iota
	// IdemInFlight: another request with the key is running (409).
	IdemInFlight
	// IdemReplay: the key finished; Response holds the first answer.
	IdemReplay
	// IdemMismatch: the key was used with a different request (422).
	IdemMismatch
)

// Response is a stored HTTP answer.
type Response struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    []byte            `json:"body"`
}

// PaymentRecord is paynorm's own view of a payment, written before the
// provider is called and updated after, so a crash leaves a trace.
type PaymentRecord struct {
	// ID is the public payment id (<account>_<provider key>).
	ID string `json:"id"`
	// Version counts writes of the record: 0 means "not stored yet". Every
	// write is a compare-and-set on it (SwapPayment).
	Version int64  `json:"version"`
	Account string `json:"account"`
	// Key is the provider's key (GMO OrderID, j-payment gid or cod).
	Key    string `json:"key"`
	Status string `json:"status"`
	// Op is the operation that wrote the record last (create, capture,
	// cancel, reauthorize, get, resolve).
	Op string `json:"op,omitempty"`
	// Payment is the last known unified payment object (JSON).
	Payment   []byte    `json:"payment,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Attempts counts background resolution tries.
	Attempts int `json:"attempts,omitempty"`
	// NextCheck is when background resolution looks again.
	NextCheck time.Time `json:"next_check,omitempty"`
	// Lease marks an operation in flight on the payment: it serializes
	// follow-up operations across goroutines and instances, and a lease
	// left by a crash tells the resolver an outcome is unconfirmed.
	Lease *Lease `json:"lease,omitempty"`
	// Unconfirmed names an operation that was sent but whose outcome is
	// not known (a timeout, a crash); the resolver reads it back.
	Unconfirmed string `json:"unconfirmed,omitempty"`
	// LinkedID, on a create's order record whose provider assigned its own
	// key (j-payment gid), is the id of the payment that settled it.
	LinkedID string `json:"linked_id,omitempty"`
}

// Exclusive is implemented by backends only one process can open at a time
// (bolt, memory): a lease another process left there belongs to one that
// died.
type Exclusive interface{ Exclusive() bool }

// Pipelined is implemented by backends that can decide a SwapPayment and
// give it its place in the write order before it is durable (the journal).
// An operation uses it for its write-ahead record, so the record goes to
// the disk while the calls that move no money are made, and waits for it
// only before the first call that may move money. A later write that is
// durable implies every earlier one is; readers of a record never see it
// before it is durable.
type Pipelined interface {
	// SwapPaymentPipelined is SwapPayment that returns once the
	// compare-and-set is decided; wait returns once the write is durable
	// (or why it never will be).
	SwapPaymentPipelined(ctx context.Context, rec *PaymentRecord, events ...*Event) (wait func() error, err error)
	// SwapPaymentDeferred is SwapPaymentPipelined for a write nobody waits
	// for now: it goes to the disk with the next write somebody waits for,
	// or within a few milliseconds, instead of costing a disk flush of its
	// own. Readers of the record still wait until it is durable.
	SwapPaymentDeferred(ctx context.Context, rec *PaymentRecord, events ...*Event) error
}

// Lease is an operation's hold on one payment record.
type Lease struct {
	Owner string    `json:"owner"`
	Op    string    `json:"op"`
	Until time.Time `json:"until"`
}

// Event is one outgoing webhook event in the outbox.
type Event struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Body      []byte    `json:"body"`
	Attempts  int       `json:"attempts"`
	NextTry   time.Time `json:"next_try"`
	CreatedAt time.Time `json:"created_at"`
	// LastError is why the last delivery failed (a status or a transport
	// error, never a secret).
	LastError string `json:"last_error,omitempty"`
	// DeadAt is when delivery was given up and the event moved to the
	// dead-letter list (zero while it is in the outbox).
	DeadAt time.Time `json:"dead_at,omitzero"`
}

// Store is implemented by every backend. All methods are safe for
// concurrent use by several goroutines and, for shared backends, processes.
type Store interface {
	// ClaimIdempotency atomically claims scope/key for a request whose
	// normalized fingerprint is given. lease bounds how long an in-flight
	// claim blocks others if its owner dies; ttl is the replay window.
	ClaimIdempotency(ctx context.Context, scope, key, fingerprint string, lease, ttl time.Duration) (IdemState, *Response, error)
	// FinishIdempotency stores the answer of a claimed key.
	FinishIdempotency(ctx context.Context, scope, key string, resp Response, ttl time.Duration) error
	// ReleaseIdempotency drops a claim whose request never reached a
	// provider, so the key may be used again.
	ReleaseIdempotency(ctx context.Context, scope, key string) error

	// SwapPayment writes rec if the stored record's version equals
	// rec.Version (0: no record may exist), and appends events to the
	// outbox in the same atomic step. On success rec.Version is the new
	// version; on a lost race it returns ErrConflict and writes nothing.
	// Only the ledger calls it.
	SwapPayment(ctx context.Context, rec *PaymentRecord, events ...*Event) error
	// GetPayment reads a payment record by id.
	GetPayment(ctx context.Context, id string) (*PaymentRecord, error)
	// Unresolved lists records whose outcome waits (rec.Unresolved()),
	// oldest first.
	Unresolved(ctx context.Context, limit int) ([]*PaymentRecord, error)

	// AddEvent appends an event to the outbox.
	AddEvent(ctx context.Context, ev *Event) error
	// DueEvents lists events whose NextTry has come.
	DueEvents(ctx context.Context, now time.Time, limit int) ([]*Event, error)
	// UpdateEvent stores a retried event's new attempt count and time.
	UpdateEvent(ctx context.Context, ev *Event) error
	// DeleteEvent removes a delivered event.
	DeleteEvent(ctx context.Context, id string) error
	// BuryEvent moves an event the notifier gave up on from the outbox to
	// the dead-letter list, in one atomic step.
	BuryEvent(ctx context.Context, ev *Event) error
	// DeadEvents lists the dead-letter list, oldest first.
	DeadEvents(ctx context.Context, limit int) ([]*Event, error)

	// FingerprintKey is the store's own random key (32 bytes) for
	// idempotency fingerprints, created when the store is first opened and
	// kept in it, so every instance sharing the store computes the same
	// fingerprints while a fingerprint read from the store alone reveals
	// nothing about the request it came from.
	FingerprintKey() []byte
	// Probe writes a health key and reads it back: it fails when the store
	// cannot take writes now (a full disk, a lost connection).
	Probe(ctx context.Context) error

	Close() error
}
