package sandbox

// EMV 3-D Secure 2 on the GMO simulator: EntryTran TdFlag=2 with Tds2Type
// and TdTenantName, ExecTran RetUrl and CallbackType, the ACS=2 answer with
// a RedirectUrl to a challenge page served here, SecureTran2 and
// Tds2Result, SearchTrade status AUTHENTICATED. Written from the wire
// notes (reference/gmo-wire-notes.md §2-3), the recorded ACS=2 answer
// (testdata: RedirectUrl with a raw "&t=") and GMO's error table; where
// those are silent the choices are the sandbox's own and README says so.

import (
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/japanese"
)

// Magic tokens of EMV 3-D Secure 2 test cards. Every other card is not
// enrolled: Tds2Type 3 (attempt) authorizes it without authentication,
// Tds2Type 2 (required) refuses it with E21030201.
const (
	// TokThreeDSChallenge: ExecTran answers ACS=2; the challenge page's
	// "Authenticate" succeeds, "Fail" fails.
	TokThreeDSChallenge = "tok_3ds_challenge"
	// TokThreeDSFrictionless: authenticated without a challenge; ExecTran
	// answers ACS=0 with the payment done (Tds2TransResult Y).
	TokThreeDSFrictionless = "tok_3ds_frictionless"
	// TokThreeDSFail: a challenge that fails whichever button is pressed
	// (Tds2TransResult N); SecureTran2 answers E21030007.
	TokThreeDSFail = "tok_3ds_fail"
	// TokThreeDSUnavailable: enrolled, but the issuer cannot authenticate
	// (Tds2TransResult U): required gives E21030202, attempt authorizes.
	TokThreeDSUnavailable = "tok_3ds_unavailable"
	// TokThreeDSInitError: 3-D Secure cannot be started (E21030001).
	TokThreeDSInitError = "tok_3ds_init_error"
)

type acsBehaviour int

const (
	notEnrolled acsBehaviour = iota
	acsChallenge
	acsFrictionless
	acsFail
	acsUnavailable
	acsInitError
)

// behaviourOf tells what the issuer's ACS does for a card number, so a
// card stored from a 3-D Secure token keeps its behaviour.
func behaviourOf(number string) acsBehaviour {
	for tok, b := range map[string]acsBehaviour{TokThreeDSChallenge: acsChallenge, TokThreeDSFrictionless: acsFrictionless,
		TokThreeDSFail: acsFail, TokThreeDSUnavailable: acsUnavailable, TokThreeDSInitError: acsInitError} {
		if TestCards[tok].Number == number {
			return b
		}
	}
	return notEnrolled
}

// pendingExec is what ExecTran was asked to charge, kept while the card
// holder authenticates; SecureTran2 charges it.
type pendingExec struct {
	card             Card
	method, payTimes string
	member           bool // a stored card (the full number is not kept)
	flag             bool // ClientFieldFlag=1: ClientFields in the answer
	clientFields     [3]string
}

type entryTD struct{ tds2Type, tenant string }

// entryThreeDS reads EntryTran's 3-D Secure fields. TdFlag 0 (or none) is
// no 3-D Secure, which a shop in ThreeDSShops may not use (E01080101);
// 2 is EMV 3-D Secure 2. 1 (3-D Secure 1.0) ended in October 2022: it and
// any other value get E01080007, the table's code for a TdFlag it does not
// know. Tds2Type 2 or 3; 1 (the 3DS1 fallback) and none read as 3, a
// plain authorization (the sandbox's choice). TdTenantName must be Base64
// of EUC-JP within 25 bytes (E01370008 format, E01370012 length).
func (g *GMO) entryThreeDS(f map[string]string) (*entryTD, []kv) {
	switch f["TdFlag"] {
	case "", "0":
		if g.ThreeDSShops[f["ShopID"]] {
			return nil, errs("E01080101")
		}
		return nil, nil
	case "2":
	default:
		return nil, errs("E01080007")
	}
	td := &entryTD{tds2Type: f["Tds2Type"]}
	switch td.tds2Type {
	case "", "1":
		td.tds2Type = "3"
	case "2", "3":
	default:
		return nil, errs("E01950008")
	}
	if v := f["TdTenantName"]; v != "" {
		if len(v) > 25 {
			return nil, errs("E01370012")
		}
		raw, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, errs("E01370008")
		}
		name, err := japanese.EUCJP.NewDecoder().Bytes(raw)
		if err != nil || !utf8.Valid(name) || strings.ContainsRune(string(name), utf8.RuneError) {
			return nil, errs("E01370008")
		}
		td.tenant = string(name)
	}
	return td, nil
}

// retURLOK checks ExecTran's RetUrl on a 3-D Secure trade: required
// (E01E30001), at most 512 bytes (E01E30005; the limit is the sandbox's).
func retURLOK(u string) []kv {
	switch {
	case u == "":
		return errs("E01E30001")
	case len(u) > 512:
		return errs("E01E30005")
	}
	return nil
}

// authenticate runs the issuer's side of EMV 3-D Secure 2 for a card on a
// 3-D Secure trade: it reports whether a challenge is needed, or the
// error ExecTran answers. Frictionless and not-enrolled-with-attempt cards
// go on to a plain authorization.
func (g *GMO) authenticate(t *trade, number string) (challenge bool, e []kv) {
	required := t.tds2Type == "2"
	switch behaviourOf(number) {
	case acsChallenge, acsFail:
		return true, nil
	case acsFrictionless:
		t.tds2, t.tds2Reason = "Y", ""
		return false, nil
	case acsUnavailable:
		if required {
			return false, errs("E21030202")
		}
		t.tds2, t.tds2Reason = "U", "09" // 技術的な問題
		return false, nil
	case acsInitError:
		return false, errs("E21030001")
	}
	if required {
		return false, errs("E21030201")
	}
	return false, nil
}

// challenge answers ACS=2 and opens the challenge page. The RedirectUrl
// has GMO's recorded shape, a query with a raw "&t=" (testdata:
// ExecTran/tds2_acs2_redirecturl.json), on this simulator.
func (g *GMO) challenge(t *trade, pe *pendingExec, f map[string]string, base string) []kv {
	t.pending = pe
	t.retURL, t.callbackType = f["RetUrl"], f["CallbackType"]
	if t.acsID != "" {
		delete(g.byACS, t.acsID)
	}
	id := randHex(32)
	t.acsID, t.acsT = id[:8]+"-"+id[8:12]+"-"+id[12:16]+"-"+id[16:20]+"-"+id[20:], randHex(32)
	t.tds2, t.tds2Reason = "C", ""
	g.byACS[t.acsID] = t
	return []kv{{"ACS", "2"}, {"RedirectUrl", base + "/sandbox/acs/challenge?transId=" + t.acsID + "&t=" + t.acsT}}
}

// charge executes a trade (ExecTran ACS=0, SecureTran2) and answers the
// keys of every recorded ExecTran answer after ACS, in their order; the
// ClientFields only when the request asked with ClientFieldFlag=1. The
// caller holds g.mu.
func (g *GMO) charge(t *trade, pe *pendingExec, forge bool) []kv {
	now := g.Now()
	t.status, t.method, t.payTimes = t.job, pe.method, pe.payTimes
	t.tranID = g.tranID(now)
	t.approve = fmt.Sprintf("%07d", 1000000+g.seq.Load()%9000000)
	t.forward = "2a99662"
	t.cardNo = maskKeep4(pe.card.Number)
	if !pe.member {
		t.number = pe.card.Number
	}
	t.expire = pe.card.Expire
	t.processed, t.executed = now, now
	t.execs++
	t.clientFields = pe.clientFields
	tranDate := now.In(jst).Format("20060102150405")
	check := checkString([]string{t.orderID, t.forward, pe.method, pe.payTimes, t.approve, t.tranID, tranDate}, t.shopPass)
	if forge {
		check = strings.Repeat("0", 32)
	}
	out := []kv{{"OrderID", t.orderID}, {"Forward", t.forward}, {"Method", pe.method},
		{"PayTimes", pe.payTimes}, {"Approve", t.approve}, {"TranID", t.tranID}, {"TranDate", tranDate},
		{"CheckString", check}}
	if pe.flag {
		for i := range t.clientFields {
			out = append(out, kv{"ClientField" + strconv.Itoa(i+1), t.clientFields[i]})
		}
	}
	g.notifyTrade(t, t.job)
	return out
}

// secureTran2 executes a 3-D Secure trade once the card holder has
// authenticated (AccessID, AccessPass; no shop credentials, as recorded).
// Its answer is ExecTran's without ACS (the recorded SecureTran answer has
// that shape). A trade already executed gets E11010001; one whose holder
// did not authenticate (failed, or never finished the challenge)
// E21030007; one that never asked for 3-D Secure E01110010 (the sandbox's
// choice: the trade is not executed).
func (g *GMO) secureTran2(f map[string]string) []kv {
	g.mu.Lock()
	defer g.mu.Unlock()
	t, e := g.byAccess(f)
	if e != nil {
		return e
	}
	switch t.status {
	case "UNPROCESSED", "AUTHENTICATED":
	default:
		return errs("E11010001")
	}
	if !t.td || t.pending == nil {
		return errs("E01110010")
	}
	if t.tds2 != "Y" && t.tds2 != "A" {
		g.notifyError(t, "E21030007")
		return errs("E21030007")
	}
	pe := t.pending
	t.pending = nil
	return g.charge(t, pe, false)
}

// tds2ResultAPI answers the authentication result of a trade.
func (g *GMO) tds2ResultAPI(f map[string]string) []kv {
	if e := g.shopOK(f); e != nil {
		return e
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	t, e := g.shopTrade(f)
	if e != nil {
		return e
	}
	return []kv{{"Tds2TransResult", t.tds2}, {"Tds2TransResultReason", t.tds2Reason}}
}

// baseURL is the simulator's own address as the caller reached it.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// acsPage is the issuer's challenge page (the card holder's browser comes
// here from RedirectUrl). The form posts back to the same URL, so curl can
// answer it with -d action=authenticate (or fail).
var acsPage = template.Must(template.New("acs").Parse(`<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>3-D Secure (sandbox ACS)</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:sans-serif;max-width:28em;margin:2em auto;padding:0 1em}dt{color:#555}dd{margin:0 0 .6em;font-weight:bold}
button{font-size:1em;padding:.5em 1.2em;margin-right:.5em}.note{color:#666;font-size:.9em}</style></head>
<body><h1>本人認証 / 3-D Secure</h1>
<p class="note">paynorm sandbox: a simulated card issuer (ACS). No real card is involved.</p>
<dl><dt>Shop / 加盟店</dt><dd id="shop">{{.Shop}}</dd>
<dt>Amount / 金額</dt><dd id="amount">¥{{.Amount}}</dd>
<dt>Order / オーダーID</dt><dd id="order">{{.OrderID}}</dd>
<dt>Card / カード</dt><dd id="card">{{.Card}}</dd></dl>
{{if .Done}}<p id="result">Already answered: {{.Result}}. Continue to return to the shop.</p>
<form method="post"><button type="submit" name="action" value="continue" id="continue">Continue</button></form>
{{else}}{{if .FailCard}}<p class="note">This test card (tok_3ds_fail) fails authentication whichever button is pressed.</p>{{end}}
<form method="post">
<button type="submit" name="action" value="authenticate" id="authenticate">Authenticate</button>
<button type="submit" name="action" value="fail" id="fail">Fail</button>
</form>{{end}}
</body></html>
`))

// backPage sends the browser back to RetUrl with a POST (CallbackType 1).
var backPage = template.Must(template.New("back").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Returning to the shop</title></head>
<body><form id="ret" method="post" action="{{.URL}}"><input type="hidden" name="AccessID" value="{{.AccessID}}">
<button type="submit">Return to the shop</button></form>
<script>document.getElementById("ret").submit()</script></body></html>
`))

// acs serves the challenge page: GET shows it, POST records the card
// holder's answer (authenticate or fail) and sends the browser back to
// RetUrl with the AccessID, by GET (CallbackType 3) or POST (1 and any
// other; 2, the merchant's own 3DS server flow, is not simulated).
func (g *GMO) acs(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/sandbox/acs/challenge" {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	g.mu.Lock()
	t := g.byACS[q.Get("transId")]
	if t == nil || subtle.ConstantTimeCompare([]byte(t.acsT), []byte(q.Get("t"))) != 1 {
		g.mu.Unlock()
		http.Error(w, "No such 3-D Secure challenge (transId and t must be those of ExecTran's RedirectUrl).", http.StatusNotFound)
		return
	}
	fail := t.pending != nil && behaviourOf(t.pending.card.Number) == acsFail
	switch r.Method {
	case http.MethodPost:
		_ = r.ParseForm()
		if t.tds2 == "C" {
			switch r.PostForm.Get("action") {
			case "authenticate":
				if fail {
					t.tds2, t.tds2Reason = "N", "01" // カード認証に失敗した
				} else {
					t.tds2, t.tds2Reason, t.status = "Y", "", "AUTHENTICATED"
				}
			case "fail":
				t.tds2, t.tds2Reason = "N", "01"
			default:
				g.mu.Unlock()
				http.Error(w, `action must be "authenticate" or "fail"`, http.StatusBadRequest)
				return
			}
			t.processed = g.Now()
		}
		ret, cb, id := t.retURL, t.callbackType, t.accessID
		g.mu.Unlock()
		back(w, r, ret, cb, id)
	case http.MethodGet, http.MethodHead:
		shop := t.tenant
		if shop == "" {
			shop = t.shopID
		}
		data := struct {
			Shop, Amount, OrderID, Card, Result string
			Done, FailCard                      bool
		}{Shop: shop, Amount: yen(t.amount + t.tax), OrderID: t.orderID, Done: t.tds2 != "C", Result: t.tds2, FailCard: fail}
		if t.pending != nil {
			data.Card = maskKeep4(t.pending.card.Number)
		}
		g.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_ = acsPage.Execute(w, data)
	default:
		g.mu.Unlock()
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// back sends the card holder's browser to RetUrl carrying the AccessID.
func back(w http.ResponseWriter, r *http.Request, ret, callbackType, accessID string) {
	if callbackType == "3" {
		u := ret
		if i := strings.IndexByte(u, '#'); i >= 0 {
			u = u[:i]
		}
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		http.Redirect(w, r, u+sep+"AccessID="+url.QueryEscape(accessID), http.StatusSeeOther)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = backPage.Execute(w, struct{ URL, AccessID string }{ret, accessID})
}

// yen writes an amount with thousands separators.
func yen(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
