package jpayment

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers"
	"github.com/paynorm/paynorm/providers/exchange"
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
	cfg Config
	x   *exchange.Caller
}

// NewClient builds a client; guard and transport are the account's.
func NewClient(cfg Config, transport http.RoundTripper, guard *resilience.Guard, observe providers.Observer) *Client {
	switch strings.ToLower(cfg.Endpoint) {
	case "", "production":
		cfg.Endpoint = ProductionEndpoint
	}
	cfg.Endpoint = strings.TrimRight(cfg.Endpoint, "/")
	return &Client{cfg: cfg, x: &exchange.Caller{Account: cfg.Account, Kind: "jpayment", Label: "j-payment",
		Client: &http.Client{Transport: transport}, Guard: guard, Observe: observe, Timeout: cfg.Timeout, MaxBody: MaxResponse}}
}

// call posts one gateway job. api names it in logs and metrics. A card
// company refusal comes back as the result plus its error.
func (c *Client) call(ctx context.Context, api, path string, params []Param) (*Result, *normalize.Error) {
	body := EncodeForm(append([]Param{{"aid", c.cfg.AID}}, params...))
	url := c.cfg.Endpoint + path
	var res *Result
	nerr := c.x.Call(ctx, api, exchange.Write, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", ContentType)
		}
		return req, err
	}, func(status int, raw []byte) (string, *normalize.Error) {
		res = nil
		if status != http.StatusOK {
			return http.StatusText(status), exchange.StatusError("j-payment", status)
		}
		ans, err := ParseAnswer(raw)
		if err != nil {
			return "", exchange.Unusable("j-payment's answer is not an ER:<code> body or a result line.")
		}
		if ans.ErrCode != "" {
			// ER codes are raised before the card company is contacted: the
			// outcome is known (nothing happened) even for ER000/ER999.
			return ans.ErrCode, NormalizeCode(c.cfg.Account, ans.ErrCode)
		}
		res = ans.Result
		if res.Rst != "1" {
			e := NormalizeCode(c.cfg.Account, res.Ec)
			if res.Ec == "" {
				e = normalize.Newf("card_declined", "j-payment declined the payment without an error code.")
				e.Provider = c.cfg.Account
			}
			return res.Ec, e
		}
		return "", nil
	})
	return res, nerr
}
