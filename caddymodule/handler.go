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
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/paynorm/paynorm/ledger"
	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers"
	"github.com/paynorm/paynorm/providers/gmo"
	"github.com/paynorm/paynorm/providers/jpayment"
	"github.com/paynorm/paynorm/resilience"
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
	// BodyTimeout bounds how long reading one request body may take
	// (default 10s): a client trickling a body byte by byte gets 408
	// request_timeout instead of holding a connection and a goroutine open.
	// Caddy's server timeouts (read_header, read_body) apply as well.
	BodyTimeout caddy.Duration `json:"body_timeout,omitempty"`
	// Clients are the apps allowed to call the API, each with its own key
	// and accounts. With any client configured, every /v1 call needs
	// "Authorization: Bearer <key>" of one of them (401 otherwise) and
	// reaches only that client's accounts (403 otherwise); Idempotency-Keys
	// are scoped per client. The provider notifications (kickbacks, GMO
	// results) keep their own path tokens, and /v1/health answers without
	// a key with its status only. None configured: no authentication (keep
	// the listener on loopback, see SECURITY.md).
	Clients []Client `json:"clients,omitempty"`
	// NotifyURL receives signed webhook events (kickbacks, payment changes).
	// Placeholders such as {env.NOTIFY_URL} are replaced at provision time.
	NotifyURL string `json:"notify_url,omitempty"`
	// NotifySecret is the HMAC-SHA256 key of the event signatures. Never logged.
	NotifySecret string `json:"notify_secret,omitempty"`
	// NotifyMaxAttempts failed deliveries of one event (default 30) move it
	// to the dead-letter list (admin API: GET /paynorm/dead_letters).
	NotifyMaxAttempts int `json:"notify_max_attempts,omitempty"`
	// NotifyMaxAge is how long an event is retried at most (default 72h):
	// older, a failed delivery moves it to the dead-letter list.
	NotifyMaxAge caddy.Duration `json:"notify_max_age,omitempty"`
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
	// GMONotifyToken is the secret last path segment of GMO's result
	// notification URL (/v1/webhooks/gmo/<token>, 結果通知プログラムURL), at
	// least 16 characters; placeholders are replaced at provision time.
	// Unset: GMO notifications are not received (404). Never logged.
	GMONotifyToken string `json:"gmo_notify_token,omitempty"`
	// GMONotifyAllow lists the CIDRs (or IPs) GMO result notifications may
	// come from; empty allows any source (the token still applies, and every
	// notification is verified with SearchTrade before anything changes).
	GMONotifyAllow []string `json:"gmo_notify_allow,omitempty"`
	// Store keeps idempotency keys and payment records (default: the
	// journal in Caddy's data directory).
	Store *StoreConfig `json:"store,omitempty"`
	// ResolveAfter is how long a pending or unknown payment waits before the
	// background resolver asks the provider (default 1m). An order the
	// provider never executed is settled as failed only after twice the
	// longest account timeout.
	ResolveAfter caddy.Duration `json:"resolve_after,omitempty"`

	providers map[string]providers.Provider
	order     []string
	// store keeps idempotency keys, payment records and the webhook outbox
	// (the journal by default, see Store).
	store store.Store
	// ledger is the one writer of payment records (over store).
	ledger   *ledger.Ledger
	stores   *storeState
	poolKeys []string
	logger   *zap.Logger
	metrics  *metrics
	webhooks webhooks
	// clients are the provisioned Clients (keys only as digests).
	clients []*apiClient
	// probes lets concurrent health checks share one store probe.
	probes *singleflight.Group
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
	h.probes = new(singleflight.Group)
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
	if h.BodyTimeout <= 0 {
		h.BodyTimeout = caddy.Duration(defaultBodyTimeout)
	}
	if lit := h.literalSecrets(); len(lit) > 0 {
		h.logger.Warn("secrets are written literally in the config: they show in the admin API's /config and in autosave.json; "+
			"take them from the environment ({env.NAME}) or a file ({file./path}), never {$NAME}", zap.Strings("settings", lit))
	}
	repl := caddy.NewReplacer()
	if err := h.provisionWebhooks(repl); err != nil {
		return err
	}
	h.providers = map[string]providers.Provider{}
	for i := range h.Accounts {
		a := h.Accounts[i] // a copy: placeholders are expanded in it only
		a.replace(repl)
		if filled := a.fillSandboxCredentials(&h.Accounts[i]); len(filled) > 0 {
			h.logger.Info("account on a loopback endpoint uses the sandbox's test credentials for the ones left empty",
				zap.String("account", a.Name), zap.Strings("settings", filled))
		}
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
		if a.Type == "gmo" {
			h.webhooks.gmoShops[a.ShopID] = a.Name // for GMO result notifications
		}
	}
	if err := h.provisionClients(repl); err != nil {
		return err
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
		cfg := gmo.Config{Account: a.Name, Endpoint: a.Endpoint, ShopID: a.ShopID, ShopPass: a.ShopPass,
			SiteID: a.SiteID, SitePass: a.SitePass, TenantName: a.TenantName, Timeout: time.Duration(a.Timeout)}
		if err := cfg.Check(); err != nil {
			return nil, fmt.Errorf("account %s: %v", a.Name, err)
		}
		return gmo.New(gmo.NewClient(cfg, st.transport, st.guard, observe)), nil
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
	// One request is one operation for the breakers of the accounts it
	// touches: a payment whose ExecTran faulted is one failure, however
	// many reads succeeded around it.
	ctx, endOp := resilience.Operation(ctx)
	defer endOp()
	w = &opWriter{ResponseWriter: w, end: endOp}
	route, status := h.route(ctx, w, r, strings.Trim(rest, "/"), rid)
	h.metrics.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	return nil
}

// opWriter ends the request's breaker operation before the first byte of
// the answer goes out: a client that has seen a failed payment's answer
// finds the breaker already counting it, so its next payment cannot slip
// past a breaker about to open.
type opWriter struct {
	http.ResponseWriter
	end func()
}

func (w *opWriter) WriteHeader(status int) {
	w.end()
	w.ResponseWriter.WriteHeader(status)
}

func (w *opWriter) Write(b []byte) (int, error) {
	w.end()
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (body read
// deadlines).
func (w *opWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

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
	// client is the app the request's key belongs to (nil: no clients are
	// configured, or a provider notification, or health without a key).
	client *apiClient
}

var routes = []apiRoute{
	{"GET", "health", "health", (*Handler).health},
	{"POST", "payments", "create_payment", (*Handler).createPayment},
	{"GET", "payments/{id}", "get_payment", func(h *Handler, c *call) int { return h.paymentOp(c, "get") }},
	{"POST", "payments/{id}/capture", "capture", func(h *Handler, c *call) int { return h.paymentOp(c, "capture") }},
	{"POST", "payments/{id}/cancel", "cancel", func(h *Handler, c *call) int { return h.paymentOp(c, "cancel") }},
	{"POST", "payments/{id}/reauthorize", "reauthorize", func(h *Handler, c *call) int { return h.paymentOp(c, "reauthorize") }},
	{"POST", "payments/{id}/complete", "complete", func(h *Handler, c *call) int { return h.paymentOp(c, "complete") }},
	{"GET", "webhooks/jpayment", "jpayment_kickback", (*Handler).jpaymentKickback},
	{"POST", "webhooks/jpayment", "jpayment_kickback", (*Handler).jpaymentKickback},
	{"POST", "webhooks/gmo/{token}", "gmo_notification", (*Handler).gmoNotification},
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
		if status, ok := h.authorize(rt, c); !ok {
			return rt.Name, status
		}
		return rt.Name, h.serveRoute(rt, c)
	}
	if pathMatched != "" {
		return pathMatched, h.fail(w, rid, normalize.Newf("method_not_allowed", "%s is not allowed on %s/%s.", r.Method, h.Prefix, path))
	}
	return "unknown", h.fail(w, rid, normalize.Newf("route_not_found", "No endpoint %s %s/%s.", r.Method, h.Prefix, path))
}

// defaultBodyTimeout bounds the read of one request body.
const defaultBodyTimeout = 10 * time.Second

// readBody reads at most MaxBodyBytes within BodyTimeout. The read
// deadline is cleared once the body is in: left set, it would end the
// connection's background read during a long provider call and cancel
// the request's context.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *normalize.Error) {
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(time.Now().Add(time.Duration(h.BodyTimeout))) == nil {
		defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, normalize.Newf("body_too_large", "The request body is larger than %d bytes.", h.MaxBodyBytes)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			w.Header().Set("Connection", "close")
			return nil, normalize.Newf("request_timeout", "The request body did not arrive within %v.", time.Duration(h.BodyTimeout))
		}
		return nil, normalize.Newf("invalid_json", "The request body could not be read.")
	}
	return body, nil
}

// pick resolves the account a request names; without a name, the default
// account or the only one the call may use. A client's key reaches only
// its own accounts (403 otherwise), and messages list only those.
func (h *Handler) pick(c *call, name string) (providers.Provider, *normalize.Error) {
	order := h.visible(c)
	if name == "" {
		name = h.DefaultProvider
		if name != "" && !c.permits(name) {
			name = ""
		}
	}
	if name == "" && len(order) == 1 {
		name = order[0]
	}
	if name == "" {
		e := normalize.Newf("parameter_missing", "provider is required: configured accounts are %s.", strings.Join(order, ", "))
		e.MessageJa = "providerを指定してください。"
		return nil, e.WithParam("provider")
	}
	p, ok := h.providers[name]
	if !ok {
		e := normalize.Newf("unknown_provider", "No provider account %q is configured (configured: %s).", name, strings.Join(order, ", "))
		return nil, e.WithParam("provider")
	}
	if !c.permits(name) {
		return nil, notPermitted(c, name, "provider")
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
	p, perr := h.pick(c, req.Provider)
	if perr != nil {
		return h.fail(w, rid, perr)
	}
	if terr := h.threeDS(p, req); terr != nil {
		return h.fail(w, rid, terr)
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
	// keys (providers.CreateRecordKey), never a payment: GET reads one (the
	// id of a create j-payment never named, which links to its payment once
	// settled), nothing else acts on it.
	if !ok || p == nil || strings.HasPrefix(key, "order.") && (op != "get" || providers.Queryable(p)) {
		e := normalize.Newf("resource_missing", "No payment %q: ids look like <account>_<key> and the account must be configured.", id)
		return h.fail(w, rid, e.WithParam("id"))
	}
	if !c.permits(account) {
		return h.fail(w, rid, notPermitted(c, account, "id"))
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
	case "complete":
		if derr := normalize.DecodeEmpty(body); derr != nil {
			return h.fail(w, rid, derr)
		}
		cp, ok := p.(providers.Completer)
		if !ok {
			e := providers.Unsupported(p.Account(), "completing a 3-D Secure payment on the server (its 3-D Secure runs in the browser before the token exists)")
			return h.fail(w, rid, e)
		}
		pay, err = h.followUp(ctx, p, key, op, func(ctx context.Context, t providers.Target) (*normalize.Payment, error) {
			if t.Known != nil && t.Known.Status != normalize.StatusRequiresAction {
				return nil, providers.StateError(p.Account(), "invalid_state", t.Known)
			}
			return cp.Complete(ctx, t)
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

// healthProbeTimeout bounds the store probe of one health check.
const healthProbeTimeout = 2 * time.Second

// health answers GET /v1/health. The store is probed for real (a health
// key written and read back within healthProbeTimeout): when it fails,
// every payment would fail with store_unavailable, so the answer is 503
// "unavailable" and a container health check fails. An account whose
// breaker is not closed makes it "degraded" (200: the process serves, the
// body says which account). With clients configured and no key, the
// answer is the status alone.
func (h *Handler) health(c *call) int {
	out := struct {
		Status    string          `json:"status"`
		Providers []healthAccount `json:"providers,omitempty"`
		Store     string          `json:"store,omitempty"`
		StoreOK   *bool           `json:"store_ok,omitempty"`
	}{Status: "ok"}
	for _, name := range h.visible(c) {
		p := h.providers[name]
		b := p.Breaker()
		if b != "closed" {
			out.Status = "degraded"
		}
		out.Providers = append(out.Providers, healthAccount{Name: name, Type: p.Kind(), Breaker: b})
	}
	status := http.StatusOK
	perr := h.probeStore(c.ctx)
	if perr != nil {
		out.Status, status = "unavailable", http.StatusServiceUnavailable
		h.logger.Error("store probe failed: the store cannot take writes", zap.String("request_id", c.rid), zap.Error(perr))
	}
	if len(h.clients) > 0 && c.client == nil {
		return writeJSON(c.w, status, struct {
			Status string `json:"status"`
		}{out.Status})
	}
	ok := perr == nil
	out.StoreOK = &ok
	if out.Providers == nil {
		out.Providers = []healthAccount{}
	}
	if h.stores != nil {
		out.Store = h.stores.backend
	}
	return writeJSON(c.w, status, out)
}

// probeStore writes and reads back the store's health key, at most
// healthProbeTimeout; concurrent health checks share one probe.
func (h *Handler) probeStore(ctx context.Context) error {
	_, err, _ := h.probes.Do("probe", func() (any, error) {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), healthProbeTimeout)
		defer cancel()
		return nil, h.store.Probe(pctx)
	})
	return err
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
