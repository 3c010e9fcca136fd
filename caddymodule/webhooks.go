package caddymodule

import (
	"context"
	"crypto/subtle"
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

	"github.com/paynorm/paynorm/ledger"
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
	// kickbackToken is the secret path segment kickbacks must carry; empty
	// only when the operator wrote "kickback_token off".
	kickbackToken string
	// gmoToken and gmoAllow guard GMO result notifications (gmoToken empty:
	// not received); gmoShops maps a GMO shop id to its card account.
	gmoToken string
	gmoAllow []netip.Prefix
	gmoShops map[string]string
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
	if err := h.provisionKickbackToken(repl); err != nil {
		return err
	}
	if notifyURL == "" {
		if secret != "" {
			return errors.New("notify_secret is set but notify_url is not")
		}
		return nil
	}
	u, err := url.Parse(notifyURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return errors.New("notify_url must be an https:// URL")
	}
	if u.Scheme == "http" && !loopbackHost(u.Hostname()) {
		// The events carry payment data and their signatures: in clear text
		// only to a receiver on this host.
		return errors.New("notify_url must use https (plain http only to a loopback address)")
	}
	if len(secret) < 16 {
		return errors.New("notify_secret must be at least 16 characters when notify_url is set")
	}
	h.webhooks.notifyURL, h.webhooks.secret = notifyURL, secret
	return nil
}

// startWebhooks starts delivering the store's outbox.
func (h *Handler) startWebhooks() error {
	if h.store == nil {
		return errors.New("no store is open")
	}
	if h.webhooks.notifyURL == "" {
		return nil
	}
	h.webhooks.notifier = notify.New(notify.Config{URL: h.webhooks.notifyURL, Secret: h.webhooks.secret, Store: h.store, Logger: h.logger.Named("webhooks"),
		MaxAttempts: h.NotifyMaxAttempts, MaxAge: time.Duration(h.NotifyMaxAge),
		OnDeadLetter: func(*store.Event) { h.metrics.deadLetters.Inc() }})
	h.ledger.OnEvents = h.webhooks.notifier.Wake
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
func (w *webhooks) allowed(r *http.Request) bool { return sourceAllowed(r, w.allow) }

// sourceAllowed checks the client address (Caddy's client_ip, which
// honours trusted_proxies, else the peer address) against an allow-list;
// an empty list allows any source.
func sourceAllowed(r *http.Request, allow []netip.Prefix) bool {
	if len(allow) == 0 {
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
	for _, p := range allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// minKickbackToken is the shortest secret path token accepted.
const minKickbackToken = 16

// provisionKickbackToken checks the kickback path token: a j-payment
// account needs one (kickbacks carry no signature, so the secret URL is
// what keeps forged ones out), unless the operator wrote "off".
func (h *Handler) provisionKickbackToken(repl *caddy.Replacer) error {
	if err := h.provisionGMONotify(repl); err != nil {
		return err
	}
	tok := strings.TrimSpace(repl.ReplaceAll(h.KickbackToken, ""))
	hasJPayment, sandboxOnly := false, true
	for _, a := range h.Accounts {
		if a.Type == "jpayment" {
			hasJPayment = true
			sandboxOnly = sandboxOnly && loopbackEndpoint(strings.TrimSpace(repl.ReplaceAll(a.Endpoint, "")))
		}
	}
	switch {
	case tok == "off":
		return nil
	case tok == "" && hasJPayment && sandboxOnly:
		// Every j-payment account talks to a simulator on this host: no real
		// payment can be claimed, so an unset token (the repo Caddyfile run
		// without PAYNORM_KICKBACK_TOKEN) means "off", as for the sandbox.
		h.logger.Info("kickback_token is empty and every j-payment account is on a loopback endpoint (the sandbox): kickbacks are taken on /v1/webhooks/jpayment without a token")
		return nil
	case tok == "" && hasJPayment:
		return errors.New("kickback_token is required with a j-payment account: kickbacks carry no signature, so a secret URL (/v1/webhooks/jpayment/<token>) keeps forged ones out; set it from the environment (kickback_token {env.PAYNORM_KICKBACK_TOKEN}) or write 'kickback_token off' for the sandbox")
	}
	if err := checkPathToken("kickback_token", tok); err != nil {
		return err
	}
	h.webhooks.kickbackToken = tok
	return nil
}

// provisionGMONotify reads the GMO result notification settings once: the
// path token and the allow-list.
func (h *Handler) provisionGMONotify(repl *caddy.Replacer) error {
	for _, a := range h.GMONotifyAllow {
		p, err := parsePrefix(a)
		if err != nil {
			return fmt.Errorf("gmo_notify_allow: %v", err)
		}
		h.webhooks.gmoAllow = append(h.webhooks.gmoAllow, p)
	}
	h.webhooks.gmoToken = strings.TrimSpace(repl.ReplaceAll(h.GMONotifyToken, ""))
	if err := checkPathToken("gmo_notify_token", h.webhooks.gmoToken); err != nil {
		return err
	}
	h.webhooks.gmoShops = map[string]string{} // filled as the accounts are provisioned
	return nil
}

// checkPathToken checks a secret path segment ("" is allowed: unset).
func checkPathToken(name, tok string) error {
	if tok != "" && (len(tok) < minKickbackToken || !isToken(tok)) {
		return fmt.Errorf("%s must be at least %d characters of A-Z a-z 0-9 - _ . (it is a URL path segment)", name, minKickbackToken)
	}
	return nil
}

// tokenMatch compares a request's path token with the configured one in
// constant time; an unset token matches only an absent one.
func tokenMatch(got, want string) bool {
	if want == "" {
		return got == ""
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// tokenOK checks a kickback's path token.
func (w *webhooks) tokenOK(got string) bool { return tokenMatch(got, w.kickbackToken) }

// kickbackFailed answers a kickback paynorm could not record. j-payment
// judges delivery by a non-empty body (seed 002), so the body stays empty:
// the kickback counts as failed and is sent again.
func kickbackFailed(w http.ResponseWriter) int {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusInternalServerError)
	return http.StatusInternalServerError
}

// kickbackOK is the non-empty answer j-payment judges success by.
func kickbackOK(w http.ResponseWriter) int {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("OK"))
	return http.StatusOK
}

// jpaymentKickback receives j-payment's rt=0 notifications. Each is a
// claim (DESIGN.md "Provider notifications are claims"): it arrives only
// on the secret path and from allowed sources, may settle only a create
// paynorm itself left open and whose amounts it matches, never changes a
// settled payment, and never creates a payment paynorm did not start.
// The non-empty answer is written only once the outcome is durable.
func (h *Handler) jpaymentKickback(c *call) int {
	w, r, rid := c.w, c.r, c.rid
	if !h.webhooks.tokenOK(c.params["token"]) {
		// Not found, like any unknown path: a wrong token reveals nothing.
		h.logger.Warn("kickback with a wrong path token", zap.String("remote", r.RemoteAddr), zap.String("request_id", rid))
		return h.fail(w, rid, normalize.Newf("route_not_found", "No endpoint %s %s/webhooks/jpayment/….", r.Method, h.Prefix))
	}
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
	verdict, perr := h.applyKickback(c.ctx, account, k)
	if perr != nil {
		h.logger.Error("kickback not recorded", zap.String("request_id", rid), zap.String("gid", k.GID), zap.Error(perr))
		return kickbackFailed(w)
	}
	h.metrics.kickbacks.WithLabelValues(account, verdict).Inc()
	h.logger.Info("kickback received", zap.String("request_id", rid), zap.String("account", account), zap.String("gid", k.GID),
		zap.String("rst", k.Rst), zap.String("ec", k.Ec), zap.String("verdict", verdict))
	return kickbackOK(w)
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

// Kickback verdicts (metric label and log field).
const (
	kickbackSettled   = "settled"   // settled paynorm's own open create
	kickbackAgrees    = "agrees"    // matches a payment paynorm already knows
	kickbackIgnored   = "ignored"   // contradicts paynorm's records or names nothing of paynorm's
	kickbackRecurring = "recurring" // recurring billing: an unverified event only
)

// applyKickback weighs one kickback against paynorm's records and reports
// its verdict; an error means nothing durable happened (answer failure).
func (h *Handler) applyKickback(ctx context.Context, account string, k *jpayment.Kickback) (string, error) {
	ctx = context.WithoutCancel(ctx)
	gidID := normalize.PaymentID(account, k.GID)
	known, err := h.ledger.Get(ctx, gidID)
	switch {
	case err == nil:
		if kickbackAgreesWith(k, known.Pay) {
			return kickbackAgrees, nil
		}
		h.logger.Warn("kickback contradicts the recorded payment; ignored", zap.String("payment", gidID), zap.String("status", known.Rec.Status), zap.String("rst", k.Rst))
		return kickbackIgnored, nil
	case !errors.Is(err, store.ErrNotFound):
		return "", err
	}
	if k.Cod != "" && k.Rst <= jpayment.RstFailure {
		orderID := normalize.PaymentID(account, providers.CreateRecordKey(h.providers[account], k.Cod))
		pay := claimedPayment(account, k)
		ev := &ledger.Event{Provider: account, Data: ledger.EventData{Payment: pay, Kickback: kickbackFields(k)}}
		ev.Type = "payment." + ledger.Verb(pay.Status)
		ev.ID = ledger.StableEventID(account, ev.Type, k.GID, k.Rst)
		agree := func(seed *normalize.Payment) bool {
			if seed == nil || !k.HasAmounts || seed.Amount != k.Am || seed.Tax != k.Tx || seed.Shipping != k.Sf {
				return false
			}
			// The claim is read in the light of what paynorm asked for.
			pay.Capture, pay.Metadata, pay.CreatedAt = seed.Capture, seed.Metadata, seed.CreatedAt
			if pay.Status != normalize.StatusFailed {
				pay.Status = providers.StatusForJob(providers.JobFor(seed.Capture))
			}
			ev.Type = "payment." + ledger.Verb(pay.Status)
			ev.ID = ledger.StableEventID(account, ev.Type, k.GID, k.Rst)
			return true
		}
		ok, err := h.ledger.ClaimOrder(ctx, orderID, pay, agree, ev)
		if err != nil {
			return "", err
		}
		if ok {
			return kickbackSettled, nil
		}
	}
	if k.Acid != "" {
		return kickbackRecurring, h.ledger.Emit(ctx, recurringEvent(account, k))
	}
	h.logger.Warn("kickback for a payment paynorm did not start, or that contradicts its order; ignored", zap.String("account", account), zap.String("gid", k.GID))
	return kickbackIgnored, nil
}

// kickbackAgreesWith reports whether a kickback about a payment paynorm
// already has says what the record says.
func kickbackAgreesWith(k *jpayment.Kickback, pay *normalize.Payment) bool {
	if pay == nil {
		return false
	}
	if k.HasAmounts && (pay.Amount != k.Am || pay.Tax != k.Tx || pay.Shipping != k.Sf) {
		return false
	}
	failed := pay.Status == normalize.StatusFailed
	return (k.Rst == jpayment.RstSuccess) != failed && (k.Ap == "" || k.Ap == pay.ApprovalCode)
}

// claimedPayment is the payment a kickback describes.
func claimedPayment(account string, k *jpayment.Kickback) *normalize.Payment {
	now := time.Now().In(normalize.JST)
	pay := normalize.NewPayment(account, k.GID)
	pay.OrderID = k.Cod
	pay.SetAmounts(k.Am, k.Tx, k.Sf)
	pay.ApprovalCode, pay.TransactionID = k.Ap, k.God
	pay.CreatedAt, pay.UpdatedAt = &now, &now
	pay.ProviderData["gid"] = k.GID
	pay.ProviderData["settled_by"] = "kickback"
	if k.Ec != "" {
		pay.ProviderData["ec"] = k.Ec
	}
	pay.Status = normalize.StatusFailed
	if k.Rst == jpayment.RstSuccess {
		pay.Status = normalize.StatusAuthorized // refined by the order's capture mode
	}
	return pay
}

// recurringEvent announces a recurring-billing (自動課金) kickback. paynorm
// did not start the charge and cannot query it, so the event is a claim:
// verified false, and no payment record is made.
func recurringEvent(account string, k *jpayment.Kickback) *ledger.Event {
	sub := &ledger.Subscription{ID: normalize.PaymentID(account, k.Acid), Status: "active"}
	ev := &ledger.Event{Provider: account, Data: ledger.EventData{Subscription: sub, Kickback: kickbackFields(k)}}
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
	if k.Rst != jpayment.RstStopped {
		pay := claimedPayment(account, k)
		pay.Capture = normalize.CaptureAutomatic // recurring charges are CAPTURE only
		if pay.Status != normalize.StatusFailed {
			pay.Status = normalize.StatusCaptured
		}
		ev.Data.Payment = pay
	}
	ev.ID = ledger.StableEventID(account, ev.Type, k.GID, k.Rst, k.Acid, fmt.Sprint(k.Am, k.Tx, k.Sf))
	return ev
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
