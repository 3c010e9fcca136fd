// Package caddymodule is the Caddy glue of paynorm: module registration,
// Caddyfile parsing, provisioning of provider accounts, HTTP routing of the
// unified API, metrics and health. It holds no provider knowledge.
package caddymodule

import (
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/paynorm/paynorm/normalize"
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
	// ThreeDSecure is the account's default 3-D Secure mode for creates that
	// name none: "required" (the default for gmo: EMV 3-D Secure is
	// mandatory for Japanese e-commerce since April 2025), "attempt" or
	// "off". j-payment runs 3-D Secure in the browser (CPToken.js) before
	// the token exists, so it ignores this.
	ThreeDSecure string `json:"three_d_secure,omitempty"`
	// TenantName is the shop name the card holder's 3-D Secure page shows
	// (GMO TdTenantName; at most 25 bytes once EUC-JP and Base64 encoded).
	TenantName string `json:"tenant_name,omitempty"`
	// ActionExpiry is how long a payment may wait for its card holder's 3-D
	// Secure authentication before it expires to voided, uncharged
	// (default 30m).
	ActionExpiry caddy.Duration `json:"action_expiry,omitempty"`
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
	// PassthroughCardData "allow" lets POST /v1/gmo/{Api} relay raw card
	// data (cardNo, expire, securityCode, pin). The default refuses it with
	// 403 card_data_not_allowed: apps send card tokens, and an app that
	// handles card numbers is in full PCI DSS scope.
	PassthroughCardData string `json:"passthrough_card_data,omitempty"`
}

// secret is one credential setting of an account.
type secret struct {
	name  string
	value *string
}

// secrets are the account's credential settings (the literal check and
// the log's redaction know them by this list).
func (a *Account) secrets() []secret {
	return []secret{{"shop_pass", &a.ShopPass}, {"site_pass", &a.SitePass}, {"api_key", &a.APIKey}, {"api_password", &a.APIPassword}}
}

// Sandbox test credentials: the built-in simulators accept any non-empty
// credentials, and these public values are what an account pointed at a
// loopback endpoint uses for a credential written as a placeholder that
// expands to nothing ({env.GMO_SHOP_PASS} with GMO_SHOP_PASS unset). That
// is how the repo's Caddyfile takes every credential from the environment
// and still runs with none set: Caddy's runtime placeholders have no
// default value, and a {$NAME:default} default would write a real secret,
// once set, into the running config. A credential the config does not
// name stays empty (an account without site_id has no customers API, on
// the sandbox too). Never used for test, production or any non-loopback
// endpoint: there an empty credential refuses to load.
var sandboxCredentials = map[string]string{
	"shop_id": "tshop00000001", "shop_pass": "sandboxpass", "site_id": "tsite00000001", "site_pass": "sandboxsitepass",
	"aid": "123456", "api_key": "sandboxkey", "api_password": "sandboxapipass",
}

// fillSandboxCredentials gives an account on a loopback endpoint the
// sandbox's test credentials for those that raw (the account as
// configured, before its placeholders were replaced) names but that came
// out empty, and names them.
func (a *Account) fillSandboxCredentials(raw *Account) []string {
	if !loopbackEndpoint(a.Endpoint) {
		return nil
	}
	named := map[string]bool{"shop_id": raw.ShopID != "", "shop_pass": raw.ShopPass != "", "site_id": raw.SiteID != "",
		"site_pass": raw.SitePass != "", "aid": raw.AID != "", "api_key": raw.APIKey != "", "api_password": raw.APIPassword != ""}
	var fields map[string]*string
	switch a.Type {
	case "gmo":
		fields = map[string]*string{"shop_id": &a.ShopID, "shop_pass": &a.ShopPass, "site_id": &a.SiteID, "site_pass": &a.SitePass}
	case "jpayment":
		fields = map[string]*string{"aid": &a.AID}
	case "gmo_ivr":
		fields = map[string]*string{"api_key": &a.APIKey, "api_password": &a.APIPassword, "shop_id": &a.ShopID, "site_id": &a.SiteID}
	}
	var filled []string
	for name, p := range fields {
		if *p == "" && named[name] {
			*p = sandboxCredentials[name]
			filled = append(filled, name)
		}
	}
	slices.Sort(filled)
	return filled
}

// loopbackEndpoint reports whether endpoint is a URL on this host
// (localhost, 127.0.0.0/8, ::1): the sandbox, or a local tunnel.
func loopbackEndpoint(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return false
	}
	return loopbackHost(u.Hostname())
}

func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// checkEndpoint accepts the named endpoints and https URLs; plain http
// only to a loopback host (the sandbox), since credentials and card tokens
// travel in the request.
func checkEndpoint(endpoint string) error {
	switch strings.ToLower(endpoint) {
	case "", "test", "production":
		return nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || u.User != nil {
		return fmt.Errorf("endpoint must be test, production or an https:// base URL")
	}
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && loopbackHost(u.Hostname()):
		return nil
	}
	return fmt.Errorf("endpoint %s://%s must use https (plain http only to a loopback address such as the sandbox)", u.Scheme, u.Host)
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
	if !normalize.ValidThreeDSMode(a.ThreeDSecure) {
		return fmt.Errorf("account %s: three_d_secure is required, attempt or off", a.Name)
	}
	if err := checkEndpoint(a.Endpoint); err != nil {
		return fmt.Errorf("account %s: %v", a.Name, err)
	}
	switch a.PassthroughCardData {
	case "", "allow", "deny":
	default:
		return fmt.Errorf("account %s: passthrough_card_data is allow or deny", a.Name)
	}
	return nil
}

// replace expands {env.*} and other global placeholders in every string.
func (a *Account) replace(repl *caddy.Replacer) {
	for _, p := range []*string{&a.TenantName, &a.Endpoint, &a.ShopID, &a.ShopPass, &a.SiteID, &a.SitePass, &a.SourceAddress, &a.ProxyURL, &a.AID, &a.APIKey, &a.APIPassword} {
		*p = strings.TrimSpace(repl.ReplaceAll(*p, ""))
	}
}

// threeDSMode is the mode a create without three_d_secure gets.
func (a *Account) threeDSMode() string {
	switch {
	case a.ThreeDSecure != "":
		return a.ThreeDSecure
	case a.Type == "gmo":
		return normalize.ThreeDSRequired
	}
	return normalize.ThreeDSOff
}

// actionExpiry is how long a payment may wait in requires_action.
func (a *Account) actionExpiry() time.Duration {
	if a.ActionExpiry > 0 {
		return time.Duration(a.ActionExpiry)
	}
	return 30 * time.Minute
}
