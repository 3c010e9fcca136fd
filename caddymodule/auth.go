package caddymodule

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/paynorm/paynorm/normalize"
)

// Client is one app allowed to call the unified API with its own key.
type Client struct {
	// Name identifies the app in logs (never its key) and scopes its
	// Idempotency-Keys: two apps using the same key string never see each
	// other's answers. 1-32 lower-case letters, digits and '-'.
	Name string `json:"name"`
	// Key is the app's bearer token (Authorization: Bearer <key>), at
	// least 32 characters, e.g. `openssl rand -hex 32`. Write it as a
	// placeholder ({env.APP_A_KEY} or {file./run/secrets/app_a_key}): it is
	// replaced at provision time, so the running config and Caddy's admin
	// API show only the placeholder. Never logged.
	Key string `json:"key"`
	// Accounts are the provider accounts the app may use (at least one).
	// A payment, customer or phone order of another account answers 403.
	Accounts []string `json:"accounts"`
}

// minClientKey is the shortest app key accepted: 32 characters of a
// random hex or base64 string are far beyond guessing over HTTP.
const minClientKey = 32

// apiClient is a provisioned Client: the key only as a digest.
type apiClient struct {
	name     string
	digest   [sha256.Size]byte
	accounts map[string]bool
	order    []string
}

// providerRoutes answer without an app key: the provider notifications,
// which providers cannot send with one; they carry their own secret path
// token. The health check answers without a key too, showing only its
// status (container and load-balancer probes).
var providerRoutes = map[string]bool{"jpayment_kickback": true, "gmo_notification": true}

// provisionClients checks the clients against the provisioned accounts
// and keeps each key only as its SHA-256.
func (h *Handler) provisionClients(repl *caddy.Replacer) error {
	names := map[string]bool{}
	digests := map[[sha256.Size]byte]bool{}
	for _, c := range h.Clients {
		if !accountName.MatchString(c.Name) {
			return fmt.Errorf("client name %q: use 1-32 lower-case letters, digits and '-'", c.Name)
		}
		if names[c.Name] {
			return fmt.Errorf("client %s is configured twice", c.Name)
		}
		names[c.Name] = true
		key := strings.TrimSpace(repl.ReplaceAll(c.Key, ""))
		if len(key) < minClientKey || strings.ContainsAny(key, " \t\r\n") {
			return fmt.Errorf("client %s: key must be at least %d characters without spaces (set it from the environment: key {env.NAME})", c.Name, minClientKey)
		}
		cl := &apiClient{name: c.Name, digest: sha256.Sum256([]byte(key)), accounts: map[string]bool{}}
		if digests[cl.digest] {
			return fmt.Errorf("client %s: two clients have the same key", c.Name)
		}
		digests[cl.digest] = true
		if len(c.Accounts) == 0 {
			return fmt.Errorf("client %s: name the accounts it may use (accounts <name>...)", c.Name)
		}
		for _, a := range c.Accounts {
			if _, ok := h.providers[a]; !ok {
				return fmt.Errorf("client %s: account %q is not configured", c.Name, a)
			}
			if !cl.accounts[a] {
				cl.accounts[a] = true
				cl.order = append(cl.order, a)
			}
		}
		h.clients = append(h.clients, cl)
	}
	return nil
}

// authenticate finds the client whose key the request carries. The
// presented key is hashed and compared with every client's digest in
// constant time, without stopping at a match, so neither the key's length
// nor which client it belongs to shows in the timing.
func (h *Handler) authenticate(r *http.Request) (*apiClient, *normalize.Error) {
	scheme, tok, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return nil, normalize.New("api_key_missing")
	}
	d := sha256.Sum256([]byte(tok))
	var found *apiClient
	for _, c := range h.clients {
		if subtle.ConstantTimeCompare(d[:], c.digest[:]) == 1 {
			found = c
		}
	}
	if found == nil {
		return nil, normalize.New("api_key_invalid")
	}
	return found, nil
}

// authorize runs before a route when clients are configured: it sets the
// call's client, or answers 401. It reports whether the route may run.
func (h *Handler) authorize(rt apiRoute, c *call) (int, bool) {
	if len(h.clients) == 0 || providerRoutes[rt.Name] {
		return 0, true
	}
	cl, err := h.authenticate(c.r)
	if err == nil {
		c.client = cl
		return 0, true
	}
	if rt.Name == "health" && err.Code == "api_key_missing" {
		return 0, true // the status alone, for probes
	}
	h.logger.Warn("API request refused", zap.String("request_id", c.rid), zap.String("route", rt.Name),
		zap.String("code", err.Code), zap.String("remote", c.r.RemoteAddr))
	challenge := `Bearer realm="paynorm"`
	if err.Code == "api_key_invalid" {
		challenge += `, error="invalid_token"`
	}
	c.w.Header().Set("WWW-Authenticate", challenge)
	return h.fail(c.w, c.rid, err), false
}

// permits reports whether the call may act on account.
func (c *call) permits(account string) bool {
	return c.client == nil || c.client.accounts[account]
}

// visible lists the accounts the call may use, in configuration order.
func (h *Handler) visible(c *call) []string {
	if c.client == nil {
		return h.order
	}
	return c.client.order
}

// notPermitted is the 403 of an account the call's key may not use.
func notPermitted(c *call, account, param string) *normalize.Error {
	e := normalize.Newf("account_not_permitted", "The API key of client %q may not use provider account %q (allowed: %s).",
		c.client.name, account, strings.Join(c.client.order, ", "))
	return e.WithParam(param)
}

// literalSecrets names the secrets the config holds as literal text
// rather than a placeholder: they appear in Caddy's admin API (/config)
// and its autosave.json. A Caddyfile's {$NAME} is expanded when the
// Caddyfile is adapted, so it lands here as a literal too; {env.NAME} and
// {file.PATH} stay placeholders until provision.
func (h *Handler) literalSecrets() []string {
	var out []string
	check := func(name, v string) {
		if v != "" && !strings.Contains(v, "{") {
			out = append(out, name)
		}
	}
	check("notify_secret", h.NotifySecret)
	if h.KickbackToken != "off" {
		check("kickback_token", h.KickbackToken)
	}
	check("gmo_notify_token", h.GMONotifyToken)
	for _, a := range h.Accounts {
		for _, s := range a.secrets() {
			check("account "+a.Name+" "+s.name, *s.value)
		}
	}
	for _, c := range h.Clients {
		check("client "+c.Name+" key", c.Key)
	}
	if h.Store != nil {
		check("store password", h.Store.Password)
	}
	slices.Sort(out)
	return out
}
