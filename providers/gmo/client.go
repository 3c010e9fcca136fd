package gmo

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

// Test and production base URLs (wire notes §1).
const (
	TestEndpoint       = "https://pt01.mul-pay.jp"
	ProductionEndpoint = "https://p01.mul-pay.jp"
)

// Config is one GMO account as configured in the Caddyfile.
type Config struct {
	Account  string
	Endpoint string
	ShopID   string
	ShopPass string
	SiteID   string
	SitePass string
	// Timeout bounds each provider call.
	Timeout time.Duration
}

// Client makes guarded .idPass calls for one account.
type Client struct {
	cfg       Config
	http      *http.Client
	guard     *resilience.Guard
	observe   providers.Observer
	readTries int
}

// NewClient builds a client. guard and observe may be shared across config
// reloads; transport is the account's own http.Transport.
func NewClient(cfg Config, transport http.RoundTripper, guard *resilience.Guard, observe providers.Observer) *Client {
	switch strings.ToLower(cfg.Endpoint) {
	case "", "test":
		cfg.Endpoint = TestEndpoint
	case "production":
		cfg.Endpoint = ProductionEndpoint
	}
	cfg.Endpoint = strings.TrimRight(cfg.Endpoint, "/")
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if observe == nil {
		observe = func(providers.CallInfo) {}
	}
	return &Client{cfg: cfg, http: &http.Client{Transport: transport}, guard: guard, observe: observe, readTries: 3}
}

// callKind tells whether a call may be retried after it reached GMO.
type callKind int

const (
	read  callKind = iota // SearchTrade, SearchCard...: safe to repeat
	write                 // EntryTran, ExecTran, AlterTran...: never repeat once sent
)

// call posts one API and returns its values, or a normalized error. A GMO
// business error (ErrCode/ErrInfo) comes back as values plus error.
func (c *Client) call(ctx context.Context, api string, params []Param, kind callKind) (Values, *normalize.Error) {
	body, err := AppendForm(make([]byte, 0, 512), params)
	if err != nil {
		e := normalize.Newf("parameter_invalid", "A text field contains characters that GMO cannot take (Shift_JIS only).")
		e.MessageJa = "Shift_JISで表せない文字が含まれています。"
		return nil, e
	}
	tries := 2 // a write is repeated only when it provably never left paynorm
	if kind == read {
		tries = c.readTries
	}
	for attempt := 1; ; attempt++ {
		vals, nerr, sent := c.once(ctx, api, body, attempt)
		if nerr == nil || !nerr.Fault {
			return vals, nerr
		}
		retry := attempt < tries && ctx.Err() == nil && !isRejection(nerr) && (!sent || kind == read)
		if !retry {
			return vals, nerr
		}
		select {
		case <-time.After(time.Duration(attempt) * 50 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

func isRejection(e *normalize.Error) bool {
	return e.Code == "circuit_open" || e.Type == normalize.TypeRateLimited && !e.Fault && len(e.ProviderCodes) == 0
}

// once makes one guarded attempt. sent reports whether the request may have
// reached GMO.
func (c *Client) once(ctx context.Context, api string, body []byte, attempt int) (vals Values, nerr *normalize.Error, sent bool) {
	start := time.Now()
	info := providers.CallInfo{Account: c.cfg.Account, Kind: "gmo", API: api, RequestID: providers.RequestID(ctx), Attempt: attempt}
	var tracker egress.Sent
	gerr := c.guard.Do(ctx, func() error {
		cctx, cancel := context.WithTimeout(tracker.Trace(ctx), c.cfg.Timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(cctx, http.MethodPost, c.cfg.Endpoint+"/payment/"+api+".idPass", bytes.NewReader(body))
		if err != nil {
			return normalize.Newf("provider_misconfigured", "The GMO endpoint URL is invalid.")
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
			e := normalize.Newf("provider_unavailable", "GMO answered HTTP %d.", resp.StatusCode)
			if resp.StatusCode < 500 {
				e = normalize.Newf("invalid_response", "GMO answered HTTP %d.", resp.StatusCode)
			}
			e.Fault, e.Uncertain = true, true
			info.Code = http.StatusText(resp.StatusCode)
			return e
		}
		if len(raw) > MaxResponse {
			e := normalize.Newf("invalid_response", "GMO's answer is larger than paynorm accepts.")
			e.Fault, e.Uncertain = true, true
			return e
		}
		v, err := ParseResponse(raw)
		if err != nil {
			e := normalize.Newf("invalid_response", "GMO's answer is not a valid Shift_JIS key=value body.")
			e.Fault, e.Uncertain = true, true
			return e
		}
		vals = v
		if pairs := v.Errors(); len(pairs) > 0 {
			e := NormalizeErrors(c.cfg.Account, pairs)
			info.Code = pairs[0].Info
			// E90/E91 are GMO's own faults and leave the outcome open.
			if e.Type == normalize.TypeProviderUnavailable || e.Type == normalize.TypeProviderTimeout {
				e.Fault, e.Uncertain = true, true
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
		return vals, ne, sent
	}
	info.Outcome = providers.OutcomeOK
	c.observe(info)
	return vals, nil, true
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

// transportError classifies a failed exchange. Nothing about the request
// (card data, passwords) is put into the error text.
func transportError(err error, wrote bool, ctx context.Context) *normalize.Error {
	if !wrote {
		e := normalize.Newf("provider_unavailable", "paynorm could not connect to GMO; nothing was sent.")
		e.Fault = true
		return e
	}
	if ctx.Err() != nil || isTimeout(err) {
		e := normalize.New("provider_timeout")
		e.Fault, e.Uncertain = true, true
		return e
	}
	e := normalize.Newf("provider_unavailable", "The connection to GMO failed after the request was sent; the outcome is unknown.")
	e.Fault, e.Uncertain = true, true
	return e
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout() || errors.Is(err, context.DeadlineExceeded)
}
