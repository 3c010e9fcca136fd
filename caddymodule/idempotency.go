package caddymodule

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers/exchange"
	"github.com/paynorm/paynorm/store"
)

// Idempotency windows. The in-flight lease is derived per account (see
// idemLease); the replay window is fixed.
const (
	idempotencyTTL = 24 * time.Hour
	maxIdemKeyLen  = 255
)

// idemLease bounds how long a claim whose owner died blocks its key (the
// journal and bolt drop such claims at once on restart). It must outlast the request it
// guards, or a retry arriving while the first request still runs would
// start a second one: the worst case is a read-back of a payment paynorm
// has no record of, the wait for another operation on the same payment,
// and the operation itself with every call running to its timeout
// (opLease), all derived from the account's timeout and max_wait.
func (h *Handler) idemLease(account string) time.Duration {
	return h.callBudget(account, exchange.Read) + h.ledger.BusyWait + h.opLease(account)
}

// replayedHeaders are the response headers kept with a stored answer.
var replayedHeaders = []string{"Content-Type", "Retry-After"}

type idemCtxKey struct{}

// idempotencyKeyFrom returns the Idempotency-Key of the request in ctx.
func idempotencyKeyFrom(ctx context.Context) string {
	s, _ := ctx.Value(idemCtxKey{}).(string)
	return s
}

// serveRoute runs one matched route; a POST goes through the idempotency
// layer: the first answer to a key is stored and replayed for 24 h.
func (h *Handler) serveRoute(rt apiRoute, c *call) int {
	if c.r.Method != http.MethodPost {
		return rt.serve(h, c)
	}
	key := c.r.Header.Get("Idempotency-Key")
	if key == "" {
		return rt.serve(h, c)
	}
	if !validIdemKey(key) {
		e := normalize.Newf("parameter_invalid", "The Idempotency-Key header must be 1 to %d printable ASCII characters.", maxIdemKeyLen)
		e.MessageJa = "Idempotency-Keyヘッダーは" + strconv.Itoa(maxIdemKeyLen) + "文字以内の半角英数記号で指定してください。"
		return h.fail(c.w, c.rid, e.WithParam("Idempotency-Key"))
	}
	body, berr := h.readBody(c.w, c.r)
	if berr != nil {
		return h.fail(c.w, c.rid, berr)
	}
	c.r.Body = io.NopCloser(bytes.NewReader(body))
	account := h.idemScope(rt, c, body)
	if account == "" {
		// No account this caller may use: the request fails validation (or
		// 403) without reaching a provider, so there is nothing to protect.
		return rt.serve(h, c)
	}
	// Keys are per account and, with clients configured, per client: two
	// apps that happen to use the same key never see each other's answers
	// (nor, through the derived order id, each other's payments).
	scope, ctxKey := account, key
	if c.client != nil {
		scope, ctxKey = "client:"+c.client.name+"/"+account, c.client.name+"\x00"+key
	}
	ctx := context.WithoutCancel(c.ctx)
	fp := fingerprint(h.store.FingerprintKey(), c.r.Method, rt.Name, routeParams(c.params), body)
	state, prev, err := h.store.ClaimIdempotency(ctx, scope, key, fp, h.idemLease(account), idempotencyTTL)
	if err != nil {
		h.logger.Error("idempotency store failed", zap.String("request_id", c.rid), zap.Error(err))
		return h.fail(c.w, c.rid, storeFailure())
	}
	switch state {
	case store.IdemInFlight:
		return h.fail(c.w, c.rid, normalize.New("idempotency_key_in_use"))
	case store.IdemMismatch:
		return h.fail(c.w, c.rid, normalize.New("idempotency_key_reused").WithParam("Idempotency-Key"))
	case store.IdemReplay:
		for k, v := range prev.Headers {
			c.w.Header().Set(k, v)
		}
		c.w.Header().Set("Idempotent-Replayed", "true")
		c.w.WriteHeader(prev.Status)
		_, _ = c.w.Write(prev.Body)
		return prev.Status
	}

	rec := &recorder{w: c.w, status: http.StatusOK}
	orig := c.w
	c.w, c.ctx = rec, context.WithValue(c.ctx, idemCtxKey{}, ctxKey)
	status := rt.serve(h, c)
	c.w = orig
	if neverReachedProvider(rt.Name, rec.status, rec.body.Bytes()) {
		if err := h.store.ReleaseIdempotency(ctx, scope, key); err != nil {
			h.logger.Warn("idempotency release failed", zap.String("request_id", c.rid), zap.Error(err))
		}
	} else {
		resp := store.Response{Status: rec.status, Body: rec.body.Bytes(), Headers: map[string]string{}}
		for _, k := range replayedHeaders {
			if v := orig.Header().Get(k); v != "" {
				resp.Headers[k] = v
			}
		}
		if err := h.store.FinishIdempotency(ctx, scope, key, resp, idempotencyTTL); err != nil {
			// The claim runs out with its lease; the derived order id still
			// stops a retry from charging twice.
			h.logger.Error("idempotency store failed", zap.String("request_id", c.rid), zap.Error(err))
		}
	}
	orig.WriteHeader(rec.status)
	_, _ = orig.Write(rec.body.Bytes())
	return status
}

// idemScope is the account the request acts on: keys are per account.
func (h *Handler) idemScope(rt apiRoute, c *call, body []byte) string {
	if id := c.params["id"]; id != "" && strings.HasPrefix(rt.Pattern, "payments/") {
		account, _, ok := normalize.SplitPaymentID(id)
		if _, configured := h.providers[account]; ok && configured && c.permits(account) {
			return account
		}
		return ""
	}
	var named struct {
		Provider string `json:"provider"`
	}
	_ = json.Unmarshal(body, &named)
	if q := c.r.URL.Query().Get("provider"); q != "" {
		named.Provider = q
	}
	p, err := h.pick(c, named.Provider)
	if err != nil {
		return ""
	}
	return p.Account()
}

func validIdemKey(k string) bool {
	if len(k) == 0 || len(k) > maxIdemKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// fingerprint identifies a request: method, route, payment id and the body
// with JSON whitespace and key order normalized away and card data left
// out, as an HMAC-SHA256 under the store's own random key. A fingerprint
// is kept for 24 h: an unkeyed hash of a body holding a security code
// gave the code back by brute force in milliseconds (issue 11; PCI DSS
// 3.3.1 allows no sensitive authentication data after authorization, in
// any form). Without the card fields and without the key, a stored
// fingerprint says nothing about the request.
func fingerprint(key []byte, method, route, id string, body []byte) string {
	m := hmac.New(sha256.New, key)
	for _, s := range []string{method, route, id} {
		m.Write([]byte(s))
		m.Write([]byte{0})
	}
	m.Write(canonicalJSON(body))
	return hex.EncodeToString(m.Sum(nil))
}

// cardDataKeys are the JSON keys of card data, compared in lower case
// without '_' and '-': the unified API's token and security_code, the
// passthrough's token, cardNo, expire, securityCode and pin, and the
// expiry of a stored card. The fingerprint leaves them out, so a retry
// with a fresh token of the same card replays the first answer.
var cardDataKeys = map[string]bool{
	"token": true, "securitycode": true, "cardno": true, "cardnumber": true, "expire": true, "expiry": true,
	"expirymonth": true, "expiryyear": true, "pin": true, "cvc": true, "cvv": true,
}

func isCardDataKey(k string) bool {
	k = strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(k))
	return cardDataKeys[k]
}

// withoutCardData drops card data keys from every object in v.
func withoutCardData(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if isCardDataKey(k) {
				delete(x, k)
				continue
			}
			x[k] = withoutCardData(e)
		}
	case []any:
		for i, e := range x {
			x[i] = withoutCardData(e)
		}
	}
	return v
}

// canonicalJSON re-encodes a JSON document with sorted keys, no spaces and
// no card data; numbers keep their literal text. Anything else is returned
// as it is (such a body fails validation, which releases its key at once).
func canonicalJSON(body []byte) []byte {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil || dec.More() {
		return body
	}
	out, err := json.Marshal(withoutCardData(v))
	if err != nil {
		return body
	}
	return out
}

// neverReachedProvider tells answers that provably moved nothing: paynorm's
// own validation, its limiter and an open breaker. Such a key is released
// so the corrected request may use it; everything else is kept and replayed.
func neverReachedProvider(route string, status int, body []byte) bool {
	if status < 400 {
		return false
	}
	var b struct {
		Error *struct {
			Type          string            `json:"type"`
			Code          string            `json:"code"`
			ProviderCodes []json.RawMessage `json:"provider_codes"`
			Payment       json.RawMessage   `json:"payment"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &b) != nil || b.Error == nil {
		return false
	}
	e := b.Error
	if len(e.ProviderCodes) > 0 || len(e.Payment) > 0 && string(e.Payment) != "null" {
		return false
	}
	switch {
	case e.Type == normalize.TypeInvalidRequest, e.Code == "circuit_open", e.Code == "store_unavailable":
		return true
	case e.Type == normalize.TypeRateLimited:
		return true // no provider codes: paynorm's own limiter
	case e.Type == normalize.TypeProviderUnavailable && route == "create_payment":
		// A create answered without a payment: the provider refused before
		// anything could move money (GMO's EntryTran, a 503 in front of
		// j-payment's gateway; a sent charge always carries its payment),
		// so the app may retry with the same key after Retry-After.
		return true
	}
	return false
}

// recorder holds an answer back until it is stored. Headers go straight to
// the real writer.
type recorder struct {
	w      http.ResponseWriter
	status int
	body   bytes.Buffer
	wrote  bool
}

func (r *recorder) Header() http.Header { return r.w.Header() }

func (r *recorder) WriteHeader(status int) {
	if !r.wrote {
		r.status, r.wrote = status, true
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.body.Write(b)
}
