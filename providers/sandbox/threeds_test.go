package sandbox

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/text/encoding/japanese"
)

// raw runs one API and returns the answer text (RedirectUrl keeps its raw
// "&t=", which splitAnswer would cut).
func raw(t *testing.T, g *GMO, api string, f map[string]string) string {
	t.Helper()
	return (&gmoReplay{t: t, sim: g}).call(api, f)
}

func tenantB64(t *testing.T, name string) string {
	b, err := japanese.EUCJP.NewEncoder().String(name)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString([]byte(b))
}

// entry3DS registers a 3-D Secure trade and returns its access pair.
func entry3DS(t *testing.T, g *GMO, orderID, tds2Type string, extra ...string) (string, string) {
	t.Helper()
	e := simCall(t, g, "EntryTran", with(shop, append([]string{"OrderID", orderID, "JobCd", "CAPTURE", "Amount", "1000", "Tax", "100", "TdFlag", "2", "Tds2Type", tds2Type}, extra...)...))
	if value(e, "ErrInfo") != "" {
		t.Fatalf("EntryTran: %v", e)
	}
	return value(e, "AccessID"), value(e, "AccessPass")
}

func exec3DS(t *testing.T, g *GMO, orderID, id, pass, token, ret, callback string) string {
	t.Helper()
	return raw(t, g, "ExecTran", map[string]string{"AccessID": id, "AccessPass": pass, "OrderID": orderID, "Method": "1",
		"Token": token, "RetUrl": ret, "CallbackType": callback})
}

// acsDo sends the browser's request to the challenge page.
func acsDo(g *GMO, method, target string, form url.Values) *httptest.ResponseRecorder {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, target, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	w := httptest.NewRecorder()
	g.ServeHTTP(w, req)
	return w
}

// EntryTran's 3-D Secure fields are checked with the codes of GMO's
// table: TdFlag other than 0 or 2 (3DS1 ended), Tds2Type, TdTenantName's
// Base64/EUC-JP and 25 bytes, and TdFlag off on a shop that requires 3-D
// Secure.
func TestEntryTranThreeDSChecks(t *testing.T) {
	g := NewGMO()
	g.ThreeDSShops = map[string]bool{"tshop00000009": true}
	cases := []struct {
		f    map[string]string
		info string
	}{
		{with(shop, "OrderID", "E-1", "JobCd", "AUTH", "Amount", "1", "TdFlag", "1"), "E01080007"},
		{with(shop, "OrderID", "E-2", "JobCd", "AUTH", "Amount", "1", "TdFlag", "2", "Tds2Type", "9"), "E01950008"},
		{with(shop, "OrderID", "E-3", "JobCd", "AUTH", "Amount", "1", "TdFlag", "2", "TdTenantName", "not base64!"), "E01370008"},
		{with(shop, "OrderID", "E-4", "JobCd", "AUTH", "Amount", "1", "TdFlag", "2", "TdTenantName", tenantB64(t, "日本橋商店株式会社本店")), "E01370012"},
		{map[string]string{"ShopID": "tshop00000009", "ShopPass": "x", "OrderID": "E-5", "JobCd": "AUTH", "Amount": "1"}, "E01080101"},
		{map[string]string{"ShopID": "tshop00000009", "ShopPass": "x", "OrderID": "E-6", "JobCd": "AUTH", "Amount": "1", "TdFlag": "0"}, "E01080101"},
		{map[string]string{"ShopID": "tshop00000009", "ShopPass": "x", "OrderID": "E-7", "JobCd": "AUTH", "Amount": "1", "TdFlag": "2"}, ""},
	}
	for _, c := range cases {
		if got := value(simCall(t, g, "EntryTran", c.f), "ErrInfo"); got != c.info {
			t.Errorf("%s: ErrInfo %q, want %q", c.f["OrderID"], got, c.info)
		}
	}
}

// A challenge on the simulator, the way GMO's recorded answer and the
// wire notes describe it: ExecTran needs RetUrl and answers ACS=2 with a
// RedirectUrl holding a raw "&t="; the challenge page shows the shop name
// (TdTenantName) and amount; "Authenticate" sends the browser back to
// RetUrl with the AccessID (GET for CallbackType 3) and the trade reads
// AUTHENTICATED; SecureTran2 charges once with a valid CheckString and
// answers ExecTran's keys without ACS; a second one is E11010001.
func TestChallengeOnTheSimulator(t *testing.T) {
	g := NewGMO()
	id, pass := entry3DS(t, g, "C-1", "2", "TdTenantName", tenantB64(t, "テスト商店"))
	if got := exec3DS(t, g, "C-1", id, pass, TokThreeDSChallenge, "", "3"); got != "ErrCode=E01&ErrInfo=E01E30001" {
		t.Fatalf("no RetUrl: %s", got)
	}
	ans := exec3DS(t, g, "C-1", id, pass, TokThreeDSChallenge, "https://shop.example/back", "3")
	const prefix = "ACS=2&RedirectUrl=http://example.com/sandbox/acs/challenge?transId="
	if !strings.HasPrefix(ans, prefix) || strings.Count(ans, "&t=") != 1 || strings.Contains(ans, "CheckString") {
		t.Fatalf("ExecTran: %s", ans)
	}
	redirect := strings.TrimPrefix(ans, "ACS=2&RedirectUrl=")
	if st := simCall(t, g, "SearchTrade", with(shop, "OrderID", "C-1")); value(st, "Status") != "UNPROCESSED" || g.Charges() != 0 {
		t.Fatalf("before authentication: %v", st)
	}
	if r := simCall(t, g, "Tds2Result", with(shop, "AccessID", id, "AccessPass", pass)); value(r, "Tds2TransResult") != "C" {
		t.Fatalf("Tds2Result while challenged: %v", r)
	}
	page := acsDo(g, http.MethodGet, redirect, nil)
	if page.Code != 200 || !strings.Contains(page.Body.String(), "テスト商店") || !strings.Contains(page.Body.String(), "¥1,100") || !strings.Contains(page.Body.String(), `id="authenticate"`) {
		t.Fatalf("challenge page %d:\n%s", page.Code, page.Body)
	}
	if w := acsDo(g, http.MethodGet, strings.Replace(redirect, "&t=", "&t=0", 1), nil); w.Code != 404 {
		t.Fatalf("a wrong t: %d", w.Code)
	}
	w := acsDo(g, http.MethodPost, redirect, url.Values{"action": {"authenticate"}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "https://shop.example/back?AccessID="+id {
		t.Fatalf("after authenticating: %d %q", w.Code, w.Header().Get("Location"))
	}
	if st := simCall(t, g, "SearchTrade", with(shop, "OrderID", "C-1")); value(st, "Status") != "AUTHENTICATED" {
		t.Fatalf("after authentication: %v", st)
	}
	if r := simCall(t, g, "Tds2Result", with(shop, "AccessID", id, "AccessPass", pass)); value(r, "Tds2TransResult") != "Y" {
		t.Fatalf("Tds2Result: %v", r)
	}
	if s := simCall(t, g, "SecureTran2", map[string]string{"AccessID": id, "AccessPass": "wrong"}); value(s, "ErrInfo") != "E01110002" {
		t.Fatalf("wrong AccessPass: %v", s)
	}
	s := simCall(t, g, "SecureTran2", map[string]string{"AccessID": id, "AccessPass": pass})
	keys := []string{}
	for _, p := range s {
		keys = append(keys, p.k)
	}
	if strings.Join(keys, " ") != "OrderID Forward Method PayTimes Approve TranID TranDate CheckString" {
		t.Fatalf("SecureTran2 keys: %v", s)
	}
	want := checkString([]string{"C-1", value(s, "Forward"), "1", "", value(s, "Approve"), value(s, "TranID"), value(s, "TranDate")}, "shoppass")
	if value(s, "CheckString") != want {
		t.Fatalf("CheckString %s, want %s", value(s, "CheckString"), want)
	}
	if st, _ := g.TradeStatus("tshop00000001", "C-1"); st != "CAPTURE" || g.Charges() != 1 {
		t.Fatalf("after SecureTran2: %s, %d charges", st, g.Charges())
	}
	if s := simCall(t, g, "SecureTran2", map[string]string{"AccessID": id, "AccessPass": pass}); value(s, "ErrInfo") != "E11010001" || g.Charges() != 1 {
		t.Fatalf("second SecureTran2: %v", s)
	}
	// The page, visited again, says it was answered and sends the browser back.
	if p := acsDo(g, http.MethodGet, redirect, nil); !strings.Contains(p.Body.String(), "Already answered") {
		t.Fatalf("page after the answer:\n%s", p.Body)
	}
}

// CallbackType 1 sends the browser back with a POST (a self-submitting
// form carrying AccessID); the shop name defaults to the ShopID.
func TestCallbackTypePOST(t *testing.T) {
	g := NewGMO()
	id, pass := entry3DS(t, g, "P-1", "3")
	redirect := strings.TrimPrefix(exec3DS(t, g, "P-1", id, pass, TokThreeDSChallenge+"_x", "https://shop.example/back?o=1", "1"), "ACS=2&RedirectUrl=")
	if !strings.Contains(acsDo(g, http.MethodGet, redirect, nil).Body.String(), "tshop00000001") {
		t.Fatal("no shop shown")
	}
	w := acsDo(g, http.MethodPost, redirect, url.Values{"action": {"authenticate"}})
	body := w.Body.String()
	if w.Code != 200 || !strings.Contains(body, `action="https://shop.example/back?o=1"`) || !strings.Contains(body, `name="AccessID" value="`+id+`"`) {
		t.Fatalf("%d\n%s", w.Code, body)
	}
}

// A failed challenge (tok_3ds_fail fails whichever button; "Fail" on any
// card) and a challenge never answered leave nothing to charge:
// SecureTran2 answers E21030007 and Tds2Result says N.
func TestFailedOrUnansweredChallenge(t *testing.T) {
	g := NewGMO()
	for i, c := range []struct{ token, action string }{{TokThreeDSFail, "authenticate"}, {TokThreeDSChallenge, "fail"}, {TokThreeDSChallenge, ""}} {
		oid := "F-" + string(rune('1'+i))
		id, pass := entry3DS(t, g, oid, "2")
		redirect := strings.TrimPrefix(exec3DS(t, g, oid, id, pass, c.token, "https://shop.example/back", "3"), "ACS=2&RedirectUrl=")
		if c.action != "" {
			if w := acsDo(g, http.MethodPost, redirect, url.Values{"action": {c.action}}); w.Code != http.StatusSeeOther {
				t.Fatalf("%s: %d", oid, w.Code)
			}
			if r := simCall(t, g, "Tds2Result", with(shop, "AccessID", id, "AccessPass", pass)); value(r, "Tds2TransResult") != "N" || value(r, "Tds2TransResultReason") != "01" {
				t.Fatalf("%s Tds2Result: %v", oid, r)
			}
		}
		if s := simCall(t, g, "SecureTran2", map[string]string{"AccessID": id, "AccessPass": pass}); value(s, "ErrInfo") != "E21030007" || value(s, "ErrCode") != "E21" {
			t.Fatalf("%s SecureTran2: %v", oid, s)
		}
	}
	if g.Charges() != 0 {
		t.Fatal("a failed authentication was charged")
	}
}

// Result notifications: a Shift_JIS form with the passwords masked, sent
// after a charge and after AlterTran, and again until the answer is "0".
func TestResultNotificationsUntilZero(t *testing.T) {
	var mu sync.Mutex
	var got []url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		v, err := url.ParseQuery(string(b))
		if err != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			t.Errorf("notification body %q: %v", b, err)
		}
		mu.Lock()
		got = append(got, v)
		n := len(got)
		mu.Unlock()
		if n == 1 {
			_, _ = io.WriteString(w, "1") // not taken: GMO sends it again
			return
		}
		_, _ = io.WriteString(w, "0")
	}))
	defer srv.Close()
	g := NewGMO()
	g.NotifyRetry = 10 * time.Millisecond
	g.SetNotifyURL(srv.URL)
	id, pass := charge(t, g, "N-1", "AUTH")
	if a := simCall(t, g, "AlterTran", with(shop, "AccessID", id, "AccessPass", pass, "JobCd", "VOID")); value(a, "ErrInfo") != "" {
		t.Fatalf("VOID: %v", a)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ns := g.Notices()
		if len(ns) == 2 && ns[0].Delivered && ns[1].Delivered {
			if ns[0].Status != "AUTH" || ns[1].Status != "VOID" || ns[0].Attempts+ns[1].Attempts != 3 {
				t.Fatalf("notices: %+v", ns)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("notices not delivered: %+v", ns)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, v := range got {
		if v.Get("ShopID") != "tshop00000001" || v.Get("OrderID") != "N-1" || strings.Trim(v.Get("ShopPass"), "*") != "" ||
			strings.Trim(v.Get("AccessPass"), "*") != "" || v.Get("AccessID") != id || v.Get("Amount") != "1000" || v.Get("PayType") != "0" {
			t.Fatalf("notification: %v", v)
		}
	}
}

// The demo checkout is a merchant's backend: it creates the payment in
// paynorm with three_d_secure and a return_url back to itself, sends the
// browser to next_action.url, completes the payment when the browser
// returns, and shows the result.
func TestCheckoutDrivesPaynormsAPI(t *testing.T) {
	var mu sync.Mutex
	var creates []map[string]any
	var keys []string
	completes := 0
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/payments":
			var body map[string]any
			_ = json.NewDecoder(r.Body).Decode(&body)
			creates = append(creates, body)
			_, _ = io.WriteString(w, `{"id":"gmo_CO-1","status":"requires_action","next_action":{"type":"redirect_to_url","url":"https://acs.example/challenge?transId=1&t=2"}}`)
		case "/v1/payments/gmo_CO-1/complete":
			completes++
			w.WriteHeader(402)
			_, _ = io.WriteString(w, `{"error":{"code":"authentication_failed","message":"3-D Secure authentication failed; nothing was charged.","message_ja":"3Dセキュア認証に失敗しました。","payment":{"id":"gmo_CO-1","status":"failed"}}}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer api.Close()
	g := NewGMO()
	g.Checkout.SetAPI(api.URL, "")
	sim := httptest.NewServer(g)
	defer sim.Close()

	resp, err := http.Get(sim.URL + "/sandbox/checkout")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `id="card-tok_3ds_challenge"`) || !strings.Contains(string(b), api.URL) {
		t.Fatalf("form:\n%s", b)
	}
	nr := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = nr.PostForm(sim.URL+"/sandbox/checkout", url.Values{"card": {TokThreeDSChallenge}, "amount": {"1500"}, "three_d_secure": {"required"}, "capture": {"automatic"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "https://acs.example/challenge?transId=1&t=2" {
		t.Fatalf("after create: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	mu.Lock()
	c := creates[0]
	ret, _ := c["return_url"].(string)
	mu.Unlock()
	if c["three_d_secure"] != "required" || c["amount"] != 1500.0 || c["capture"] != "automatic" || !strings.HasPrefix(ret, sim.URL+"/sandbox/checkout/return?session=") {
		t.Fatalf("create body: %v", c)
	}
	// The browser comes back (with the AccessID GMO appends).
	resp, err = nr.Get(ret + "&AccessID=abc")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	result := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(result, "/sandbox/checkout/result?session=") {
		t.Fatalf("return: %d %q", resp.StatusCode, result)
	}
	resp, err = http.Get(sim.URL + result)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(b)
	if !strings.Contains(page, `<dd id="status">failed</dd>`) || !strings.Contains(page, `<dd id="code">authentication_failed</dd>`) {
		t.Fatalf("result page:\n%s", page)
	}
	// Coming back twice completes once.
	if resp, err := nr.Get(ret); err == nil {
		resp.Body.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	if completes != 1 || keys[0] == "" || keys[1] == "" || keys[0] == keys[1] {
		t.Fatalf("completes %d, idempotency keys %v", completes, keys)
	}
}
