package caddymodule

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestUnmarshalCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`paynorm {
		prefix /api/v1
		default_provider main
		max_body_bytes 1024
		account main {
			type gmo
			endpoint production
			shop_id {env.GMO_SHOP_ID}
			shop_pass {env.GMO_SHOP_PASS}
			site_id tsite1
			site_pass sitepass
			timeout 12s
			rate_limit 20.5 40
			max_wait 250ms
			breaker 7 45s
			max_conns 64
			source_address 127.0.0.2
			proxy_url http://127.0.0.1:3128
		}
	}`)
	var h Handler
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	want := Account{Name: "main", Type: "gmo", Endpoint: "production", ShopID: "{env.GMO_SHOP_ID}", ShopPass: "{env.GMO_SHOP_PASS}",
		SiteID: "tsite1", SitePass: "sitepass", Timeout: caddy.Duration(12 * time.Second), Rate: 20.5, Burst: 40,
		MaxWait: caddy.Duration(250 * time.Millisecond), BreakerFailures: 7, BreakerOpen: caddy.Duration(45 * time.Second), MaxConns: 64,
		SourceAddress: "127.0.0.2", ProxyURL: "http://127.0.0.1:3128"}
	if h.Prefix != "/api/v1" || h.DefaultProvider != "main" || h.MaxBodyBytes != 1024 || len(h.Accounts) != 1 || !reflect.DeepEqual(h.Accounts[0], want) {
		t.Fatalf("got %+v", h)
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	cases := map[string]string{
		"unknown option":  `paynorm { bogus 1 }`,
		"unknown account": `paynorm { account a { colour red } }`,
		"bad duration":    `paynorm { account a { timeout soon } }`,
		"bad rate":        `paynorm { account a { rate_limit fast } }`,
		"bad burst":       `paynorm { account a { rate_limit 1 0 } }`,
		"bad breaker":     `paynorm { account a { breaker 0 } }`,
		"bad max_conns":   `paynorm { account a { max_conns 0 } }`,
		"missing name":    `paynorm { account }`,
		"extra arg":       `paynorm /v1`,
		"bad body limit":  `paynorm { max_body_bytes -1 }`,
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			var h Handler
			if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err == nil {
				t.Fatalf("accepted %s", in)
			}
		})
	}
}

func TestAccountValidate(t *testing.T) {
	ok := Account{Name: "gmo-2", Type: "gmo", ShopID: "s", ShopPass: "Secr3tPw"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, a := range []Account{
		{Name: "GMO", Type: "gmo", ShopID: "s", ShopPass: "Secr3tPw"},
		{Name: "gmo_x", Type: "gmo", ShopID: "s", ShopPass: "Secr3tPw"},
		{Name: "gmo", Type: "paypal", ShopID: "s", ShopPass: "Secr3tPw"},
		{Name: "gmo", Type: "gmo", ShopID: "s"},
	} {
		if err := a.Validate(); err == nil {
			t.Errorf("accepted %+v", a)
		} else if strings.Contains(err.Error(), a.ShopPass) && a.ShopPass != "" {
			t.Errorf("error leaks the password: %v", err)
		}
	}
}

// The shipped Caddyfile adapts to the checked-in JSON: a change to parsing
// or to the default config shows up in review.
func TestDefaultCaddyfileAdaptsToGolden(t *testing.T) {
	for _, v := range []string{"GMO_ENDPOINT", "GMO_SHOP_ID", "GMO_SHOP_PASS", "GMO_SITE_ID", "GMO_SITE_PASS", "JPAYMENT_ENDPOINT", "JPAYMENT_AID"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	in, err := os.ReadFile("../Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	out, warnings, err := adapter.Adapt(in, map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) > 0 {
		t.Fatalf("warnings: %v", warnings)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, out, "", "\t"); err != nil {
		t.Fatal(err)
	}
	pretty.WriteByte('\n')
	const golden = "testdata/Caddyfile.golden.json"
	if *update {
		if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./caddymodule -run Golden -update)", err)
	}
	if !bytes.Equal(want, pretty.Bytes()) {
		t.Fatalf("adapted Caddyfile differs from %s (rerun with -update after review):\n%s", golden, pretty.String())
	}
	for _, s := range []string{`"handler": "paynorm"`, `"handler": "paynorm_sandbox"`, `"shop_pass": "{env.GMO_SHOP_PASS}"`} {
		if !strings.Contains(pretty.String(), s) {
			t.Errorf("adapted config lacks %s", s)
		}
	}
}

// The shipped Caddyfiles are secure by default (issue 11, item 1): every
// server listens on loopback only (a site address alone listens on every
// interface), the config is not autosaved, slow headers and bodies time
// out, and every secret stays an {env.NAME} placeholder in the running
// config, so the admin API's /config shows no secret.
func TestShippedCaddyfilesAreSecureByDefault(t *testing.T) {
	for _, v := range []string{"GMO_ENDPOINT", "JPAYMENT_ENDPOINT", "GMO_IVR_ENDPOINT", "PAYNORM_BIND"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	// Secrets in the environment must not reach the config.
	for _, v := range []string{"GMO_SHOP_PASS", "GMO_SITE_PASS", "GMO_IVR_API_KEY", "GMO_IVR_API_PASSWORD", "PAYNORM_KICKBACK_TOKEN"} {
		t.Setenv(v, "leak-"+strings.ToLower(v)+"-0123456789")
	}
	for _, file := range []string{"../Caddyfile", "../docker/Caddyfile.production"} {
		in, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(in, map[string]any{"filename": file})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), "leak-") {
			t.Errorf("%s: a secret from the environment is in the adapted config", file)
		}
		var cfg struct {
			Admin struct {
				Config struct {
					Persist *bool `json:"persist"`
				} `json:"config"`
			} `json:"admin"`
			Apps struct {
				HTTP struct {
					Servers map[string]struct {
						Listen            []string       `json:"listen"`
						ReadTimeout       caddy.Duration `json:"read_timeout"`
						ReadHeaderTimeout caddy.Duration `json:"read_header_timeout"`
						Routes            []any          `json:"routes"`
					} `json:"servers"`
				} `json:"http"`
			} `json:"apps"`
		}
		if err := json.Unmarshal(out, &cfg); err != nil {
			t.Fatal(err)
		}
		if p := cfg.Admin.Config.Persist; p == nil || *p {
			t.Errorf("%s: persist_config is not off", file)
		}
		if len(cfg.Apps.HTTP.Servers) == 0 {
			t.Fatalf("%s: no servers", file)
		}
		for name, srv := range cfg.Apps.HTTP.Servers {
			for _, l := range srv.Listen {
				if !strings.HasPrefix(l, "127.0.0.1:") {
					t.Errorf("%s: server %s listens on %s", file, name, l)
				}
			}
			if srv.ReadTimeout <= 0 || srv.ReadHeaderTimeout <= 0 {
				t.Errorf("%s: server %s has no read_body/read_header timeout", file, name)
			}
		}
		// Every secret of every paynorm handler is a placeholder.
		var walk func(v any)
		walk = func(v any) {
			switch x := v.(type) {
			case map[string]any:
				for k, e := range x {
					switch k {
					case "shop_pass", "site_pass", "api_key", "api_password", "notify_secret", "kickback_token", "key", "password":
						if s, _ := e.(string); !strings.HasPrefix(s, "{env.") && !strings.HasPrefix(s, "{file.") {
							t.Errorf("%s: %s is %q, not an {env.NAME} placeholder", file, k, s)
						}
					}
					walk(e)
				}
			case []any:
				for _, e := range x {
					walk(e)
				}
			}
		}
		var all any
		_ = json.Unmarshal(out, &all)
		walk(all)
	}
}

func TestUnmarshalCaddyfileIVRAndPassthrough(t *testing.T) {
	d := caddyfile.NewTestDispenser(`paynorm {
		account gmo {
			type gmo
			shop_id s
			shop_pass p
			passthrough_apis EntryTran ExecTran
			passthrough_apis AlterTran
		}
		account ivr {
			type gmo_ivr
			endpoint production
			api_key {env.GMO_IVR_API_KEY}
			api_password {env.GMO_IVR_API_PASSWORD}
			shop_id s
			site_id t
		}
	}`)
	var h Handler
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if got := h.Accounts[0].PassthroughAPIs; !reflect.DeepEqual(got, []string{"EntryTran", "ExecTran", "AlterTran"}) {
		t.Fatal(got)
	}
	want := Account{Name: "ivr", Type: "gmo_ivr", Endpoint: "production", APIKey: "{env.GMO_IVR_API_KEY}", APIPassword: "{env.GMO_IVR_API_PASSWORD}", ShopID: "s", SiteID: "t"}
	if !reflect.DeepEqual(h.Accounts[1], want) {
		t.Fatalf("%+v", h.Accounts[1])
	}
	if err := want.Validate(); err != nil {
		t.Fatal(err)
	}
	want.APIPassword = ""
	if err := want.Validate(); err == nil {
		t.Fatal("gmo_ivr without api_password accepted")
	}
	var bad Handler
	if err := bad.UnmarshalCaddyfile(caddyfile.NewTestDispenser("paynorm {\n account a {\n passthrough_apis\n }\n}")); err == nil {
		t.Fatal("empty passthrough_apis accepted")
	}
}

func TestFailedNeverDeclaredBeforeTwiceTheTimeout(t *testing.T) {
	h := Handler{ResolveAfter: caddy.Duration(time.Second),
		Accounts: []Account{{Timeout: caddy.Duration(3 * time.Second)}, {}}}
	if after, fail := h.resolveGrace(); after != time.Second || fail != 60*time.Second { // the second account's default 30s
		t.Fatalf("got %v %v", after, fail)
	}
	h = Handler{ResolveAfter: caddy.Duration(5 * time.Minute), Accounts: []Account{{Timeout: caddy.Duration(time.Second)}}}
	if after, fail := h.resolveGrace(); after != 5*time.Minute || fail != 5*time.Minute {
		t.Fatalf("got %v %v", after, fail)
	}
}
