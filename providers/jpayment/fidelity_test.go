package jpayment_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
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

// recorder keeps the forms a handler received, by gateway path.
type recorder struct {
	next http.Handler
	mu   sync.Mutex
	seen map[string][]string
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.seen[req.URL.Path] = append(r.seen[req.URL.Path], string(b))
	r.mu.Unlock()
	req.Body = io.NopCloser(strings.NewReader(string(b)))
	r.next.ServeHTTP(w, req)
}

func (r *recorder) last(path string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.seen[path]
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

func recordedEnv(t *testing.T, h http.Handler, timeout time.Duration) (*jpayment.Provider, *recorder) {
	t.Helper()
	rec := &recorder{next: h, seen: map[string][]string{}}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	c := jpayment.NewClient(jpayment.Config{Account: "jp", Endpoint: srv.URL, AID: "123456", Timeout: timeout},
		http.DefaultTransport, resilience.New(resilience.Settings{Name: "jp"}), nil)
	return jpayment.New(c), rec
}

func keysOf(t *testing.T, form string) []string {
	t.Helper()
	var out []string
	for _, kv := range strings.Split(form, "&") {
		k, _, _ := strings.Cut(kv, "=")
		out = append(out, k)
	}
	return out
}

// Issue 15 item 4: the token spec's CHECK request (有効性チェック, p.8) has
// no am, tx or sf; paynorm sent am=0&tx=0&sf=0.
func TestCheckSendsNoAmounts(t *testing.T) {
	p, rec := recordedEnv(t, sandbox.NewJPayment(), time.Second)
	r := &normalize.CreatePayment{OrderID: "CHK-1", Capture: normalize.CaptureVerify, PaymentMethod: normalize.PaymentMethod{Token: "tok_visa"},
		Customer: &normalize.CustomerInfo{Email: "a@example.jp"}}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	pay, err := p.CreatePayment(context.Background(), r)
	if err != nil || pay.Status != normalize.StatusVerified {
		t.Fatalf("%+v %v", pay, err)
	}
	if got := strings.Join(keysOf(t, rec.last(jpayment.PathToken)), " "); got != "aid jb rt tkn cod em" {
		t.Fatalf("CHECK sent %s", got)
	}
}

// answering serves one fixed gateway answer.
func answering(body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=Shift_JIS")
		_, _ = io.WriteString(w, body)
	})
}

// Issue 15 item 5: a charged AUTH whose free data echo holds "<VIP>" is an
// authorization, not a 502 with status unknown.
func TestChargedAnswerEchoingAnyFreeDataIsAccepted(t *testing.T) {
	p, _ := recordedEnv(t, answering("1095729,1,TestMod,,205685,ORD-1,1000,10,0,1010,,,client_field_1=<VIP>\r\n"), time.Second)
	pay, err := p.CreatePayment(context.Background(), req(1000, normalize.CaptureManual, "tok_visa"))
	if err != nil || pay.Status != normalize.StatusAuthorized || pay.ID != "jp_1095729" {
		t.Fatalf("%+v %v", pay, err)
	}
}

// Issue 15 item 10: a create j-payment never named (no answer, or a
// refusal without a gid) carries the id of its order's record, never "".
func TestPaymentWithoutGIDHasTheOrderRecordsID(t *testing.T) {
	want := normalize.PaymentID("jp", providers.CreateRecordKey(&jpayment.Provider{}, "ORD-1"))
	p, _ := recordedEnv(t, answering("0,2,,ER900,,,0,0,0,0,,,0,"), time.Second)
	_, err := p.CreatePayment(context.Background(), req(1000, normalize.CaptureManual, "tok_visa"))
	if ne := asErr(t, err); ne.Payment == nil || ne.Payment.ID != want || ne.Payment.Status != normalize.StatusFailed {
		t.Fatalf("refusal: %+v", ne.Payment)
	}
	sim := sandbox.NewJPayment()
	sim.SlowDelay = time.Second
	p, _ = recordedEnv(t, sim, 100*time.Millisecond)
	_, err = p.CreatePayment(context.Background(), req(1000, normalize.CaptureManual, "tok_fault_slow"))
	if ne := asErr(t, err); ne.HTTPStatus() != 504 || ne.Payment == nil || ne.Payment.ID != want || ne.Payment.Status != normalize.StatusUnknown {
		t.Fatalf("timeout: %+v", ne.Payment)
	}
	if want != "jp_order.ORD-1" {
		t.Fatalf("record id %s", want)
	}
}

// Issue 15 item 6: what a refused re-authorization says of the original.
// A card decline follows the cancel (seed 002): original canceled. ER030,
// ER000, ER042 may follow it: unknown, for the control panel. Any other ER
// refused the request itself: unchanged.
func TestRefusedReauthorizationReportsWhatIsKnown(t *testing.T) {
	now := time.Now()
	orig := normalize.NewPayment("jp", "1095729")
	orig.OrderID, orig.Status, orig.CreatedAt = "ORD-1", normalize.StatusAuthorized, &now
	orig.SetAmounts(1000, 0, 0)
	cases := []struct{ answer, status, code string }{
		{"1095730,2,,G1242G120000,,ORD-1,800,0,0,800,,,", normalize.StatusVoided, "card_declined"},
		{"ER:ER030", normalize.StatusUnknown, "card_declined"},
		{"ER:ER042", normalize.StatusUnknown, "provider_unavailable"},
		{"ER:ER061", normalize.StatusAuthorized, "invalid_amount"},
		{"ER:ER003", normalize.StatusAuthorized, "egress_ip_not_allowed"},
	}
	for _, c := range cases {
		p, _ := recordedEnv(t, answering(c.answer), time.Second)
		_, err := p.Reauthorize(context.Background(), providers.Target{Key: "1095729", Known: orig}, &normalize.Reauthorize{Amount: 800})
		ne := asErr(t, err)
		if ne.Code != c.code || ne.Payment == nil || ne.Payment.ID != orig.ID || ne.Payment.Status != c.status {
			t.Errorf("%s: %s, original %+v", c.answer, ne.Code, ne.Payment)
		}
		if c.status != normalize.StatusAuthorized && (!strings.Contains(ne.Message, "control panel") || ne.Retryable) {
			t.Errorf("%s: message %q retryable %v", c.answer, ne.Message, ne.Retryable)
		}
	}
	if orig.Status != normalize.StatusAuthorized {
		t.Fatal("the caller's record was changed")
	}
}

// Seed 002: re_auth takes em, pn and free data; SALES takes free data.
func TestFollowUpsSendContactAndFreeData(t *testing.T) {
	p, rec := recordedEnv(t, sandbox.NewJPayment(), time.Second)
	ctx := context.Background()
	pay, err := p.CreatePayment(ctx, req(1000, normalize.CaptureManual, "tok_visa"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Capture(ctx, known(t, pay), &normalize.CaptureRequest{Metadata: map[string]string{"client_field_1": "出荷済"}}); err != nil {
		t.Fatal(err)
	}
	sales, _ := url.ParseQuery(rec.last(jpayment.PathGateway))
	if sales.Get("jb") != "SALES" || sales.Get("client_field_1") != "出荷済" {
		t.Fatalf("SALES sent %v", sales)
	}
	pay.Status = normalize.StatusCaptured
	re, err := p.Reauthorize(ctx, known(t, pay), &normalize.Reauthorize{Amount: 800,
		Customer: &normalize.CustomerInfo{Email: "b@example.jp", Phone: "0312345678"}, Metadata: map[string]string{"client_field_2": "減額"}})
	if err != nil || re.Metadata["client_field_2"] != "減額" {
		t.Fatalf("%+v %v", re, err)
	}
	ra, _ := url.ParseQuery(rec.last(jpayment.PathReauth))
	if ra.Get("em") != "b@example.jp" || ra.Get("pn") != "0312345678" || ra.Get("client_field_2") != "減額" || ra.Get("am") != "800" {
		t.Fatalf("re_auth sent %v", ra)
	}
	// The same rules as on create, checked before the call.
	before := len(rec.seen[jpayment.PathReauth])
	_, err = p.Reauthorize(ctx, known(t, re), &normalize.Reauthorize{Amount: 700, Customer: &normalize.CustomerInfo{Phone: "03-1234"}})
	if ne := asErr(t, err); ne.Param == nil || *ne.Param != "customer.phone" || len(rec.seen[jpayment.PathReauth]) != before {
		t.Fatalf("%+v", ne)
	}
}

// Issue 15 item 9: one timestamp format for every provider: RFC 3339 in
// Japan time, whole seconds (j-payment's were nanoseconds).
func TestJPaymentTimestampsAreSeconds(t *testing.T) {
	p, _ := recordedEnv(t, sandbox.NewJPayment(), time.Second)
	p.SetClock(func() time.Time { return time.Date(2026, 11, 23, 1, 2, 3, 456789000, time.UTC) })
	pay, err := p.CreatePayment(context.Background(), req(1000, normalize.CaptureManual, "tok_visa"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(pay)
	if !strings.Contains(string(b), `"created_at":"2026-11-23T10:02:03+09:00"`) || strings.Contains(string(b), ".456") {
		t.Fatalf("%s", b)
	}
}
