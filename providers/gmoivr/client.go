package gmoivr

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers"
	"github.com/paynorm/paynorm/providers/exchange"
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
	// ShopPass is the shop's ショップパスワード: never sent to the IVR, it
	// verifies the checkString of the IVR's ExecTran result (seed 001 item
	// 58). Empty: the result is taken unverified.
	ShopPass string
	Timeout  time.Duration
}

// Client makes guarded IVR calls for one account.
type Client struct {
	cfg Config
	x   *exchange.Caller
}

// NewClient builds a client on the account's transport and guard.
func NewClient(cfg Config, transport http.RoundTripper, guard *resilience.Guard, observe providers.Observer) *Client {
	if e := strings.ToLower(cfg.Endpoint); e == "" || e == "production" {
		cfg.Endpoint = ProductionEndpoint
	}
	cfg.Endpoint = strings.TrimRight(cfg.Endpoint, "/")
	return &Client{cfg: cfg, x: &exchange.Caller{Account: cfg.Account, Kind: "gmo_ivr", Label: "GMO IVR",
		Client: &http.Client{Transport: transport}, Guard: guard, Observe: observe, Timeout: cfg.Timeout, MaxBody: MaxResponse}}
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
	kind := exchange.Read
	if write {
		kind = exchange.Write
	}
	url := c.cfg.Endpoint + "/authorization/api/" + api
	return c.x.Call(ctx, api, kind, func(ctx context.Context) (*http.Request, error) {
		r, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err == nil {
			r.Header.Set("Content-Type", "application/json; charset=UTF-8")
			r.Header.Set("Accept", "application/json")
		}
		return r, err
	}, func(status int, raw []byte) (string, *normalize.Error) {
		switch {
		case status == http.StatusUnauthorized:
			// The IVR answers a bare 401 for a wrong key, password or source
			// IP: an operator problem, not a provider fault, and nothing ran.
			e := normalize.Newf("provider_misconfigured", "GMO IVR refused paynorm (HTTP 401): check api_key and api_password of this account, and that paynorm's egress IP is registered with GMO.")
			e.MessageJa = "GMO IVRが認証エラー(HTTP 401)を返しました。APIキー・APIパスワード、または送信元IPアドレスの登録を確認してください。"
			return "401", e
		case status != http.StatusOK:
			return http.StatusText(status), exchange.StatusError("GMO IVR", status)
		}
		var rc resultOf
		if json.Unmarshal(raw, &rc) != nil || rc.ResultCode == "" || json.Unmarshal(raw, out) != nil {
			return "", exchange.Unusable("GMO IVR's answer is not the JSON paynorm expects.")
		}
		switch rc.ResultCode {
		case ResultOK:
			return "", nil
		case ResultSystemError:
			// 90 is the IVR's own failure: a fault for the breaker. On a
			// write (AuthRegistApi) it says nothing about whether the order
			// was registered: uncertain, never resent (a second
			// registration is a second order for the operator).
			e := normalize.Newf("provider_unavailable", "GMO IVR reported a system error (result code 90).")
			e.Fault = true
			if write {
				e.Uncertain, e.Retryable = true, false
			}
			e.ProviderCodes = []normalize.ProviderCode{{Code: rc.ResultCode}}
			return rc.ResultCode, e
		}
		// Other result codes are business answers the provider layer reads
		// from out; the log line shows them as declined.
		return rc.ResultCode, nil
	})
}
