package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/notify"
	"github.com/paynorm/paynorm/providers"
	"github.com/paynorm/paynorm/providers/jpayment"
	"github.com/paynorm/paynorm/store"
)

// webhooks is the handler's event side: the notifier over the store's
// outbox and the kickback source allow-list.
type webhooks struct {
	notifyURL, secret string
	notifier          *notify.Notifier
	allow             []netip.Prefix
	// jpayment are this config's j-payment providers, handed the store once
	// it is open.
	jpayment []*jpayment.Provider
}

func (w *webhooks) stop() {
	if w.notifier != nil {
		w.notifier.Stop()
	}
}

// provisionWebhooks expands placeholders and checks the settings; the
// delivery loop starts in startWebhooks, once the store is open.
func (h *Handler) provisionWebhooks(repl *caddy.Replacer) error {
	notifyURL := strings.TrimSpace(repl.ReplaceAll(h.NotifyURL, ""))
	secret := strings.TrimSpace(repl.ReplaceAll(h.NotifySecret, ""))
	for _, s := range h.KickbackAllow {
		p, err := parsePrefix(s)
		if err != nil {
			return fmt.Errorf("kickback_allow: %v", err)
		}
		h.webhooks.allow = append(h.webhooks.allow, p)
	}
	if notifyURL == "" {
		if secret != "" {
			return errors.New("notify_secret is set but notify_url is not")
		}
		return nil
	}
	u, err := url.Parse(notifyURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("notify_url must be an http:// or https:// URL")
	}
	if len(secret) < 16 {
		return errors.New("notify_secret must be at least 16 characters when notify_url is set")
	}
	h.webhooks.notifyURL, h.webhooks.secret = notifyURL, secret
	return nil
}

// startWebhooks gives the j-payment providers the store (their payment
// records live there) and starts delivering the store's outbox.
func (h *Handler) startWebhooks() error {
	if h.store == nil {
		return errors.New("no store is open")
	}
	for _, p := range h.webhooks.jpayment {
		p.UseStore(h.store)
	}
	if h.webhooks.notifyURL == "" {
		return nil
	}
	h.webhooks.notifier = notify.New(notify.Config{URL: h.webhooks.notifyURL, Secret: h.webhooks.secret, Store: h.store, Logger: h.logger.Named("webhooks")})
	h.webhooks.notifier.Start()
	return nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// allowed checks the client address (Caddy's client_ip, which honours
// trusted_proxies, else the peer address) against the allow-list.
func (w *webhooks) allowed(r *http.Request) bool {
	if len(w.allow) == 0 {
		return true
	}
	host, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	if host == "" {
		host, _, _ = net.SplitHostPort(r.RemoteAddr)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range w.allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Event is the JSON body of a webhook delivery.
type Event struct {
	ID        string    `json:"id"`
	Object    string    `json:"object"`
	Type      string    `json:"type"`
	CreatedAt time.Time `json:"created_at"`
	// Provider is the account name the event concerns.
	Provider string    `json:"provider"`
	Data     EventData `json:"data"`
}

// EventData carries the payment and, for recurring billing, the subscription.
type EventData struct {
	Payment      *normalize.Payment `json:"payment,omitempty"`
	Subscription *Subscription      `json:"subscription,omitempty"`
	// Kickback is the provider's notification as received (passwords removed).
	Kickback map[string]string `json:"kickback,omitempty"`
}

// Subscription is j-payment recurring billing (自動課金) as events show it.
type Subscription struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	// Retrying is true while j-payment retries a failed recurring charge.
	Retrying bool `json:"retrying,omitempty"`
	Trial    bool `json:"trial,omitempty"`
}

// stableEventID derives the id from what the event says, so the same
// notification received twice is the same event and receivers can drop the
// duplicate.
func stableEventID(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x1f")))
	return "evt_" + hex.EncodeToString(sum[:12])
}

// emit persists an event in the outbox; it returns once the event is safe.
func (h *Handler) emit(ctx context.Context, ev *Event) error {
	if h.webhooks.notifier == nil {
		return nil
	}
	ev.Object = "event"
	if ev.CreatedAt.IsZero() {
		ev.CreatedAt = time.Now().In(normalize.JST)
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	return h.webhooks.notifier.Enqueue(ctx, &store.Event{ID: ev.ID, Type: ev.Type, Body: body})
}

// jpaymentKickback receives j-payment's rt=0 notifications: the payment
// record is updated, the event stored in the outbox, and only then is the
// non-empty answer j-payment judges success by written.
func (h *Handler) jpaymentKickback(c *call) int {
	w, r, rid := c.w, c.r, c.rid
	if !h.webhooks.allowed(r) {
		h.logger.Warn("kickback from a source not in kickback_allow", zap.String("remote", r.RemoteAddr), zap.String("request_id", rid))
		return h.fail(w, rid, normalize.New("source_not_allowed"))
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.MaxBodyBytes)
	if err := r.ParseForm(); err != nil {
		return h.fail(w, rid, normalize.Newf("parameter_invalid", "The kickback parameters could not be read."))
	}
	k, err := jpayment.ParseKickback(r.Form)
	if err != nil {
		var ke *jpayment.ErrKickback
		e := normalize.Newf("parameter_invalid", "Invalid kickback: %v.", err)
		if errors.As(err, &ke) {
			e.WithParam(ke.Param)
		}
		return h.fail(w, rid, e)
	}
	account, aerr := h.kickbackAccount(r.Form.Get("account"))
	if aerr != nil {
		return h.fail(w, rid, aerr)
	}
	ev, perr := h.applyKickback(c.ctx, account, k)
	if perr != nil {
		h.logger.Error("kickback not recorded", zap.String("request_id", rid), zap.String("gid", k.GID), zap.Error(perr))
		e := normalize.Newf("processing_error", "paynorm could not record the kickback; send it again.")
		return h.fail(w, rid, e.WithStatus(http.StatusInternalServerError))
	}
	if err := h.emit(c.ctx, ev); err != nil {
		h.logger.Error("kickback event not stored", zap.String("request_id", rid), zap.String("event_id", ev.ID), zap.Error(err))
		e := normalize.Newf("processing_error", "paynorm could not store the event; send the kickback again.")
		return h.fail(w, rid, e.WithStatus(http.StatusInternalServerError))
	}
	h.logger.Info("kickback received", zap.String("request_id", rid), zap.String("account", account), zap.String("gid", k.GID),
		zap.String("rst", k.Rst), zap.String("ec", k.Ec), zap.String("event_id", ev.ID), zap.String("type", ev.Type))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("OK"))
	return http.StatusOK
}

// kickbackAccount picks the j-payment account: the "account" URL parameter
// (put it in the 決済結果通知URL when several are configured) or the only one.
func (h *Handler) kickbackAccount(name string) (string, *normalize.Error) {
	var jp []string
	for _, n := range h.order {
		if h.providers[n].Kind() == "jpayment" {
			jp = append(jp, n)
		}
	}
	if name == "" && len(jp) == 1 {
		return jp[0], nil
	}
	for _, n := range jp {
		if n == name {
			return n, nil
		}
	}
	e := normalize.Newf("unknown_provider", "The kickback names no configured j-payment account: add ?account=<name> to the notification URL (configured: %s).", strings.Join(jp, ", "))
	return "", e.WithParam("account")
}

// applyKickback updates the payment record and builds the event.
func (h *Handler) applyKickback(ctx context.Context, account string, k *jpayment.Kickback) (*Event, error) {
	pay, err := jpayment.LoadPayment(ctx, h.store, account, k.GID)
	known := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	now := time.Now().In(normalize.JST)
	// A create whose answer never came has no gid yet: its write-ahead
	// record is keyed by the order id (cod, see providers.CreateRecordKey).
	// This kickback settles it.
	var settles *store.PaymentRecord
	if !known && k.Cod != "" {
		if rec, err := h.store.GetPayment(ctx, normalize.PaymentID(account, providers.CreateRecordKey(h.providers[account], k.Cod))); err == nil &&
			(rec.Status == normalize.StatusUnknown || rec.Status == normalize.StatusPending) {
			settles = rec
		}
	}
	if !known {
		// A payment paynorm did not make (payment link, recurring charge).
		// An unknown job reads as authorized: a capture then either works or
		// j-payment answers "already sold" (ER032), so nothing is lost.
		pay = normalize.NewPayment(account, k.GID)
		pay.OrderID = k.Cod
		pay.CreatedAt = &now
		pay.Capture = normalize.CaptureManual
		if k.Acid != "" {
			pay.Capture = normalize.CaptureAutomatic // recurring charges are CAPTURE only
		} else if seed := storedPayment(settles); seed != nil && seed.Capture != "" {
			pay.Capture, pay.Metadata = seed.Capture, seed.Metadata
		} else {
			pay.ProviderData["capture_mode_unknown"] = true
		}
		pay.Status = normalize.StatusUnknown
	}
	if k.HasAmounts {
		pay.SetAmounts(k.Am, k.Tx, k.Sf)
	}
	if k.Ap != "" {
		pay.ApprovalCode = k.Ap
	}
	if k.God != "" {
		pay.TransactionID = k.God
	}
	pay.ProviderData["gid"] = k.GID
	if k.Ec != "" {
		pay.ProviderData["ec"] = k.Ec
	}
	// Only an open outcome is settled by a kickback: a status paynorm got
	// from a synchronous answer or a later job is never rolled back.
	open := pay.Status == normalize.StatusUnknown || pay.Status == normalize.StatusPending
	switch k.Rst {
	case jpayment.RstSuccess:
		if open {
			pay.Status = providers.StatusForJob(providers.JobFor(pay.Capture))
		}
	case jpayment.RstFailure, jpayment.RstRetryFailed, jpayment.RstTrialRetryFailed:
		if open {
			pay.Status = normalize.StatusFailed
		}
	case jpayment.RstStopped:
		if !known {
			pay = nil // a stop notice is about the subscription, not a payment
		}
	}
	if pay != nil {
		if open || !known {
			pay.UpdatedAt = &now
		}
		if err := jpayment.SavePayment(ctx, h.store, account, k.GID, pay); err != nil {
			return nil, err
		}
		if settles != nil {
			settles.Status, settles.Op, settles.UpdatedAt, settles.NextCheck = pay.Status, "kickback", time.Now(), time.Time{}
			settles.Payment, _ = json.Marshal(pay)
			if err := h.store.PutPayment(ctx, settles); err != nil {
				return nil, err
			}
		}
	}
	ev := &Event{Provider: account, Data: EventData{Payment: pay, Kickback: kickbackFields(k)}}
	if k.Acid != "" && (!known || k.Rst > jpayment.RstFailure) {
		sub := &Subscription{ID: normalize.PaymentID(account, k.Acid), Status: "active"}
		switch k.Rst {
		case jpayment.RstSuccess:
			ev.Type = "subscription.payment_succeeded"
		case jpayment.RstFailure:
			ev.Type, sub.Status = "subscription.payment_failed", "past_due"
		case jpayment.RstRetryFailed, jpayment.RstTrialRetryFailed:
			ev.Type, sub.Status, sub.Retrying = "subscription.payment_failed", "past_due", true
			sub.Trial = k.Rst == jpayment.RstTrialRetryFailed
		case jpayment.RstStopped:
			ev.Type, sub.Status = "subscription.canceled", "canceled"
		}
		ev.Data.Subscription = sub
	} else {
		ev.Type = "payment." + eventVerb(pay.Status)
	}
	ev.ID = stableEventID(account, ev.Type, k.GID, k.Rst, k.Ec, k.Acid, k.Ap, fmt.Sprint(k.Am, k.Tx, k.Sf))
	return ev, nil
}

// eventVerb names the event of a payment status.
func eventVerb(status string) string {
	switch status {
	case normalize.StatusVoided, normalize.StatusRefunded:
		return "canceled"
	case "":
		return "updated"
	}
	return status
}

// kickbackFields keeps the notification's fields for the event; the issued
// password (ps) and unknown free data never leave paynorm.
func kickbackFields(k *jpayment.Kickback) map[string]string {
	m := map[string]string{"gid": k.GID, "rst": k.Rst}
	for key, v := range map[string]string{"ap": k.Ap, "ec": k.Ec, "god": k.God, "cod": k.Cod, "acid": k.Acid} {
		if v != "" {
			m[key] = v
		}
	}
	return m
}

// eventing wraps a provider so that payment changes made through the
// unified API become events too (payment.authorized, .captured, .failed,
// .canceled ...), with ids stable per payment and state.
type eventing struct {
	providers.Provider
	h *Handler
}

func (h *Handler) withEvents(p providers.Provider) providers.Provider {
	if h.webhooks.notifyURL == "" {
		return p
	}
	return &eventing{Provider: p, h: h}
}

func (e *eventing) record(ctx context.Context, pay *normalize.Payment, err error) {
	if pay == nil {
		var ne *normalize.Error
		if errors.As(err, &ne) && ne.Payment != nil && ne.Payment.ID != "" && ne.Payment.Status == normalize.StatusFailed {
			pay = ne.Payment
		} else {
			return
		}
	}
	ev := &Event{Type: "payment." + eventVerb(pay.Status), Provider: e.Account(), Data: EventData{Payment: pay}}
	ev.ID = stableEventID(e.Account(), ev.Type, pay.ID, fmt.Sprint(pay.Total))
	if werr := e.h.emit(ctx, ev); werr != nil {
		e.h.logger.Error("payment event not stored", zap.String("payment_id", pay.ID), zap.String("type", ev.Type), zap.Error(werr))
	}
}

func (e *eventing) CreatePayment(ctx context.Context, req *normalize.CreatePayment) (*normalize.Payment, error) {
	pay, err := e.Provider.CreatePayment(ctx, req)
	e.record(ctx, pay, err)
	return pay, err
}

func (e *eventing) Capture(ctx context.Context, key string, req *normalize.CaptureRequest) (*normalize.Payment, error) {
	pay, err := e.Provider.Capture(ctx, key, req)
	e.record(ctx, pay, err)
	return pay, err
}

func (e *eventing) Cancel(ctx context.Context, key string) (*normalize.Payment, error) {
	pay, err := e.Provider.Cancel(ctx, key)
	e.record(ctx, pay, err)
	return pay, err
}

func (e *eventing) Reauthorize(ctx context.Context, key string, req *normalize.Reauthorize) (*normalize.Payment, error) {
	pay, err := e.Provider.Reauthorize(ctx, key, req)
	e.record(ctx, pay, err)
	return pay, err
}
