package sandbox

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paynorm/paynorm/providers/jpayment"
)

func jpGet(t *testing.T, base, path string, q url.Values) (string, *jpayment.Answer) {
	t.Helper()
	resp, err := http.Get(base + path + "?" + q.Encode()) // GET works like POST
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a, _ := jpayment.ParseAnswer(b)
	return string(b), a
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
		if !strings.HasSuffix(raw, "\r\n") || a == nil || a.Result == nil || a.Result.Rst != "1" || a.Result.Ta != "1000" || a.Result.Cod != "X1" {
			t.Fatalf("%q", raw)
		}
		return a.Result.GID
	}
	errCode := func(path string, q url.Values) string {
		_, a := jpGet(t, srv.URL, path, q)
		if a == nil {
			return "<garbage>"
		}
		if a.ErrCode != "" {
			return a.ErrCode
		}
		return a.Result.Ec
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

// rt=0 sends the result as a kickback with URL parameters.
func TestJPaymentKickbackOnRt0(t *testing.T) {
	var mu sync.Mutex
	var got url.Values
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.URL.Query()
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
	k, err := jpayment.ParseKickback(got)
	if err != nil || k.Rst != "1" || k.Ta != 1580 || k.Cod != "test" || got.Get("account") != "jp" {
		t.Fatalf("%v %+v %v", got, k, err)
	}
}
