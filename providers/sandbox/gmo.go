// Package sandbox holds wire-faithful simulators of the providers paynorm
// speaks to, so paynorm runs and is tested without provider accounts. They
// keep their ledgers in memory and apply the providers' state rules. They
// share no code with paynorm's codecs (wire.go, imports_test.go): their
// answers are checked against recorded exchanges (testdata/fixtures), so a
// codec and its simulator cannot agree on a mistake unseen.
package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Card is a test card a magic token stands for.
type Card struct{ Number, Expire string }

// Magic tokens, shared by every simulator. A token may carry a suffix
// ("tok_visa_123") so apps can make each one unique.
var (
	// TestCards succeed.
	TestCards = map[string]Card{
		"tok_visa":       {"4111111111111111", "3012"},
		"tok_mastercard": {"5555555555554444", "3012"},
		"tok_jcb":        {"3530111333300000", "3012"},
		"tok_amex":       {"378282246310005", "3012"},
		"tok_diners":     {"30569309025904", "3012"},
		// EMV 3-D Secure 2 test cards (threeds.go): every other card is
		// not enrolled in 3-D Secure.
		TokThreeDSChallenge:    {"4000000000001000", "3012"},
		TokThreeDSFrictionless: {"4000000000002008", "3012"},
		TokThreeDSFail:         {"4000000000003006", "3012"},
		TokThreeDSUnavailable:  {"4000000000004004", "3012"},
		TokThreeDSInitError:    {"4000000000005001", "3012"},
	}
	// Declines map to the GMO ErrInfo the card company would give.
	Declines = map[string]string{
		"tok_insufficient_funds": "42G020000",
		"tok_exceeds_limit":      "42G550000",
		"tok_declined":           "42G120000",
		"tok_expired_card":       "42G830000",
		"tok_incorrect_cvc":      "42G440000",
		"tok_token_expired":      "EX1000303",
	}
)

// Fault tokens make the provider misbehave instead of declining.
const (
	TokE90         = "tok_fault_e90"         // E90010001 double submit
	TokE91         = "tok_fault_e91"         // E91099999 system error
	Tok5xx         = "tok_fault_5xx"         // HTTP 503
	TokSlow        = "tok_fault_slow"        // commits the charge, answers after SlowDelay
	TokBadCheck    = "tok_fault_checkstring" // commits, answers a forged CheckString
	TokMaintenance = "tok_fault_maintenance" // E91099996
)

// magic returns the base magic name of a token.
func magic(tok string) string {
	if i := strings.Index(tok, "_"); i >= 0 {
		if j := strings.Index(tok[i+1:], "_"); j >= 0 {
			// tok_visa_123 -> tok_visa; tok_insufficient_funds stays whole
			if _, ok := TestCards[tok[:i+1+j]]; ok {
				return tok[:i+1+j]
			}
		}
	}
	// Card names with an underscore of their own (tok_3ds_challenge_123).
	for name := range TestCards {
		if tok == name || strings.HasPrefix(tok, name+"_") {
			return name
		}
	}
	for name := range Declines {
		if tok == name || strings.HasPrefix(tok, name+"_") {
			return name
		}
	}
	for _, name := range []string{TokE90, TokE91, Tok5xx, TokSlow, TokBadCheck, TokMaintenance} {
		if tok == name || strings.HasPrefix(tok, name+"_") {
			return name
		}
	}
	return tok
}

type trade struct {
	shopID, shopPass          string
	orderID, accessID, access string
	job, status               string
	amount, tax               int64
	method, payTimes          string
	tranID, approve, forward  string
	cardNo, expire, memberID  string
	siteID                    string
	number                    string // full number of a token payment, for TradedCard
	clientFields              [3]string
	// processed is when the trade was last processed (ProcessDate): the
	// day VOID, RETURN and RETURNX are judged by.
	processed time.Time
	// executed is when ExecTran charged (for RETURNX's 180 days).
	executed time.Time
	execs    int // ExecTran calls that charged (for tests)

	// 3-D Secure (EntryTran TdFlag=2; threeds.go).
	td           bool
	tds2Type     string // 2 required, 3 attempt
	tenant       string // TdTenantName, decoded
	retURL       string // ExecTran RetUrl
	callbackType string
	// tds2 is the authentication result (Tds2TransResult): "" none, C a
	// challenge waiting, Y authenticated, A attempted, N failed, U could
	// not be performed; tds2Reason its reason code.
	tds2, tds2Reason string
	acsID, acsT      string // the challenge page's transId and t
	pending          *pendingExec
}

// GMO simulates the protocol-type card API on /payment/*.idPass.
type GMO struct {
	// Shops, when set, is the only accepted ShopID -> ShopPass set.
	Shops map[string]string
	// SlowDelay is how long TokSlow answers take (default 3s).
	SlowDelay time.Duration
	// Now is the simulator clock (JST dates are derived from it).
	Now func() time.Time
	// ThreeDSShops lists shops whose contract requires 3-D Secure: their
	// EntryTran without TdFlag=2 is refused with E01080101.
	ThreeDSShops map[string]bool
	// NotifyRetry is the pause before a result notification is sent
	// again (GMO: about an hour; default 30s here).
	NotifyRetry time.Duration
	// Checkout is the demo merchant served on /sandbox/checkout.
	Checkout *Checkout
	// CardAttributes makes SaveCard and SearchCard answer the card
	// attribute columns (Brand, DomesticFlag, IssuerCode, DebitPrepaidFlag,
	// DebitPrepaidIssuerName, ForwardFinal), which a shop gets only with
	// that option of its contract: every recorded SaveCard/SearchCard
	// answer (testdata/fixtures) has none. Off by default.
	CardAttributes bool

	mu      sync.Mutex
	trades  map[string]*trade // shopID/orderID
	byAcc   map[string]*trade // accessID
	byACS   map[string]*trade // challenge transId
	notify  notifier
	members map[string]*member
	seq     atomic.Int64
	calls   sync.Map // api -> *atomic.Int64
	faults  faultQueue
}

// NewGMO builds an empty simulator.
func NewGMO() *GMO {
	return &GMO{trades: map[string]*trade{}, byAcc: map[string]*trade{}, byACS: map[string]*trade{}, members: map[string]*member{},
		SlowDelay: 3 * time.Second, Now: time.Now, NotifyRetry: 30 * time.Second, Checkout: NewCheckout()}
}

// Calls reports how many times api was called.
func (g *GMO) Calls(api string) int64 {
	v, ok := g.calls.Load(api)
	if !ok {
		return 0
	}
	return v.(*atomic.Int64).Load()
}

// Charges counts successful ExecTran executions across all trades.
func (g *GMO) Charges() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, t := range g.trades {
		n += t.execs
	}
	return n
}

// TradeStatus is the ledger status of an order ("" when unknown).
func (g *GMO) TradeStatus(shopID, orderID string) (status string, amount int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t := g.trades[shopID+"/"+orderID]; t != nil {
		return t.status, t.amount
	}
	return "", 0
}

func (g *GMO) count(api string) {
	v, _ := g.calls.LoadOrStore(api, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func randHex(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ServeHTTP answers one .idPass call.
func (g *GMO) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/sandbox/acs/"):
		g.acs(w, r)
		return
	case g.Checkout.Handles(r.URL.Path):
		g.Checkout.ServeHTTP(w, r)
		return
	case strings.HasPrefix(r.URL.Path, "/sandbox/"):
		g.control(w, r)
		return
	}
	name := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/payment/"), ".idPass")
	if !strings.HasSuffix(r.URL.Path, ".idPass") || strings.Contains(name, "/") {
		g.answer(w, errs("E91099997"))
		return
	}
	g.count(name)
	if f, ok := g.faults.take(name); ok && f.before(w) {
		return
	}
	if r.Method != http.MethodPost {
		g.answer(w, errs("E00000001"))
		return
	}
	if !strings.HasPrefix(strings.ToLower(r.Header.Get("Content-Type")), "application/x-www-form-urlencoded") {
		// GMO does not parse a body without the form Content-Type.
		g.answer(w, errs("E01190001"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}
	f, err := parseSJISForm(body)
	if err != nil {
		g.answer(w, errs("E01999998"))
		return
	}
	var out []kv
	var after func()
	switch name {
	case "EntryTran":
		out = g.entryTran(f)
	case "ExecTran":
		out, after = g.execTranAt(f, baseURL(r))
	case "SecureTran2":
		out = g.secureTran2(f)
	case "Tds2Result":
		out = g.tds2ResultAPI(f)
	case "AlterTran":
		out = g.alterTran(f)
	case "ChangeTran":
		out = g.changeTran(f)
	case "SearchTrade":
		out = g.searchTrade(f)
	case "SaveMember", "UpdateMember", "SearchMember", "DeleteMember", "SaveCard", "SearchCard", "DeleteCard", "TradedCard":
		out = g.memberAPI(name, f)
	default:
		out = errs("E91099997")
	}
	if after != nil {
		after()
	}
	if len(out) == 1 && out[0].k == "__status" {
		http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
		return
	}
	if fl, ok := g.faults.takeAfter(name); ok {
		fl.after(w, encodeAnswer(out))
		return
	}
	g.answer(w, out)
}

// answer writes a GMO answer; the recorded Content-Type labels vary within
// the Shift_JIS family (INDEX.md §9), this is the card API's.
func (g *GMO) answer(w http.ResponseWriter, out []kv) {
	w.Header().Set("Content-Type", "text/plain;charset=Windows-31J")
	_, _ = w.Write(encodeAnswer(out))
}

// errs answers ErrCode/ErrInfo, one ErrCode entry per error in the same
// order, '|'-joined (INDEX.md §2). A card company's 42Gnn0000 has ErrCode
// Gnn.
func errs(infos ...string) []kv {
	codes := make([]string, len(infos))
	for i, in := range infos {
		codes[i] = in[:3]
		if strings.HasPrefix(in, "42") {
			codes[i] = in[2:5]
		}
	}
	return []kv{{"ErrCode", strings.Join(codes, "|")}, {"ErrInfo", strings.Join(infos, "|")}}
}

func (g *GMO) shopOK(f map[string]string) []kv {
	id, pass := f["ShopID"], f["ShopPass"]
	switch {
	case id == "":
		return errs("E01010001")
	case pass == "":
		return errs("E01020001")
	}
	if g.Shops != nil && g.Shops[id] != pass {
		return errs("E01030002")
	}
	return nil
}

func (g *GMO) entryTran(f map[string]string) []kv {
	if e := g.shopOK(f); e != nil {
		return e
	}
	oid, job := f["OrderID"], f["JobCd"]
	if oid == "" {
		return errs("E01040001")
	}
	if !orderIDOK(oid, 27) {
		return errs("E01040013")
	}
	switch job {
	case "CHECK", "CAPTURE", "AUTH", "SAUTH":
	case "":
		return errs("E01050001")
	default:
		return errs("E01050002")
	}
	amount, err1 := strconv.ParseInt(f["Amount"], 10, 64)
	tax, err2 := strconv.ParseInt(orZero(f["Tax"]), 10, 64)
	if job != "CHECK" {
		if f["Amount"] == "" {
			return errs("E01060001")
		}
		if err1 != nil || amount < 1 || amount > 9999999 {
			return errs("E01060005")
		}
		if err2 != nil || tax < 0 || tax > 9999999 {
			return errs("E01070005")
		}
	}
	td, e := g.entryThreeDS(f)
	if e != nil {
		return e
	}
	key := f["ShopID"] + "/" + oid
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.trades[key] != nil {
		return errs("E01040010")
	}
	t := &trade{shopID: f["ShopID"], shopPass: f["ShopPass"], orderID: oid, accessID: randHex(32), access: randHex(32),
		job: job, status: "UNPROCESSED", amount: amount, tax: tax, processed: g.Now()}
	if td != nil {
		t.td, t.tds2Type, t.tenant = true, td.tds2Type, td.tenant
	}
	g.trades[key], g.byAcc[t.accessID] = t, t
	return []kv{{"AccessID", t.accessID}, {"AccessPass", t.access}}
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

func (g *GMO) byAccess(f map[string]string) (*trade, []kv) {
	if f["AccessID"] == "" {
		return nil, errs("E01090001")
	}
	if f["AccessPass"] == "" {
		return nil, errs("E01100001")
	}
	t := g.byAcc[f["AccessID"]]
	if t == nil || t.access != f["AccessPass"] {
		return nil, errs("E01110002")
	}
	return t, nil
}

// shopTrade is byAccess for an API that also names the shop: another
// shop's trade reads as not found (caller holds g.mu).
func (g *GMO) shopTrade(f map[string]string) (*trade, []kv) {
	t, e := g.byAccess(f)
	if e != nil {
		return nil, e
	}
	if t.shopID != f["ShopID"] {
		return nil, errs("E01110002")
	}
	return t, nil
}

// tranID makes a test-site TranID: yyMMddHHmm, twelve 1s, six digits (28
// digits; INDEX.md §14).
func (g *GMO) tranID(now time.Time) string {
	return now.In(jst).Format("0601021504") + "111111111111" + fmt.Sprintf("%06d", g.seq.Add(1)%1000000)
}

func (g *GMO) execTran(f map[string]string) (out []kv, after func()) { return g.execTranAt(f, "") }

// execTranAt runs ExecTran; base is the simulator's own URL, where a 3-D
// Secure challenge page is served (RedirectUrl).
func (g *GMO) execTranAt(f map[string]string, base string) (out []kv, after func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	t, e := g.byAccess(f)
	if e != nil {
		return e, nil
	}
	if f["OrderID"] != t.orderID {
		return errs("E01040003"), nil
	}
	if t.status != "UNPROCESSED" {
		return errs("E11010001"), nil
	}
	// 支払方法 (seed 001): 1 一括, 2 分割, 3 ボーナス一括, 4 ボーナス分割,
	// 5 リボ; PayTimes with 2 and 4 only. A CHECK takes none and answers
	// Method and PayTimes empty (recorded: kissy2go by_number).
	method, payTimes := f["Method"], ""
	if t.job == "CHECK" {
		method = ""
	} else {
		switch method {
		case "1", "3", "5":
		case "2", "4":
			if f["PayTimes"] == "" {
				return errs("E01270001"), nil
			}
			if n, err := strconv.Atoi(f["PayTimes"]); err != nil || n < 2 || n > 99 {
				return errs("E01270010"), nil
			}
			payTimes = f["PayTimes"]
		case "":
			return errs("E01260001"), nil
		default:
			return errs("E01260002"), nil
		}
	}
	// 加盟店自由項目: 100 Shift_JIS bytes, none of ^ ` { | } ~ & < > " '
	// (seed 001 item 15; E01320012/E01320013, E0133..., E0134...).
	for i, group := range []string{"E0132", "E0133", "E0134"} {
		v := f["ClientField"+strconv.Itoa(i+1)]
		if n, ok := sjisLen(v); !ok || n > 100 {
			return errs(group + "0012"), nil
		}
		if strings.ContainsAny(v, "^`{|}~&<>\"'") {
			return errs(group + "0013"), nil
		}
	}
	if t.td {
		if e := retURLOK(f["RetUrl"]); e != nil {
			return e, nil
		}
	}
	var card Card
	tok := f["Token"]
	slow, badCheck := false, false
	switch {
	case tok != "":
		m := magic(tok)
		if info, ok := Declines[m]; ok {
			if t.td && t.tds2Type == "2" {
				return errs("E21030201"), nil // not enrolled: required 3DS fails first
			}
			return errs(info), nil
		}
		switch m {
		case TokE90:
			return errs("E90010001"), nil
		case TokE91:
			return errs("E91099999"), nil
		case TokMaintenance:
			return errs("E91099996"), nil
		case Tok5xx:
			return []kv{{"__status", "503"}}, nil
		case TokSlow:
			slow, card = true, TestCards["tok_visa"]
		case TokBadCheck:
			badCheck, card = true, TestCards["tok_visa"]
		default:
			c, ok := TestCards[m]
			if !ok {
				return errs("EX1000301"), nil
			}
			card = c
		}
	case f["MemberID"] != "":
		c, e := g.storedCard(f)
		if e != nil {
			return e, nil
		}
		card = c
		t.memberID, t.siteID = f["MemberID"], f["SiteID"]
	case f["CardNo"] != "":
		card = Card{Number: f["CardNo"], Expire: f["Expire"]}
	default:
		return errs("E01170001"), nil
	}
	pe := &pendingExec{card: card, method: method, payTimes: payTimes, member: f["MemberID"] != "", flag: f["ClientFieldFlag"] == "1"}
	for i := range pe.clientFields {
		pe.clientFields[i] = f["ClientField"+strconv.Itoa(i+1)]
	}
	if t.td {
		challenge, e := g.authenticate(t, card.Number)
		if e != nil {
			return e, nil
		}
		if challenge {
			return g.challenge(t, pe, f, base), nil
		}
	}
	if f["SecurityCode"] == "000" {
		return errs("42G440000"), nil
	}
	// Key order of every recorded ExecTran answer (INDEX.md §3).
	out = append([]kv{{"ACS", "0"}}, g.charge(t, pe, badCheck)...)
	if slow {
		d := g.SlowDelay
		return out, func() { time.Sleep(d) }
	}
	return out, nil
}

// cancelDateOK applies GMO's date rule of each cancel job to a trade last
// processed at processed, in Japan time: VOID (取消) on the same day only,
// RETURN (返品) within the same month (the same day included: a recorded
// 2013 AUTH was RETURNed minutes after it was made), RETURNX (月跨り返品)
// from the next month on, up to 180 days after the charge (E11010010).
func cancelDateOK(job string, t *trade, now time.Time) []kv {
	switch job {
	case "VOID":
		if !sameDay(t.processed, now) {
			return errs("E11010003")
		}
	case "RETURN":
		if !sameMonth(t.processed, now) {
			return errs("E11010003")
		}
	case "RETURNX":
		if sameMonth(t.processed, now) {
			return errs("E11010003")
		}
		if now.Sub(t.executed) > 180*24*time.Hour {
			return errs("E11010010")
		}
	}
	return nil
}

func (g *GMO) alterTran(f map[string]string) []kv {
	if e := g.shopOK(f); e != nil {
		return e
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	t, e := g.shopTrade(f)
	if e != nil {
		return e
	}
	now := g.Now()
	job := f["JobCd"]
	switch job {
	case "SALES":
		switch t.status {
		case "SALES", "CAPTURE":
			return errs("E11010001")
		case "AUTH", "SAUTH":
		case "UNPROCESSED":
			return errs("E01110010") // 決済が完了していません
		default:
			return errs("E11010002")
		}
		amount, _ := strconv.ParseInt(f["Amount"], 10, 64)
		if amount != t.amount {
			return errs("E01060010")
		}
	case "VOID", "RETURN", "RETURNX":
		switch t.status {
		case "AUTH", "CAPTURE", "SALES", "SAUTH":
		case "VOID", "RETURN", "RETURNX":
			return errs("E11010001")
		case "UNPROCESSED":
			return errs("E01110010")
		default:
			return errs("E11010002")
		}
		if e := cancelDateOK(job, t, now); e != nil {
			return e
		}
	case "":
		return errs("E01050001")
	default:
		return errs("E01050004")
	}
	t.status = job
	t.processed = now
	t.tranID = g.tranID(now)
	g.notifyTrade(t, job)
	// Key order of the recorded AlterTran answers: no Status, no CheckString.
	return []kv{{"AccessID", t.accessID}, {"AccessPass", t.access}, {"Forward", t.forward},
		{"Approve", t.approve}, {"TranID", t.tranID}, {"TranDate", now.In(jst).Format("20060102150405")}}
}

func (g *GMO) changeTran(f map[string]string) []kv {
	if e := g.shopOK(f); e != nil {
		return e
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	t, e := g.byAccess(f)
	if e != nil {
		return e
	}
	amount, err := strconv.ParseInt(f["Amount"], 10, 64)
	if err != nil || amount < 1 || amount > 9999999 {
		return errs("E01060005")
	}
	tax, err := strconv.ParseInt(orZero(f["Tax"]), 10, 64)
	if err != nil || tax < 0 {
		return errs("E01070005")
	}
	switch f["JobCd"] {
	case "AUTH", "SAUTH":
		if t.status != "AUTH" && t.status != "SAUTH" {
			return errs("E11010003")
		}
		t.status = f["JobCd"]
	case "CAPTURE":
		if t.status != "CAPTURE" && t.status != "SALES" {
			return errs("E11010003")
		}
	default:
		return errs("E01050004")
	}
	now := g.Now()
	t.amount, t.tax = amount, tax
	t.processed = now
	t.tranID = g.tranID(now)
	return []kv{{"AccessID", t.accessID}, {"AccessPass", t.access}, {"Forward", t.forward},
		{"Approve", t.approve}, {"TranID", t.tranID}, {"TranDate", now.In(jst).Format("20060102150405")}}
}

func (g *GMO) searchTrade(f map[string]string) []kv {
	if e := g.shopOK(f); e != nil {
		return e
	}
	if f["OrderID"] == "" {
		return errs("E01040001")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	t := g.trades[f["ShopID"]+"/"+f["OrderID"]]
	if t == nil {
		return errs("E01110002")
	}
	// Key order of the recorded SearchTrade answers; Status is the job of
	// the last processing (SAUTH stays SAUTH), every ClientField present.
	return []kv{{"OrderID", t.orderID}, {"Status", t.status},
		{"ProcessDate", t.processed.In(jst).Format("20060102150405")}, {"JobCd", t.job},
		{"AccessID", t.accessID}, {"AccessPass", t.access}, {"ItemCode", "0000990"},
		{"Amount", strconv.FormatInt(t.amount, 10)}, {"Tax", strconv.FormatInt(t.tax, 10)},
		{"SiteID", t.siteID}, {"MemberID", t.memberID}, {"CardNo", t.cardNo}, {"Expire", t.expire},
		{"Method", t.method}, {"PayTimes", t.payTimes}, {"Forward", t.forward}, {"TranID", t.tranID},
		{"Approve", t.approve}, {"ClientField1", t.clientFields[0]}, {"ClientField2", t.clientFields[1]},
		{"ClientField3", t.clientFields[2]}}
}
