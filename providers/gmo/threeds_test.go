package gmo_test

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/text/encoding/japanese"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers"
	"github.com/paynorm/paynorm/providers/gmo"
	"github.com/paynorm/paynorm/providers/sandbox"
	"github.com/paynorm/paynorm/resilience"
)

// tdsEnv is a provider in front of the simulator, with every request body
// kept (per API) and a hook to rewrite answers.
type tdsEnv struct {
	*env
	mu     sync.Mutex
	bodies map[string][]url.Values
	// rewrite, when set, may change the answer of an API.
	rewrite func(api string, answer []byte) []byte
}

const returnURL = "https://shop.example/checkout/return?order=1"

func newTDSEnv(t *testing.T, tenant string, timeout time.Duration) *tdsEnv {
	t.Helper()
	e := &tdsEnv{env: &env{sim: sandbox.NewGMO()}, bodies: map[string][]url.Values{}}
	e.sim.SlowDelay = 3 * timeout
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/payment/"), ".idPass")
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, ".idPass") {
			raw, _ := io.ReadAll(r.Body)
			v, _ := url.ParseQuery(string(raw)) // ASCII in these tests
			e.mu.Lock()
			e.bodies[api] = append(e.bodies[api], v)
			rw := e.rewrite
			e.mu.Unlock()
			r.Body = io.NopCloser(strings.NewReader(string(raw)))
			if rw != nil {
				rec := httptest.NewRecorder()
				e.sim.ServeHTTP(rec, r)
				for k, vs := range rec.Header() {
					w.Header()[k] = vs
				}
				w.WriteHeader(rec.Code)
				_, _ = w.Write(rw(api, rec.Body.Bytes()))
				return
			}
		}
		e.sim.ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	c := gmo.NewClient(gmo.Config{Account: "gmo", Endpoint: e.srv.URL, ShopID: "tshop00000001", ShopPass: "shoppass",
		SiteID: "tsite00000001", SitePass: "sitepass", Timeout: timeout, TenantName: tenant},
		http.DefaultTransport, resilience.New(resilience.Settings{Name: "gmo"}), func(ci providers.CallInfo) {
			e.env.mu.Lock()
			e.calls = append(e.calls, ci)
			e.env.mu.Unlock()
		})
	e.p = gmo.New(c)
	return e
}

func (e *tdsEnv) sent(api string) []url.Values {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]url.Values(nil), e.bodies[api]...)
}

func create3DS(amount int64, capture, token, mode string) *normalize.CreatePayment {
	r := create(amount, capture, token)
	r.ThreeDSecure, r.ReturnURL = mode, returnURL
	return r
}

// noRedirect is a browser that shows where it is sent instead of going.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// authenticate plays the card holder on the simulator's challenge page:
// it reads the page, presses a button and returns where the browser is
// sent back to.
func authenticate(t *testing.T, next, action string) (page, location string) {
	t.Helper()
	resp, err := http.Get(next)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("challenge page: %d %s", resp.StatusCode, b)
	}
	resp, err = noRedirect.PostForm(next, url.Values{"action": {action}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("challenge answer: %d", resp.StatusCode)
	}
	return string(b), resp.Header.Get("Location")
}

// A challenge payment: EntryTran asks for EMV 3-D Secure 2 with the shop
// name, ExecTran gives the return URL and answers ACS=2, the payment waits
// in requires_action with next_action; after the card holder authenticates
// (SearchTrade AUTHENTICATED, still pending) complete runs SecureTran2 once
// and the payment is captured.
func TestChallengePaymentCompletesWithSecureTran2(t *testing.T) {
	e := newTDSEnv(t, "ペイノーム商店", 2*time.Second)
	ctx := context.Background()
	req := create3DS(1000, normalize.CaptureAutomatic, sandbox.TokThreeDSChallenge, normalize.ThreeDSRequired)
	pay, err := e.p.CreatePayment(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if pay.Status != normalize.StatusRequiresAction || pay.NextAction == nil || pay.NextAction.Type != "redirect_to_url" ||
		!strings.HasPrefix(pay.NextAction.URL, e.srv.URL+"/sandbox/acs/challenge?transId=") || !strings.Contains(pay.NextAction.URL, "&t=") {
		t.Fatalf("create: %+v %+v", pay, pay.NextAction)
	}
	entry, exec := e.sent("EntryTran")[0], e.sent("ExecTran")[0]
	tenant, _ := japanese.EUCJP.NewEncoder().String("ペイノーム商店")
	if entry.Get("TdFlag") != "2" || entry.Get("Tds2Type") != "2" || entry.Get("TdTenantName") != base64.StdEncoding.EncodeToString([]byte(tenant)) {
		t.Fatalf("EntryTran: %v", entry)
	}
	if exec.Get("RetUrl") != returnURL || exec.Get("CallbackType") != "3" {
		t.Fatalf("ExecTran: %v", exec)
	}
	if st, _ := e.sim.TradeStatus("tshop00000001", pay.OrderID); st != "UNPROCESSED" || e.sim.Charges() != 0 {
		t.Fatalf("charged before authentication: %s %d", st, e.sim.Charges())
	}
	page, back := authenticate(t, pay.NextAction.URL, "authenticate")
	if !strings.Contains(page, "ペイノーム商店") || !strings.Contains(page, "1,010") {
		t.Fatalf("the challenge page shows no shop name or amount:\n%s", page)
	}
	if !strings.HasPrefix(back, returnURL+"&AccessID=") {
		t.Fatalf("browser sent back to %q", back)
	}
	got, err := e.p.GetPayment(ctx, pay.OrderID)
	if err != nil || got.Status != normalize.StatusPending || got.ProviderData["gmo_status"] != "AUTHENTICATED" {
		t.Fatalf("authenticated, not executed: %+v %v", got, err)
	}
	done, err := e.p.Complete(ctx, providers.Target{Key: pay.OrderID, Known: pay})
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != normalize.StatusCaptured || done.ApprovalCode == "" || done.TransactionID == "" || done.NextAction != nil || done.Total != 1010 || done.CreatedAt == nil {
		t.Fatalf("complete: %+v", done)
	}
	if n := e.sim.Calls("SecureTran2"); n != 1 {
		t.Fatalf("SecureTran2 sent %d times", n)
	}
	if st, _ := e.sim.TradeStatus("tshop00000001", pay.OrderID); st != "CAPTURE" || e.sim.Charges() != 1 {
		t.Fatalf("ledger: %s, %d charges", st, e.sim.Charges())
	}
	if s := e.sent("SecureTran2")[0]; s.Get("AccessID") == "" || s.Get("AccessPass") == "" || s.Has("ShopPass") {
		t.Fatalf("SecureTran2 body: %v", s)
	}
	// A second complete moves no money: GMO says it is executed.
	again, err := e.p.Complete(ctx, providers.Target{Key: pay.OrderID, Known: done})
	if err != nil || again.Status != normalize.StatusCaptured || e.sim.Calls("SecureTran2") != 1 {
		t.Fatalf("second complete: %+v %v (SecureTran2 %d)", again, err, e.sim.Calls("SecureTran2"))
	}
}

// A card holder who fails the challenge: complete answers 402
// authentication_failed with the payment failed and GMO's authentication
// result attached; nothing is charged.
func TestFailedChallengeIsAuthenticationFailed(t *testing.T) {
	for _, c := range []struct{ token, action string }{{sandbox.TokThreeDSFail, "authenticate"}, {sandbox.TokThreeDSChallenge, "fail"}} {
		e := newTDSEnv(t, "", 2*time.Second)
		ctx := context.Background()
		pay, err := e.p.CreatePayment(ctx, create3DS(500, normalize.CaptureManual, c.token, normalize.ThreeDSRequired))
		if err != nil || pay.Status != normalize.StatusRequiresAction {
			t.Fatalf("%s: %+v %v", c.token, pay, err)
		}
		if _, ok := e.sent("EntryTran")[0]["TdTenantName"]; ok {
			t.Fatal("TdTenantName sent without a tenant name")
		}
		authenticate(t, pay.NextAction.URL, c.action)
		_, err = e.p.Complete(ctx, providers.Target{Key: pay.OrderID, Known: pay})
		ne := asErr(t, err)
		if ne.Code != "authentication_failed" || ne.Status != 402 || ne.Payment == nil || ne.Payment.Status != normalize.StatusFailed ||
			ne.ProviderCodes[0].Info != "E21030007" || ne.Payment.ProviderData["tds2_trans_result"] != "N" || ne.MessageJa == "" {
			t.Fatalf("%s/%s: %+v %+v", c.token, c.action, ne, ne.Payment)
		}
		if e.sim.Charges() != 0 || e.sim.Calls("SecureTran2") != 1 {
			t.Fatalf("charges %d, SecureTran2 %d", e.sim.Charges(), e.sim.Calls("SecureTran2"))
		}
	}
}

// Frictionless: GMO authenticates without a page and ExecTran answers
// ACS=0; the payment is done at create, with no SecureTran2.
func TestFrictionlessIsDoneAtCreate(t *testing.T) {
	e := newTDSEnv(t, "", 2*time.Second)
	pay, err := e.p.CreatePayment(context.Background(), create3DS(1000, normalize.CaptureManual, sandbox.TokThreeDSFrictionless, normalize.ThreeDSRequired))
	if err != nil || pay.Status != normalize.StatusAuthorized || pay.NextAction != nil || pay.ProviderData["three_d_secure"] != "required" {
		t.Fatalf("%+v %v", pay, err)
	}
	if e.sim.Calls("SecureTran2") != 0 || e.sim.Charges() != 1 {
		t.Fatal("frictionless needs no SecureTran2")
	}
}

// A card not enrolled in 3-D Secure: attempt (Tds2Type 3) authorizes it
// without authentication; required (Tds2Type 2) is card_not_enrolled,
// failed, nothing charged. Mode off sends no 3-D Secure field at all.
func TestNotEnrolledCardByMode(t *testing.T) {
	e := newTDSEnv(t, "Shop", 2*time.Second)
	ctx := context.Background()
	pay, err := e.p.CreatePayment(ctx, create3DS(1000, normalize.CaptureManual, "tok_visa", normalize.ThreeDSAttempt))
	if err != nil || pay.Status != normalize.StatusAuthorized {
		t.Fatalf("attempt: %+v %v", pay, err)
	}
	if got := e.sent("EntryTran")[0].Get("Tds2Type"); got != "3" {
		t.Fatalf("attempt sent Tds2Type %q", got)
	}
	_, err = e.p.CreatePayment(ctx, create3DS(1000, normalize.CaptureManual, "tok_visa", normalize.ThreeDSRequired))
	ne := asErr(t, err)
	if ne.Code != "card_not_enrolled" || ne.Type != normalize.TypeCard || ne.Payment == nil || ne.Payment.Status != normalize.StatusFailed {
		t.Fatalf("required: %+v", ne)
	}
	off := create(1000, normalize.CaptureManual, "tok_visa")
	off.ThreeDSecure = normalize.ThreeDSOff
	if pay, err := e.p.CreatePayment(ctx, off); err != nil || pay.Status != normalize.StatusAuthorized {
		t.Fatalf("off: %+v %v", pay, err)
	}
	last := e.sent("EntryTran")[2]
	if last.Has("TdFlag") || last.Has("Tds2Type") || last.Has("TdTenantName") || e.sent("ExecTran")[2].Has("RetUrl") {
		t.Fatalf("mode off sent 3-D Secure fields: %v %v", last, e.sent("ExecTran")[2])
	}
	// A verify without a return URL runs without 3-D Secure.
	check := &normalize.CreatePayment{Capture: normalize.CaptureVerify, PaymentMethod: normalize.PaymentMethod{Token: "tok_visa"}, ThreeDSecure: normalize.ThreeDSRequired}
	if pay, err := e.p.CreatePayment(ctx, check); err != nil || pay.Status != normalize.StatusVerified || e.sent("EntryTran")[3].Has("TdFlag") {
		t.Fatalf("verify: %+v %v", pay, err)
	}
}

// A stored card (MemberID) goes through the same challenge.
func TestStoredCardChallenge(t *testing.T) {
	e := newTDSEnv(t, "", 2*time.Second)
	ctx := context.Background()
	if _, err := e.p.CreateCustomer(ctx, &normalize.CreateCustomer{ID: "cus-3ds"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.AddCard(ctx, "cus-3ds", &normalize.AddCard{Token: sandbox.TokThreeDSChallenge + "_1", HolderName: "TARO YAMADA", ExpiryMonth: "12", ExpiryYear: "30"}); err != nil {
		t.Fatal(err)
	}
	seq := 0
	req := &normalize.CreatePayment{Amount: 1200, Capture: normalize.CaptureAutomatic, PaymentMethod: normalize.PaymentMethod{CustomerID: "cus-3ds", CardSeq: &seq},
		ThreeDSecure: normalize.ThreeDSRequired, ReturnURL: returnURL}
	pay, err := e.p.CreatePayment(ctx, req)
	if err != nil || pay.Status != normalize.StatusRequiresAction {
		t.Fatalf("%+v %v", pay, err)
	}
	if x := e.sent("ExecTran")[0]; x.Get("MemberID") != "cus-3ds" || x.Get("RetUrl") != returnURL {
		t.Fatalf("ExecTran: %v", x)
	}
	authenticate(t, pay.NextAction.URL, "authenticate")
	done, err := e.p.Complete(ctx, providers.Target{Key: pay.OrderID, Known: pay})
	if err != nil || done.Status != normalize.StatusCaptured || done.ProviderData["customer_id"] != "cus-3ds" {
		t.Fatalf("complete: %+v %v", done, err)
	}
}

// Every 3-D Secure refusal GMO documents has its own catalog code, with
// English and Japanese messages; the ones the simulator produces are
// checked over the wire too.
func TestThreeDSErrorCodesHaveTheirOwnCatalogEntries(t *testing.T) {
	want := map[string]struct {
		code   string
		status int
	}{
		"E21030001": {"authentication_setup_failed", 402},
		"E21030007": {"authentication_failed", 402},
		"E21030201": {"card_not_enrolled", 402},
		"E21030202": {"authentication_unavailable", 402},
		"E01080101": {"authentication_required", 422},
		"E01080010": {"three_d_secure_not_contracted", 422},
		"E01950008": {"three_d_secure_invalid", 400},
		"E01E30001": {"return_url_missing", 400},
	}
	seen := map[string]string{}
	for info, w := range want {
		e := gmo.NormalizeErrors("gmo", []gmo.ErrPair{{Code: info[:3], Info: info}})
		if e.Code != w.code || e.Status != w.status || e.Message == "" || e.MessageJa == "" || !normalize.Known(e.Code) {
			t.Errorf("%s: %+v", info, e)
		}
		if other, dup := seen[e.Code]; dup {
			t.Errorf("%s and %s share %s", info, other, e.Code)
		}
		seen[e.Code] = info
	}
	if p := gmo.NormalizeErrors("gmo", []gmo.ErrPair{{"E01", "E01E30001"}}).Param; p == nil || *p != "return_url" {
		t.Errorf("E01E30001 param %v", p)
	}

	ctx := context.Background()
	e := newTDSEnv(t, "", 2*time.Second)
	e.sim.ThreeDSShops = map[string]bool{"tshop00000001": true}
	wire := []struct {
		req  *normalize.CreatePayment
		info string
	}{
		{create3DS(100, normalize.CaptureManual, sandbox.TokThreeDSInitError, normalize.ThreeDSAttempt), "E21030001"},
		{create3DS(100, normalize.CaptureManual, sandbox.TokThreeDSUnavailable, normalize.ThreeDSRequired), "E21030202"},
		{create3DS(100, normalize.CaptureManual, "tok_jcb", normalize.ThreeDSRequired), "E21030201"},
		{create(100, normalize.CaptureManual, "tok_visa"), "E01080101"}, // 3-D Secure off on a shop that requires it
	}
	for _, c := range wire {
		_, err := e.p.CreatePayment(ctx, c.req)
		ne := asErr(t, err)
		if ne.Code != want[c.info].code || len(ne.ProviderCodes) == 0 || ne.ProviderCodes[0].Info != c.info {
			t.Errorf("%s over the wire: %+v", c.info, ne)
		}
	}
	if e.sim.Charges() != 0 {
		t.Fatal("a refused 3-D Secure payment was charged")
	}
	// attempt with the unavailable card authorizes it (Tds2TransResult U).
	if pay, err := e.p.CreatePayment(ctx, create3DS(100, normalize.CaptureManual, sandbox.TokThreeDSUnavailable, normalize.ThreeDSAttempt)); err != nil || pay.Status != normalize.StatusAuthorized {
		t.Fatalf("attempt, unavailable: %+v %v", pay, err)
	}
}

// paynorm refuses what GMO would refuse before sending anything: a 3-D
// Secure create without return_url, a mode it does not know, and a tenant
// name that does not fit TdTenantName.
func TestThreeDSRefusedBeforeSending(t *testing.T) {
	ctx := context.Background()
	e := newTDSEnv(t, "ペイノーム株式会社オンラインストア", 2*time.Second)
	req := create3DS(100, normalize.CaptureManual, sandbox.TokThreeDSChallenge, normalize.ThreeDSRequired)
	_, err := e.p.CreatePayment(ctx, req)
	if ne := asErr(t, err); ne.Code != "provider_misconfigured" || !strings.Contains(ne.Message, "tenant_name") {
		t.Fatalf("long tenant: %+v", ne)
	}
	e = newTDSEnv(t, "", 2*time.Second)
	req = create3DS(100, normalize.CaptureManual, sandbox.TokThreeDSChallenge, normalize.ThreeDSRequired)
	req.ReturnURL = ""
	if ne := asErr(t, func() error { _, err := e.p.CreatePayment(ctx, req); return err }()); ne.Param == nil || *ne.Param != "return_url" {
		t.Fatalf("no return_url: %+v", ne)
	}
	req = create3DS(100, normalize.CaptureManual, sandbox.TokThreeDSChallenge, "always")
	if ne := asErr(t, func() error { _, err := e.p.CreatePayment(ctx, req); return err }()); ne.Param == nil || *ne.Param != "three_d_secure" {
		t.Fatalf("bad mode: %+v", ne)
	}
	if e.sim.Calls("EntryTran") != 0 {
		t.Fatal("a refused create reached GMO")
	}
}

// TdTenantName is EUC-JP then Base64, at most 25 bytes of Base64: 18
// ASCII characters or 9 kanji fit, one more does not; a character EUC-JP
// lacks is refused at configuration time.
func TestTenantNameEncoding(t *testing.T) {
	got, err := gmo.EncodeTenantName("Paynorm")
	if err != nil || got != base64.StdEncoding.EncodeToString([]byte("Paynorm")) {
		t.Fatalf("%q %v", got, err)
	}
	for name, ok := range map[string]bool{
		"": true, strings.Repeat("A", 18): true, strings.Repeat("A", 19): false,
		"日本橋商店株式会社本": false, "日本橋商店株式会社": true, "ｶﾀｶﾅ": true, "Shop 🍣": false, "a\nb": false,
	} {
		_, err := gmo.EncodeTenantName(name)
		if (err == nil) != ok {
			t.Errorf("%q: %v", name, err)
		}
		if cerr := (gmo.Config{TenantName: name}).Check(); (cerr == nil) != ok {
			t.Errorf("Check(%q): %v", name, cerr)
		}
	}
}

// ACS=1 (3-D Secure 1.0, ended October 2022) is refused: nothing was
// charged, the payment is failed and the message says why.
func TestThreeDS1IsRefused(t *testing.T) {
	e := newTDSEnv(t, "", 2*time.Second)
	e.rewrite = func(api string, b []byte) []byte {
		if api == "ExecTran" {
			return []byte("ACS=1&ACSUrl=https://acs.example/3ds1&PaReq=eJxVUt1u&MD=abc")
		}
		return b
	}
	_, err := e.p.CreatePayment(context.Background(), create3DS(100, normalize.CaptureManual, sandbox.TokThreeDSChallenge, normalize.ThreeDSRequired))
	ne := asErr(t, err)
	if ne.Code != "unsupported" || !strings.Contains(ne.Message, "3-D Secure 1.0") || ne.Payment == nil || ne.Payment.Status != normalize.StatusFailed {
		t.Fatalf("%+v", ne)
	}
}

// A RedirectUrl no browser should be sent to (not http(s), or plain http
// off loopback) never becomes next_action: the payment is unknown and the
// resolver reads it back.
func TestUnusableRedirectURLIsNotPassedOn(t *testing.T) {
	for _, bad := range []string{"javascript:alert(1)", "http://acs.example/x", "/relative", ""} {
		e := newTDSEnv(t, "", 2*time.Second)
		e.rewrite = func(api string, b []byte) []byte {
			if api == "ExecTran" {
				return []byte("ACS=2&RedirectUrl=" + bad)
			}
			return b
		}
		pay, err := e.p.CreatePayment(context.Background(), create3DS(100, normalize.CaptureManual, sandbox.TokThreeDSChallenge, normalize.ThreeDSRequired))
		ne := asErr(t, err)
		if pay != nil || ne.Code != "invalid_response" || ne.Payment.Status != normalize.StatusUnknown || ne.Payment.NextAction != nil {
			t.Fatalf("%q: %+v", bad, ne)
		}
	}
}

// SecureTran2's CheckString is verified like ExecTran's: a forged one is
// invalid_response with the payment unknown, never a success.
func TestSecureTran2CheckStringIsVerified(t *testing.T) {
	e := newTDSEnv(t, "", 2*time.Second)
	ctx := context.Background()
	pay, err := e.p.CreatePayment(ctx, create3DS(100, normalize.CaptureManual, sandbox.TokThreeDSChallenge, normalize.ThreeDSRequired))
	if err != nil {
		t.Fatal(err)
	}
	authenticate(t, pay.NextAction.URL, "authenticate")
	e.rewrite = func(api string, b []byte) []byte {
		if api == "SecureTran2" {
			i := strings.Index(string(b), "CheckString=")
			return append(b[:i:i], "CheckString=00000000000000000000000000000000"...)
		}
		return b
	}
	_, err = e.p.Complete(ctx, providers.Target{Key: pay.OrderID, Known: pay})
	if ne := asErr(t, err); ne.Code != "invalid_response" || ne.Payment.Status != normalize.StatusUnknown {
		t.Fatalf("%+v", ne)
	}
}

// SecureTran2 is sent once: an answer lost after GMO charged is read back
// with SearchTrade (captured); a connection cut before GMO processed it
// leaves the payment unknown, and SecureTran2 is still sent only once.
func TestSecureTran2IsNeverRepeated(t *testing.T) {
	ctx := context.Background()
	e := newTDSEnv(t, "", 300*time.Millisecond)
	pay, err := e.p.CreatePayment(ctx, create3DS(100, normalize.CaptureAutomatic, sandbox.TokThreeDSChallenge, normalize.ThreeDSRequired))
	if err != nil {
		t.Fatal(err)
	}
	authenticate(t, pay.NextAction.URL, "authenticate")
	e.sim.InjectFault(sandbox.Fault{API: "SecureTran2", Kind: sandbox.FaultCommitHang, Delay: time.Second})
	done, err := e.p.Complete(ctx, providers.Target{Key: pay.OrderID, Known: pay})
	if err != nil || done.Status != normalize.StatusCaptured || e.sim.Calls("SecureTran2") != 1 || e.sim.Charges() != 1 {
		t.Fatalf("read back after a lost answer: %+v %v (SecureTran2 %d)", done, err, e.sim.Calls("SecureTran2"))
	}

	pay, err = e.p.CreatePayment(ctx, create3DS(100, normalize.CaptureAutomatic, sandbox.TokThreeDSChallenge, normalize.ThreeDSRequired))
	if err != nil {
		t.Fatal(err)
	}
	authenticate(t, pay.NextAction.URL, "authenticate")
	e.sim.InjectFault(sandbox.Fault{API: "SecureTran2", Kind: sandbox.FaultReset})
	_, err = e.p.Complete(ctx, providers.Target{Key: pay.OrderID, Known: pay})
	ne := asErr(t, err)
	if ne.Payment == nil || ne.Payment.Status != normalize.StatusUnknown || ne.Retryable || e.sim.Calls("SecureTran2") != 2 || e.sim.Charges() != 1 {
		t.Fatalf("cut connection: %+v (SecureTran2 %d, charges %d)", ne, e.sim.Calls("SecureTran2"), e.sim.Charges())
	}
}

// GMO's AUTHENTICATED (authenticated, not executed) reads as pending:
// nothing is charged yet.
func TestAuthenticatedReadsAsPending(t *testing.T) {
	if got := gmo.StatusFromTrade("AUTHENTICATED"); got != normalize.StatusPending {
		t.Fatal(got)
	}
}
