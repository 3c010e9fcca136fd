package sandbox

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

// simCall runs one .idPass API on g and returns the answer's pairs.
func simCall(t *testing.T, g *GMO, api string, f map[string]string) []kv {
	t.Helper()
	r := &gmoReplay{t: t, sim: g}
	return splitAnswer(r.call(api, f))
}

var shop = map[string]string{"ShopID": "tshop00000001", "ShopPass": "shoppass"}

func with(base map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// charge makes an executed trade of job at the simulator's clock.
func charge(t *testing.T, g *GMO, orderID, job string) (accessID, accessPass string) {
	t.Helper()
	e := simCall(t, g, "EntryTran", with(shop, "OrderID", orderID, "JobCd", job, "Amount", "1000"))
	accessID, accessPass = value(e, "AccessID"), value(e, "AccessPass")
	x := simCall(t, g, "ExecTran", map[string]string{"AccessID": accessID, "AccessPass": accessPass, "OrderID": orderID, "Method": "1", "Token": "tok_visa"})
	if value(x, "ErrCode") != "" {
		t.Fatalf("ExecTran: %v", x)
	}
	return accessID, accessPass
}

// SAUTH (簡易オーソリ) reads back as SAUTH in SearchTrade, not as AUTH.
func TestSearchTradeReportsSAUTH(t *testing.T) {
	g := NewGMO()
	charge(t, g, "S-1", "SAUTH")
	st := simCall(t, g, "SearchTrade", with(shop, "OrderID", "S-1"))
	if value(st, "Status") != "SAUTH" || value(st, "JobCd") != "SAUTH" {
		t.Fatalf("%v", st)
	}
}

// GMO's cancel jobs by date, in Japan time: VOID on the day of the last
// processing only, RETURN within its month (the same day included, as a
// recorded 2013 AUTH RETURNed minutes later shows), RETURNX from the next
// month on and within 180 days of the charge.
func TestCancelJobsFollowGMODateRules(t *testing.T) {
	day := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, jst)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cases := []struct {
		charged, now, job, err string
	}{
		{"2026-11-10 10:00", "2026-11-10 23:59", "VOID", ""},
		{"2026-11-10 10:00", "2026-11-11 00:00", "VOID", "E11010003"},
		{"2026-11-10 10:00", "2026-11-10 11:00", "RETURN", ""},
		{"2026-11-10 10:00", "2026-11-30 23:59", "RETURN", ""},
		{"2026-11-30 10:00", "2026-12-01 00:00", "RETURN", "E11010003"},
		{"2026-11-10 10:00", "2026-11-20 10:00", "RETURNX", "E11010003"},
		{"2026-11-30 10:00", "2026-12-01 00:00", "RETURNX", ""},
		{"2026-01-05 10:00", "2026-07-05 10:00", "RETURNX", "E11010010"},
		// 08:30 on the 11th in Japan is still the 10th in UTC: the day is Japan's.
		{"2026-11-11 08:30", "2026-11-11 09:00", "VOID", ""},
	}
	for _, c := range cases {
		g := NewGMO()
		now := day(c.charged)
		g.Now = func() time.Time { return now }
		id, pass := charge(t, g, "C-1", "AUTH")
		now = day(c.now)
		a := simCall(t, g, "AlterTran", with(shop, "AccessID", id, "AccessPass", pass, "JobCd", c.job))
		if got := value(a, "ErrInfo"); got != c.err {
			t.Errorf("%s on %s, charged %s: got %q want %q (%v)", c.job, c.now, c.charged, got, c.err, a)
		}
	}
}

// Card attributes (Brand and friends) come only to a shop with that
// contract option; every recorded SaveCard/SearchCard answer has none.
func TestCardBrandOnlyWhenTheContractHasIt(t *testing.T) {
	for _, attrs := range []bool{false, true} {
		g := NewGMO()
		g.CardAttributes = attrs
		site := map[string]string{"SiteID": "tsite00000001", "SitePass": "sitepass", "MemberID": "m-1"}
		simCall(t, g, "SaveMember", site)
		saved := simCall(t, g, "SaveCard", with(site, "Token", "tok_jcb"))
		found := simCall(t, g, "SearchCard", site)
		if value(saved, "CardNo") != "*************000" || !regexp.MustCompile(`^\*{13}\d{3}$`).MatchString(value(found, "CardNo")) {
			t.Fatalf("masks: %v %v", saved, found)
		}
		has := value(saved, "Brand") != "" || value(found, "Brand") != ""
		if has != attrs || attrs && (value(saved, "Brand") != "JCB" || value(found, "Brand") != "JCB") {
			t.Errorf("CardAttributes %v: SaveCard %v, SearchCard %v", attrs, saved, found)
		}
	}
}

// GMO's 支払方法: 4 is bonus installments and needs PayTimes, 5 revolving
// takes none; PayTimes comes back only with 2 and 4.
func TestExecTranMethods(t *testing.T) {
	g := NewGMO()
	for i, c := range []struct{ method, times, err, answerTimes string }{
		{"1", "1", "", ""}, {"2", "3", "", "3"}, {"3", "", "", ""}, {"4", "", "E01270001", ""}, {"4", "2", "", "2"},
		{"5", "", "", ""}, {"6", "", "E01260002", ""}, {"", "", "E01260001", ""},
	} {
		oid := "M-" + string(rune('a'+i))
		e := simCall(t, g, "EntryTran", with(shop, "OrderID", oid, "JobCd", "CAPTURE", "Amount", "30000"))
		x := simCall(t, g, "ExecTran", map[string]string{"AccessID": value(e, "AccessID"), "AccessPass": value(e, "AccessPass"),
			"OrderID": oid, "Method": c.method, "PayTimes": c.times, "Token": "tok_visa"})
		if value(x, "ErrInfo") != c.err || c.err == "" && (value(x, "Method") != c.method || value(x, "PayTimes") != c.answerTimes) {
			t.Errorf("Method %q PayTimes %q: %v", c.method, c.times, x)
		}
	}
}

// IVR receipt numbers have the 22 digits of seed 001's example, and a card
// decline is pspStatusCode 0 with the card API's codes (its third example).
func TestIVRReceiptsAndDeclinesLikeTheSeed(t *testing.T) {
	g := NewGMO()
	v := NewIVR(g)
	srv := httptest.NewServer(v)
	defer srv.Close()
	post := func(api, body string) map[string]any {
		resp, err := http.Post(srv.URL+"/authorization/api/"+api, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	reg := post("AuthRegistApi", `{"apiKey":"k","apiPassword":"p","useDivisionCode":"1","gmopg":{"shopId":"tshop00000001","auth":{"orderId":"IVR-1","jobCd":"AUTH","amount":"1000","method":"1"}}}`)
	receipt, _ := reg["receiptNo"].(string)
	if !regexp.MustCompile(`^\d{22}$`).MatchString(receipt) {
		t.Fatalf("receipt %q", receipt)
	}
	if _, err := v.Advance(receipt, "tok_exceeds_limit", true); err != nil {
		t.Fatal(err)
	}
	got := post("AuthSearchApi", `{"apiKey":"k","apiPassword":"p","receiptNo":"`+receipt+`"}`)
	ex := got["lastTransaction"].(map[string]any)["execTran"].(map[string]any)
	if got["authSuccessFlg"] != "0" || ex["pspStatusCode"] != "0" || ex["errCode"] != "G55" || ex["errInfo"] != "42G550000" {
		t.Fatalf("%v", got)
	}
	// The seed's processing-error example: pspStatusCode 1, no code,
	// nothing executed at GMO.
	reg = post("AuthRegistApi", `{"apiKey":"k","apiPassword":"p","useDivisionCode":"1","gmopg":{"shopId":"tshop00000001","auth":{"orderId":"IVR-2","jobCd":"AUTH","amount":"1000","method":"1"}}}`)
	receipt = reg["receiptNo"].(string)
	if _, err := v.Advance(receipt, OutcomeTimeout, true); err != nil {
		t.Fatal(err)
	}
	got = post("AuthSearchApi", `{"apiKey":"k","apiPassword":"p","receiptNo":"`+receipt+`"}`)
	ex = got["lastTransaction"].(map[string]any)["execTran"].(map[string]any)
	if got["authSuccessFlg"] != "0" || ex["pspStatusCode"] != "1" || ex["errCode"] != nil || len(ex) != 2 {
		t.Fatalf("%v", got)
	}
	if st, _ := g.TradeStatus("tshop00000001", "IVR-2"); st != "UNPROCESSED" {
		t.Fatalf("the failed IVR authorization charged: %s", st)
	}
}
