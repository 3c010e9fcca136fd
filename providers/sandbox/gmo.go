// Package sandbox holds wire-faithful simulators of the providers paynorm
// speaks to, so paynorm runs and is tested without provider accounts. They
// keep their ledgers in memory and apply the providers' state rules.
package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers/gmo"
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
	number                    string // full number of a token payment, for TradedCard
	clientFields              [3]string
	processed                 time.Time
	execs                     int // ExecTran calls that charged (for tests)
}

// GMO simulates the protocol-type card API on /payment/*.idPass.
type GMO struct {
	// Shops, when set, is the only accepted ShopID -> ShopPass set.
	Shops map[string]string
	// SlowDelay is how long TokSlow answers take (default 3s).
	SlowDelay time.Duration
	// Now is the simulator clock (JST dates are derived from it).
	Now func() time.Time

	mu      sync.Mutex
	trades  map[string]*trade // shopID/orderID
	byAcc   map[string]*trade // accessID
	members map[string]*member
	seq     atomic.Int64
	calls   sync.Map // api -> *atomic.Int64
	faults  faultQueue
}

// NewGMO builds an empty simulator.
func NewGMO() *GMO {
	return &GMO{trades: map[string]*trade{}, byAcc: map[string]*trade{}, members: map[string]*member{}, SlowDelay: 3 * time.Second, Now: time.Now}
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
	if strings.HasPrefix(r.URL.Path, "/sandbox/") {
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
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		// GMO does not parse a body without the form Content-Type.
		g.answer(w, errs("E01190001"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}
	f, err := gmo.ParseForm(body)
	if err != nil {
		g.answer(w, errs("E01999998"))
		return
	}
	var out []gmo.Param
	var after func()
	switch name {
	case "EntryTran":
		out = g.entryTran(f)
	case "ExecTran":
		out, after = g.execTran(f)
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
	if len(out) == 1 && out[0].Key == "__status" {
		http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
		return
	}
	if fl, ok := g.faults.takeAfter(name); ok {
		fl.after(w, gmo.EncodeResponse(out))
		return
	}
	g.answer(w, out)
}

func (g *GMO) answer(w http.ResponseWriter, out []gmo.Param) {
	w.Header().Set("Content-Type", "text/plain;charset=Shift_JIS")
	_, _ = w.Write(gmo.EncodeResponse(out))
}

func errs(infos ...string) []gmo.Param {
	codes := make([]string, len(infos))
	for i, in := range infos {
		codes[i] = in[:3]
		if strings.HasPrefix(in, "42") {
			codes[i] = in[2:5]
		}
	}
	return []gmo.Param{{Key: "ErrCode", Value: strings.Join(codes, "|")}, {Key: "ErrInfo", Value: strings.Join(infos, "|")}}
}

func (g *GMO) shopOK(f map[string]string) []gmo.Param {
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

func (g *GMO) entryTran(f map[string]string) []gmo.Param {
	if e := g.shopOK(f); e != nil {
		return e
	}
	oid, job := f["OrderID"], f["JobCd"]
	if oid == "" {
		return errs("E01040001")
	}
	if !normalize.ValidOrderID(oid, 27) {
		return errs("E01040013")
	}
	switch job {
	case "CHECK", "CAPTURE", "AUTH", "SAUTH":
	case "":
		return errs("E01050001")
	default:
		return errs("E01050004")
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
	key := f["ShopID"] + "/" + oid
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.trades[key] != nil {
		return errs("E01040010")
	}
	t := &trade{shopID: f["ShopID"], shopPass: f["ShopPass"], orderID: oid, accessID: randHex(32), access: randHex(32),
		job: job, status: "UNPROCESSED", amount: amount, tax: tax, processed: g.Now()}
	g.trades[key], g.byAcc[t.accessID] = t, t
	return []gmo.Param{{Key: "AccessID", Value: t.accessID}, {Key: "AccessPass", Value: t.access}}
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

func (g *GMO) byAccess(f map[string]string) (*trade, []gmo.Param) {
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

func (g *GMO) execTran(f map[string]string) (out []gmo.Param, after func()) {
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
	method := orZero(f["Method"])
	if method == "0" {
		method = "1"
	}
	switch method {
	case "1", "3":
	case "2", "4", "5":
		if method != "4" && f["PayTimes"] == "" {
			return errs("E01270001"), nil
		}
	default:
		return errs("E01260010"), nil
	}
	var card Card
	tok := f["Token"]
	slow, badCheck := false, false
	switch {
	case tok != "":
		m := magic(tok)
		if info, ok := Declines[m]; ok {
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
			return []gmo.Param{{Key: "__status", Value: "503"}}, nil
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
		t.memberID = f["MemberID"]
	case f["CardNo"] != "":
		card = Card{Number: f["CardNo"], Expire: f["Expire"]}
	default:
		return errs("E01170001"), nil
	}
	if f["SecurityCode"] == "000" {
		return errs("42G440000"), nil
	}
	now := g.Now()
	t.status, t.method, t.payTimes = t.job, method, f["PayTimes"]
	if t.job == "SAUTH" {
		t.status = "AUTH"
	}
	t.tranID = now.In(normalize.JST).Format("0601021504") + strconv.FormatInt(1000000000000000+g.seq.Add(1), 10)
	t.approve = strconv.Itoa(1000000 + int(g.seq.Load()%9000000))
	t.forward = "2a99662"
	t.cardNo = normalize.MaskNumber(card.Number)
	if f["MemberID"] == "" {
		t.number = card.Number
	}
	t.expire = card.Expire
	t.processed = now
	t.execs++
	for i := range t.clientFields {
		t.clientFields[i] = f["ClientField"+strconv.Itoa(i+1)]
	}
	tranDate := now.In(normalize.JST).Format("20060102150405")
	check := gmo.CheckString(t.orderID, t.forward, method, t.payTimes, t.approve, t.tranID, tranDate, t.shopPass)
	if badCheck {
		check = strings.Repeat("0", 32)
	}
	out = []gmo.Param{{Key: "ACS", Value: "0"}, {Key: "OrderID", Value: t.orderID}, {Key: "Forward", Value: t.forward}, {Key: "Method", Value: method},
		{Key: "PayTimes", Value: t.payTimes}, {Key: "Approve", Value: t.approve}, {Key: "TranID", Value: t.tranID}, {Key: "TranDate", Value: tranDate},
		{Key: "CheckString", Value: check}}
	if f["ClientFieldFlag"] == "1" {
		for i := range t.clientFields {
			out = append(out, gmo.Param{Key: "ClientField" + strconv.Itoa(i+1), Value: t.clientFields[i]})
		}
	}
	if slow {
		d := g.SlowDelay
		return out, func() { time.Sleep(d) }
	}
	return out, nil
}

func (g *GMO) alterTran(f map[string]string) []gmo.Param {
	if e := g.shopOK(f); e != nil {
		return e
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	t, e := g.byAccess(f)
	if e != nil {
		return e
	}
	if t.shopID != f["ShopID"] {
		return errs("E01110002")
	}
	job := f["JobCd"]
	switch job {
	case "SALES":
		if t.status == "SALES" || t.status == "CAPTURE" {
			return errs("E11010001")
		}
		if t.status != "AUTH" {
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
		default:
			return errs("E11010002")
		}
		if job == "VOID" && !sameDay(t.processed, g.Now()) && t.status != "AUTH" {
			return errs("E11010003")
		}
	case "":
		return errs("E01050001")
	default:
		return errs("E01050004")
	}
	t.status = job
	t.processed = g.Now()
	t.tranID = t.tranID[:len(t.tranID)-1] + strconv.Itoa(int(g.seq.Add(1)%10))
	return []gmo.Param{{Key: "AccessID", Value: t.accessID}, {Key: "AccessPass", Value: t.access}, {Key: "Forward", Value: t.forward},
		{Key: "Approve", Value: t.approve}, {Key: "TranID", Value: t.tranID}, {Key: "TranDate", Value: t.processed.In(normalize.JST).Format("20060102150405")}}
}

func sameDay(a, b time.Time) bool {
	a, b = a.In(normalize.JST), b.In(normalize.JST)
	return a.Year() == b.Year() && a.YearDay() == b.YearDay()
}

func (g *GMO) changeTran(f map[string]string) []gmo.Param {
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
		if t.status != "AUTH" {
			return errs("E11010003")
		}
	case "CAPTURE":
		if t.status != "CAPTURE" && t.status != "SALES" {
			return errs("E11010003")
		}
	default:
		return errs("E01050004")
	}
	t.amount, t.tax = amount, tax
	t.processed = g.Now()
	return []gmo.Param{{Key: "AccessID", Value: t.accessID}, {Key: "AccessPass", Value: t.access}, {Key: "Forward", Value: t.forward},
		{Key: "Approve", Value: t.approve}, {Key: "TranID", Value: t.tranID}, {Key: "TranDate", Value: t.processed.In(normalize.JST).Format("20060102150405")}}
}

func (g *GMO) searchTrade(f map[string]string) []gmo.Param {
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
	return []gmo.Param{{Key: "OrderID", Value: t.orderID}, {Key: "Status", Value: t.status},
		{Key: "ProcessDate", Value: t.processed.In(normalize.JST).Format("20060102150405")}, {Key: "JobCd", Value: t.job},
		{Key: "AccessID", Value: t.accessID}, {Key: "AccessPass", Value: t.access}, {Key: "ItemCode", Value: "0000990"},
		{Key: "Amount", Value: strconv.FormatInt(t.amount, 10)}, {Key: "Tax", Value: strconv.FormatInt(t.tax, 10)},
		{Key: "SiteID", Value: ""}, {Key: "MemberID", Value: t.memberID}, {Key: "CardNo", Value: t.cardNo}, {Key: "Expire", Value: t.expire},
		{Key: "Method", Value: t.method}, {Key: "PayTimes", Value: t.payTimes}, {Key: "Forward", Value: t.forward}, {Key: "TranID", Value: t.tranID},
		{Key: "Approve", Value: t.approve}, {Key: "ClientField1", Value: t.clientFields[0]}, {Key: "ClientField2", Value: t.clientFields[1]},
		{Key: "ClientField3", Value: t.clientFields[2]}}
}
