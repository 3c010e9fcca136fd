package gmo_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers"
	"github.com/paynorm/paynorm/providers/gmo"
	"github.com/paynorm/paynorm/providers/sandbox"
	"github.com/paynorm/paynorm/resilience"
)

type env struct {
	sim   *sandbox.GMO
	srv   *httptest.Server
	p     *gmo.Provider
	mu    sync.Mutex
	calls []providers.CallInfo
}

func newEnv(t *testing.T, timeout time.Duration, gs resilience.Settings) *env {
	t.Helper()
	e := &env{sim: sandbox.NewGMO()}
	e.sim.SlowDelay = 3 * timeout
	e.srv = httptest.NewServer(e.sim)
	t.Cleanup(e.srv.Close)
	if gs.Name == "" {
		gs.Name = "gmo"
	}
	c := gmo.NewClient(gmo.Config{Account: "gmo", Endpoint: e.srv.URL, ShopID: "tshop00000001", ShopPass: "shoppass",
		SiteID: "tsite00000001", SitePass: "sitepass", Timeout: timeout},
		http.DefaultTransport, resilience.New(gs), func(ci providers.CallInfo) {
			e.mu.Lock()
			e.calls = append(e.calls, ci)
			e.mu.Unlock()
		})
	e.p = gmo.New(c)
	return e
}

func create(amount int64, capture, token string) *normalize.CreatePayment {
	r := &normalize.CreatePayment{Amount: amount, Tax: 10, Capture: capture, PaymentMethod: normalize.PaymentMethod{Token: token}}
	if err := r.Validate(); err != nil {
		panic(err)
	}
	return r
}

func asErr(t *testing.T, err error) *normalize.Error {
	t.Helper()
	var ne *normalize.Error
	if !errors.As(err, &ne) {
		t.Fatalf("want *normalize.Error, got %v", err)
	}
	return ne
}

func TestAuthorizeCaptureCancelLifecycle(t *testing.T) {
	e := newEnv(t, 2*time.Second, resilience.Settings{})
	ctx := context.Background()
	pay, err := e.p.CreatePayment(ctx, create(1000, normalize.CaptureManual, "tok_visa"))
	if err != nil {
		t.Fatal(err)
	}
	if pay.Status != normalize.StatusAuthorized || pay.Total != 1010 || pay.ApprovalCode == "" || pay.TransactionID == "" {
		t.Fatalf("authorize: %+v", pay)
	}
	if st, amt := e.sim.TradeStatus("tshop00000001", pay.OrderID); st != "AUTH" || amt != 1000 {
		t.Fatalf("ledger: %s %d", st, amt)
	}
	got, err := e.p.GetPayment(ctx, pay.OrderID)
	if err != nil || got.Status != normalize.StatusAuthorized || got.Card == nil || got.Card.Brand != "" && got.Card.MaskedNumber == "" {
		t.Fatalf("get: %+v %v", got, err)
	}
	wrong := int64(999)
	_, err = e.p.Capture(ctx, providers.Target{Key: pay.OrderID}, &normalize.CaptureRequest{Amount: &wrong})
	if ne := asErr(t, err); ne.Code != "amount_mismatch" || e.sim.Calls("AlterTran") != 0 {
		t.Fatalf("capture with another amount: %+v, AlterTran calls %d", ne, e.sim.Calls("AlterTran"))
	}
	cap, err := e.p.Capture(ctx, providers.Target{Key: pay.OrderID}, &normalize.CaptureRequest{})
	if err != nil || cap.Status != normalize.StatusCaptured {
		t.Fatalf("capture: %+v %v", cap, err)
	}
	_, err = e.p.Capture(ctx, providers.Target{Key: pay.OrderID}, &normalize.CaptureRequest{})
	if ne := asErr(t, err); ne.Code != "already_captured" || ne.HTTPStatus() != 409 || ne.Payment == nil {
		t.Fatalf("second capture: %+v", ne)
	}
	can, err := e.p.Cancel(ctx, providers.Target{Key: pay.OrderID})
	if err != nil || can.Status != normalize.StatusVoided || can.ProviderData["gmo_job"] != "VOID" {
		t.Fatalf("cancel: %+v %v", can, err)
	}
	if st, _ := e.sim.TradeStatus("tshop00000001", pay.OrderID); st != "VOID" {
		t.Fatalf("ledger after cancel: %s", st)
	}
	_, err = e.p.Cancel(ctx, providers.Target{Key: pay.OrderID})
	if ne := asErr(t, err); ne.Code != "not_cancelable" {
		t.Fatalf("second cancel: %+v", ne)
	}
}

func TestReauthorizeChangesAmount(t *testing.T) {
	e := newEnv(t, 2*time.Second, resilience.Settings{})
	ctx := context.Background()
	pay, err := e.p.CreatePayment(ctx, create(5000, normalize.CaptureAutomatic, "tok_jcb_1"))
	if err != nil || pay.Status != normalize.StatusCaptured {
		t.Fatalf("%+v %v", pay, err)
	}
	re, err := e.p.Reauthorize(ctx, providers.Target{Key: pay.OrderID}, &normalize.Reauthorize{Amount: 4000, Tax: 400})
	if err != nil || re.Amount != 4000 || re.Total != 4400 || re.Status != normalize.StatusCaptured {
		t.Fatalf("reauthorize: %+v %v", re, err)
	}
	if _, amt := e.sim.TradeStatus("tshop00000001", pay.OrderID); amt != 4000 {
		t.Fatalf("ledger amount %d", amt)
	}
}

func TestVerifyAndInstallments(t *testing.T) {
	e := newEnv(t, 2*time.Second, resilience.Settings{})
	ctx := context.Background()
	v := &normalize.CreatePayment{Capture: normalize.CaptureVerify, PaymentMethod: normalize.PaymentMethod{Token: "tok_visa"}}
	if err := v.Validate(); err != nil {
		t.Fatal(err)
	}
	pay, err := e.p.CreatePayment(ctx, v)
	if err != nil || pay.Status != normalize.StatusVerified {
		t.Fatalf("verify: %+v %v", pay, err)
	}
	r := create(30000, normalize.CaptureAutomatic, "tok_visa")
	r.Installments = &normalize.Installments{Plan: normalize.PlanInstallments, Count: 3}
	pay, err = e.p.CreatePayment(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := e.p.GetPayment(ctx, pay.OrderID)
	if got.Installments == nil || got.Installments.Plan != normalize.PlanInstallments || got.Installments.Count != 3 {
		t.Fatalf("installments read back: %+v", got.Installments)
	}
}

func TestCancelJobByJapanDate(t *testing.T) {
	at := func(s string) time.Time {
		tm, err := time.ParseInLocation("2006-01-02 15:04", s, normalize.JST)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	cases := []struct{ processed, now, want string }{
		{"2026-11-23 10:00", "2026-11-23 23:59", "VOID"},
		{"2026-11-23 23:59", "2026-11-24 00:01", "RETURN"},
		{"2026-11-30 10:00", "2026-12-01 09:00", "RETURNX"},
		{"2025-11-23 10:00", "2026-11-23 10:00", "RETURNX"},
	}
	for _, c := range cases {
		if got := gmo.CancelJob(at(c.processed), at(c.now)); got != c.want {
			t.Errorf("%s -> %s: got %s want %s", c.processed, c.now, got, c.want)
		}
	}
	// 2026-11-23 08:30 JST is still 11-22 in UTC: the day is Japan's.
	if got := gmo.CancelJob(at("2026-11-23 08:30"), at("2026-11-23 10:00").UTC()); got != "VOID" {
		t.Errorf("UTC clock: got %s", got)
	}
}

func TestDeclinesAreCardErrorsWithFailedPayment(t *testing.T) {
	e := newEnv(t, 2*time.Second, resilience.Settings{FailureThreshold: 2})
	cases := map[string]string{
		"tok_insufficient_funds": "insufficient_funds", "tok_exceeds_limit": "exceeds_limit", "tok_declined": "card_declined",
		"tok_expired_card": "expired_card", "tok_incorrect_cvc": "incorrect_cvc", "tok_token_expired": "token_expired",
		"tok_unknown": "token_invalid",
	}
	for tok, code := range cases {
		_, err := e.p.CreatePayment(context.Background(), create(1000, normalize.CaptureAutomatic, tok))
		ne := asErr(t, err)
		if ne.Type != normalize.TypeCard || ne.Code != code || ne.HTTPStatus() != 402 || ne.Payment == nil || ne.Payment.Status != normalize.StatusFailed || len(ne.ProviderCodes) == 0 {
			t.Errorf("%s: %+v", tok, ne)
		}
	}
	// Declines prove GMO is healthy: the breaker stays closed.
	if st := e.p.Breaker(); st != "closed" {
		t.Fatalf("breaker %s after declines", st)
	}
}

func TestDuplicateOrderIDAnswersExistingPayment(t *testing.T) {
	e := newEnv(t, 2*time.Second, resilience.Settings{})
	ctx := context.Background()
	r := create(1200, normalize.CaptureManual, "tok_visa")
	r.OrderID = "DUP-1"
	first, err := e.p.CreatePayment(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.p.CreatePayment(ctx, r)
	if err != nil || again.ID != first.ID || again.Status != normalize.StatusAuthorized {
		t.Fatalf("same request again: %+v %v", again, err)
	}
	if n := e.sim.Charges(); n != 1 {
		t.Fatalf("charges %d, want 1", n)
	}
	other := create(9999, normalize.CaptureManual, "tok_visa")
	other.OrderID = "DUP-1"
	_, err = e.p.CreatePayment(ctx, other)
	if ne := asErr(t, err); ne.Code != "order_id_exists" || ne.Payment == nil || ne.Payment.Amount != 1200 {
		t.Fatalf("different amount: %+v", ne)
	}
}

// ExecTran whose answer comes too late: GMO charged, paynorm must not retry,
// and must find the charge with SearchTrade instead of reporting failure.
func TestTimeoutAfterChargeIsResolvedNotRetried(t *testing.T) {
	e := newEnv(t, 300*time.Millisecond, resilience.Settings{})
	pay, err := e.p.CreatePayment(context.Background(), create(1000, normalize.CaptureAutomatic, sandbox.TokSlow))
	if err != nil {
		t.Fatalf("want the charge found by SearchTrade, got %v", err)
	}
	if pay.Status != normalize.StatusCaptured {
		t.Fatalf("status %s", pay.Status)
	}
	if n := e.sim.Calls("ExecTran"); n != 1 {
		t.Fatalf("ExecTran sent %d times", n)
	}
	if e.sim.Charges() != 1 {
		t.Fatalf("charges %d", e.sim.Charges())
	}
}

func TestUnresolvableOutcomeIsUnknownNeverFailed(t *testing.T) {
	e := newEnv(t, 300*time.Millisecond, resilience.Settings{})
	// ExecTran answers 503 before processing and SearchTrade cannot tell
	// whether a late execution is still coming: unknown.
	e.sim.InjectFault(sandbox.Fault{API: "ExecTran", Kind: sandbox.Fault5xx})
	_, err := e.p.CreatePayment(context.Background(), create(1000, normalize.CaptureAutomatic, "tok_visa"))
	ne := asErr(t, err)
	if ne.Payment == nil || ne.Payment.Status != normalize.StatusUnknown || ne.Retryable {
		t.Fatalf("5xx on ExecTran: %+v", ne)
	}
	if n := e.sim.Calls("ExecTran"); n != 1 {
		t.Fatalf("ExecTran sent %d times", n)
	}
	// Connection reset after the request was written: same rule.
	e.sim.InjectFault(sandbox.Fault{API: "ExecTran", Kind: sandbox.FaultReset})
	_, err = e.p.CreatePayment(context.Background(), create(1000, normalize.CaptureAutomatic, "tok_visa"))
	if ne := asErr(t, err); ne.Payment == nil || ne.Payment.Status != normalize.StatusUnknown {
		t.Fatalf("reset on ExecTran: %+v", ne)
	}
	if n := e.sim.Calls("ExecTran"); n != 2 {
		t.Fatalf("ExecTran sent %d times in all", n)
	}
}

func TestForgedCheckStringIsProviderError(t *testing.T) {
	e := newEnv(t, time.Second, resilience.Settings{})
	_, err := e.p.CreatePayment(context.Background(), create(1000, normalize.CaptureAutomatic, sandbox.TokBadCheck))
	ne := asErr(t, err)
	if ne.Type != normalize.TypeProviderError || ne.Code != "invalid_response" || ne.Payment.Status != normalize.StatusUnknown {
		t.Fatalf("%+v", ne)
	}
}

func TestDamagedAnswersAfterCommit(t *testing.T) {
	for _, kind := range []string{sandbox.FaultTruncate, sandbox.FaultGarbage, sandbox.FaultBadSJIS, sandbox.FaultCommitReset} {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, time.Second, resilience.Settings{})
			e.sim.InjectFault(sandbox.Fault{API: "AlterTran", Kind: kind})
			pay, err := e.p.CreatePayment(context.Background(), create(1000, normalize.CaptureManual, "tok_visa"))
			if err != nil {
				t.Fatal(err)
			}
			// The capture went through at GMO; paynorm learns it from SearchTrade.
			got, err := e.p.Capture(context.Background(), providers.Target{Key: pay.OrderID}, &normalize.CaptureRequest{})
			if err != nil || got.Status != normalize.StatusCaptured {
				t.Fatalf("capture after %s: %+v %v", kind, got, err)
			}
			if n := e.sim.Calls("AlterTran"); n != 1 {
				t.Fatalf("AlterTran sent %d times", n)
			}
		})
	}
}

func TestReadsAreRetriedOnFaults(t *testing.T) {
	e := newEnv(t, time.Second, resilience.Settings{})
	pay, err := e.p.CreatePayment(context.Background(), create(1000, normalize.CaptureManual, "tok_visa"))
	if err != nil {
		t.Fatal(err)
	}
	before := e.sim.Calls("SearchTrade")
	e.sim.InjectFault(sandbox.Fault{API: "SearchTrade", Kind: sandbox.Fault5xx})
	if _, err := e.p.GetPayment(context.Background(), pay.OrderID); err != nil {
		t.Fatalf("read after one 5xx: %v", err)
	}
	if n := e.sim.Calls("SearchTrade") - before; n != 2 {
		t.Fatalf("SearchTrade calls %d, want 2", n)
	}
}

func TestProviderFaultsOpenTheBreaker(t *testing.T) {
	e := newEnv(t, time.Second, resilience.Settings{FailureThreshold: 3, OpenTimeout: 200 * time.Millisecond})
	for i := 0; i < 3; i++ {
		_, err := e.p.CreatePayment(context.Background(), create(1000, normalize.CaptureAutomatic, sandbox.TokE91))
		if ne := asErr(t, err); ne.Type != normalize.TypeProviderUnavailable {
			t.Fatalf("E91: %+v", ne)
		}
	}
	if e.p.Breaker() != "open" {
		t.Fatalf("breaker %s after 3 faults", e.p.Breaker())
	}
	before := e.sim.Calls("EntryTran")
	_, err := e.p.CreatePayment(context.Background(), create(1000, normalize.CaptureAutomatic, "tok_visa"))
	ne := asErr(t, err)
	if ne.Code != "circuit_open" || ne.HTTPStatus() != 503 || ne.RetryAfterHeader() == "" {
		t.Fatalf("open breaker: %+v", ne)
	}
	if e.sim.Calls("EntryTran") != before {
		t.Fatal("an open breaker must not call GMO")
	}
	time.Sleep(250 * time.Millisecond)
	if _, err := e.p.CreatePayment(context.Background(), create(1000, normalize.CaptureAutomatic, "tok_visa")); err != nil {
		t.Fatalf("after the open period: %v", err)
	}
	if e.p.Breaker() != "closed" {
		t.Fatalf("breaker %s after recovery", e.p.Breaker())
	}
}

func TestRateLimitAnswers429WithRetryAfter(t *testing.T) {
	e := newEnv(t, time.Second, resilience.Settings{Rate: 0.5, Burst: 2, MaxWait: 10 * time.Millisecond})
	ctx := context.Background()
	// Burst 2 covers EntryTran + ExecTran of the first payment.
	if _, err := e.p.CreatePayment(ctx, create(1000, normalize.CaptureAutomatic, "tok_visa")); err != nil {
		t.Fatal(err)
	}
	_, err := e.p.CreatePayment(ctx, create(1000, normalize.CaptureAutomatic, "tok_visa"))
	ne := asErr(t, err)
	if ne.Type != normalize.TypeRateLimited || ne.HTTPStatus() != 429 || ne.RetryAfterHeader() == "" {
		t.Fatalf("%+v", ne)
	}
	if e.sim.Calls("EntryTran") != 1 {
		t.Fatalf("EntryTran calls %d", e.sim.Calls("EntryTran"))
	}
}

func TestUnreachableProviderIsRetriedOnceAndNotSent(t *testing.T) {
	e := newEnv(t, time.Second, resilience.Settings{})
	e.srv.Close() // nothing listens any more
	_, err := e.p.CreatePayment(context.Background(), create(1000, normalize.CaptureAutomatic, "tok_visa"))
	ne := asErr(t, err)
	if ne.Type != normalize.TypeProviderUnavailable || !ne.Retryable {
		t.Fatalf("%+v", ne)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.calls) != 2 || e.calls[0].Outcome != providers.OutcomeNotSent || e.calls[1].Attempt != 2 {
		t.Fatalf("calls: %+v", e.calls)
	}
}

func TestWrongCredentialsAreProviderError(t *testing.T) {
	e := newEnv(t, time.Second, resilience.Settings{})
	e.sim.Shops = map[string]string{"tshop00000001": "other"}
	_, err := e.p.CreatePayment(context.Background(), create(1000, normalize.CaptureAutomatic, "tok_visa"))
	if ne := asErr(t, err); ne.Type != normalize.TypeProviderError || ne.Code != "provider_misconfigured" || ne.HTTPStatus() != 502 {
		t.Fatalf("%+v", ne)
	}
}

func TestUnknownPaymentIs404(t *testing.T) {
	e := newEnv(t, time.Second, resilience.Settings{})
	_, err := e.p.GetPayment(context.Background(), "NOPE-1")
	if ne := asErr(t, err); ne.Code != "resource_missing" || ne.HTTPStatus() != 404 {
		t.Fatalf("%+v", ne)
	}
}
