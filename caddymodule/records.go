package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/paynorm/paynorm/ledger"
	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers"
	"github.com/paynorm/paynorm/providers/exchange"
	"github.com/paynorm/paynorm/store"
)

// storeFailure is the answer when a write-ahead record cannot be written:
// the provider is not called, so nothing can be lost.
func storeFailure() *normalize.Error { return normalize.New("store_unavailable") }

// busy answers an operation that found another one running on the payment.
func busy(account string, e *ledger.Entry) *normalize.Error {
	ne := normalize.New("payment_busy")
	ne.Provider = account
	if e != nil && e.Pay != nil {
		ne.Payment = e.Pay
	}
	return ne
}

// orderIDFor fixes the order id of a create before the provider is called,
// so the write-ahead record has its key. With an Idempotency-Key the id is
// derived from it: a retry after a crash finds the same order record and
// gets the existing payment instead of a second charge.
func orderIDFor(ctx context.Context, account string) string {
	if k := idempotencyKeyFrom(ctx); k != "" {
		sum := sha256.Sum256([]byte(account + "\x00" + k))
		return "pk-" + hex.EncodeToString(sum[:10])
	}
	return normalize.NewOrderID(time.Now())
}

// worstSequence is the longest run of provider calls one operation makes:
// a GMO create is EntryTran, a SearchTrade when the order already exists,
// ExecTran and a SearchTrade read-back after an unclear answer; a
// follow-up is a SearchTrade, the money-moving call and a read-back.
var worstSequence = []exchange.Kind{exchange.Write, exchange.Read, exchange.Write, exchange.Read}

// Defaults of the per-call limits (Account.Timeout, Account.MaxWait).
const (
	defaultCallTimeout = 30 * time.Second
	defaultMaxWait     = time.Second
)

// callBudget is the longest the given calls of the account can take under
// exchange's retry rules, every attempt waiting its full max_wait for the
// limiter and running to its timeout.
func (h *Handler) callBudget(account string, seq ...exchange.Kind) time.Duration {
	t, wait := defaultCallTimeout, defaultMaxWait
	if a := h.account(account); a != nil {
		if a.Timeout > 0 {
			t = time.Duration(a.Timeout)
		}
		if a.MaxWait > 0 {
			wait = time.Duration(a.MaxWait)
		}
	}
	return exchange.Budget(t, wait, seq...)
}

// opLease is how long an operation may hold its payment: longer than its
// worst-case provider calls (with the account's timeout of 30s and
// max_wait of 1s, 10 attempts: about 5m11s), plus 30s for the store writes
// around them, so a live operation never loses its lease.
func (h *Handler) opLease(account string) time.Duration {
	return h.callBudget(account, worstSequence...) + 30*time.Second
}

// ledgerOp describes an operation on the payment key of p's account. Its
// provider calls go with the ticket's context (Overlap); a provider that
// can be asked for the outcome again need not have it durable before the
// answer (Rebuildable).
func (h *Handler) ledgerOp(p providers.Provider, key, name string) ledger.Op {
	return ledger.Op{ID: normalize.PaymentID(p.Account(), key), Account: p.Account(), Key: key, Name: name,
		Lease: h.opLease(p.Account()), Overlap: true, Rebuildable: providers.Queryable(p)}
}

// createRecorded runs a create between its write-ahead order record and
// the settlement of its outcome. An order that already has a payment is
// answered with it (never charged again) or, when the request differs,
// refused with order_id_exists.
func (h *Handler) createRecorded(ctx context.Context, p providers.Provider, req *normalize.CreatePayment, seed *normalize.Payment) (*normalize.Payment, error) {
	// A client hanging up must not cut a provider call in half: that would
	// turn a clean answer into an unknown outcome.
	ctx = context.WithoutCancel(ctx)
	key := providers.CreateRecordKey(p, req.OrderID)
	op := h.ledgerOp(p, key, ledger.OpCreate)
	op.Seed = seed
	t, cur, err := h.ledger.Begin(ctx, op)
	switch {
	case errors.Is(err, ledger.ErrBusy):
		return nil, busy(p.Account(), cur)
	case errors.Is(err, ledger.ErrExists):
		return h.existingOrder(ctx, p, cur, seed)
	case err != nil:
		h.logger.Error("store write failed", zap.String("payment", op.ID), zap.Error(err))
		return nil, storeFailure()
	}
	// The write-ahead record goes to the disk while the calls that move no
	// money (GMO EntryTran) are made; the charge waits for it.
	pay, perr := p.CreatePayment(t.Context(ctx), req)
	h.settle(ctx, t, pay, perr)
	return pay, perr
}

// settle records an operation's outcome; a failed write leaves the lease
// in the record, and the resolver settles it from the provider.
func (h *Handler) settle(ctx context.Context, t *ledger.Ticket, pay *normalize.Payment, perr error) {
	if _, err := h.ledger.Settle(ctx, t, pay, perr); err != nil {
		h.logger.Error("store write failed after the provider call", zap.String("payment", t.Start.Rec.ID), zap.Error(err))
	}
}

// existingOrder answers a create for an order paynorm already has.
func (h *Handler) existingOrder(ctx context.Context, p providers.Provider, cur *ledger.Entry, seed *normalize.Payment) (*normalize.Payment, error) {
	if cur.Rec.LinkedID != "" {
		if linked, err := h.ledger.Get(ctx, cur.Rec.LinkedID); err == nil {
			cur = linked
		}
	}
	have := cur.Pay
	if have == nil {
		have = normalize.NewPayment(p.Account(), seed.OrderID)
		have.Status = cur.Rec.Status
	}
	if have.Amount != seed.Amount || have.Tax != seed.Tax || have.Shipping != seed.Shipping || (have.Capture != "" && have.Capture != seed.Capture) {
		e := normalize.Newf("order_id_exists", "Order %s already has a payment (%s, %d yen, %s) that differs from this request; nothing was sent.", seed.OrderID, have.ID, have.Total, have.Status)
		e.Provider, e.Payment = p.Account(), have
		return nil, e.WithParam("order_id")
	}
	if providers.Queryable(p) && ledger.Open(cur.Rec.Status) {
		return h.getMerged(ctx, p, cur.Rec.Key) // the provider knows how it ended
	}
	return recordedPayment(cur), nil
}

// followUp runs capture, cancel or reauthorize on one payment, holding it
// from before the call until its outcome is recorded: a second operation
// on the same payment waits, or gets payment_busy.
func (h *Handler) followUp(ctx context.Context, p providers.Provider, key, name string, run func(context.Context, providers.Target) (*normalize.Payment, error)) (*normalize.Payment, error) {
	ctx = context.WithoutCancel(ctx)
	id := normalize.PaymentID(p.Account(), key)
	if _, err := h.ledger.Get(ctx, id); errors.Is(err, store.ErrNotFound) && providers.Queryable(p) {
		// A payment paynorm has no record of (a lost store, the control
		// panel): the provider's own answer makes the record first.
		if _, gerr := h.getMerged(ctx, p, key); gerr != nil {
			return nil, gerr
		}
	}
	t, cur, err := h.ledger.Begin(ctx, h.ledgerOp(p, key, name))
	switch {
	case errors.Is(err, ledger.ErrBusy):
		return nil, busy(p.Account(), cur)
	case errors.Is(err, store.ErrNotFound):
		e := normalize.Newf("resource_missing", "No payment %q is known to paynorm.", id)
		e.Provider = p.Account()
		return nil, e.WithParam("id")
	case err != nil:
		h.logger.Error("store write failed", zap.String("payment", id), zap.Error(err))
		return nil, storeFailure()
	}
	pay, perr := run(t.Context(ctx), providers.Target{Key: key, Known: recordedPayment(t.Start)})
	h.settle(ctx, t, pay, perr)
	return pay, perr
}

// recordedPayment is the payment as paynorm's record shows it.
func recordedPayment(e *ledger.Entry) *normalize.Payment {
	if e == nil || e.Rec == nil || e.Pay == nil {
		return nil
	}
	pay := e.Pay.Copy()
	if e.Rec.Status != "" {
		pay.Status = e.Rec.Status
	}
	if pay.Status != normalize.StatusRequiresAction {
		pay.NextAction = nil
	}
	if e.Rec.Unconfirmed != "" {
		pay.ProviderData["unconfirmed_operation"] = e.Rec.Unconfirmed
	}
	return pay
}

// getMerged answers GET /payments/{id}. For a provider that can be asked,
// its answer wins, except that an entry GMO never executed (UNPROCESSED,
// read as pending) whose record says failed stays failed; the answer is
// recorded unless the record changed while the provider was asked. For
// j-payment the record is all there is.
func (h *Handler) getMerged(ctx context.Context, p providers.Provider, key string) (*normalize.Payment, error) {
	id := normalize.PaymentID(p.Account(), key)
	cur, rerr := h.ledger.Get(ctx, id)
	if rerr != nil && !errors.Is(rerr, store.ErrNotFound) {
		h.logger.Warn("store read failed", zap.String("payment", id), zap.Error(rerr))
	}
	if cur != nil && cur.Rec.LinkedID != "" {
		if linked, err := h.ledger.Get(ctx, cur.Rec.LinkedID); err == nil {
			cur, id = linked, linked.Rec.ID
			_, key, _ = normalize.SplitPaymentID(id)
		}
	}
	if !providers.Queryable(p) {
		if cur == nil {
			e := normalize.Newf("resource_missing", "No payment %q is known to paynorm for this account (the provider has no query API; paynorm answers from its own records).", id)
			e.Provider = p.Account()
			return nil, e.WithParam("id")
		}
		pay := recordedPayment(cur)
		if pay.Status == normalize.StatusPending && cur.Rec.Lease != nil && !h.ledger.Live(cur.Rec.Lease) {
			pay.Status = normalize.StatusUnknown // the call never reported back
		}
		return pay, nil
	}
	var readVersion int64
	if cur != nil {
		readVersion = cur.Rec.Version
	}
	pay, err := p.GetPayment(ctx, key)
	if err != nil {
		stored := recordedPayment(cur)
		if stored == nil {
			return nil, err
		}
		if isMissing(err) {
			return stored, nil
		}
		var ne *normalize.Error
		if asNormalized(err, &ne) && ne.Payment == nil {
			ne.Payment = stored // the last known state, clearly inside an error
		}
		return nil, err
	}
	if cur != nil {
		if pay.Status == normalize.StatusPending && (cur.Rec.Status == normalize.StatusFailed || cur.Rec.Status == normalize.StatusRequiresAction || cur.Rec.Status == normalize.StatusVoided) {
			// GMO's entry is not executed (UNPROCESSED, AUTHENTICATED):
			// paynorm's record says why (declined, waiting for the card
			// holder, expired uncharged).
			return recordedPayment(cur), nil
		}
		if stored := cur.Pay; stored != nil {
			fillFromRecord(pay, stored)
		}
	}
	if _, err := h.ledger.Observe(context.WithoutCancel(ctx), id, readVersion, pay, "get"); err != nil && !errors.Is(err, ledger.ErrIllegal) {
		h.logger.Warn("store write failed", zap.String("payment", id), zap.Error(err))
	}
	return pay, nil
}

// fillFromRecord restores what GMO does not keep: the tax/shipping split,
// the capture mode and metadata as sent.
func fillFromRecord(pay, stored *normalize.Payment) {
	if pay.Capture == "" {
		pay.Capture = stored.Capture
	}
	if pay.Metadata == nil {
		pay.Metadata = stored.Metadata
	}
	if pay.CreatedAt == nil {
		pay.CreatedAt = stored.CreatedAt // GMO's SearchTrade has no creation date
	}
	if stored.Shipping > 0 && stored.Tax+stored.Shipping == pay.Tax {
		pay.SetAmounts(pay.Amount, stored.Tax, stored.Shipping)
	}
}

func asNormalized(err error, target **normalize.Error) bool {
	return err != nil && errors.As(err, target)
}
