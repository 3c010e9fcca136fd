package ledger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers"
	"github.com/paynorm/paynorm/store"
)

// Operation names.
const (
	OpCreate      = "create"
	OpCapture     = "capture"
	OpCancel      = "cancel"
	OpReauthorize = "reauthorize"
	OpComplete    = "complete"
)

// Op describes one money-moving operation about to run on a payment.
type Op struct {
	// ID is the record the operation holds (a create's order record).
	ID, Account, Key string
	Name             string
	// Seed is the payment as requested (create only): what GET shows while
	// the provider has not answered.
	Seed *normalize.Payment
	// Lease bounds how long the operation may hold the payment; it must
	// outlast the operation's worst-case provider calls.
	Lease time.Duration
	// Overlap lets Begin return before the write-ahead record is durable
	// (on a store.Pipelined backend): the caller must make its provider
	// calls with Ticket.Context, so a call that may move money waits for
	// the record and the calls before it overlap its write.
	Overlap bool
	// Rebuildable says the provider can tell the operation's outcome again
	// (GMO SearchTrade): Settle then returns before the outcome is durable.
	// Where it cannot (j-payment), the outcome is durable before Settle
	// returns, and so before any answer.
	Rebuildable bool
}

// Ticket is an operation's hold on a payment, from Begin to Settle.
type Ticket struct {
	op     Op
	owner  string
	unlock func()
	// Start is the record as the operation found it (with its lease).
	Start *Entry
	// durable waits for the write-ahead record to be on disk.
	durable func() error
}

// Context is ctx carrying the wait for the ticket's write-ahead record,
// which the provider calls that may move money honour
// (providers.AwaitWriteAhead).
func (t *Ticket) Context(ctx context.Context) context.Context {
	return providers.WithWriteAhead(ctx, t.durable)
}

// incarnation names this process: a lease it finds from another
// incarnation on a store only one process can open (bolt) was left by a
// process that died, so it no longer holds the payment.
var incarnation = newID()

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func newOwner() string { return incarnation + "/" + newID() }

// Live reports whether a lease still holds its payment: not run out, and
// not left by a dead process on a store no other process can open.
func (l *Ledger) Live(lease *store.Lease) bool {
	if lease == nil || !l.now().Before(lease.Until) {
		return false
	}
	if x, ok := l.st.(store.Exclusive); ok && x.Exclusive() && !strings.HasPrefix(lease.Owner, incarnation+"/") {
		return false
	}
	return true
}

// Begin takes the payment for one operation: it waits (up to BusyWait) for
// another operation on the payment to finish, then writes its lease into
// the record before anything is sent, so a crash leaves a trace and no
// second operation runs at once, in this process or another. A create
// writes its pending record; an order that already has a payment (other
// than a failed one) gives ErrExists and that payment's entry.
func (l *Ledger) Begin(ctx context.Context, op Op) (*Ticket, *Entry, error) {
	wctx, cancel := context.WithTimeout(ctx, l.BusyWait)
	defer cancel()
	unlock, ok := l.locks.lock(wctx, op.ID)
	if !ok {
		return nil, nil, ErrBusy
	}
	owner := newOwner()
	for {
		e, wait, err := l.update(ctx, op.ID, FromOperation, func(cur *Entry) (Decision, error) {
			now := l.now()
			if cur.Rec != nil && l.Live(cur.Rec.Lease) {
				return Decision{}, ErrBusy
			}
			lease := &store.Lease{Owner: owner, Op: op.Name, Until: now.Add(op.Lease)}
			if op.Name == OpCreate {
				if cur.Rec != nil && cur.Rec.Status != normalize.StatusFailed {
					return Decision{}, ErrExists
				}
				if cur.Rec != nil && cur.Rec.LinkedID != "" {
					// A failed attempt a kickback settled, whose payment a
					// failed write left unwritten: that record is what makes
					// a late copy of the kickback change nothing, so the order
					// waits for the copy j-payment sends again (ClaimOrder
					// completes it) before it is charged again.
					if _, err := l.st.GetPayment(ctx, cur.Rec.LinkedID); errors.Is(err, store.ErrNotFound) {
						return Decision{}, ErrBusy
					} else if err != nil {
						return Decision{}, err
					}
				}
				rec := &store.PaymentRecord{Account: op.Account, Key: op.Key, Status: normalize.StatusPending, Op: op.Name, Lease: lease}
				if cur.Rec != nil {
					rec.CreatedAt = cur.Rec.CreatedAt
				}
				var seed *normalize.Payment
				if op.Seed != nil {
					s := *op.Seed
					s.Status = normalize.StatusPending
					seed = &s
				}
				return Decision{Next: &Entry{Rec: rec, Pay: seed}, Quiet: true}, nil
			}
			if cur.Rec == nil {
				return Decision{}, store.ErrNotFound
			}
			if cur.Rec.Lease != nil && cur.Rec.Unconfirmed == "" {
				// A dead operation's lease: its outcome is not known (as
				// Abandon would mark it), whether or not the resolver came.
				cur.Rec.Unconfirmed = cur.Rec.Lease.Op
			}
			cur.Rec.Lease, cur.Rec.Op = lease, op.Name
			return Decision{Next: cur, Quiet: true}, nil
		}, durableUnless(op.Overlap, pipelined))
		if errors.Is(err, ErrBusy) {
			// Held by an operation of another instance (the store's lease).
			select {
			case <-wctx.Done():
				unlock()
				return nil, e, ErrBusy
			case <-time.After(20 * time.Millisecond):
				continue
			}
		}
		if err != nil {
			unlock()
			return nil, e, err
		}
		var once sync.Once
		return &Ticket{op: op, owner: owner, unlock: func() { once.Do(unlock) }, Start: e, durable: wait}, e, nil
	}
}

// Release gives the payment back without an outcome: the operation was
// refused before anything was sent.
func (l *Ledger) Release(ctx context.Context, t *Ticket) (*Entry, error) {
	defer t.unlock()
	return l.Update(ctx, t.op.ID, FromOperation, func(cur *Entry) (Decision, error) {
		if !t.holds(cur) {
			return Decision{}, nil
		}
		cur.Rec.Lease = nil
		if t.op.Name == OpCreate && Open(cur.Rec.Status) {
			cur.Rec.Status = normalize.StatusFailed // nothing was sent
			if cur.Pay != nil {
				cur.Pay.Status = normalize.StatusFailed
			}
			return Decision{Next: cur, Quiet: true}, nil
		}
		return Decision{Next: cur, Quiet: true}, nil
	})
}

func (t *Ticket) holds(cur *Entry) bool {
	return cur.Rec != nil && cur.Rec.Lease != nil && cur.Rec.Lease.Owner == t.owner
}

// Settle records an operation's outcome, decided on the record as it is
// now (a kickback or a read-back may have come meanwhile), and lets the
// payment go. pay is the provider's answer; without one, the payment an
// error carries is the evidence. A payment whose status is unknown means
// the request was sent and no answer came: a create becomes unknown, a
// follow-up keeps its confirmed status and is marked unconfirmed.
func (l *Ledger) Settle(ctx context.Context, t *Ticket, pay *normalize.Payment, perr error) (*Entry, error) {
	defer t.unlock()
	ev := pay
	if ev == nil {
		var ne *normalize.Error
		if errors.As(perr, &ne) && ne.Payment != nil {
			ev = ne.Payment
		}
	}
	uncertain := ev != nil && ev.Status == normalize.StatusUnknown
	if ev != nil && !uncertain && ev.ID != "" && ev.ID != t.op.ID {
		return l.settleElsewhere(ctx, t, ev)
	}
	// A provider that can tell the outcome again lets the answer go before
	// the outcome is durable (the write is decided and ordered, goes to the
	// disk with the next write somebody waits for, and every reader of the
	// record waits for it): a crash then leaves the durable write-ahead
	// record, which the resolver settles from the provider.
	e, _, err := l.update(ctx, t.op.ID, FromOperation, func(cur *Entry) (Decision, error) {
		if cur.Rec == nil {
			return Decision{}, store.ErrNotFound
		}
		if t.holds(cur) {
			cur.Rec.Lease = nil
		}
		create := t.op.Name == OpCreate
		switch {
		case ev == nil && create && Open(cur.Rec.Status):
			cur.Rec.Status = normalize.StatusFailed // refused before it was executed
			if cur.Pay != nil {
				cur.Pay.Status = normalize.StatusFailed
			}
		case ev == nil:
			// Nothing was sent: the confirmed state stands.
		case uncertain && create:
			if Open(cur.Rec.Status) {
				cur.Rec.Status, cur.Pay = normalize.StatusUnknown, ev
			}
		case uncertain:
			cur.Rec.Unconfirmed = t.op.Name
		default:
			status := ev.Status
			if status == normalize.StatusPending && perr == nil {
				status = StatusRequiresAction // the card holder must act (3-D Secure)
			}
			if status == normalize.StatusPending || !Legal(cur.Rec.Status, status, FromOperation) {
				break // not an outcome this record can take: keep what is known
			}
			if pay == nil && status == cur.Rec.Status {
				// A refusal carrying the payment as it was (j-payment
				// answers with the caller's own copy): nothing new, and an
				// earlier unconfirmed operation stays unconfirmed.
				break
			}
			cur.Rec.Status, cur.Pay, cur.Rec.NextCheck = status, ev, time.Time{}
			if pay != nil {
				cur.Rec.Unconfirmed = "" // a definite answer: the state is known again
			}
		}
		return Decision{Next: cur}, nil
	}, durableUnless(t.op.Rebuildable, deferred))
	return e, err
}

// settleElsewhere records an outcome that lives under another id than the
// record the operation held: a j-payment create (the order record; the
// payment is named by the gid j-payment assigned) or re-authorization (a
// new gid replaces the old payment). The payment is written first, so a
// reader that follows the link finds it, except for a create that charged:
// its order record is linked first, so a crash between the two writes
// cannot leave the order open while its payment exists (a claim naming
// another gid of the order, such as a re-authorization's, could then
// settle it, even as failed, and let it be charged again). A kickback for
// the gid then writes the missing payment (ClaimOrder). A failed create
// keeps the payment first: that record is what makes a late kickback for
// its gid change nothing once the order is tried again.
func (l *Ledger) settleElsewhere(ctx context.Context, t *Ticket, pay *normalize.Payment) (*Entry, error) {
	defer t.unlock()
	_, key, _ := normalize.SplitPaymentID(pay.ID)
	writePayment := func() (*Entry, error) {
		return l.Update(ctx, pay.ID, FromOperation, func(cur *Entry) (Decision, error) {
			if cur.Rec == nil {
				cur = &Entry{Rec: &store.PaymentRecord{Account: t.op.Account, Key: key, Op: t.op.Name}}
				if pay.CreatedAt != nil {
					cur.Rec.CreatedAt = *pay.CreatedAt
				}
			} else if cur.Rec.Unconfirmed != "" {
				// A kickback wrote it first and an operation whose outcome is
				// not known ran on it since: this answer, about how the
				// payment began, does not settle that.
				return Decision{}, nil
			}
			if !Legal(cur.Rec.Status, pay.Status, FromOperation) {
				return Decision{}, nil
			}
			cur.Rec.Status, cur.Rec.Op, cur.Rec.Unconfirmed, cur.Pay = pay.Status, t.op.Name, "", pay
			if t.op.Name != OpCreate && t.Start != nil && t.Start.Rec != nil {
				// A replacement made from a copy whose last operation is
				// unconfirmed is no better known than that copy.
				cur.Rec.Unconfirmed = t.Start.Rec.Unconfirmed
			}
			return Decision{Next: cur}, nil
		})
	}
	writeHeld := func() error {
		_, err := l.Update(ctx, t.op.ID, FromOperation, func(cur *Entry) (Decision, error) {
			if cur.Rec == nil {
				return Decision{}, nil
			}
			if t.holds(cur) {
				cur.Rec.Lease = nil
			}
			if t.op.Name == OpCreate {
				if Open(cur.Rec.Status) {
					cur.Rec.Status = pay.Status
				}
				cur.Rec.LinkedID, cur.Pay = pay.ID, pay
				return Decision{Next: cur, Quiet: true}, nil
			}
			replaced := normalize.StatusVoided
			if cur.Rec.Status == normalize.StatusCaptured {
				replaced = normalize.StatusRefunded
			}
			if cur.Pay != nil {
				cur.Pay.Status = replaced
				cur.Pay.ProviderData["replaced_by"] = pay.ID
				now := l.now().In(normalize.JST)
				cur.Pay.UpdatedAt = &now
			}
			cur.Rec.Status = replaced // the old id keeps reading as the old payment
			return Decision{Next: cur}, nil
		})
		return err
	}
	lost := func() {
		_, _ = l.Update(ctx, t.op.ID, FromOperation, func(cur *Entry) (Decision, error) {
			if !t.holds(cur) {
				return Decision{}, nil
			}
			cur.Rec.Lease, cur.Rec.Unconfirmed = nil, t.op.Name // the resolver cannot know more
			return Decision{Next: cur, Quiet: true}, nil
		})
	}
	if t.op.Name == OpCreate && pay.Status != normalize.StatusFailed {
		if err := writeHeld(); err != nil {
			lost()
			return nil, err
		}
		return writePayment()
	}
	out, err := writePayment()
	if err != nil {
		lost()
		return out, err
	}
	return out, writeHeld()
}

// Observe records what the provider said when asked (a GET read-back, the
// resolver). readVersion is the record's version when the question was
// asked: if anything wrote the record since, the answer may be older than
// what is stored and is dropped. An operation in flight settles its own
// outcome; an open answer (pending) settles nothing.
func (l *Ledger) Observe(ctx context.Context, id string, readVersion int64, pay *normalize.Payment, via string) (*Entry, error) {
	return l.Update(ctx, id, FromProvider, func(cur *Entry) (Decision, error) {
		if cur.version() != readVersion || Open(pay.Status) || pay.Status == StatusRequiresAction {
			return Decision{}, nil
		}
		if cur.Rec != nil && l.Live(cur.Rec.Lease) {
			return Decision{}, nil
		}
		if cur.Rec == nil {
			_, key, _ := normalize.SplitPaymentID(id)
			cur = &Entry{Rec: &store.PaymentRecord{Account: pay.Provider, Key: key}}
			if pay.CreatedAt != nil {
				cur.Rec.CreatedAt = *pay.CreatedAt
			}
		} else if cur.Rec.Status == pay.Status && cur.Rec.Lease == nil && cur.Rec.Unconfirmed == "" && moneyFrozen(cur.Pay, pay) {
			return Decision{}, nil // nothing new
		}
		cur.Rec.Status, cur.Rec.Op, cur.Pay = pay.Status, via, pay
		cur.Rec.Lease, cur.Rec.Unconfirmed, cur.Rec.NextCheck = nil, "", time.Time{}
		return Decision{Next: cur}, nil
	})
}

// Abandon ends an operation that crashed (its lease ran out) on a provider
// paynorm cannot ask: a create becomes unknown, a follow-up keeps its
// confirmed status and is marked unconfirmed.
func (l *Ledger) Abandon(ctx context.Context, id string, readVersion int64) (*Entry, error) {
	return l.Update(ctx, id, FromOperation, func(cur *Entry) (Decision, error) {
		if cur.version() != readVersion || cur.Rec == nil || cur.Rec.Lease == nil || l.Live(cur.Rec.Lease) {
			return Decision{}, nil
		}
		op := cur.Rec.Lease.Op
		cur.Rec.Lease = nil
		if op == OpCreate && Open(cur.Rec.Status) {
			cur.Rec.Status = normalize.StatusUnknown
			if cur.Pay != nil {
				cur.Pay.Status = normalize.StatusUnknown
			}
		} else {
			cur.Rec.Unconfirmed = op
		}
		return Decision{Next: cur, Quiet: true}, nil
	})
}

// Note updates the resolver's bookkeeping (attempts, next check) of a
// record it read, unless the record changed since.
func (l *Ledger) Note(ctx context.Context, id string, readVersion int64, attempts int, next time.Time) error {
	_, err := l.Update(ctx, id, FromOperation, func(cur *Entry) (Decision, error) {
		if cur.version() != readVersion || cur.Rec == nil {
			return Decision{}, nil
		}
		cur.Rec.Attempts, cur.Rec.NextCheck = attempts, next
		return Decision{Next: cur, Quiet: true, Bookkeeping: true}, nil
	})
	return err
}

// ClaimOrder settles an open create on a provider's unauthenticated
// notification (a j-payment kickback naming the order). The claim holds
// only when the order record is paynorm's own create, still open, not
// settled by another payment, and agree says the claim matches what was
// requested; then the order record links to pay and pay is written under
// its own id with ev (its event, marked unverified). It reports whether
// the claim was accepted. A claim repeated after a crash between the two
// writes completes the second.
func (l *Ledger) ClaimOrder(ctx context.Context, orderID string, pay *normalize.Payment, agree func(seed *normalize.Payment) bool, ev *Event) (bool, error) {
	accepted := false
	_, err := l.Update(ctx, orderID, FromClaim, func(cur *Entry) (Decision, error) {
		accepted = false
		switch {
		case cur.Rec == nil:
			return Decision{}, nil
		case cur.Rec.LinkedID == pay.ID:
			// Settled by this claim before: finish the job, with the claim
			// read as then (agree refines pay) and only if it still agrees.
			accepted = agree(cur.Pay)
			return Decision{}, nil
		case cur.Rec.LinkedID != "" || !Open(cur.Rec.Status) || cur.Rec.Op != OpCreate || !agree(cur.Pay):
			return Decision{}, nil
		}
		accepted = true
		cur.Rec.Status, cur.Rec.LinkedID, cur.Pay = pay.Status, pay.ID, pay
		cur.Rec.NextCheck = time.Time{}
		return Decision{Next: cur, Quiet: true}, nil
	})
	if err != nil || !accepted {
		return false, err
	}
	_, key, _ := normalize.SplitPaymentID(pay.ID)
	_, err = l.Update(ctx, pay.ID, fromClaimedOrder, func(cur *Entry) (Decision, error) {
		if cur.Rec != nil {
			return Decision{}, nil // the create's own answer came first
		}
		rec := &store.PaymentRecord{Account: pay.Provider, Key: key, Status: pay.Status, Op: "kickback"}
		d := Decision{Next: &Entry{Rec: rec, Pay: pay}, Quiet: true}
		if ev != nil {
			d.Events = []*Event{ev}
		}
		return d, nil
	})
	return err == nil, err
}

// Expire ends a payment that waited for its card holder (3-D Secure) past
// the account's action_expiry: nothing was charged (paynorm never
// completes a payment on its own), so it is voided.
func (l *Ledger) Expire(ctx context.Context, id string, readVersion int64) (*Entry, error) {
	return l.Update(ctx, id, FromOperation, func(cur *Entry) (Decision, error) {
		if cur.version() != readVersion || cur.Rec == nil || cur.Rec.Status != StatusRequiresAction || l.Live(cur.Rec.Lease) {
			return Decision{}, nil
		}
		cur.Rec.Status, cur.Rec.Lease, cur.Rec.NextCheck = normalize.StatusVoided, nil, time.Time{}
		if cur.Pay != nil {
			cur.Pay.Status, cur.Pay.NextAction = normalize.StatusVoided, nil
			cur.Pay.ProviderData["expired"] = "3-D Secure authentication not completed in time; nothing was charged"
		}
		return Decision{Next: cur}, nil
	})
}
