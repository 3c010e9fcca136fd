package caddymodule

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/paynorm/paynorm/providers/sandbox"
	"github.com/paynorm/paynorm/store"
)

const testShopPass = "envShopPass"

// env is one paynorm handler, provisioned as Caddy would, served over
// loopback HTTP in front of a sandbox GMO on its own loopback server.
type env struct {
	t   *testing.T
	gmo *sandbox.GMO
	sim *httptest.Server
	h   *Handler
	api *httptest.Server
}

// newEnv provisions a handler with a journal store (the default) in a temp dir (resolver
// included). tune may change the handler before Provision.
func newEnv(t *testing.T, gmo *sandbox.GMO, tune func(h *Handler)) *env {
	t.Helper()
	if gmo == nil {
		gmo = sandbox.NewGMO()
	}
	e := &env{t: t, gmo: gmo}
	e.sim = httptest.NewServer(gmo)
	t.Cleanup(e.sim.Close)
	// Every HTTP test runs with webhook events on: events are written by the
	// ledger and must not hide any feature (they once did, through a
	// provider wrapper that lost the optional interfaces).
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(sink.Close)
	e.h = &Handler{
		NotifyURL:    sink.URL,
		NotifySecret: testSecret,
		Store:        &StoreConfig{Backend: "journal", Path: filepath.Join(t.TempDir(), "paynorm.journal")},
		ResolveAfter: caddy.Duration(200 * time.Millisecond),
		// 3-D Secure off: these tests are about everything else; the 3-D
		// Secure tests turn it on.
		Accounts: []Account{{Name: "gmo", Type: "gmo", Endpoint: e.sim.URL, ShopID: "tshop1", ShopPass: testShopPass,
			Timeout: caddy.Duration(500 * time.Millisecond), BreakerFailures: 1000, ThreeDSecure: "off"}},
	}
	if tune != nil {
		tune(e.h)
	}
	e.provision()
	return e
}

func (e *env) provision() {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	if err := e.h.Provision(ctx); err != nil {
		e.t.Fatal(err)
	}
	if err := e.h.Validate(); err != nil {
		e.t.Fatal(err)
	}
	h := e.h
	e.api = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = h.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
			w.WriteHeader(http.StatusNotFound)
			return nil
		}))
	}))
	e.t.Cleanup(func() {
		e.api.Close()
		_ = h.Cleanup()
		cancel()
	})
}

func (e *env) store() store.Store { return e.h.store }

type reply struct {
	Status int
	Header http.Header
	Body   []byte
	JSON   map[string]any
}

func (r *reply) str(path ...string) string {
	var v any = r.JSON
	for _, k := range path {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	s, _ := v.(string)
	return s
}

// do sends one request; key, when set, is the Idempotency-Key.
func (e *env) do(method, path, body, key string) *reply {
	e.t.Helper()
	r, err := e.try(method, path, body, key)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) try(method, path, body, key string) (*reply, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.api.URL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	r := &reply{Status: resp.StatusCode, Header: resp.Header, Body: b}
	_ = json.Unmarshal(b, &r.JSON)
	return r, nil
}

// waitStatus polls GET until the payment shows want.
func (e *env) waitStatus(id, want string, within time.Duration) *reply {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		r := e.do("GET", "/v1/payments/"+id, "", "")
		if r.str("status") == want || time.Now().After(deadline) {
			return r
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// record reads the stored payment record.
func (e *env) record(id string) *store.PaymentRecord {
	e.t.Helper()
	rec, err := e.store().GetPayment(context.Background(), id)
	if err != nil {
		e.t.Fatalf("record %s: %v", id, err)
	}
	return rec
}

func createBody(orderID, token string, amount int) string {
	b, _ := json.Marshal(map[string]any{"order_id": orderID, "amount": amount, "payment_method": map[string]string{"token": token}})
	if orderID == "" {
		b, _ = json.Marshal(map[string]any{"amount": amount, "payment_method": map[string]string{"token": token}})
	}
	return string(b)
}
