package caddymodule

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfileSecurityOptions(t *testing.T) {
	h := parse(t, `paynorm {
		body_timeout 5s
		notify_max_attempts 12
		notify_max_age 48h
		client app-a {
			key {env.APP_A_KEY}
			accounts gmo
			accounts gmo2
		}
		client app-b {
			key {file./run/secrets/app_b}
			accounts gmo2
		}
		store redis redis.internal:6380 {
			username paynorm
			password {env.REDIS_PASSWORD}
			tls {
				ca_file /etc/paynorm/redis-ca.pem
				server_name redis.internal
			}
		}
		account gmo {
			type gmo
			shop_id {env.GMO_SHOP_ID}
			shop_pass {env.GMO_SHOP_PASS}
			passthrough_card_data allow
		}
	}`)
	want := []Client{{Name: "app-a", Key: "{env.APP_A_KEY}", Accounts: []string{"gmo", "gmo2"}}, {Name: "app-b", Key: "{file./run/secrets/app_b}", Accounts: []string{"gmo2"}}}
	if !reflect.DeepEqual(h.Clients, want) || h.BodyTimeout != caddy.Duration(5*time.Second) || h.NotifyMaxAttempts != 12 || h.NotifyMaxAge != caddy.Duration(48*time.Hour) {
		t.Fatalf("%+v", h)
	}
	if h.Accounts[0].PassthroughCardData != "allow" {
		t.Fatalf("%+v", h.Accounts[0])
	}
	st := *h.Store
	if st.Username != "paynorm" || st.TLS == nil || *st.TLS != (RedisTLS{CAFile: "/etc/paynorm/redis-ca.pem", ServerName: "redis.internal"}) {
		t.Fatalf("store %+v tls %+v", st, st.TLS)
	}
	if h := parse(t, "paynorm {\n store redis a:1 {\n tls\n }\n}"); h.Store.TLS == nil || *h.Store.TLS != (RedisTLS{}) {
		t.Fatalf("bare tls: %+v", h.Store)
	}
	for _, bad := range []string{
		"paynorm {\n client {\n key x\n }\n}",
		"paynorm {\n client App {\n key x\n accounts a\n }\n}",
		"paynorm {\n client a {\n accounts a\n }\n}",
		"paynorm {\n client a {\n key x\n }\n}",
		"paynorm {\n client a {\n key x\n accounts a\n colour red\n }\n}",
		"paynorm {\n body_timeout soon\n}",
		"paynorm {\n notify_max_attempts 0\n}",
		"paynorm {\n notify_max_age -1h\n}",
		"paynorm {\n account a {\n passthrough_card_data yes\n }\n}",
		"paynorm {\n store redis a:1 {\n tls {\n insecure_skip_verify\n }\n }\n}",
		"paynorm {\n store redis a:1 {\n tls on\n }\n}",
	} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// Provider endpoints are https; plain http only to this host (the
// sandbox), since credentials and card tokens are in every request.
func TestEndpointMustBeHTTPSUnlessLoopback(t *testing.T) {
	for ep, ok := range map[string]bool{
		"": true, "test": true, "production": true, "https://pt01.mul-pay.jp": true, "https://10.0.0.5:8443": true,
		"http://127.0.0.1:8090": true, "http://localhost:8090": true, "http://[::1]:8090": true, "http://127.0.0.2": true,
		"http://pt01.mul-pay.jp": false, "http://10.0.0.5": false, "http://sandbox:8090": false, "ftp://x": false,
		"https://user:pass@pt01.mul-pay.jp": false, "pt01.mul-pay.jp": false,
	} {
		a := Account{Name: "gmo", Type: "gmo", ShopID: "s", ShopPass: "p", Endpoint: ep}
		if err := a.Validate(); (err == nil) != ok {
			t.Errorf("%q: %v", ep, err)
		} else if err != nil && strings.Contains(err.Error(), "pass") && strings.Contains(ep, "pass@") {
			t.Errorf("%q: the error shows the URL's password: %v", ep, err)
		}
	}
}

// A secret written as text (or as {$NAME}, which the Caddyfile adapter
// expands into text) is named by the load-time warning; placeholders are
// not.
func TestLiteralSecretsAreNamed(t *testing.T) {
	h := Handler{NotifySecret: "whsec_literal_0123456789", KickbackToken: "{env.PAYNORM_KICKBACK_TOKEN}",
		Accounts: []Account{{Name: "gmo", ShopID: "tshop1", ShopPass: "literal-pass", SitePass: "{env.GMO_SITE_PASS}"},
			{Name: "ivr", APIKey: "{file./run/secrets/ivr_key}", APIPassword: "ivr-literal"}},
		Clients: []Client{{Name: "app", Key: "app-literal-key-0123456789abcdef0123456789"}},
		Store:   &StoreConfig{Password: "redis-literal"}}
	want := []string{"account gmo shop_pass", "account ivr api_password", "client app key", "notify_secret", "store password"}
	if got := h.literalSecrets(); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v", got)
	}
	off := Handler{KickbackToken: "off", Accounts: []Account{{Name: "gmo", ShopPass: "{env.GMO_SHOP_PASS}"}}}
	if got := off.literalSecrets(); len(got) != 0 {
		t.Fatalf("placeholders named: %v", got)
	}
}

// An account on a loopback endpoint (the sandbox) runs with its
// credential placeholders unset: the sandbox's public test values fill
// them. A credential the config does not name stays empty, and anywhere
// but loopback an unset credential refuses to load.
func TestSandboxCredentialsOnlyOnLoopback(t *testing.T) {
	repl := caddy.NewReplacer()
	expand := func(raw Account) (Account, []string) {
		a := raw
		a.replace(repl)
		return a, a.fillSandboxCredentials(&raw)
	}
	raw := Account{Name: "gmo", Type: "gmo", Endpoint: "http://127.0.0.1:8090", ShopID: "{env.PAYNORM_TEST_UNSET_1}",
		ShopPass: "mine", SitePass: "{env.PAYNORM_TEST_UNSET_2}"}
	a, got := expand(raw)
	if !reflect.DeepEqual(got, []string{"shop_id", "site_pass"}) || a.ShopPass != "mine" || a.ShopID != "tshop00000001" || a.SiteID != "" {
		t.Fatalf("%v %+v", got, a)
	}
	for _, ep := range []string{"production", "test", "", "https://pt01.mul-pay.jp"} {
		raw := Account{Name: "gmo", Type: "gmo", Endpoint: ep, ShopID: "{env.PAYNORM_TEST_UNSET_1}", ShopPass: "{env.PAYNORM_TEST_UNSET_2}"}
		b, got := expand(raw)
		if got != nil {
			t.Errorf("%q filled %v", ep, got)
		}
		if err := b.Validate(); err == nil {
			t.Errorf("%q without credentials validated", ep)
		}
	}
	if jp, _ := expand(Account{Name: "jp", Type: "jpayment", Endpoint: "http://localhost:8090", AID: "{env.PAYNORM_TEST_UNSET_1}"}); jp.AID != "123456" {
		t.Fatalf("%+v", jp)
	}
	ivr, _ := expand(Account{Name: "ivr", Type: "gmo_ivr", Endpoint: "http://127.0.0.1:8090", APIKey: "{env.PAYNORM_TEST_UNSET_1}", APIPassword: "{env.PAYNORM_TEST_UNSET_2}"})
	if ivr.APIKey != "sandboxkey" || ivr.APIPassword != "sandboxapipass" || ivr.Validate() != nil {
		t.Fatalf("%+v", ivr)
	}
}

// Client settings are checked at load: a key from the environment that is
// short or unset, an unknown account, two clients with one key.
func TestClientSettingsValidated(t *testing.T) {
	t.Setenv("PAYNORM_TEST_SHORT_KEY", "short")
	acct := []Account{{Name: "gmo", Type: "gmo", Endpoint: "http://127.0.0.1:1", ShopID: "s", ShopPass: "p"}}
	for name, clients := range map[string][]Client{
		"short key":       {{Name: "a", Key: "{env.PAYNORM_TEST_SHORT_KEY}", Accounts: []string{"gmo"}}},
		"unset key":       {{Name: "a", Key: "{env.PAYNORM_TEST_UNSET_KEY}", Accounts: []string{"gmo"}}},
		"unknown account": {{Name: "a", Key: keyA, Accounts: []string{"gmo", "nope"}}},
		"no accounts":     {{Name: "a", Key: keyA}},
		"shared key":      {{Name: "a", Key: keyA, Accounts: []string{"gmo"}}, {Name: "b", Key: keyA, Accounts: []string{"gmo"}}},
		"twice":           {{Name: "a", Key: keyA, Accounts: []string{"gmo"}}, {Name: "a", Key: keyB, Accounts: []string{"gmo"}}},
	} {
		h := &Handler{Accounts: acct, Clients: clients, Store: &StoreConfig{Backend: "memory"}}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		err := h.Provision(ctx)
		if err == nil {
			t.Errorf("%s accepted", name)
		} else if strings.Contains(err.Error(), keyA) || strings.Contains(err.Error(), "short\"") {
			t.Errorf("%s: the error shows the key: %v", name, err)
		}
		_ = h.Cleanup()
		cancel()
	}
}

// An unset kickback_token is "off" only while every j-payment account is
// on a loopback endpoint (the repo Caddyfile run with no environment); a
// real j-payment endpoint still refuses to load without one.
func TestEmptyKickbackTokenOnlyForTheSandbox(t *testing.T) {
	for ep, ok := range map[string]bool{"http://127.0.0.1:8090": true, "production": false, "https://credit.j-payment.co.jp": false} {
		h := &Handler{KickbackToken: "{env.PAYNORM_TEST_UNSET_TOKEN}", Store: &StoreConfig{Backend: "memory"},
			Accounts: []Account{{Name: "jp", Type: "jpayment", AID: "123456", Endpoint: ep}}}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		err := h.Provision(ctx)
		if (err == nil) != ok {
			t.Errorf("%s: %v", ep, err)
		}
		if err == nil && h.webhooks.kickbackToken != "" {
			t.Errorf("%s: token %q", ep, h.webhooks.kickbackToken)
		}
		_ = h.Cleanup()
		cancel()
	}
}
