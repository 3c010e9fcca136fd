package caddymodule

import (
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/paynorm/paynorm/providers/sandbox"
)

func init() {
	caddy.RegisterModule(Sandbox{})
	httpcaddyfile.RegisterHandlerDirective("paynorm_sandbox", parseSandbox)
	httpcaddyfile.RegisterDirectiveOrder("paynorm_sandbox", httpcaddyfile.Before, "respond")
}

// Sandbox serves the built-in provider simulators so paynorm runs with no
// provider account. It answers GMO's /payment/*.idPass and /sandbox/*,
// j-payment's /gateway/*.aspx, and the GMO IVR API's /authorization/api/*
// and /sandbox/ivr/*.
type Sandbox struct {
	// Name keys the simulator's in-memory ledger, which survives config
	// reloads (default "default").
	Name string `json:"name,omitempty"`
	// SlowDelay is how long the slow magic token takes to answer (default 3s).
	SlowDelay caddy.Duration `json:"slow_delay,omitempty"`
	// Shops restricts the accepted ShopID -> ShopPass pairs (default: any).
	Shops map[string]string `json:"shops,omitempty"`
	// JPaymentKickbackURL receives the j-payment simulator's rt=0 kickbacks
	// (e.g. http://127.0.0.1:8080/v1/webhooks/jpayment/{env.PAYNORM_KICKBACK_TOKEN});
	// placeholders are replaced at provision time, so the token stays out
	// of the running config.
	JPaymentKickbackURL string `json:"jpayment_kickback_url,omitempty"`
	// JPaymentAllowedIP is the only source address the j-payment simulator
	// accepts; others get ER:ER003 (default: any).
	JPaymentAllowedIP string `json:"jpayment_allowed_ip,omitempty"`
	// IVRKeys restricts the IVR simulator's accepted apiKey -> apiPassword
	// pairs (default: any non-empty pair).
	IVRKeys map[string]string `json:"ivr_keys,omitempty"`
	// GMONotifyURL receives the GMO simulator's result notifications
	// (e.g. http://127.0.0.1:8080/v1/webhooks/gmo/{env.PAYNORM_GMO_NOTIFY_TOKEN});
	// placeholders are replaced at provision time. Empty: none are sent.
	GMONotifyURL string `json:"gmo_notify_url,omitempty"`
	// ThreeDSShops are shops whose contract requires 3-D Secure: an
	// EntryTran without TdFlag=2 gets E01080101.
	ThreeDSShops []string `json:"three_d_secure_shops,omitempty"`
	// CheckoutAPI is paynorm's base URL for the demo checkout on
	// /sandbox/checkout (e.g. http://127.0.0.1:8080); CheckoutKey its app
	// key when paynorm has clients (a placeholder such as {env.X}).
	CheckoutAPI string `json:"checkout_api,omitempty"`
	CheckoutKey string `json:"checkout_key,omitempty"`

	key string
	gmo *sandbox.GMO
	jp  *sandbox.JPayment
	ivr *sandbox.IVR
}

type sandboxState struct {
	gmo *sandbox.GMO
	jp  *sandbox.JPayment
	ivr *sandbox.IVR
}

func (sandboxState) Destruct() error { return nil }

// CaddyModule returns the Caddy module information.
func (Sandbox) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.paynorm_sandbox",
		New: func() caddy.Module { return new(Sandbox) },
	}
}

// Provision loads or creates the simulator state.
func (s *Sandbox) Provision(ctx caddy.Context) error {
	if s.Name == "" {
		s.Name = "default"
	}
	s.key = "paynorm/sandbox/" + s.Name
	v, _, err := pool.LoadOrNew(s.key, func() (caddy.Destructor, error) {
		g := sandbox.NewGMO()
		return sandboxState{gmo: g, jp: sandbox.NewJPayment(), ivr: sandbox.NewIVR(g)}, nil
	})
	if err != nil {
		return err
	}
	state := v.(sandboxState)
	s.gmo, s.jp, s.ivr = state.gmo, state.jp, state.ivr
	s.jp.KickbackURL, s.jp.AllowedIP = caddy.NewReplacer().ReplaceAll(s.JPaymentKickbackURL, ""), s.JPaymentAllowedIP
	if len(s.IVRKeys) > 0 {
		s.ivr.Keys = s.IVRKeys
	}
	if s.SlowDelay > 0 {
		s.gmo.SlowDelay = time.Duration(s.SlowDelay)
	}
	if len(s.Shops) > 0 {
		s.gmo.Shops = s.Shops
	}
	repl := caddy.NewReplacer()
	s.gmo.SetNotifyURL(repl.ReplaceAll(s.GMONotifyURL, ""))
	shops3DS := map[string]bool{}
	for _, id := range s.ThreeDSShops {
		shops3DS[id] = true
	}
	s.gmo.ThreeDSShops = shops3DS
	s.gmo.Checkout.SetAPI(repl.ReplaceAll(s.CheckoutAPI, ""), repl.ReplaceAll(s.CheckoutKey, ""))
	ctx.Logger().Info("paynorm sandbox simulators enabled: never point production traffic here", zap.String("name", s.Name))
	return nil
}

// Cleanup releases the simulator state.
func (s *Sandbox) Cleanup() error {
	_, _ = pool.Delete(s.key)
	return nil
}

// ServeHTTP answers simulator requests.
func (s *Sandbox) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if strings.HasPrefix(r.URL.Path, "/gateway/") {
		s.jp.ServeHTTP(w, r)
		return nil
	}
	if s.ivr.Handles(r.URL.Path) {
		s.ivr.ServeHTTP(w, r)
		return nil
	}
	s.gmo.ServeHTTP(w, r)
	return nil
}

func parseSandbox(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var s Sandbox
	err := s.UnmarshalCaddyfile(h.Dispenser)
	return &s, err
}

// UnmarshalCaddyfile parses:
//
//	paynorm_sandbox [<name>] {
//	    slow_delay <duration>
//	    shop <shop_id> <shop_pass>
//	    jpayment_kickback <url>
//	    jpayment_allowed_ip <ip>
//	    ivr_key <api_key> <api_password>
//	    gmo_notify <url>
//	    require_3ds <shop_id>...
//	    checkout_api <paynorm_base_url> [<app_key>]
//	}
func (s *Sandbox) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		s.Name = d.Val()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "slow_delay":
			var v string
			if !d.Args(&v) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil {
				return d.Errf("slow_delay: %v", err)
			}
			s.SlowDelay = caddy.Duration(dur)
		case "shop":
			var id, pass string
			if !d.Args(&id, &pass) {
				return d.ArgErr()
			}
			if s.Shops == nil {
				s.Shops = map[string]string{}
			}
			s.Shops[id] = pass
		case "jpayment_kickback":
			if !d.Args(&s.JPaymentKickbackURL) {
				return d.ArgErr()
			}
		case "jpayment_allowed_ip":
			if !d.Args(&s.JPaymentAllowedIP) {
				return d.ArgErr()
			}
		case "ivr_key":
			var key, pass string
			if !d.Args(&key, &pass) {
				return d.ArgErr()
			}
			if s.IVRKeys == nil {
				s.IVRKeys = map[string]string{}
			}
			s.IVRKeys[key] = pass
		case "gmo_notify":
			if !d.Args(&s.GMONotifyURL) {
				return d.ArgErr()
			}
		case "require_3ds":
			ids := d.RemainingArgs()
			if len(ids) == 0 {
				return d.ArgErr()
			}
			s.ThreeDSShops = append(s.ThreeDSShops, ids...)
		case "checkout_api":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.ArgErr()
			}
			s.CheckoutAPI = args[0]
			if len(args) == 2 {
				s.CheckoutKey = args[1]
			}
		default:
			return d.Errf("unrecognized paynorm_sandbox option %q", d.Val())
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Sandbox)(nil)
	_ caddy.CleanerUpper          = (*Sandbox)(nil)
	_ caddyhttp.MiddlewareHandler = (*Sandbox)(nil)
	_ caddyfile.Unmarshaler       = (*Sandbox)(nil)
)
