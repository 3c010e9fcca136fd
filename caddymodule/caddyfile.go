package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/paynorm/paynorm/normalize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("paynorm", parsePaynorm)
	// Ordered before respond so a plain site block with paynorm works
	// without a route block or a global order option.
	httpcaddyfile.RegisterDirectiveOrder("paynorm", httpcaddyfile.Before, "respond")
}

func parsePaynorm(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var p Handler
	err := p.UnmarshalCaddyfile(h.Dispenser)
	return &p, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	paynorm [<matcher>] {
//	    prefix           <path, default /v1>
//	    default_provider <name>
//	    max_body_bytes   <n>
//	    body_timeout     <duration>
//	    client <name> {
//	        key      <key>
//	        accounts <account...>
//	    }
//	    notify_url       <url>
//	    notify_secret    <secret>
//	    notify_max_attempts <n>
//	    notify_max_age   <duration>
//	    kickback_allow   <cidr...>
//	    kickback_token   <secret path token> | off
//	    gmo_notify_token <secret path token>
//	    gmo_notify_allow <cidr...>
//	    store            journal [<path>] | bolt [<path>] | memory | redis <addr>... [{ username, password, db, prefix, tls [{ ca_file, server_name, cert_file, key_file }] }]
//	    resolve_after    <duration>
//	    account <name> {
//	        type            gmo|jpayment|gmo_ivr
//	        aid             <j-payment shop id>
//	        endpoint        test|production|<url>
//	        shop_id         <id>
//	        shop_pass       <pass>
//	        site_id         <id>
//	        site_pass       <pass>
//	        timeout         <duration>
//	        rate_limit      <per-second> [<burst>]
//	        max_wait        <duration>
//	        breaker         <consecutive-failures> [<open-duration>]
//	        max_conns       <n>|-1
//	        source_address  <ip>
//	        proxy_url       <url>
//	        api_key         <key>             (gmo_ivr)
//	        api_password    <password>        (gmo_ivr)
//	        passthrough_apis <Api...>         (gmo: POST /v1/gmo/{Api})
//	        passthrough_card_data allow|deny  (gmo: relay raw card data; default deny)
//	    }
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "prefix":
			if !d.Args(&h.Prefix) {
				return d.ArgErr()
			}
		case "default_provider":
			if !d.Args(&h.DefaultProvider) {
				return d.ArgErr()
			}
		case "max_body_bytes":
			var s string
			if !d.Args(&s) {
				return d.ArgErr()
			}
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n <= 0 {
				return d.Errf("max_body_bytes: %q is not a positive integer", s)
			}
			h.MaxBodyBytes = n
		case "notify_url":
			if !d.Args(&h.NotifyURL) {
				return d.ArgErr()
			}
		case "notify_secret":
			if !d.Args(&h.NotifySecret) {
				return d.ArgErr()
			}
		case "notify_max_attempts":
			var v string
			if !d.Args(&v) {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return d.Errf("notify_max_attempts: %q is not a positive integer", v)
			}
			h.NotifyMaxAttempts = n
		case "notify_max_age", "body_timeout":
			opt := d.Val()
			var v string
			if !d.Args(&v) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return d.Errf("%s: %q is not a positive duration", opt, v)
			}
			if opt == "body_timeout" {
				h.BodyTimeout = caddy.Duration(dur)
			} else {
				h.NotifyMaxAge = caddy.Duration(dur)
			}
		case "client":
			var c Client
			if !d.Args(&c.Name) {
				return d.ArgErr()
			}
			if !accountName.MatchString(c.Name) {
				return d.Errf("client name %q: use 1-32 lower-case letters, digits and '-'", c.Name)
			}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				switch opt := d.Val(); opt {
				case "key":
					if !d.Args(&c.Key) {
						return d.ArgErr()
					}
				case "accounts":
					args := d.RemainingArgs()
					if len(args) == 0 {
						return d.ArgErr()
					}
					c.Accounts = append(c.Accounts, args...)
				default:
					return d.Errf("unrecognized client option %q", opt)
				}
			}
			if c.Key == "" || len(c.Accounts) == 0 {
				return d.Errf("client %s needs a key and accounts", c.Name)
			}
			h.Clients = append(h.Clients, c)
		case "gmo_notify_token":
			if !d.Args(&h.GMONotifyToken) {
				return d.ArgErr()
			}
		case "gmo_notify_allow":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.GMONotifyAllow = append(h.GMONotifyAllow, args...)
		case "kickback_token":
			if !d.Args(&h.KickbackToken) {
				return d.ArgErr()
			}
		case "kickback_allow":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.KickbackAllow = append(h.KickbackAllow, args...)
		case "store":
			c, err := parseStore(d)
			if err != nil {
				return err
			}
			h.Store = c
		case "resolve_after":
			var v string
			if !d.Args(&v) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return d.Errf("resolve_after: %q is not a positive duration", v)
			}
			h.ResolveAfter = caddy.Duration(dur)
		case "account":
			var a Account
			if !d.Args(&a.Name) {
				return d.ArgErr()
			}
			if !accountName.MatchString(a.Name) {
				return d.Errf("account name %q: use 1-32 lower-case letters, digits and '-'", a.Name)
			}
			if err := parseAccount(d, &a); err != nil {
				return err
			}
			h.Accounts = append(h.Accounts, a)
		default:
			return d.Errf("unrecognized paynorm option %q", d.Val())
		}
	}
	return nil
}

func parseAccount(d *caddyfile.Dispenser, a *Account) error {
	str := map[string]*string{
		"type": &a.Type, "endpoint": &a.Endpoint, "shop_id": &a.ShopID, "shop_pass": &a.ShopPass,
		"site_id": &a.SiteID, "site_pass": &a.SitePass, "source_address": &a.SourceAddress, "proxy_url": &a.ProxyURL,
		"aid":     &a.AID,
		"api_key": &a.APIKey, "api_password": &a.APIPassword,
		"tenant_name": &a.TenantName,
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if p, ok := str[opt]; ok {
			if !d.Args(p) {
				return d.ArgErr()
			}
			continue
		}
		args := d.RemainingArgs()
		switch opt {
		case "three_d_secure":
			if len(args) != 1 || args[0] == "" || !normalize.ValidThreeDSMode(args[0]) {
				return d.Errf("three_d_secure: required, attempt or off")
			}
			a.ThreeDSecure = args[0]
		case "action_expiry":
			if len(args) != 1 {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(args[0])
			if err != nil || dur <= 0 {
				return d.Errf("action_expiry: %q is not a positive duration", args[0])
			}
			a.ActionExpiry = caddy.Duration(dur)
		case "timeout", "max_wait":
			if len(args) != 1 {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(args[0])
			if err != nil {
				return d.Errf("%s: %v", opt, err)
			}
			if opt == "timeout" {
				a.Timeout = caddy.Duration(dur)
			} else {
				a.MaxWait = caddy.Duration(dur)
			}
		case "rate_limit":
			if len(args) < 1 || len(args) > 2 {
				return d.ArgErr()
			}
			r, err := strconv.ParseFloat(args[0], 64)
			if err != nil || r < 0 {
				return d.Errf("rate_limit: %q is not a rate per second", args[0])
			}
			a.Rate = r
			if len(args) == 2 {
				b, err := strconv.Atoi(args[1])
				if err != nil || b < 1 {
					return d.Errf("rate_limit: burst %q is not a positive integer", args[1])
				}
				a.Burst = b
			}
		case "passthrough_apis":
			if len(args) == 0 {
				return d.ArgErr()
			}
			a.PassthroughAPIs = append(a.PassthroughAPIs, args...)
		case "passthrough_card_data":
			if len(args) != 1 || args[0] != "allow" && args[0] != "deny" {
				return d.Errf("passthrough_card_data: allow or deny")
			}
			a.PassthroughCardData = args[0]
		case "max_conns":
			if len(args) != 1 {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(args[0])
			if err != nil || n == 0 || n < -1 {
				return d.Errf("max_conns: %q is not a positive connection count (or -1 for unlimited)", args[0])
			}
			a.MaxConns = n
		case "breaker":
			if len(args) < 1 || len(args) > 2 {
				return d.ArgErr()
			}
			n, err := strconv.ParseUint(args[0], 10, 32)
			if err != nil || n < 1 {
				return d.Errf("breaker: %q is not a failure count", args[0])
			}
			a.BreakerFailures = uint32(n)
			if len(args) == 2 {
				dur, err := caddy.ParseDuration(args[1])
				if err != nil {
					return d.Errf("breaker: %v", err)
				}
				a.BreakerOpen = caddy.Duration(dur)
			}
		default:
			return d.Errf("unrecognized account option %q", opt)
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
