package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers"
	"github.com/paynorm/paynorm/store"
)

// recordStatusAction marks a payment waiting for the card holder (3-D
// Secure): pending, but not something the resolver may settle as failed.
const recordStatusAction = "action_required"

// storeFailure is the answer when a write-ahead record cannot be written:
// the provider is not called, so nothing can be lost.
func storeFailure() *normalize.Error { return normalize.New("store_unavailable") }

// orderIDFor fixes the order id of a create before the provider is called,
// so the write-ahead record has its key. With an Idempotency-Key the id is
// derived from it: a retry after a crash hits GMO's order id uniqueness and
// gets the existing payment instead of a second charge.
func orderIDFor(ctx context.Context, account string) string {
	if k := idempotencyKeyFrom(ctx); k != "" {
		sum := sha256.Sum256([]byte(account + "\x00" + k))
		return "pk-" + hex.EncodeToString(sum[:10])
	}
	return normalize.NewOrderID(time.Now())
}

// recorded runs one money-moving operation between a write-ahead record
// (status pending) and its update with the outcome.
// seed, when given, is the payment as requested: what a GET shows while
// the provider has nothing yet.
func (h *Handler) recorded(ctx context.Context, p providers.Provider, key, op string, seed *normalize.Payment, run func(context.Context) (*normalize.Payment, error)) (*normalize.Payment, error) {
	// A client hanging up must not cut a provider call in half: that would
	// turn a clean answer into an unknown outcome.
	ctx = context.WithoutCancel(ctx)
	id := normalize.PaymentID(p.Account(), key)
	now := time.Now()
	prev, err := h.store.GetPayment(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		h.logger.Error("store read failed", zap.String("payment", id), zap.Error(err))
		return nil, storeFailure()
	}
	rec := &store.PaymentRecord{ID: id, Account: p.Account(), Key: key, Status: normalize.StatusPending, Op: op, CreatedAt: now, UpdatedAt: now}
	if prev != nil {
		rec.CreatedAt, rec.Payment = prev.CreatedAt, prev.Payment
	}
	if seed != nil && rec.Payment == nil {
		seed.Status = normalize.StatusPending
		rec.Payment, _ = json.Marshal(seed)
	}
	if err := h.store.PutPayment(ctx, rec); err != nil {
		h.logger.Error("store write failed", zap.String("payment", id), zap.Error(err))
		return nil, storeFailure()
	}
	pay, perr := run(ctx)
	h.settle(ctx, rec, prev, pay, perr)
	return pay, perr
}

// settle stores the outcome of an operation in its record.
func (h *Handler) settle(ctx context.Context, rec, prev *store.PaymentRecord, pay *normalize.Payment, perr error) {
	var ne *normalize.Error
	_ = asNormalized(perr, &ne)
	switch {
	case pay != nil:
		rec.Status = pay.Status
	case ne != nil && ne.Payment != nil:
		pay = ne.Payment
		rec.Status = pay.Status
	case rec.Op == "create":
		rec.Status = normalize.StatusFailed // refused before anything was executed
	case prev != nil:
		rec.Status = prev.Status // nothing was sent: the old state stands
	default:
		rec.Status = normalize.StatusFailed
	}
	if rec.Status == normalize.StatusPending && perr == nil {
		rec.Status = recordStatusAction
	}
	if pay != nil {
		rec.Payment, _ = json.Marshal(pay)
	}
	rec.UpdatedAt = time.Now()
	if err := h.store.PutPayment(ctx, rec); err != nil {
		// The pending record stays; the resolver settles it from the provider.
		h.logger.Error("store write failed after the provider call", zap.String("payment", rec.ID), zap.Error(err))
	}
}

// getMerged answers GET /payments/{id}: the provider's answer wins, except
// that an entry GMO never executed (UNPROCESSED, read as pending) whose
// record says failed stays failed. A missing record is rebuilt from the
// provider; a payment the provider does not know is answered from its record.
func (h *Handler) getMerged(ctx context.Context, p providers.Provider, key string) (*normalize.Payment, error) {
	id := normalize.PaymentID(p.Account(), key)
	rec, rerr := h.store.GetPayment(ctx, id)
	if rerr != nil && !errors.Is(rerr, store.ErrNotFound) {
		h.logger.Warn("store read failed", zap.String("payment", id), zap.Error(rerr))
		rec = nil
	}
	pay, err := p.GetPayment(ctx, key)
	if err != nil {
		stored := storedPayment(rec)
		if stored == nil {
			return nil, err
		}
		if rec.Status != recordStatusAction {
			stored.Status = rec.Status
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
	if rec != nil {
		if pay.Status == normalize.StatusPending && rec.Status == normalize.StatusFailed {
			pay.Status = normalize.StatusFailed
		}
		if stored := storedPayment(rec); stored != nil {
			fillFromRecord(pay, stored)
		}
	}
	h.rebuild(ctx, rec, pay, key)
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
	if stored.Shipping > 0 && stored.Tax+stored.Shipping == pay.Tax {
		pay.SetAmounts(pay.Amount, stored.Tax, stored.Shipping)
	}
}

// rebuild writes the provider's definite state into the record when the
// record is missing or behind.
func (h *Handler) rebuild(ctx context.Context, rec *store.PaymentRecord, pay *normalize.Payment, key string) {
	status := pay.Status
	if status == normalize.StatusPending {
		return // not definite: leave it to the record and the resolver
	}
	if rec != nil && rec.Status == status {
		return
	}
	now := time.Now()
	nrec := &store.PaymentRecord{ID: pay.ID, Account: pay.Provider, Key: key, Status: status, Op: "get", CreatedAt: now, UpdatedAt: now}
	if rec != nil {
		nrec.CreatedAt = rec.CreatedAt
	} else if pay.CreatedAt != nil {
		nrec.CreatedAt = *pay.CreatedAt
	}
	nrec.Payment, _ = json.Marshal(pay)
	if err := h.store.PutPayment(context.WithoutCancel(ctx), nrec); err != nil {
		h.logger.Warn("store write failed", zap.String("payment", pay.ID), zap.Error(err))
	}
}

func asNormalized(err error, target **normalize.Error) bool {
	return err != nil && errors.As(err, target)
}
