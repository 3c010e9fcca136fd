package gmoivr

import (
	"bytes"
	"context"
	"encoding/json"
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

// ProductionEndpoint is the IVR API host (seed 001 §2.1); it differs from
// the card API's.
const ProductionEndpoint = "https://gmopg-ivr.spv.jp"

// Config is one IVR account as configured in the Caddyfile.
type Config struct {
	Account     string
	Endpoint    string
	APIKey      string
	APIPassword string
	// ShopID and SiteID fill the gmopg block (shopId for authorizations,
	// siteId for card registration).
	ShopID, SiteID string
	Timeout        time.Duration
}

// Client makes guarded IVR calls for one account.
type Client struct {
	cfg       Config
	http      *http.Client
	guard     *resilience.Guard
	observe   providers.Observer
	readTries int
}

// NewClient builds a client on the account's transport and guard.
func NewClient(cfg Config, transport http.RoundTripper, guard *resilience.Guard, observe providers.Observer) *Client {
	if e := strings.ToLower(cfg.Endpoint); e == "" || e == "production" {
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

// MaxResponse bounds what paynorm reads from the IVR API.
const MaxResponse = 1 << 20

type credSetter interface{ set(key, pass string) }

// resultOf is the part of every answer the client classifies by.
type resultOf struct {
	ResultCode string `json:"resultCode"`
}

// call posts one API and decodes its JSON answer into out. AuthRegistApi is
// a write: once any byte of it may have left paynorm it is never repeated
// (a second registration is a second order for the operator). AuthSearchApi
// is a read and is retried on provider faults.
func (c *Client) call(ctx context.Context, api string, req credSetter, out any, write bool) *normalize.Error {
	req.set(c.cfg.APIKey, c.cfg.APIPassword)
	body, err := json.Marshal(req)
	req.set("", "") // do not keep the secret in request values longer than needed
	if err != nil {
		return normalize.Newf("parameter_invalid", "The phone authorization could not be encoded.")
	}
	tries := 2 // a write is repeated only when it provably never left paynorm
	if !write {
		tries = c.readTries
	}
	for attempt := 1; ; attempt++ {
		nerr, sent := c.once(ctx, api, body, out, attempt)
		if nerr == nil || !nerr.Fault {
			return nerr
		}
		if attempt >= tries || ctx.Err() != nil || nerr.Code == "circuit_open" || (sent && write) {
			return nerr
		}
		select {
		case <-time.After(time.Duration(attempt) * 50 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

func (c *Client) once(ctx context.Context, api string, body []byte, out any, attempt int) (nerr *normalize.Error, sent bool) {
	start := time.Now()
	info := providers.CallInfo{Account: c.cfg.Account, Kind: "gmo_ivr", API: api, RequestID: providers.RequestID(ctx), Attempt: attempt}
	var tracker egress.Sent
	gerr := c.guard.Do(ctx, func() error {
		cctx, cancel := context.WithTimeout(tracker.Trace(ctx), c.cfg.Timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(cctx, http.MethodPost, c.cfg.Endpoint+"/authorization/api/"+api, bytes.NewReader(body))
		if err != nil {
			return normalize.Newf("provider_misconfigured", "The GMO IVR endpoint URL is invalid.")
		}
		req.Header.Set("Content-Type", "application/json; charset=UTF-8")
		req.Header.Set("Accept", "application/json")
		resp, err := c.http.Do(req)
		if err != nil {
			return transportError(err, tracker.Wrote(), cctx)
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse+1))
		if err != nil {
			return transportError(err, true, cctx)
		}
		switch {
		case resp.StatusCode == http.StatusUnauthorized:
			// The IVR answers a bare 401 for a wrong key, password or source
			// IP: an operator problem, not a provider fault, and nothing ran.
			info.Code = "401"
			e := normalize.Newf("provider_misconfigured", "GMO IVR refused paynorm (HTTP 401): check api_key and api_password of this account, and that paynorm's egress IP is registered with GMO.")
			e.MessageJa = "GMO IVRが認証エラー(HTTP 401)を返しました。APIキー・APIパスワード、または送信元IPアドレスの登録を確認してください。"
			return e
		case resp.StatusCode >= 500:
			info.Code = http.StatusText(resp.StatusCode)
			e := normalize.Newf("provider_unavailable", "GMO IVR answered HTTP %d.", resp.StatusCode)
			e.Fault, e.Uncertain = true, true
			return e
		case resp.StatusCode != http.StatusOK:
			info.Code = http.StatusText(resp.StatusCode)
			e := normalize.Newf("invalid_response", "GMO IVR answered HTTP %d.", resp.StatusCode)
			e.Fault, e.Uncertain = true, true
			return e
		}
		var rc resultOf
		if len(raw) > MaxResponse || json.Unmarshal(raw, &rc) != nil || rc.ResultCode == "" || json.Unmarshal(raw, out) != nil {
			e := normalize.Newf("invalid_response", "GMO IVR's answer is not the JSON paynorm expects.")
			e.Fault, e.Uncertain = true, true
			return e
		}
		if rc.ResultCode == ResultSystemError {
			// 90 is the IVR's own failure: a fault for the breaker.
			info.Code = rc.ResultCode
			e := normalize.Newf("provider_unavailable", "GMO IVR reported a system error (result code 90).")
			e.Fault = true
			e.ProviderCodes = []normalize.ProviderCode{{Code: rc.ResultCode}}
			return e
		}
		if rc.ResultCode != ResultOK {
			info.Code = rc.ResultCode
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
		return ne, sent
	}
	info.Outcome = providers.OutcomeOK
	if info.Code != "" {
		info.Outcome = providers.OutcomeDeclined
	}
	c.observe(info)
	return nil, true
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

// transportError classifies a failed exchange; nothing of the request goes
// into the text.
func transportError(err error, wrote bool, ctx context.Context) *normalize.Error {
	if !wrote {
		e := normalize.Newf("provider_unavailable", "paynorm could not connect to GMO IVR; nothing was sent.")
		e.Fault = true
		return e
	}
	var t interface{ Timeout() bool }
	if ctx.Err() != nil || errors.As(err, &t) && t.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		e := normalize.New("provider_timeout")
		e.Fault, e.Uncertain = true, true
		return e
	}
	e := normalize.Newf("provider_unavailable", "The connection to GMO IVR failed after the request was sent; the outcome is unknown.")
	e.Fault, e.Uncertain = true, true
	return e
}
