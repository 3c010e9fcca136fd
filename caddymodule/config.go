// Package caddymodule is the Caddy glue of paynorm: module registration,
// Caddyfile parsing, provisioning of provider accounts, HTTP routing of the
// unified API, metrics and health. It holds no provider knowledge.
package caddymodule

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// Account is one provider account (credentials, endpoint, limits, egress).
type Account struct {
	// Name is the account name apps put in "provider" and that prefixes
	// payment ids: lower-case letters, digits and '-'.
	Name string `json:"name"`
	// Type is the provider protocol: "gmo" (card protocol API) or
	// "jpayment" (ROBOT PAYMENT card gateway) or "gmo_ivr" (GMO IVR phone
	// payments).
	Type string `json:"type"`
	// Endpoint is "test", "production" or a base URL (the sandbox). j-payment
	// has only production (https://credit.j-payment.co.jp), the default.
	Endpoint string `json:"endpoint,omitempty"`
	// ShopID is GMO's ショップID. Placeholders such as {env.GMO_SHOP_ID} are
	// replaced at provision time.
	ShopID string `json:"shop_id,omitempty"`
	// ShopPass is GMO's ショップパスワード. Never logged.
	ShopPass string `json:"shop_pass,omitempty"`
	// SiteID is GMO's サイトID, needed for customers and stored cards.
	SiteID string `json:"site_id,omitempty"`
	// SitePass is GMO's サイトパスワード. Never logged.
	SitePass string `json:"site_pass,omitempty"`
	// AID is j-payment's 店舗ID.
	AID string `json:"aid,omitempty"`
	// Timeout bounds one provider call (default 30s).
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Rate is the provider calls per second this account may make (0: no limit).
	Rate float64 `json:"rate,omitempty"`
	// Burst is the token bucket size (default: the rate, at least 1).
	Burst int `json:"burst,omitempty"`
	// MaxWait is how long a call waits for the limiter before 429 (default 1s).
	MaxWait caddy.Duration `json:"max_wait,omitempty"`
	// BreakerFailures consecutive provider faults open the breaker (default 5).
	BreakerFailures uint32 `json:"breaker_failures,omitempty"`
	// BreakerOpen is how long the breaker stays open before a trial call (default 30s).
	BreakerOpen caddy.Duration `json:"breaker_open,omitempty"`
	// MaxConns caps parallel connections to the provider (default 512; -1:
	// unlimited). A burst beyond it waits for a free connection instead of
	// opening thousands of sockets, each with its own buffers and goroutines.
	MaxConns int `json:"max_conns,omitempty"`
	// SourceAddress binds outgoing connections to this local IP (fixed-IP egress
	// on a multi-homed host).
	SourceAddress string `json:"source_address,omitempty"`
	// ProxyURL sends provider traffic through this HTTP CONNECT proxy.
	ProxyURL string `json:"proxy_url,omitempty"`
	// APIKey is the GMO IVR API key (type gmo_ivr). Never logged.
	APIKey string `json:"api_key,omitempty"`
	// APIPassword is the GMO IVR API password (type gmo_ivr). Never logged.
	APIPassword string `json:"api_password,omitempty"`
	// PassthroughAPIs are the GMO .idPass APIs POST /v1/gmo/{Api} may call
	// with this account (type gmo). Empty means the read-and-pay default:
	// EntryTran ExecTran SearchTrade SearchMember SearchCard.
	PassthroughAPIs []string `json:"passthrough_apis,omitempty"`
}

var accountName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// Validate checks what can be checked without network access.
func (a *Account) Validate() error {
	if !accountName.MatchString(a.Name) {
		return fmt.Errorf("account name %q: use 1-32 lower-case letters, digits and '-' (it prefixes payment ids)", a.Name)
	}
	switch a.Type {
	case "gmo":
		if a.ShopID == "" || a.ShopPass == "" {
			return fmt.Errorf("account %s: shop_id and shop_pass are required", a.Name)
		}
	case "jpayment":
		if a.AID == "" {
			return fmt.Errorf("account %s: aid is required", a.Name)
		}
	case "gmo_ivr":
		if a.APIKey == "" || a.APIPassword == "" {
			return fmt.Errorf("account %s: api_key and api_password are required", a.Name)
		}
	default:
		return fmt.Errorf("account %s: unknown type %q (known: gmo, jpayment, gmo_ivr)", a.Name, a.Type)
	}
	if a.Rate < 0 || a.Burst < 0 {
		return fmt.Errorf("account %s: rate and burst must not be negative", a.Name)
	}
	return nil
}

// replace expands {env.*} and other global placeholders in every string.
func (a *Account) replace(repl *caddy.Replacer) {
	for _, p := range []*string{&a.Endpoint, &a.ShopID, &a.ShopPass, &a.SiteID, &a.SitePass, &a.SourceAddress, &a.ProxyURL, &a.AID, &a.APIKey, &a.APIPassword} {
		*p = strings.TrimSpace(repl.ReplaceAll(*p, ""))
	}
}
