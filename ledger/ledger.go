// Package ledger is the one owner of payment records. Every write goes
// through Update: read the record with its version, decide on that fresh
// copy, check the move is legal, compare-and-set, and on a lost race read
// again and decide again. Nothing writes back a copy it read earlier.
// Payment events are written to the outbox in the same atomic step as the
// change they announce.
package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/store"
)

// Errors of the ledger.
var (
	// ErrIllegal: the change is not a legal move of the state machine (or
	// would rewrite a settled payment's money facts on a claim).
	ErrIllegal = errors.New("ledger: illegal transition")
	// ErrBusy: another operation holds the payment.
	ErrBusy = errors.New("ledger: payment busy")
	// ErrExists: a create names an order that already has a payment.
	ErrExists = errors.New("ledger: order exists")
	// ErrContention: too many lost races in a row (should not happen).
	ErrContention = errors.New("ledger: too many concurrent writers")
)

// maxRaces bounds the read-decide-swap loop.
const maxRaces = 64

// Entry is one payment record with its payment object decoded.
type Entry struct {
	Rec *store.PaymentRecord
	Pay *normalize.Payment
}

// Status is the record's status ("" when there is no record).
func (e *Entry) Status() string {
	if e == nil || e.Rec == nil {
		return ""
	}
	return e.Rec.Status
}

func (e *Entry) clone() *Entry {
	if e == nil || e.Rec == nil {
		return &Entry{}
	}
	rec := *e.Rec
	if rec.Lease != nil {
		l := *rec.Lease
		rec.Lease = &l
	}
	return &Entry{Rec: &rec, Pay: decode(rec.Payment)}
}

// PaymentOf decodes the payment object a record keeps (nil when none).
func PaymentOf(rec *store.PaymentRecord) *normalize.Payment {
	if rec == nil {
		return nil
	}
	return decode(rec.Payment)
}

func decode(raw []byte) *normalize.Payment {
	if len(raw) == 0 {
		return nil
	}
	var p normalize.Payment
	if json.Unmarshal(raw, &p) != nil {
		return nil
	}
	if p.ProviderData == nil {
		p.ProviderData = map[string]any{}
	}
	return &p
}

// Ledger owns the payment records of one store. Its locks are shared by
// every config that uses the store (see NewLocks).
type Ledger struct {
	st     store.Store
	locks  *Locks
	events bool
	now    func() time.Time
	// BusyWait is how long an operation waits for another one on the same
	// payment before it is answered payment_busy.
	BusyWait time.Duration
	// OnEvents is called after events were written (wakes the notifier).
	OnEvents func()
}

// New builds a ledger over st. With events set, every status change puts
// a payment event into the outbox with it.
func New(st store.Store, locks *Locks, events bool) *Ledger {
	if locks == nil {
		locks = NewLocks()
	}
	return &Ledger{st: st, locks: locks, events: events, now: time.Now, BusyWait: 3 * time.Second}
}

// Store is the store the ledger writes to.
func (l *Ledger) Store() store.Store { return l.st }

// Get reads one record. A missing record is store.ErrNotFound.
func (l *Ledger) Get(ctx context.Context, id string) (*Entry, error) {
	rec, err := l.st.GetPayment(ctx, id)
	if err != nil {
		return nil, err
	}
	return (&Entry{Rec: rec}).clone(), nil
}

// Decision is what a writer wants, decided on the current record. A nil
// Next means "no change".
type Decision struct {
	Next *Entry
	// Events go into the outbox with the change (besides the automatic
	// payment event of a status change).
	Events []*Event
	// Quiet suppresses the automatic payment event.
	Quiet bool
	// Bookkeeping marks a change of the resolver's own fields only: the
	// record's UpdatedAt (when its state last changed) stays.
	Bookkeeping bool
}

// Decide looks at the current record (an empty Entry when there is none)
// and returns what to write.
type Decide func(cur *Entry) (Decision, error)

// Update runs one read-decide-swap cycle until it wins or decide declines.
// It returns the record as stored afterwards.
func (l *Ledger) Update(ctx context.Context, id string, src Source, decide Decide) (*Entry, error) {
	e, _, err := l.update(ctx, id, src, decide, durableNow)
	return e, err
}

// durable is the wait of a write that returned durable already.
func durable() error { return nil }

// durability says when update returns, on a store.Pipelined backend.
type durability int

const (
	// durableNow: once the write is durable (every backend).
	durableNow durability = iota
	// pipelined: once it is decided; the wait update returns waits for
	// the disk.
	pipelined
	// deferred: once it is decided; it goes to the disk with the next
	// write somebody waits for (nobody waits for this one).
	deferred
)

// durableUnless is mode when allowed, else durableNow.
func durableUnless(allowed bool, mode durability) durability {
	if allowed {
		return mode
	}
	return durableNow
}

// update is Update, returning as mode says (on a store.Pipelined backend;
// other backends are durable before it returns).
func (l *Ledger) update(ctx context.Context, id string, src Source, decide Decide, mode durability) (*Entry, func() error, error) {
	for range maxRaces {
		cur, err := l.read(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		d, err := decide(cur.clone())
		if err != nil {
			return cur, nil, err
		}
		if d.Next == nil {
			return cur, durable, nil
		}
		if err := l.check(cur, d.Next, src); err != nil {
			return cur, nil, err
		}
		next := d.Next
		next.Rec.ID = id
		next.Rec.Version = cur.version()
		now := l.now()
		if !d.Bookkeeping || next.Rec.UpdatedAt.IsZero() {
			next.Rec.UpdatedAt = now
		}
		if next.Rec.CreatedAt.IsZero() {
			next.Rec.CreatedAt = now
		}
		if next.Pay != nil {
			next.Rec.Payment, _ = json.Marshal(next.Pay)
		}
		evs := l.eventsFor(cur, next, src, d)
		wait := durable
		p, ok := l.st.(store.Pipelined)
		switch {
		case ok && mode == pipelined:
			wait, err = p.SwapPaymentPipelined(ctx, next.Rec, evs...)
		case ok && mode == deferred:
			err = p.SwapPaymentDeferred(ctx, next.Rec, evs...)
		default:
			err = l.st.SwapPayment(ctx, next.Rec, evs...)
		}
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return cur, nil, err
		}
		if len(evs) > 0 && l.OnEvents != nil {
			l.OnEvents()
		}
		return next, wait, nil
	}
	return nil, nil, ErrContention
}

func (l *Ledger) read(ctx context.Context, id string) (*Entry, error) {
	rec, err := l.st.GetPayment(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return &Entry{}, nil
	}
	if err != nil {
		return nil, err
	}
	return (&Entry{Rec: rec}).clone(), nil
}

func (e *Entry) version() int64 {
	if e.Rec == nil {
		return 0
	}
	return e.Rec.Version
}

// check enforces the state machine on a proposed change.
func (l *Ledger) check(cur, next *Entry, src Source) error {
	from, to := cur.Status(), next.Rec.Status
	if !Legal(from, to, src) {
		return fmt.Errorf("%w: %q -> %q on %s evidence", ErrIllegal, from, to, src)
	}
	if !src.verified() && !Open(from) && from != "" && !moneyFrozen(decode(cur.Rec.Payment), next.Pay) {
		return fmt.Errorf("%w: a claim may not change a settled payment's amounts or approval", ErrIllegal)
	}
	return nil
}

// eventsFor adds the payment event of a status change to the writer's own.
func (l *Ledger) eventsFor(cur, next *Entry, src Source, d Decision) []*store.Event {
	if !l.events {
		return nil
	}
	var out []*store.Event
	if !d.Quiet && next.Pay != nil && next.Rec.Status != cur.Status() && !Open(next.Rec.Status) && next.Rec.LinkedID == "" {
		ev := &Event{Type: "payment." + Verb(next.Rec.Status), Provider: next.Rec.Account, Verified: src.verified(),
			Data: EventData{Payment: next.Pay}}
		ev.ID = StableEventID(next.Rec.ID, ev.Type, fmt.Sprint(next.Rec.Version+1))
		out = append(out, ev.stored(l.now()))
	}
	for _, ev := range d.Events {
		out = append(out, ev.stored(l.now()))
	}
	return out
}

// Emit writes events to the outbox on their own (claims that change no
// record, such as recurring-billing notices).
func (l *Ledger) Emit(ctx context.Context, evs ...*Event) error {
	if !l.events {
		return nil
	}
	for _, ev := range evs {
		if err := l.st.AddEvent(ctx, ev.stored(l.now())); err != nil {
			return err
		}
	}
	if len(evs) > 0 && l.OnEvents != nil {
		l.OnEvents()
	}
	return nil
}

// Events reports whether the ledger writes events.
func (l *Ledger) Events() bool { return l.events }
