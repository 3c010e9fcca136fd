package gmo

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
	// TenantName is the shop name the card holder's 3-D Secure page shows
	// (EntryTran TdTenantName): sent EUC-JP encoded, then Base64, and GMO
	// takes at most 25 bytes of that (18 ASCII characters or 9 kanji).
	// Empty: GMO shows the name registered with the contract. Check it with
	// Config.Check when the configuration loads.
	TenantName string
}

// Check reports a configuration GMO would refuse on every 3-D Secure
// payment (today: a tenant name that does not encode within 25 bytes).
func (c Config) Check() error {
	_, err := EncodeTenantName(c.TenantName)
	return err
}

// Client makes guarded .idPass calls for one account.
type Client struct {
	cfg Config
	x   *exchange.Caller
	// tenant is TdTenantName on the wire; tenantErr says why TenantName
	// cannot be sent (a 3-D Secure create is then refused before EntryTran).
	tenant    string
	tenantErr error
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
	c := &Client{cfg: cfg, x: &exchange.Caller{Account: cfg.Account, Kind: "gmo", Label: "GMO",
		Client: &http.Client{Transport: transport}, Guard: guard, Observe: observe, Timeout: cfg.Timeout, MaxBody: MaxResponse}}
	c.tenant, c.tenantErr = EncodeTenantName(cfg.TenantName)
	return c
}

// Kinds of GMO calls.
const (
	read     = exchange.Read     // SearchTrade, SearchCard...: safe to repeat
	write    = exchange.Write    // ExecTran, AlterTran...: never repeat once sent
	register = exchange.Register // EntryTran: never repeated, moves no money
)

// call posts one API and returns its values, or a normalized error. A GMO
// business error (ErrCode/ErrInfo) comes back as values plus error.
func (c *Client) call(ctx context.Context, api string, params []Param, kind exchange.Kind) (Values, *normalize.Error) {
	body, err := AppendForm(make([]byte, 0, 512), params)
	if err != nil {
		e := normalize.Newf("parameter_invalid", "A text field contains characters that GMO cannot take (Shift_JIS only).")
		e.MessageJa = "Shift_JISで表せない文字が含まれています。"
		return nil, e
	}
	url := c.cfg.Endpoint + "/payment/" + api + ".idPass"
	var vals Values
	nerr := c.x.Call(ctx, api, kind, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", ContentType)
		}
		return req, err
	}, func(status int, raw []byte) (string, *normalize.Error) {
		vals = nil
		if status != http.StatusOK {
			return http.StatusText(status), exchange.StatusError("GMO", status)
		}
		v, err := ParseResponse(raw)
		if err != nil {
			return "", exchange.Unusable("GMO's answer is not a valid Shift_JIS key=value body.")
		}
		vals = v
		pairs := v.Errors()
		if len(pairs) == 0 {
			return "", nil
		}
		e := NormalizeErrors(c.cfg.Account, pairs)
		// E90/E91 are GMO's own faults and leave the outcome open.
		if e.Type == normalize.TypeProviderUnavailable || e.Type == normalize.TypeProviderTimeout {
			e.Fault, e.Uncertain = true, true
		}
		return pairs[0].Info, e
	})
	return vals, nerr
}
