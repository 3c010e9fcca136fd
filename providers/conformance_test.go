package providers_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers"
	"github.com/paynorm/paynorm/providers/gmo"
	"github.com/paynorm/paynorm/providers/jpayment"
	"github.com/paynorm/paynorm/providers/sandbox"
	"github.com/paynorm/paynorm/resilience"
)

// The same scenarios run against every provider through the provider layer
// and its simulator over loopback HTTP: an app switching provider by
// changing one field must see the same answers.
type providerCase struct {
	name string
	new  func(t *testing.T) providers.Provider
}

var providerCases = []providerCase{
	{"gmo", func(t *testing.T) providers.Provider {
		srv := httptest.NewServer(sandbox.NewGMO())
		t.Cleanup(srv.Close)
		c := gmo.NewClient(gmo.Config{Account: "gmo", Endpoint: srv.URL, ShopID: "tshop00000001", ShopPass: "shoppass", Timeout: 5 * time.Second},
			http.DefaultTransport, resilience.New(resilience.Settings{Name: "gmo"}), nil)
		return gmo.New(c)
	}},
	{"jpayment", func(t *testing.T) providers.Provider {
		srv := httptest.NewServer(sandbox.NewJPayment())
		t.Cleanup(srv.Close)
		c := jpayment.NewClient(jpayment.Config{Account: "jp", Endpoint: srv.URL, AID: "123456", Timeout: 5 * time.Second},
			http.DefaultTransport, resilience.New(resilience.Settings{Name: "jp"}), nil)
		return jpayment.New(c)
	}},
}

func createReq(amount int64, capture, token string) *normalize.CreatePayment {
	r := &normalize.CreatePayment{Amount: amount, Tax: 100, Capture: capture, PaymentMethod: normalize.PaymentMethod{Token: token},
		Customer: &normalize.CustomerInfo{Email: "a@example.jp"}}
	if capture == normalize.CaptureVerify {
		r.Amount, r.Tax = 0, 0
	}
	if err := r.Validate(); err != nil {
		panic(err)
	}
	return r
}

func key(t *testing.T, pay *normalize.Payment) string {
	t.Helper()
	_, k, ok := normalize.SplitPaymentID(pay.ID)
	if !ok {
		t.Fatalf("payment id %q has no provider key", pay.ID)
	}
	return k
}

// target is what the caller (paynorm's ledger) hands a follow-up: the
// provider key and its latest record of the payment. GMO reads its own
// state and ignores the record; j-payment, which has no query API, acts on it.
func target(t *testing.T, pay *normalize.Payment) providers.Target {
	t.Helper()
	return providers.Target{Key: key(t, pay), Known: pay}
}

// checkGet asks the provider for the payment: a queryable provider answers
// its own state, one without a query API (j-payment) answers unsupported
// without a call.
func checkGet(t *testing.T, p providers.Provider, pay *normalize.Payment, amount int64, status string) {
	t.Helper()
	got, err := p.GetPayment(context.Background(), key(t, pay))
	if !providers.Queryable(p) {
		if e := normErr(t, err); e.Code != "unsupported" || got != nil {
			t.Fatalf("get without a query API: %+v %v", got, e)
		}
		return
	}
	if err != nil || got.Status != status || got.ID != pay.ID || got.Amount != amount {
		t.Fatalf("get: %+v %v", got, err)
	}
}

func normErr(t *testing.T, err error) *normalize.Error {
	t.Helper()
	var ne *normalize.Error
	if !errors.As(err, &ne) {
		t.Fatalf("want a *normalize.Error, got %v", err)
	}
	return ne
}

func TestLifecycleAcrossProviders(t *testing.T) {
	ctx := context.Background()
	type step func(t *testing.T, p providers.Provider)
	scenarios := []struct {
		name string
		run  step
	}{
		{"authorize, capture, capture again, cancel", func(t *testing.T, p providers.Provider) {
			pay, err := p.CreatePayment(ctx, createReq(1000, normalize.CaptureManual, "tok_visa"))
			if err != nil {
				t.Fatal(err)
			}
			if pay.Status != normalize.StatusAuthorized || pay.Total != 1100 || pay.ApprovalCode == "" || pay.Provider != p.Account() {
				t.Fatalf("authorize: %+v", pay)
			}
			checkGet(t, p, pay, 1000, normalize.StatusAuthorized)
			cap1, err := p.Capture(ctx, target(t, pay), &normalize.CaptureRequest{})
			if err != nil || cap1.Status != normalize.StatusCaptured || cap1.ID != pay.ID {
				t.Fatalf("capture: %+v %v", cap1, err)
			}
			_, err = p.Capture(ctx, target(t, cap1), &normalize.CaptureRequest{})
			if e := normErr(t, err); e.Code != "already_captured" || e.HTTPStatus() != 409 {
				t.Fatalf("second capture: %v", e)
			}
			c, err := p.Cancel(ctx, target(t, cap1))
			if err != nil || (c.Status != normalize.StatusRefunded && c.Status != normalize.StatusVoided) || c.ID != pay.ID {
				t.Fatalf("cancel: %+v %v", c, err)
			}
			_, err = p.Cancel(ctx, target(t, c))
			if e := normErr(t, err); e.Code != "not_cancelable" {
				t.Fatalf("second cancel: %v", e)
			}
		}},
		{"capture amount must match", func(t *testing.T, p providers.Provider) {
			pay, err := p.CreatePayment(ctx, createReq(1000, normalize.CaptureManual, "tok_jcb"))
			if err != nil {
				t.Fatal(err)
			}
			n := int64(999)
			_, err = p.Capture(ctx, target(t, pay), &normalize.CaptureRequest{Amount: &n})
			if e := normErr(t, err); e.Code != "amount_mismatch" || e.Param == nil || *e.Param != "amount" {
				t.Fatalf("got %v", e)
			}
		}},
		{"void an authorization", func(t *testing.T, p providers.Provider) {
			pay, err := p.CreatePayment(ctx, createReq(500, normalize.CaptureManual, "tok_mastercard"))
			if err != nil {
				t.Fatal(err)
			}
			c, err := p.Cancel(ctx, target(t, pay))
			if err != nil || c.Status != normalize.StatusVoided {
				t.Fatalf("cancel: %+v %v", c, err)
			}
			_, err = p.Capture(ctx, target(t, c), &normalize.CaptureRequest{})
			if e := normErr(t, err); e.Code != "not_capturable" {
				t.Fatalf("capture after void: %v", e)
			}
		}},
		{"immediate capture cannot be captured again", func(t *testing.T, p providers.Provider) {
			pay, err := p.CreatePayment(ctx, createReq(800, normalize.CaptureAutomatic, "tok_visa"))
			if err != nil || pay.Status != normalize.StatusCaptured {
				t.Fatalf("%+v %v", pay, err)
			}
			_, err = p.Capture(ctx, target(t, pay), &normalize.CaptureRequest{})
			if e := normErr(t, err); e.Code != "already_captured" {
				t.Fatalf("got %v", e)
			}
		}},
		{"verify", func(t *testing.T, p providers.Provider) {
			pay, err := p.CreatePayment(ctx, createReq(0, normalize.CaptureVerify, "tok_amex"))
			if err != nil || pay.Status != normalize.StatusVerified || pay.Total != 0 {
				t.Fatalf("%+v %v", pay, err)
			}
		}},
		{"reauthorize changes the amount and keeps the state", func(t *testing.T, p providers.Provider) {
			pay, err := p.CreatePayment(ctx, createReq(1000, normalize.CaptureManual, "tok_visa"))
			if err != nil {
				t.Fatal(err)
			}
			re, err := p.Reauthorize(ctx, target(t, pay), &normalize.Reauthorize{Amount: 1500, Tax: 150})
			if err != nil || re.Status != normalize.StatusAuthorized || re.Amount != 1500 || re.Total != 1650 {
				t.Fatalf("reauthorize: %+v %v", re, err)
			}
			// The answer's id is the one to use from now on (j-payment issues
			// a new gid; GMO keeps the order id).
			checkGet(t, p, re, 1500, normalize.StatusAuthorized)
			c, err := p.Capture(ctx, target(t, re), &normalize.CaptureRequest{})
			if err != nil || c.Status != normalize.StatusCaptured || c.Amount != 1500 {
				t.Fatalf("capture after reauthorize: %+v %v", c, err)
			}
		}},
		{"unknown payment", func(t *testing.T, p providers.Provider) {
			_, err := p.Capture(ctx, providers.Target{Key: "99999999"}, &normalize.CaptureRequest{})
			if e := normErr(t, err); e.Code != "resource_missing" || e.HTTPStatus() != 404 {
				t.Fatalf("got %v", e)
			}
		}},
	}
	for _, pc := range providerCases {
		for _, sc := range scenarios {
			t.Run(pc.name+"/"+sc.name, func(t *testing.T) { sc.run(t, pc.new(t)) })
		}
	}
}

// A decline is the same error, type and code, whichever provider gave it.
func TestDeclinesIdenticalAcrossProviders(t *testing.T) {
	ctx := context.Background()
	ps := make([]providers.Provider, len(providerCases))
	for i, pc := range providerCases {
		ps[i] = pc.new(t)
	}
	for tok := range sandbox.Declines {
		var first *normalize.Error
		for i, p := range ps {
			_, err := p.CreatePayment(ctx, createReq(1000, normalize.CaptureAutomatic, tok))
			e := normErr(t, err)
			if e.Type != normalize.TypeCard || len(e.ProviderCodes) == 0 || e.Provider != p.Account() {
				t.Errorf("%s/%s: %+v", providerCases[i].name, tok, e)
			}
			if e.Payment != nil && e.Payment.Status != normalize.StatusFailed {
				t.Errorf("%s/%s: payment status %s, want failed", providerCases[i].name, tok, e.Payment.Status)
			}
			if first == nil {
				first = e
				continue
			}
			if e.Type != first.Type || e.Code != first.Code || e.HTTPStatus() != first.HTTPStatus() || e.Retryable != first.Retryable {
				t.Errorf("%s: %s gives %s/%s, %s gives %s/%s", tok, providerCases[0].name, first.Type, first.Code,
					providerCases[i].name, e.Type, e.Code)
			}
		}
	}
}

// A create's write-ahead record never shares a key with a payment: GMO
// payments are keyed by order id, j-payment ones by gid, so an all-digit
// j-payment order id is namespaced.
func TestCreateRecordKeyNeverCollidesWithPaymentKeys(t *testing.T) {
	for _, pc := range providerCases {
		p := pc.new(t)
		r := createReq(1000, normalize.CaptureManual, "tok_visa")
		r.Customer = &normalize.CustomerInfo{Email: "a@example.jp"}
		pay, err := p.CreatePayment(context.Background(), r)
		if err != nil {
			t.Fatalf("%s: %v", pc.name, err)
		}
		k := key(t, pay)
		rk := providers.CreateRecordKey(p, k)
		switch pc.name {
		case "gmo":
			if rk != pay.OrderID {
				t.Errorf("gmo: record key %q, want the order id %q", rk, pay.OrderID)
			}
		default:
			if rk == k || !strings.HasPrefix(rk, "order.") {
				t.Errorf("%s: record key %q for payment key %q", pc.name, rk, k)
			}
		}
	}
}
