package jpayment_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers"
	"github.com/paynorm/paynorm/providers/jpayment"
	"github.com/paynorm/paynorm/providers/sandbox"
	"github.com/paynorm/paynorm/resilience"
)

type env struct {
	sim   *sandbox.JPayment
	srv   *httptest.Server
	p     *jpayment.Provider
	mu    sync.Mutex
	calls []providers.CallInfo
}

func newEnv(t *testing.T, timeout time.Duration, gs resilience.Settings) *env {
	t.Helper()
	e := &env{sim: sandbox.NewJPayment()}
	e.sim.SlowDelay = 3 * timeout
	e.srv = httptest.NewServer(e.sim)
	t.Cleanup(e.srv.Close)
	gs.Name = "jp"
	c := jpayment.NewClient(jpayment.Config{Account: "jp", Endpoint: e.srv.URL, AID: "123456", Timeout: timeout},
		http.DefaultTransport, resilience.New(gs), func(ci providers.CallInfo) {
			e.mu.Lock()
			e.calls = append(e.calls, ci)
			e.mu.Unlock()
		})
	e.p = jpayment.New(c)
	return e
}

func req(amount int64, capture, token string) *normalize.CreatePayment {
	r := &normalize.CreatePayment{OrderID: "ORD-1", Amount: amount, Tax: 10, Capture: capture, PaymentMethod: normalize.PaymentMethod{Token: token},
		Customer: &normalize.CustomerInfo{Phone: "0312345678"}}
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

func gid(t *testing.T, p *normalize.Payment) string {
	t.Helper()
	_, k, ok := normalize.SplitPaymentID(p.ID)
	if !ok {
		t.Fatalf("id %q", p.ID)
	}
	return k
}

// known is the target the caller (paynorm's ledger) hands a follow-up:
// j-payment has no query API, so the provider acts on this record.
func known(t *testing.T, p *normalize.Payment) providers.Target {
	t.Helper()
	return providers.Target{Key: gid(t, p), Known: p}
}

func TestCreateIDFromGID(t *testing.T) {
	e := newEnv(t, 2*time.Second, resilience.Settings{})
	pay, err := e.p.CreatePayment(context.Background(), req(1000, normalize.CaptureManual, "tok_visa_1"))
	if err != nil {
		t.Fatal(err)
	}
	g := pay.ProviderData["gid"].(string)
	if pay.ID != "jp_"+g || pay.OrderID != "ORD-1" || pay.Status != normalize.StatusAuthorized || pay.TransactionID == "" {
		t.Fatalf("%+v", pay)
	}
	if pay.Amount != 1000 || pay.Tax != 10 || pay.Total != 1010 || pay.CreatedAt == nil {
		t.Fatalf("amounts %+v", pay)
	}
	if st, total := e.sim.Status(g); st != "AUTH" || total != 1010 {
		t.Fatalf("ledger %s %d", st, total)
	}
}

func TestCreateValidation(t *testing.T) {
	e := newEnv(t, time.Second, resilience.Settings{})
	ctx := context.Background()
	r := req(1000, normalize.CaptureAutomatic, "tok_visa")
	r.Customer = nil
	ne := asErr(t, func() error { _, err := e.p.CreatePayment(ctx, r); return err }())
	if ne.Type != normalize.TypeInvalidRequest || ne.Param == nil || *ne.Param != "customer" {
		t.Fatalf("no customer: %+v", ne)
	}
	seq := 1
	r = req(1000, normalize.CaptureAutomatic, "tok_visa")
	r.PaymentMethod = normalize.PaymentMethod{CustomerID: "m1", CardSeq: &seq}
	ne = asErr(t, func() error { _, err := e.p.CreatePayment(ctx, r); return err }())
	if ne.Code != "unsupported" || ne.HTTPStatus() != 422 {
		t.Fatalf("stored card: %+v", ne)
	}
	r = req(1000, normalize.CaptureAutomatic, "tok_visa")
	r.Installments = &normalize.Installments{Plan: normalize.PlanInstallments, Count: 3}
	if ne := asErr(t, func() error { _, err := e.p.CreatePayment(ctx, r); return err }()); ne.Code != "unsupported" {
		t.Fatalf("installments: %+v", ne)
	}
	if n := e.sim.Calls("gateway_token"); n != 0 {
		t.Fatalf("%d calls reached the provider", n)
	}
}

// A decline answers the failed payment (with its gid) for the caller to
// record; the provider itself cannot be asked for it afterwards.
func TestDeclineReturnsFailedPayment(t *testing.T) {
	e := newEnv(t, time.Second, resilience.Settings{})
	_, err := e.p.CreatePayment(context.Background(), req(1000, normalize.CaptureAutomatic, "tok_insufficient_funds"))
	ne := asErr(t, err)
	if ne.Code != "insufficient_funds" || ne.HTTPStatus() != 402 || ne.ProviderCodes[0].Code != "G0442G040000" || ne.Payment.Status != normalize.StatusFailed {
		t.Fatalf("%+v", ne)
	}
	g := gid(t, ne.Payment)
	if ne.Payment.ID != "jp_"+g || ne.Payment.OrderID != "ORD-1" {
		t.Fatalf("failed payment %+v", ne.Payment)
	}
	if st, _ := e.sim.Status(g); st != "FAILED" {
		t.Fatalf("ledger %s", st)
	}
	got, err := e.p.GetPayment(context.Background(), g)
	if ge := asErr(t, err); ge.Code != "unsupported" || got != nil || !e.p.NoQuery() || providers.Queryable(e.p) {
		t.Fatalf("get: %+v %v", got, ge)
	}
	if n := e.sim.Calls("gateway_token"); n != 1 {
		t.Fatalf("%d charge calls", n)
	}
	if strings.Contains(ne.Message, "tok_") {
		t.Fatal("the token leaks into the message")
	}
}

// A charge that was sent and got no answer is unknown, never failed, and
// is not sent twice.
func TestTimeoutAfterSendIsUnknownAndNotRetried(t *testing.T) {
	e := newEnv(t, 150*time.Millisecond, resilience.Settings{})
	_, err := e.p.CreatePayment(context.Background(), req(1000, normalize.CaptureAutomatic, "tok_fault_slow"))
	ne := asErr(t, err)
	if ne.Type != normalize.TypeProviderTimeout || ne.Payment == nil || ne.Payment.Status != normalize.StatusUnknown {
		t.Fatalf("%+v", ne)
	}
	if n := e.sim.Calls("gateway_token"); n != 1 {
		t.Fatalf("charge sent %d times", n)
	}
}

func TestFollowUpFaultsAreNotRetried(t *testing.T) {
	e := newEnv(t, 300*time.Millisecond, resilience.Settings{})
	ctx := context.Background()
	pay, err := e.p.CreatePayment(ctx, req(1000, normalize.CaptureManual, "tok_visa"))
	if err != nil {
		t.Fatal(err)
	}
	e.sim.InjectFault(sandbox.Fault{API: "gateway", Kind: sandbox.FaultCommitReset})
	_, err = e.p.Capture(ctx, known(t, pay), &normalize.CaptureRequest{})
	ne := asErr(t, err)
	if ne.Payment == nil || ne.Payment.Status != normalize.StatusUnknown || ne.Retryable {
		t.Fatalf("%+v", ne)
	}
	if n := e.sim.Calls("gateway"); n != 1 {
		t.Fatalf("SALES sent %d times", n)
	}
	// The simulator did sell it: a capture by the app now learns so. The
	// caller's record still says authorized (the last confirmed status).
	if st, _ := e.sim.Status(gid(t, pay)); st != "SALES" {
		t.Fatalf("ledger %s", st)
	}
	_, err = e.p.Capture(ctx, known(t, pay), &normalize.CaptureRequest{})
	if ne := asErr(t, err); ne.Code != "not_capturable" || ne.ProviderCodes[0].Code != "ER032" || !strings.Contains(ne.Message, "control panel") {
		t.Fatalf("%+v", ne)
	}
}

// Without paynorm's record a follow-up cannot run (no query API to learn
// the payment's state): it answers resource_missing and sends nothing, even
// for a gid the gateway knows.
func TestFollowUpWithoutKnownIsResourceMissing(t *testing.T) {
	e := newEnv(t, time.Second, resilience.Settings{})
	ctx := context.Background()
	pay, err := e.p.CreatePayment(ctx, req(1000, normalize.CaptureManual, "tok_visa"))
	if err != nil {
		t.Fatal(err)
	}
	g := gid(t, pay)
	tg := providers.Target{Key: g}
	ops := map[string]func() (*normalize.Payment, error){
		"capture": func() (*normalize.Payment, error) { return e.p.Capture(ctx, tg, &normalize.CaptureRequest{}) },
		"cancel":  func() (*normalize.Payment, error) { return e.p.Cancel(ctx, tg) },
		"reauthorize": func() (*normalize.Payment, error) {
			return e.p.Reauthorize(ctx, tg, &normalize.Reauthorize{Amount: 500})
		},
	}
	for name, op := range ops {
		got, err := op()
		ne := asErr(t, err)
		if got != nil || ne.Code != "resource_missing" || ne.HTTPStatus() != 404 || ne.Provider != "jp" ||
			ne.Param == nil || *ne.Param != "id" || !strings.Contains(ne.Message, "jp_"+g) || ne.Payment != nil {
			t.Errorf("%s: %+v %+v", name, got, ne)
		}
	}
	if n := e.sim.Calls("gateway") + e.sim.Calls("re_auth"); n != 0 {
		t.Fatalf("%d follow-up calls reached the simulator", n)
	}
	e.mu.Lock()
	calls := len(e.calls)
	e.mu.Unlock()
	if calls != 1 {
		t.Fatalf("%d provider calls observed, want only the create", calls)
	}
	if st, _ := e.sim.Status(g); st != "AUTH" {
		t.Fatalf("ledger %s", st)
	}
}

func TestMaintenanceIsAFaultThatOpensTheBreaker(t *testing.T) {
	e := newEnv(t, time.Second, resilience.Settings{FailureThreshold: 2, OpenTimeout: time.Minute})
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		_, err := e.p.CreatePayment(ctx, req(1000, normalize.CaptureAutomatic, "tok_fault_maintenance"))
		if ne := asErr(t, err); ne.Code != "provider_maintenance" || ne.HTTPStatus() != 503 || ne.Payment.Status != normalize.StatusFailed {
			t.Fatalf("%+v", ne)
		}
	}
	_, err := e.p.CreatePayment(ctx, req(1000, normalize.CaptureAutomatic, "tok_visa"))
	if ne := asErr(t, err); ne.Code != "circuit_open" {
		t.Fatalf("%+v", ne)
	}
	if n := e.sim.Calls("gateway_token"); n != 2 {
		t.Fatalf("%d calls", n)
	}
	// Declines never trip it.
	e2 := newEnv(t, time.Second, resilience.Settings{FailureThreshold: 2})
	for i := 0; i < 3; i++ {
		_, _ = e2.p.CreatePayment(ctx, req(1000, normalize.CaptureAutomatic, "tok_declined"))
	}
	if e2.p.Breaker() != "closed" {
		t.Fatal("declines opened the breaker")
	}
}

func TestReauthorize(t *testing.T) {
	e := newEnv(t, time.Second, resilience.Settings{})
	ctx := context.Background()
	pay, err := e.p.CreatePayment(ctx, req(1000, normalize.CaptureAutomatic, "tok_visa"))
	if err != nil {
		t.Fatal(err)
	}
	re, err := e.p.Reauthorize(ctx, known(t, pay), &normalize.Reauthorize{Amount: 700, Tax: 70})
	if err != nil || re.Status != normalize.StatusCaptured || re.Total != 770 || re.ID == pay.ID || re.ProviderData["replaces"] != pay.ID {
		t.Fatalf("%+v %v", re, err)
	}
	// The answer is the new payment under the new gid; j-payment cancelled
	// the old one. Marking the old record is the caller's job: the record
	// handed in is left as it was.
	if g := re.ProviderData["gid"]; g != gid(t, re) || re.OrderID != pay.OrderID || re.TransactionID == "" {
		t.Fatalf("new payment %+v", re)
	}
	if st, total := e.sim.Status(gid(t, re)); st != "CAPTURE" || total != 770 {
		t.Fatalf("new ledger %s %d", st, total)
	}
	if st, _ := e.sim.Status(gid(t, pay)); st != "CANCEL" {
		t.Fatalf("old ledger %s", st)
	}
	if pay.Status != normalize.StatusCaptured || pay.ProviderData["replaced_by"] != nil {
		t.Fatalf("the caller's record was changed: %+v", pay)
	}
	// Declined re-authorization (issue 15 item 6): re_auth cancels the
	// original before it authorizes again (seed 002), so the error reports
	// the original canceled (a sale: refunded), for the caller to record,
	// and never "unchanged".
	_, err = e.p.Reauthorize(ctx, known(t, re), &normalize.Reauthorize{Amount: 2_000_000})
	ne := asErr(t, err)
	if ne.Code != "exceeds_limit" || ne.Payment.ID != re.ID || ne.Payment.Status != normalize.StatusRefunded ||
		ne.Payment.ProviderData["reauthorization_declined"] != true || ne.Payment.ProviderData["reauthorization_gid"] == nil ||
		!strings.Contains(ne.Message, "control panel") || strings.Contains(ne.Message, "did not change") {
		t.Fatalf("%+v %+v", ne, ne.Payment)
	}
	if st, _ := e.sim.Status(gid(t, re)); st != "CANCEL" {
		t.Fatalf("ledger %s", st)
	}
	if re.Status != normalize.StatusCaptured {
		t.Fatalf("the caller's record was changed: %+v", re)
	}
	// Only this or last month (JST): checked before calling.
	other := pay2(t, e)
	calls := e.sim.Calls("re_auth")
	e.p.SetClock(func() time.Time { return time.Now().AddDate(0, 2, 0) })
	_, err = e.p.Reauthorize(ctx, known(t, other), &normalize.Reauthorize{Amount: 500})
	if ne := asErr(t, err); ne.Code != "refund_window_passed" {
		t.Fatalf("%+v", ne)
	}
	if e.sim.Calls("re_auth") != calls {
		t.Fatal("an out-of-window re-authorization reached the provider")
	}
}

// pay2 makes another captured payment (the clock of e.p must be now).
func pay2(t *testing.T, e *env) *normalize.Payment {
	t.Helper()
	r := req(1000, normalize.CaptureAutomatic, "tok_visa")
	r.OrderID = "ORD-2"
	p, err := e.p.CreatePayment(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReauthWindow(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, normalize.JST)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cases := []struct {
		created, now string
		ok           bool
	}{
		{"2026-03-01 00:00", "2026-03-31 23:59", true},
		{"2026-02-01 00:00", "2026-03-31 23:59", true},
		{"2026-01-31 23:59", "2026-03-01 00:00", false},
		{"2025-12-15 10:00", "2026-01-10 10:00", true},
		{"2026-04-01 00:00", "2026-03-31 00:00", false},
	}
	for _, c := range cases {
		if got := jpayment.ReauthWindowOK(at(c.created), at(c.now)); got != c.ok {
			t.Errorf("%s -> %s: %v", c.created, c.now, got)
		}
	}
	// Month boundaries are in JST: 2026-01-31 16:00 UTC is already February in Japan.
	if !jpayment.ReauthWindowOK(time.Date(2026, 1, 31, 16, 0, 0, 0, time.UTC), at("2026-03-05 00:00")) {
		t.Error("JST month not used")
	}
}

func TestSourceIPRejectedIsEgressError(t *testing.T) {
	e := newEnv(t, time.Second, resilience.Settings{})
	e.sim.AllowedIP = "192.0.2.10"
	_, err := e.p.CreatePayment(context.Background(), req(1000, normalize.CaptureAutomatic, "tok_visa"))
	ne := asErr(t, err)
	if ne.Code != "egress_ip_not_allowed" || ne.HTTPStatus() != 502 || !strings.Contains(ne.Message, "register") || ne.ProviderCodes[0].Code != "ER003" {
		t.Fatalf("%+v", ne)
	}
	if e.p.Breaker() != "closed" || ne.Fault {
		t.Fatal("a config error counted as a provider fault")
	}
}

// A request that provably never left paynorm (connection refused) is
// repeated once, and reported as not sent.
func TestNotSentIsRetriedOnce(t *testing.T) {
	e := newEnv(t, time.Second, resilience.Settings{})
	url := e.srv.URL
	e.srv.Close()
	var calls []providers.CallInfo
	c := jpayment.NewClient(jpayment.Config{Account: "jp", Endpoint: url, AID: "123456", Timeout: time.Second},
		http.DefaultTransport, resilience.New(resilience.Settings{Name: "jp"}), func(ci providers.CallInfo) { calls = append(calls, ci) })
	_, err := jpayment.New(c).CreatePayment(context.Background(), req(1000, normalize.CaptureAutomatic, "tok_visa"))
	ne := asErr(t, err)
	if ne.Code != "provider_unavailable" || !strings.Contains(ne.Message, "nothing was sent") || ne.Payment != nil {
		t.Fatalf("%+v", ne)
	}
	if len(calls) != 2 || calls[0].Outcome != providers.OutcomeNotSent || calls[1].Attempt != 2 || calls[0].API != "gateway_token" {
		t.Fatalf("calls %+v", calls)
	}
}
