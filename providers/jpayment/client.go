package jpayment

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/paynorm/paynorm/egress"
	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers"
	"github.com/paynorm/paynorm/resilience"
)

// ProductionEndpoint is the only j-payment host; there is no separate test
// host (test mode is a setting of the shop).
const ProductionEndpoint = "https://credit.j-payment.co.jp"

// Gateway paths.
const (
	PathToken   = "/gateway/gateway_token.aspx"
	PathGateway = "/gateway/gateway.aspx"
	PathReauth  = "/gateway/re_auth.aspx"
)

// Config is one j-payment account as configured in the Caddyfile.
type Config struct {
	Account  string
	Endpoint string
	// AID is the 店舗ID.
	AID string
	// Timeout bounds each provider call.
	Timeout time.Duration
}

// Client makes guarded gateway calls for one account. Every gateway job
// may move money, so a call is repeated only when it provably never left
// paynorm.
type Client struct {
	cfg     Config
	http    *http.Client
	guard   *resilience.Guard
	observe providers.Observer
}

// NewClient builds a client; guard and transport are the account's.
func NewClient(cfg Config, transport http.RoundTripper, guard *resilience.Guard, observe providers.Observer) *Client {
	switch strings.ToLower(cfg.Endpoint) {
	case "", "production":
		cfg.Endpoint = ProductionEndpoint
	}
	cfg.Endpoint = strings.TrimRight(cfg.Endpoint, "/")
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if observe == nil {
		observe = func(providers.CallInfo) {}
	}
	return &Client{cfg: cfg, http: &http.Client{Transport: transport}, guard: guard, observe: observe}
}

// call posts one gateway job. api names it in logs and metrics. A card
// company refusal comes back as the result plus its error.
func (c *Client) call(ctx context.Context, api, path string, params []Param) (*Result, *normalize.Error) {
	body := EncodeForm(append([]Param{{"aid", c.cfg.AID}}, params...))
	for attempt := 1; ; attempt++ {
		res, nerr, sent := c.once(ctx, api, path, body, attempt)
		if nerr == nil || !nerr.Fault || sent || attempt >= 2 || ctx.Err() != nil || nerr.Code == "circuit_open" {
			return res, nerr
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

// once makes one guarded attempt; sent reports whether the request may
// have reached j-payment.
func (c *Client) once(ctx context.Context, api, path string, body []byte, attempt int) (res *Result, nerr *normalize.Error, sent bool) {
	start := time.Now()
	info := providers.CallInfo{Account: c.cfg.Account, Kind: "jpayment", API: api, RequestID: providers.RequestID(ctx), Attempt: attempt}
	var tracker egress.Sent
	gerr := c.guard.Do(ctx, func() error {
		cctx, cancel := context.WithTimeout(tracker.Trace(ctx), c.cfg.Timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(cctx, http.MethodPost, c.cfg.Endpoint+path, bytes.NewReader(body))
		if err != nil {
			return normalize.Newf("provider_misconfigured", "The j-payment endpoint URL is invalid.")
		}
		req.Header.Set("Content-Type", ContentType)
		resp, err := c.http.Do(req)
		if err != nil {
			return transportError(err, tracker.Wrote(), cctx)
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse+1))
		if err != nil {
			return transportError(err, true, cctx)
		}
		if resp.StatusCode != http.StatusOK {
			e := normalize.Newf("provider_unavailable", "j-payment answered HTTP %d.", resp.StatusCode)
			if resp.StatusCode < 500 {
				e = normalize.Newf("invalid_response", "j-payment answered HTTP %d.", resp.StatusCode)
			}
			e.Fault, e.Uncertain = true, true
			info.Code = http.StatusText(resp.StatusCode)
			return e
		}
		ans, err := ParseAnswer(raw)
		if err != nil || len(raw) > MaxResponse {
			e := normalize.Newf("invalid_response", "j-payment's answer is not an ER:<code> body or a result line.")
			e.Fault, e.Uncertain = true, true
			return e
		}
		if ans.ErrCode != "" {
			// ER codes are raised before the card company is contacted: the
			// outcome is known (nothing happened) even for ER000/ER999.
			info.Code = ans.ErrCode
			return NormalizeCode(c.cfg.Account, ans.ErrCode)
		}
		res = ans.Result
		if res.Rst != "1" {
			info.Code = res.Ec
			e := NormalizeCode(c.cfg.Account, res.Ec)
			if res.Ec == "" {
				e = normalize.Newf("card_declined", "j-payment declined the payment without an error code.")
				e.Provider = c.cfg.Account
			}
			return e
		}
		return nil
	})
	sent = tracker.Wrote()
	info.Duration = time.Since(start)
	if gerr != nil {
		var ne *normalize.Error
		if !errors.As(gerr, &ne) {
			ne = normalize.New("processing_error")
		}
		if ne.Provider == "" {
			ne.Provider = c.cfg.Account
		}
		info.Outcome = outcomeOf(ne, sent)
		if info.Code == "" {
			info.Code = ne.Code
		}
		c.observe(info)
		return res, ne, sent
	}
	info.Outcome = providers.OutcomeOK
	c.observe(info)
	return res, nil, true
}

func outcomeOf(e *normalize.Error, sent bool) string {
	switch {
	case e.Code == "circuit_open" || (e.Type == normalize.TypeRateLimited && len(e.ProviderCodes) == 0):
		return providers.OutcomeRejected
	case !sent && e.Fault:
		return providers.OutcomeNotSent
	case e.Type == normalize.TypeProviderTimeout:
		return providers.OutcomeTimeout
	case e.Fault:
		return providers.OutcomeFault
	}
	return providers.OutcomeDeclined
}

// transportError classifies a failed exchange without putting any request
// data into the error.
func transportError(err error, wrote bool, ctx context.Context) *normalize.Error {
	if !wrote {
		e := normalize.Newf("provider_unavailable", "paynorm could not connect to j-payment; nothing was sent.")
		e.Fault = true
		return e
	}
	if ctx.Err() != nil || isTimeout(err) {
		e := normalize.New("provider_timeout")
		e.Fault, e.Uncertain = true, true
		return e
	}
	e := normalize.Newf("provider_unavailable", "The connection to j-payment failed after the request was sent; the outcome is unknown.")
	e.Fault, e.Uncertain = true, true
	return e
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout() || errors.Is(err, context.DeadlineExceeded)
}
