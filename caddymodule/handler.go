package caddymodule

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/paynorm/paynorm/ledger"
	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers"
	"github.com/paynorm/paynorm/providers/gmo"
	"github.com/paynorm/paynorm/providers/jpayment"
	"github.com/paynorm/paynorm/store"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler serves paynorm's unified payment API and translates it to the
// configured provider accounts.
type Handler struct {
	// Prefix is the path the API is served under (default "/v1").
	Prefix string `json:"prefix,omitempty"`
	// Accounts are the provider accounts apps may use.
	Accounts []Account `json:"accounts,omitempty"`
	// DefaultProvider is used when a create request names no provider
	// (default: the only account, when there is one).
	DefaultProvider string `json:"default_provider,omitempty"`
	// MaxBodyBytes bounds request bodies (default 65536).
	MaxBodyBytes int64 `json:"max_body_bytes,omitempty"`
	// NotifyURL receives signed webhook events (kickbacks, payment changes).
	// Placeholders such as {env.NOTIFY_URL} are replaced at provision time.
	NotifyURL string `json:"notify_url,omitempty"`
	// NotifySecret is the HMAC-SHA256 key of the event signatures. Never logged.
	NotifySecret string `json:"notify_secret,omitempty"`
	// KickbackAllow lists the CIDRs (or IPs) j-payment kickbacks may come
	// from; empty allows any source (the secret path token still applies).
	KickbackAllow []string `json:"kickback_allow,omitempty"`
	// KickbackToken is the secret last path segment of the j-payment
	// kickback URL (/v1/webhooks/jpayment/<token>), at least 16
	// characters; placeholders such as {env.PAYNORM_KICKBACK_TOKEN} are
	// replaced at provision time. Required with a j-payment account; "off"
	// accepts kickbacks on /v1/webhooks/jpayment without one (sandbox only).
	// Never logged.
	KickbackToken string `json:"kickback_token,omitempty"`
	// Store keeps idempotency keys and payment records (default: bolt in
	// Caddy's data directory).
	Store *StoreConfig `json:"store,omitempty"`
	// ResolveAfter is how long a pending or unknown payment waits before the
	// background resolver asks the provider (default 1m). An order the
	// provider never executed is settled as failed only after twice the
	// longest account timeout.
	ResolveAfter caddy.Duration `json:"resolve_after,omitempty"`

	providers map[string]providers.Provider
	order     []string
	// store keeps idempotency keys, payment records and the webhook outbox
	// (bolt by default, see Store).
	store store.Store
	// ledger is the one writer of payment records (over store).
	ledger   *ledger.Ledger
	stores   *storeState
	poolKeys []string
	logger   *zap.Logger
	metrics  *metrics
	webhooks webhooks
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.paynorm",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision builds the provider clients, sharing breaker, limiter and
// connections with earlier configs through the usage pool.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.metrics = sharedMetrics()
	if err := h.metrics.register(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	if h.Prefix == "" {
		h.Prefix = "/v1"
	}
	h.Prefix = "/" + strings.Trim(h.Prefix, "/")
	if h.MaxBodyBytes <= 0 {
		h.MaxBodyBytes = 64 << 10
	}
	repl := caddy.NewReplacer()
	if err := h.provisionWebhooks(repl); err != nil {
		return err
	}
	h.providers = map[string]providers.Provider{}
	for i := range h.Accounts {
		a := h.Accounts[i] // a copy: placeholders are expanded in it only
		a.replace(repl)
		if err := a.Validate(); err != nil {
			return err
		}
		if _, dup := h.providers[a.Name]; dup {
			return fmt.Errorf("account %s is configured twice", a.Name)
		}
		st, key, err := loadAccountState(&a, h.metrics, h.logger)
		if err != nil {
			return fmt.Errorf("account %s: %v", a.Name, err)
		}
		h.poolKeys = append(h.poolKeys, key)
		p, err := h.newProvider(&a, st)
		if err != nil {
			return err
		}
		h.providers[a.Name] = p
		h.order = append(h.order, a.Name)
	}
	if err := h.provisionStore(repl); err != nil {
		return err
	}
	return h.startWebhooks()
}

func (h *Handler) newProvider(a *Account, st *accountState) (providers.Provider, error) {
	observe := h.observer()
	switch a.Type {
	case "gmo":
		c := gmo.NewClient(gmo.Config{Account: a.Name, Endpoint: a.Endpoint, ShopID: a.ShopID, ShopPass: a.ShopPass,
			SiteID: a.SiteID, SitePass: a.SitePass, Timeout: time.Duration(a.Timeout)}, st.transport, st.guard, observe)
		return gmo.New(c), nil
	case "jpayment":
		c := jpayment.NewClient(jpayment.Config{Account: a.Name, Endpoint: a.Endpoint, AID: a.AID,
			Timeout: time.Duration(a.Timeout)}, st.transport, st.guard, observe)
		return jpayment.New(c), nil
	case "gmo_ivr":
		return newIVRProvider(a, st, observe), nil
	}
	return nil, fmt.Errorf("account %s: unknown type %q", a.Name, a.Type)
}

// observer logs one line per provider call and feeds the metrics. Only
// names, codes and timings are logged: never parameters.
func (h *Handler) observer() providers.Observer {
	return func(ci providers.CallInfo) {
		h.metrics.observe(ci)
		fields := []zap.Field{zap.String("account", ci.Account), zap.String("api", ci.API),
			zap.String("outcome", ci.Outcome), zap.String("code", ci.Code),
			zap.Duration("duration", ci.Duration), zap.String("request_id", ci.RequestID), zap.Int("attempt", ci.Attempt)}
		switch ci.Outcome {
		case providers.OutcomeOK, providers.OutcomeDeclined:
			h.logger.Info("provider call", fields...)
		default:
			h.logger.Warn("provider call", fields...)
		}
	}
}

// Validate checks the default provider names a configured account.
func (h *Handler) Validate() error {
	if h.DefaultProvider != "" {
		if _, ok := h.providers[h.DefaultProvider]; !ok {
			return fmt.Errorf("default_provider %q is not a configured account", h.DefaultProvider)
		}
	}
	return nil
}

// Cleanup releases this config's hold on the shared account state.
func (h *Handler) Cleanup() error {
	h.webhooks.stop()
	if h.stores != nil {
		h.stores.resolver.unregister(h.providers)
	}
	for _, k := range h.poolKeys {
		_, _ = pool.Delete(k)
	}
	return nil
}

// ServeHTTP routes requests under the prefix; everything else goes on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	rest, ok := strings.CutPrefix(r.URL.Path, h.Prefix)
	if !ok || (rest != "" && rest[0] != '/') {
		return next.ServeHTTP(w, r)
	}
	rid := requestID(r)
	w.Header().Set("X-Request-Id", rid)
	ctx := providers.WithRequestID(r.Context(), rid)
	route, status := h.route(ctx, w, r, strings.Trim(rest, "/"), rid)
	h.metrics.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	return nil
}

// requestID keeps a sane caller-supplied X-Request-Id or makes one.
func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 128 && isToken(id) {
		return id
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "req_" + hex.EncodeToString(b[:])
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// apiRoute is one endpoint of the unified API. Pattern segments in braces
// match any one path segment; the table is also checked against openapi.yaml.
type apiRoute struct {
	Method, Pattern, Name string
	serve                 func(h *Handler, c *call) int
}

// call is one API request on its way through the handler.
type call struct {
	ctx    context.Context
	w      http.ResponseWriter
	r      *http.Request
	rid    string
	params map[string]string
}

var routes = []apiRoute{
	{"GET", "health", "health", func(h *Handler, c *call) int { return h.health(c.w) }},
	{"POST", "payments", "create_payment", (*Handler).createPayment},
	{"GET", "payments/{id}", "get_payment", func(h *Handler, c *call) int { return h.paymentOp(c, "get") }},
	{"POST", "payments/{id}/capture", "capture", func(h *Handler, c *call) int { return h.paymentOp(c, "capture") }},
	{"POST", "payments/{id}/cancel", "cancel", func(h *Handler, c *call) int { return h.paymentOp(c, "cancel") }},
	{"POST", "payments/{id}/reauthorize", "reauthorize", func(h *Handler, c *call) int { return h.paymentOp(c, "reauthorize") }},
	{"GET", "webhooks/jpayment", "jpayment_kickback", (*Handler).jpaymentKickback},
	{"POST", "webhooks/jpayment", "jpayment_kickback", (*Handler).jpaymentKickback},
	{"GET", "webhooks/jpayment/{token}", "jpayment_kickback", (*Handler).jpaymentKickback},
	{"POST", "webhooks/jpayment/{token}", "jpayment_kickback", (*Handler).jpaymentKickback},
}

// match reports whether path fits pattern and collects its parameters.
func match(pattern, path string) (map[string]string, bool) {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return nil, false
	}
	var params map[string]string
	for i, p := range ps {
		if strings.HasPrefix(p, "{") {
			if xs[i] == "" {
				return nil, false
			}
			if params == nil {
				params = map[string]string{}
			}
			params[strings.Trim(p, "{}")] = xs[i]
			continue
		}
		if p != xs[i] {
			return nil, false
		}
	}
	return params, true
}

// route dispatches one API request and reports the route label and status.
func (h *Handler) route(ctx context.Context, w http.ResponseWriter, r *http.Request, path, rid string) (string, int) {
	c := &call{ctx: ctx, w: w, r: r, rid: rid}
	pathMatched := ""
	for _, rt := range routes {
		params, ok := match(rt.Pattern, path)
		if !ok {
			continue
		}
		if rt.Method != r.Method {
			pathMatched = rt.Name
			continue
		}
		c.params = params
		return rt.Name, h.serveRoute(rt, c)
	}
	if pathMatched != "" {
		return pathMatched, h.fail(w, rid, normalize.Newf("method_not_allowed", "%s is not allowed on %s/%s.", r.Method, h.Prefix, path))
	}
	return "unknown", h.fail(w, rid, normalize.Newf("route_not_found", "No endpoint %s %s/%s.", r.Method, h.Prefix, path))
}

// readBody reads at most MaxBodyBytes.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *normalize.Error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, normalize.Newf("body_too_large", "The request body is larger than %d bytes.", h.MaxBodyBytes)
		}
		return nil, normalize.Newf("invalid_json", "The request body could not be read.")
	}
	return body, nil
}

// pick resolves the account a create request names.
func (h *Handler) pick(name string) (providers.Provider, *normalize.Error) {
	if name == "" {
		name = h.DefaultProvider
	}
	if name == "" && len(h.order) == 1 {
		name = h.order[0]
	}
	if name == "" {
		e := normalize.Newf("parameter_missing", "provider is required: configured accounts are %s.", strings.Join(h.order, ", "))
		e.MessageJa = "providerを指定してください。"
		return nil, e.WithParam("provider")
	}
	p, ok := h.providers[name]
	if !ok {
		e := normalize.Newf("unknown_provider", "No provider account %q is configured (configured: %s).", name, strings.Join(h.order, ", "))
		return nil, e.WithParam("provider")
	}
	return p, nil
}

func (h *Handler) createPayment(c *call) int {
	ctx, w, r, rid := c.ctx, c.w, c.r, c.rid
	body, berr := h.readBody(w, r)
	if berr != nil {
		return h.fail(w, rid, berr)
	}
	req, verr := normalize.DecodeCreatePayment(body)
	if verr != nil {
		return h.fail(w, rid, verr)
	}
	p, perr := h.pick(req.Provider)
	if perr != nil {
		return h.fail(w, rid, perr)
	}
	if req.OrderID == "" {
		req.OrderID = orderIDFor(ctx, p.Account())
	}
	if !normalize.ValidOrderID(req.OrderID, 50) {
		pay, err := p.CreatePayment(ctx, req) // the provider names the limit
		return h.answer(w, rid, pay, err)
	}
	seed := normalize.NewPayment(p.Account(), req.OrderID)
	seed.SetAmounts(req.Amount, req.Tax, req.Shipping)
	seed.Capture, seed.Metadata = req.Capture, req.Metadata
	pay, err := h.createRecorded(ctx, p, req, seed)
	return h.answer(w, rid, pay, err)
}

// paymentOp runs GET and the follow-up operations on one payment id.
func (h *Handler) paymentOp(c *call, op string) int {
	ctx, w, r, rid, id := c.ctx, c.w, c.r, c.rid, c.params["id"]
	account, key, ok := normalize.SplitPaymentID(id)
	p := h.providers[account]
	// "order." keys name create records of providers that assign their own
	// keys (providers.CreateRecordKey), never a payment.
	if !ok || p == nil || strings.HasPrefix(key, "order.") {
		e := normalize.Newf("resource_missing", "No payment %q: ids look like <account>_<key> and the account must be configured.", id)
		return h.fail(w, rid, e.WithParam("id"))
	}
	var body []byte
	if op != "get" {
		var berr *normalize.Error
		if body, berr = h.readBody(w, r); berr != nil {
			return h.fail(w, rid, berr)
		}
	}
	var pay *normalize.Payment
	var err error
	switch op {
	case "get":
		pay, err = h.getMerged(ctx, p, key)
	case "capture":
		req, derr := normalize.DecodeCapture(body)
		if derr != nil {
			return h.fail(w, rid, derr)
		}
		pay, err = h.followUp(ctx, p, key, op, func(ctx context.Context, t providers.Target) (*normalize.Payment, error) {
			return p.Capture(ctx, t, req)
		})
	case "cancel":
		if derr := normalize.DecodeEmpty(body); derr != nil {
			return h.fail(w, rid, derr)
		}
		pay, err = h.followUp(ctx, p, key, op, func(ctx context.Context, t providers.Target) (*normalize.Payment, error) { return p.Cancel(ctx, t) })
	case "reauthorize":
		req, derr := normalize.DecodeReauthorize(body)
		if derr != nil {
			return h.fail(w, rid, derr)
		}
		pay, err = h.followUp(ctx, p, key, op, func(ctx context.Context, t providers.Target) (*normalize.Payment, error) {
			return p.Reauthorize(ctx, t, req)
		})
	}
	return h.answer(w, rid, pay, err)
}

func (h *Handler) answer(w http.ResponseWriter, rid string, pay *normalize.Payment, err error) int {
	if err != nil {
		var ne *normalize.Error
		if !errors.As(err, &ne) {
			ne = normalize.New("processing_error")
		}
		return h.fail(w, rid, ne)
	}
	return writeJSON(w, http.StatusOK, pay)
}

// fail writes the normalized error body.
func (h *Handler) fail(w http.ResponseWriter, rid string, e *normalize.Error) int {
	e.RequestID = rid
	if ra := e.RetryAfterHeader(); ra != "" {
		w.Header().Set("Retry-After", ra)
	} else if e.Type == normalize.TypeRateLimited || e.Type == normalize.TypeProviderUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	if e.Status >= 500 {
		h.logger.Warn("request failed", zap.String("request_id", rid), zap.String("type", e.Type), zap.String("code", e.Code))
	}
	return writeJSON(w, e.HTTPStatus(), normalize.Body{Error: e})
}

func writeJSON(w http.ResponseWriter, status int, v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"type":"provider_error","code":"processing_error","message":"paynorm could not encode its answer.","message_ja":"応答を生成できませんでした。","retryable":false,"param":null}}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return status
}

type healthAccount struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Breaker string `json:"breaker"`
}

func (h *Handler) health(w http.ResponseWriter) int {
	out := struct {
		Status    string          `json:"status"`
		Providers []healthAccount `json:"providers"`
		Store     string          `json:"store,omitempty"`
	}{Status: "ok", Providers: []healthAccount{}}
	if h.stores != nil {
		out.Store = h.stores.backend
	}
	for _, name := range h.order {
		p := h.providers[name]
		b := p.Breaker()
		if b != "closed" {
			out.Status = "degraded"
		}
		out.Providers = append(out.Providers, healthAccount{Name: name, Type: p.Kind(), Breaker: b})
	}
	return writeJSON(w, http.StatusOK, out)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
