package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers/gmo"
	"github.com/paynorm/paynorm/providers/gmoivr"
)

// IVR simulates GMO's IVR payment Web API (seed 001) on
// /authorization/api/AuthRegistApi and AuthSearchApi. A registered order
// waits for the operator's call; POST /sandbox/ivr/{receipt_no}/advance
// plays the call: the first advance answers the phone (in_call), the
// second ends it with an outcome (completed), running EntryTran, ExecTran
// and the card steps on the GMO simulator's ledger.
type IVR struct {
	// Keys, when set, is the only accepted apiKey -> apiPassword set;
	// otherwise any non-empty pair is accepted.
	Keys map[string]string
	// GMO is the card simulator the calls charge on.
	GMO *GMO

	mu     sync.Mutex
	orders map[string]*ivrOrder
	seq    int64
	faults faultQueue
	calls  sync.Map // api -> *atomic.Int64
}

// Calls reports how many requests reached api.
func (v *IVR) Calls(api string) int64 {
	c, ok := v.calls.Load(api)
	if !ok {
		return 0
	}
	return c.(*atomic.Int64).Load()
}

// Outcomes of a simulated call, besides any magic token name (tok_visa,
// tok_insufficient_funds...) which is the card the holder keys in.
const (
	OutcomeSuccess    = "success"     // tok_visa
	OutcomeTimeout    = "timeout"     // ExecTran charges, the IVR reports psp 1 without codes
	OutcomeHangup     = "hangup"      // the call ends before any transaction
	OutcomeEntryError = "entry_error" // EntryTran fails (order id already used)
)

// FaultResult90 makes the next call of an API answer result code 90; any
// "result_<code>" kind answers that code (30, 31, 32 with a message list).
const FaultResult90 = "result_90"

type ivrOrder struct {
	receipt, discrement string
	use                 string
	req                 gmoivr.RegistRequest
	orderID, memberID   string
	status              string
	caller, incoming    string
	last                gmoivr.LastTransaction
	history             gmoivr.History
	authOK, saveOK      string
}

// NewIVR builds an IVR simulator charging on g.
func NewIVR(g *GMO) *IVR {
	return &IVR{GMO: g, orders: map[string]*ivrOrder{}}
}

// Handles reports whether path belongs to the IVR simulator.
func (v *IVR) Handles(path string) bool {
	return strings.HasPrefix(path, "/authorization/api/") || strings.HasPrefix(path, "/sandbox/ivr/")
}

// InjectFault queues a fault for AuthRegistApi or AuthSearchApi (kinds:
// delay, 5xx, reset, result_90).
func (v *IVR) InjectFault(f Fault) { v.faults.Inject(f) }

// ServeHTTP answers IVR API calls and the /sandbox/ivr/ control endpoints.
func (v *IVR) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/sandbox/ivr/") {
		v.control(w, r)
		return
	}
	api := strings.TrimPrefix(r.URL.Path, "/authorization/api/")
	if api != "AuthRegistApi" && api != "AuthSearchApi" {
		http.NotFound(w, r)
		return
	}
	c, _ := v.calls.LoadOrStore(api, new(atomic.Int64))
	c.(*atomic.Int64).Add(1)
	if f, ok := v.faults.take(api); ok {
		if code, ok := strings.CutPrefix(f.Kind, "result_"); ok {
			out := map[string]any{"resultCode": code}
			if code == "30" || code == "31" || code == "32" {
				out["errorMessageList"] = []string{"利用金額が正しくありません。", "支払回数が正しくありません。"}
			}
			writeIVR(w, out)
			return
		}
		if f.before(w) {
			return
		}
	}
	if r.Method != http.MethodPost {
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}
	var creds struct {
		APIKey      string `json:"apiKey"`
		APIPassword string `json:"apiPassword"`
	}
	if json.Unmarshal(body, &creds) != nil || !v.authorized(creds.APIKey, creds.APIPassword) {
		// The IVR answers authentication errors with a bare 401.
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if api == "AuthRegistApi" {
		v.regist(w, body)
	} else {
		v.search(w, body)
	}
}

func (v *IVR) authorized(key, pass string) bool {
	if key == "" || pass == "" {
		return false
	}
	if v.Keys != nil {
		return v.Keys[key] == pass
	}
	return true
}

func writeIVR(w http.ResponseWriter, body any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	_ = json.NewEncoder(w).Encode(body)
}

func paramErr(w http.ResponseWriter, code string, msgs ...string) {
	writeIVR(w, map[string]any{"resultCode": code, "errorMessageList": msgs})
}

func (v *IVR) regist(w http.ResponseWriter, body []byte) {
	var req gmoivr.RegistRequest
	if err := json.Unmarshal(body, &req); err != nil {
		paramErr(w, gmoivr.ResultParam, "リクエストの形式が正しくありません。")
		return
	}
	var msgs []string
	use := req.UseDivisionCode
	if use != "1" && use != "2" && use != "3" {
		msgs = append(msgs, "利用区分が正しくありません。")
	}
	if len(req.AnyItem) > 5 {
		msgs = append(msgs, "任意項目は5件までです。")
	}
	for _, it := range req.AnyItem {
		if it.Name == "" || utf8.RuneCountInString(it.Name) > 64 || it.Value == "" || utf8.RuneCountInString(it.Value) > 256 {
			msgs = append(msgs, "任意項目が正しくありません。")
			break
		}
	}
	auth, save := use == "1" || use == "2", use == "2" || use == "3"
	if auth && (req.GMOPG.Auth == nil || req.GMOPG.ShopID == "") {
		msgs = append(msgs, "カードオーソリ情報が指定されていません。")
	}
	if save && (req.GMOPG.Save == nil || req.GMOPG.SiteID == "") {
		msgs = append(msgs, "カード登録情報が指定されていません。")
	}
	if len(msgs) > 0 {
		paramErr(w, gmoivr.ResultParam, msgs...)
		return
	}
	if auth {
		if m := checkAuth(req.GMOPG.Auth); len(m) > 0 {
			paramErr(w, gmoivr.ResultAuthParam, m...)
			return
		}
	}
	if save {
		if m := checkSave(req.GMOPG.Save); len(m) > 0 {
			paramErr(w, gmoivr.ResultSaveParam, m...)
			return
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.seq++
	now := v.GMO.Now().In(normalize.JST)
	o := &ivrOrder{receipt: now.Format("20060102") + fmt.Sprintf("%010d", v.seq),
		discrement: fmt.Sprintf("%06d", 100000+v.seq%900000), use: use, req: req, status: gmoivr.StatusWaiting}
	out := map[string]any{"resultCode": gmoivr.ResultOK, "discrementId": o.discrement, "receiptNo": o.receipt}
	if auth {
		o.orderID = req.GMOPG.Auth.OrderID
		if o.orderID == "" {
			o.orderID = fmt.Sprintf("IVR-%s-%04d", now.Format("060102150405"), v.seq%10000)
			out["orderId"] = o.orderID
		}
	}
	if save {
		o.memberID = req.GMOPG.Save.MemberID
		if o.memberID == "" {
			o.memberID = fmt.Sprintf("IVRMEM-%s-%04d", now.Format("060102150405"), v.seq%10000)
			out["memberId"] = o.memberID
		}
	}
	v.orders[o.receipt] = o
	writeIVR(w, out)
}

func checkAuth(a *gmoivr.AuthBlock) []string {
	var m []string
	switch a.JobCd {
	case "CHECK", "CAPTURE", "AUTH", "SAUTH":
	default:
		m = append(m, "処理区分が正しくありません。")
	}
	if a.OrderID != "" && !normalize.ValidOrderID(a.OrderID, 27) {
		m = append(m, "オーダーIDが正しくありません。")
	}
	if a.JobCd != "CHECK" {
		if n, err := strconv.ParseInt(a.Amount, 10, 64); err != nil || n < 1 || n > 9999999 {
			m = append(m, "利用金額が正しくありません。")
		}
		switch a.Method {
		case "1", "3", "5":
		case "2":
			if n, err := strconv.Atoi(a.PayTimes); err != nil || n < 2 {
				m = append(m, "支払回数が正しくありません。")
			}
		default:
			m = append(m, "支払方法が正しくありません。")
		}
	}
	if a.Tax != "" {
		if n, err := strconv.ParseInt(a.Tax, 10, 64); err != nil || n < 0 || n > 9999999 {
			m = append(m, "税送料が正しくありません。")
		}
	}
	return m
}

func checkSave(s *gmoivr.SaveBlock) []string {
	var m []string
	if s.MemberID != "" && (len(s.MemberID) > 60 || strings.ContainsAny(s.MemberID, "^`{}~&<> ")) {
		m = append(m, "会員IDが正しくありません。")
	}
	if len(s.HolderName) > 50 {
		m = append(m, "名義人が正しくありません。")
	}
	if s.CardSeq != "" {
		if _, err := strconv.Atoi(s.CardSeq); err != nil {
			m = append(m, "カード登録連番が正しくありません。")
		}
	}
	return m
}

func (v *IVR) search(w http.ResponseWriter, body []byte) {
	var req gmoivr.SearchRequest
	if json.Unmarshal(body, &req) != nil || len(req.ReceiptNo) != 18 || strings.Trim(req.ReceiptNo, "0123456789") != "" {
		paramErr(w, gmoivr.ResultParam, "受付番号が正しくありません。")
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	o := v.orders[req.ReceiptNo]
	if o == nil {
		writeIVR(w, map[string]any{"resultCode": gmoivr.ResultNoReceipt})
		return
	}
	out := gmoivr.SearchResponse{ResultCode: gmoivr.ResultOK, StatusCode: o.status, FlowLevelID: "0000", FlowLevelName: "受付待ち",
		AuthSuccessFlg: o.authOK, SaveSuccessFlg: o.saveOK}
	if o.status != gmoivr.StatusWaiting {
		out.FlowLevelID, out.FlowLevelName = "0100", "カード番号入力"
		out.CallerTelNo, out.IncomingDatetime = o.caller, o.incoming
	}
	if o.status == gmoivr.StatusCompleted {
		out.FlowLevelID, out.FlowLevelName = "9000", "終了"
		last := o.last
		out.LastTransaction = &last
	}
	if req.AnyItemReturnFlg == "1" {
		out.AnyItem = o.req.AnyItem
	}
	if req.DetailReturnFlg == "1" && o.status == gmoivr.StatusCompleted {
		h := o.history
		out.TransactionHistory = &h
	}
	writeIVR(w, out)
}

// control serves POST /sandbox/ivr/{receipt_no}/advance and
// POST /sandbox/ivr/faults.
func (v *IVR) control(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, `{"error":"use POST"}`, http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == "/sandbox/ivr/faults" {
		var f Fault
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&f); err != nil || f.API == "" || f.Kind == "" {
			http.Error(w, `{"error":"body must be {\"api\",\"kind\",\"count\",\"delay_ms\"}"}`, http.StatusBadRequest)
			return
		}
		v.faults.Inject(f)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	receipt, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/sandbox/ivr/"), "/advance")
	if !ok || strings.Contains(receipt, "/") {
		http.NotFound(w, r)
		return
	}
	var in struct {
		Outcome string `json:"outcome"`
		// To jumps straight to "completed" from waiting.
		To string `json:"to"`
	}
	if r.ContentLength != 0 {
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&in); err != nil && err != io.EOF {
			http.Error(w, `{"error":"body must be {\"outcome\",\"to\"}"}`, http.StatusBadRequest)
			return
		}
	}
	status, err := v.Advance(receipt, in.Outcome, in.To == "completed")
	if err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"receipt_no": receipt, "status": status})
}

// Advance moves an order one step: waiting -> in call -> completed (or
// straight to completed). outcome is used when the call completes.
func (v *IVR) Advance(receipt, outcome string, complete bool) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	o := v.orders[receipt]
	if o == nil {
		return "", fmt.Errorf("no order with receipt number %q", receipt)
	}
	switch o.status {
	case gmoivr.StatusCompleted:
		return "", fmt.Errorf("order %s is already completed", receipt)
	case gmoivr.StatusWaiting:
		o.status, o.caller, o.incoming = gmoivr.StatusInCall, "09000000000", v.stamp()
		if !complete {
			return "in_call", nil
		}
	}
	if outcome == "" {
		outcome = OutcomeSuccess
	}
	if err := v.play(o, outcome); err != nil {
		return "", err
	}
	o.status = gmoivr.StatusCompleted
	return "completed", nil
}

func (v *IVR) stamp() string { return v.GMO.Now().In(normalize.JST).Format("2006/01/02 15:04:05") }

// step builds a step result from GMO's answer.
func (v *IVR) step(out []gmo.Param) (gmoivr.Step, map[string]string) {
	m := map[string]string{}
	for _, p := range out {
		m[p.Key] = p.Value
	}
	s := gmoivr.Step{PSPStatusCode: "0", TransactionDatetime: v.stamp()}
	if m["ErrCode"] != "" {
		s.PSPStatusCode, s.ErrCode, s.ErrInfo = "1", m["ErrCode"], m["ErrInfo"]
	}
	return s, m
}

// play runs the call's transactions on the GMO simulator. Callers hold v.mu.
func (v *IVR) play(o *ivrOrder, outcome string) error {
	token := outcome
	switch outcome {
	case OutcomeSuccess, OutcomeTimeout, OutcomeEntryError:
		token = "tok_visa"
	case OutcomeHangup:
		o.authOK, o.saveOK = flagIf(o.use != "3", "0"), flagIf(o.use != "1", "0")
		return nil
	default:
		if _, card := TestCards[magic(outcome)]; !card {
			if _, decline := Declines[magic(outcome)]; !decline {
				return fmt.Errorf("unknown outcome %q: use success, timeout, hangup, entry_error or a sandbox token", outcome)
			}
		}
	}
	g := v.GMO
	shopPass := "ivr"
	if g.Shops != nil && o.req.GMOPG.ShopID != "" {
		shopPass = g.Shops[o.req.GMOPG.ShopID]
	}
	site := map[string]string{"SiteID": o.req.GMOPG.SiteID, "SitePass": "ivr", "MemberID": o.memberID}
	authOK := false
	if a := o.req.GMOPG.Auth; a != nil {
		o.authOK = "0"
		entry := map[string]string{"ShopID": o.req.GMOPG.ShopID, "ShopPass": shopPass, "OrderID": o.orderID, "JobCd": a.JobCd, "Amount": a.Amount, "Tax": a.Tax}
		if outcome == OutcomeEntryError {
			entry["OrderID"] = ""
		}
		es, em := v.step(g.entryTran(entry))
		o.last.EntryTran = &gmoivr.EntryTranResult{Step: es}
		o.history.EntryTran = append(o.history.EntryTran, *o.last.EntryTran)
		if es.ErrCode != "" {
			o.saveOK = flagIf(o.use == "2", "0")
			return nil
		}
		exec := map[string]string{"AccessID": em["AccessID"], "AccessPass": em["AccessPass"], "OrderID": o.orderID, "Method": a.Method,
			"PayTimes": a.PayTimes, "Token": token, "ClientField1": a.ClientField1, "ClientField2": a.ClientField2,
			"ClientField3": a.ClientField3, "ClientFieldFlag": a.ClientFieldFlag}
		out, _ := g.execTran(exec)
		xs, xm := v.step(out)
		res := gmoivr.ExecTranResult{Step: xs}
		if xs.ErrCode == "" {
			res.ACS, res.OrderID, res.Forward, res.Method, res.PayTimes = xm["ACS"], xm["OrderID"], xm["Forward"], xm["Method"], xm["PayTimes"]
			res.Approve, res.TranID, res.TranDate, res.CheckString = xm["Approve"], xm["TranID"], xm["TranDate"], xm["CheckString"]
			res.ClientField1, res.ClientField2, res.ClientField3 = xm["ClientField1"], xm["ClientField2"], xm["ClientField3"]
			authOK = true
		}
		if outcome == OutcomeTimeout {
			// The charge went through on GMO, but the IVR lost the answer.
			res = gmoivr.ExecTranResult{Step: gmoivr.Step{PSPStatusCode: "1", TransactionDatetime: xs.TransactionDatetime}}
			authOK = false
		}
		o.last.ExecTran = &res
		o.history.ExecTran = append(o.history.ExecTran, res)
		if authOK {
			o.authOK = "1"
		}
		if !authOK {
			o.saveOK = flagIf(o.use == "2", "0")
			return nil
		}
	}
	if o.use == "1" {
		return nil
	}
	o.saveOK = "0"
	// Find or create the member, then store the card.
	ss, sm := v.step(g.memberAPI("SearchMember", site))
	o.last.SearchMember = &gmoivr.MemberResult{Step: ss, MemberID: sm["MemberID"], MemberName: sm["MemberName"], DeleteFlag: sm["DeleteFlag"]}
	o.history.SearchMember = append(o.history.SearchMember, *o.last.SearchMember)
	if ss.ErrCode != "" {
		f := map[string]string{"MemberName": o.req.GMOPG.Save.MemberName}
		for k, val := range site {
			f[k] = val
		}
		ms, mm := v.step(g.memberAPI("SaveMember", f))
		o.last.SaveMember = &gmoivr.MemberResult{Step: ms, MemberID: mm["MemberID"]}
		o.history.SaveMember = append(o.history.SaveMember, *o.last.SaveMember)
		if ms.ErrCode != "" {
			return nil
		}
	}
	s := o.req.GMOPG.Save
	f := map[string]string{"DefaultFlag": s.DefaultFlag, "HolderName": s.HolderName, "CardName": s.CardName, "SeqMode": "0"}
	for k, val := range site {
		f[k] = val
	}
	api := "SaveCard"
	if o.use == "2" {
		api = "TradedCard"
		f["ShopID"], f["ShopPass"], f["OrderID"] = o.req.GMOPG.ShopID, shopPass, o.orderID
	} else {
		f["Token"], f["CardSeq"] = token, s.CardSeq
	}
	cs, cm := v.step(g.memberAPI(api, f))
	res := gmoivr.CardResult{Step: cs}
	if cs.ErrCode == "" {
		res.CardSeq, res.CardNo, res.Forward, res.Brand = cm["CardSeq"], cm["CardNo"], cm["Forward"], cm["Brand"]
		o.saveOK = "1"
	}
	if api == "TradedCard" {
		o.last.TradedCard = &res
		o.history.TradedCard = append(o.history.TradedCard, res)
	} else {
		o.last.SaveCard = &res
		o.history.SaveCard = append(o.history.SaveCard, res)
	}
	return nil
}

func flagIf(cond bool, v string) string {
	if cond {
		return v
	}
	return ""
}
