package caddymodule

import (
	"context"
	"errors"
	"io"
	"net/http"

	"go.uber.org/zap"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers/gmo"
	"github.com/paynorm/paynorm/store"
)

// gmoNotifyAnswer is the body GMO's result notification expects on
// success; anything else makes GMO send the notification again.
const gmoNotifyAnswer = "0"

// gmoNotification receives GMO's result notification (結果通知). It is a
// claim (no signature): it must come on the secret path and from an
// allowed source, name a configured shop, and it changes nothing by
// itself: paynorm asks GMO (SearchTrade) and records what GMO says, for a
// payment paynorm already has. "0" is answered only once that is durable.
func (h *Handler) gmoNotification(c *call) int {
	w, r, rid := c.w, c.r, c.rid
	if h.webhooks.gmoToken == "" || !tokenMatch(c.params["token"], h.webhooks.gmoToken) {
		h.logger.Warn("GMO notification on a wrong path token", zap.String("remote", r.RemoteAddr), zap.String("request_id", rid))
		return h.fail(w, rid, normalize.Newf("route_not_found", "No endpoint %s %s/webhooks/gmo/….", r.Method, h.Prefix))
	}
	if !sourceAllowed(r, h.webhooks.gmoAllow) {
		h.logger.Warn("GMO notification from a source not in gmo_notify_allow", zap.String("remote", r.RemoteAddr), zap.String("request_id", rid))
		return h.fail(w, rid, normalize.New("source_not_allowed"))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<10))
	if err != nil {
		return h.fail(w, rid, normalize.Newf("parameter_invalid", "The notification could not be read."))
	}
	n, err := gmo.ParseNotification(body)
	if err != nil {
		return h.fail(w, rid, normalize.Newf("parameter_invalid", "Invalid GMO notification: %v.", err))
	}
	account := h.webhooks.gmoShops[n.ShopID]
	if account == "" {
		h.logger.Warn("GMO notification for a shop no account has", zap.String("request_id", rid))
		return h.fail(w, rid, normalize.Newf("unknown_provider", "The notification names no configured GMO shop."))
	}
	verdict, err := h.verifyGMONotification(c.ctx, account, n)
	if err != nil {
		// Not verified yet (GMO did not answer, the store failed): GMO sends
		// it again within the hour.
		h.logger.Warn("GMO notification not recorded", zap.String("request_id", rid), zap.String("order_id", n.OrderID), zap.Error(err))
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("1"))
		return http.StatusServiceUnavailable
	}
	h.logger.Info("GMO notification", zap.String("request_id", rid), zap.String("account", account), zap.String("order_id", n.OrderID),
		zap.String("status", n.Status), zap.String("verdict", verdict))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(gmoNotifyAnswer))
	return http.StatusOK
}

// verifyGMONotification reads the payment back from GMO and records GMO's
// own answer; the notification's fields decide nothing.
func (h *Handler) verifyGMONotification(ctx context.Context, account string, n *gmo.Notification) (string, error) {
	ctx = context.WithoutCancel(ctx)
	id := normalize.PaymentID(account, n.OrderID)
	cur, err := h.ledger.Get(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "unknown_order", nil // not a payment paynorm made: nothing to update
	case err != nil:
		return "", err
	}
	pay, gerr := h.providers[account].GetPayment(ctx, n.OrderID)
	if gerr != nil {
		if isMissing(gerr) {
			return "not_at_gmo", nil // GMO has no such trade: a forgery
		}
		return "", gerr
	}
	if cur.Pay != nil {
		fillFromRecord(pay, cur.Pay)
	}
	after, err := h.ledger.Observe(ctx, id, cur.Rec.Version, pay, "notification")
	if err != nil {
		return "", err
	}
	if after.Rec.Version == cur.Rec.Version {
		return "unchanged", nil
	}
	return "recorded", nil
}
