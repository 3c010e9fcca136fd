package sandbox

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// jpAnswer is an answer read by position, the test's own way (the sandbox
// tests use no codec): ErrCode of an "ER:" body, or the 13 fields.
type jpAnswer struct {
	ErrCode string
	Result  *jpResult
}

func readAnswer(b string) *jpAnswer {
	s := strings.TrimSuffix(b, "\r\n")
	if code, ok := strings.CutPrefix(s, "ER:"); ok {
		return &jpAnswer{ErrCode: code}
	}
	f := strings.SplitN(s, ",", 13)
	if len(f) != 13 {
		return nil
	}
	return &jpAnswer{Result: &jpResult{gid: f[0], rst: f[1], ap: f[2], ec: f[3], god: f[4], cod: f[5], am: f[6], tx: f[7], sf: f[8], ta: f[9], id: f[10], ps: f[11], extra: f[12]}}
}

func jpGet(t *testing.T, base, path string, q url.Values) (string, *jpAnswer) {
	t.Helper()
	resp, err := http.Get(base + path + "?" + q.Encode()) // GET works like POST
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), readAnswer(string(b))
}

func TestJPaymentWireRules(t *testing.T) {
	sim := NewJPayment()
	srv := httptest.NewServer(sim)
	defer srv.Close()
	base := url.Values{"aid": {"123456"}, "rt": {"1"}}
	with := func(kv ...string) url.Values {
		v := url.Values{}
		for k, vs := range base {
			v[k] = vs
		}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	pay := func(jb string) string {
		raw, a := jpGet(t, srv.URL, "/gateway/gateway_token.aspx", with("jb", jb, "tkn", "tok_visa", "em", "a@example.jp", "am", "1000", "tx", "0", "sf", "0", "cod", "X1"))
		if !strings.HasSuffix(raw, "\r\n") || a == nil || a.Result == nil || a.Result.rst != "1" || a.Result.ta != "1000" || a.Result.cod != "X1" {
			t.Fatalf("%q", raw)
		}
		return a.Result.gid
	}
	errCode := func(path string, q url.Values) string {
		_, a := jpGet(t, srv.URL, path, q)
		if a == nil {
			return "<garbage>"
		}
		if a.ErrCode != "" {
			return a.ErrCode
		}
		return a.Result.ec
	}
	cases := map[string]struct {
		path string
		q    url.Values
	}{
		"ER050": {"/gateway/gateway_token.aspx", url.Values{"rt": {"1"}}},
		"ER052": {"/gateway/gateway_token.aspx", url.Values{"aid": {"123456"}, "rt": {"7"}}},
		"ER051": {"/gateway/gateway_token.aspx", with("jb", "SELL")},
		"ER583": {"/gateway/gateway_token.aspx", with("jb", "AUTH", "em", "a@example.jp", "am", "1")},
		"ER586": {"/gateway/gateway_token.aspx", with("jb", "AUTH", "tkn", "tok_visa", "cn", "4111111111111111", "em", "a@example.jp", "am", "1")},
		"ER059": {"/gateway/gateway_token.aspx", with("jb", "AUTH", "tkn", "tok_visa", "am", "1")},
		"ER061": {"/gateway/gateway_token.aspx", with("jb", "AUTH", "tkn", "tok_visa", "pn", "03", "am", "x")},
		"ER584": {"/gateway/gateway_token.aspx", with("jb", "AUTH", "tkn", "tok_unknown", "pn", "03", "am", "1", "tx", "0", "sf", "0")},
		"ER053": {"/gateway/gateway.aspx", with("jb", "SALES", "tid", "42")},
	}
	for want, c := range cases {
		if got := errCode(c.path, c.q); got != want {
			t.Errorf("%s: got %s", want, got)
		}
	}
	if got := errCode("/gateway/gateway_token.aspx", with("jb", "CAPTURE", "tkn", "tok_insufficient_funds_7", "pn", "03", "am", "5", "tx", "0", "sf", "0")); got != "G0442G040000" {
		t.Errorf("insufficient funds: %s", got)
	}
	captured := pay("CAPTURE")
	if got := errCode("/gateway/gateway.aspx", with("jb", "SALES", "tid", captured)); got != "ER032" {
		t.Errorf("SALES on a CAPTURE: %s", got)
	}
	auth := pay("AUTH")
	if got := errCode("/gateway/gateway.aspx", with("jb", "SALES", "tid", auth)); got != "" {
		t.Errorf("SALES on an AUTH: %s", got)
	}
	if got := errCode("/gateway/gateway.aspx", with("jb", "SALES", "tid", auth)); got != "ER032" {
		t.Errorf("second SALES: %s", got)
	}
	if got := errCode("/gateway/gateway.aspx", with("jb", "CANCEL", "tid", auth)); got != "" {
		t.Errorf("CANCEL: %s", got)
	}
	if got := errCode("/gateway/gateway.aspx", with("jb", "CANCEL", "tid", auth)); got != "ER033" {
		t.Errorf("second CANCEL: %s", got)
	}
	if got := errCode("/gateway/re_auth.aspx", with("tid", auth, "am", "10", "tx", "0", "sf", "0")); got != "ER030" {
		t.Errorf("re-auth of a canceled payment: %s", got)
	}
	sim.AllowedIP = "127.0.0.9"
	if got := errCode("/gateway/gateway.aspx", with("jb", "CANCEL", "tid", captured)); got != "ER003" {
		t.Errorf("source IP: %s", got)
	}
}

// rt=0 sends the result as a kickback with URL parameters, in the spec's
// order (gid rst ap ec god cod am tx sf ta; INDEX.md §20), empty values
// written as "ec=".
func TestJPaymentKickbackOnRt0(t *testing.T) {
	var mu sync.Mutex
	var got string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.URL.RawQuery
		mu.Unlock()
		_, _ = io.WriteString(w, "OK")
	}))
	defer recv.Close()
	sim := NewJPayment()
	sim.KickbackURL = recv.URL + "/hook?account=jp"
	srv := httptest.NewServer(sim)
	defer srv.Close()
	q := url.Values{"aid": {"123456"}, "rt": {"0"}, "jb": {"CAPTURE"}, "tkn": {"tok_jcb"}, "pn": {"0312345678"}, "am": {"1000"}, "tx": {"80"}, "sf": {"500"}, "cod": {"test"}}
	jpGet(t, srv.URL, "/gateway/gateway_token.aspx", q)
	deadline := time.Now().Add(5 * time.Second)
	for sim.Kickbacks() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no kickback")
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	var keys []string
	for _, kv := range strings.Split(got, "&") {
		keys = append(keys, strings.SplitN(kv, "=", 2)[0])
	}
	if strings.Join(keys, " ") != "account gid rst ap ec god cod am tx sf ta" || !strings.Contains(got, "&ec=&") ||
		!strings.Contains(got, "&ta=1580") || !strings.Contains(got, "&cod=test&") {
		t.Fatalf("kickback query %q", got)
	}
}

// j-payment judges a kickback delivered by a non-empty answer, whatever its
// HTTP status (seed 002: ContentLengthが0以上), and sends it again after an
// empty one.
func TestJPaymentKickbackJudgedByNonEmptyBody(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 {
			w.WriteHeader(http.StatusOK) // empty: not delivered
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, "x") // non-empty: delivered, status aside
	}))
	defer recv.Close()
	sim := NewJPayment()
	sim.KickbackURL = recv.URL
	if !sim.SendKickback(context.Background(), []param{{"gid", "1"}, {"rst", "1"}}) {
		t.Fatal("a non-empty answer is a delivery")
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 2 || sim.Kickbacks() != 1 {
		t.Fatalf("calls %d, kickbacks %d", calls, sim.Kickbacks())
	}
}
