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
	OutcomeSuccess = "success" // tok_visa
	// OutcomeTimeout is seed 001's "処理エラー。通信タイムアウトなど": the
	// IVR's ExecTran fails between the IVR and the card system
	// (pspStatusCode 1, no code, authSuccessFlg 0). Nothing is charged: the
	// order stays unexecuted at GMO.
	OutcomeTimeout    = "timeout"
	OutcomeHangup     = "hangup"      // the call ends before any transaction
	OutcomeEntryError = "entry_error" // EntryTran fails (order id already used)
)

// FaultResult90 makes the next call of an API answer result code 90; any
// "result_<code>" kind answers that code (30, 31, 32 with a message list).
const FaultResult90 = "result_90"

// Result and status codes of seed 001.
const (
	ivrOK          = "0"
	ivrParam       = "30"
	ivrAuthParam   = "31"
	ivrSaveParam   = "32"
	ivrNoReceipt   = "40"
	ivrWaiting     = "0"
	ivrInCall      = "1"
	ivrCompleted   = "2"
	ivrUseAuth     = "1"
	ivrUseAuthSave = "2"
	ivrUseSave     = "3"
)

// The IVR's JSON, field names and order as in seed 001's tables and
// examples. Every value is a string on the wire.
type ivrItem struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type ivrAuth struct {
	OrderID         string `json:"orderId"`
	JobCd           string `json:"jobCd"`
	ItemCode        string `json:"itemCode"`
	Amount          string `json:"amount"`
	Tax             string `json:"tax"`
	Method          string `json:"method"`
	PayTimes        string `json:"payTimes"`
	ClientField1    string `json:"clientField1"`
	ClientField2    string `json:"clientField2"`
	ClientField3    string `json:"clientField3"`
	ClientFieldFlag string `json:"clientFieldFlag"`
}

type ivrSave struct {
	MemberID    string `json:"memberId"`
	MemberName  string `json:"memberName"`
	SeqMode     string `json:"seqMode"`
	CardSeq     string `json:"cardSeq"`
	DefaultFlag string `json:"defaultFlag"`
	CardName    string `json:"cardName"`
	CardPass    string `json:"cardPass"`
	HolderName  string `json:"holderName"`
	UpdateType  string `json:"updateType"`
}

type ivrRegist struct {
	UseDivisionCode string    `json:"useDivisionCode"`
	AnyItem         []ivrItem `json:"anyItem"`
	UserID          string    `json:"userId"`
	GMOPG           struct {
		ShopID string   `json:"shopId"`
		SiteID string   `json:"siteId"`
		Auth   *ivrAuth `json:"auth"`
		Save   *ivrSave `json:"save"`
	} `json:"gmopg"`
}

type ivrSearch struct {
	ReceiptNo        string `json:"receiptNo"`
	AnyItemReturnFlg string `json:"anyItemReturnFlg"`
	DetailReturnFlg  string `json:"detailReturnFlg"`
}

// A step's result. pspStatusCode is 0 when the IVR and the card system
// talked (a decline included: seed 001's third example has 0 with
// errCode/errInfo), 1 when they could not.
type ivrEntryTran struct {
	PSPStatusCode       string `json:"pspStatusCode"`
	TransactionDatetime string `json:"transactionDatetime"`
	AccessID            string `json:"accessId,omitempty"`
	AccessPass          string `json:"accessPass,omitempty"`
	ErrCode             string `json:"errCode,omitempty"`
	ErrInfo             string `json:"errInfo,omitempty"`
}

type ivrExecTran struct {
	PSPStatusCode       string `json:"pspStatusCode"`
	TransactionDatetime string `json:"transactionDatetime"`
	ACS                 string `json:"acs,omitempty"`
	OrderID             string `json:"orderId,omitempty"`
	Forward             string `json:"forward,omitempty"`
	Method              string `json:"method,omitempty"`
	PayTimes            string `json:"payTimes,omitempty"`
	Approve             string `json:"approve,omitempty"`
	TranID              string `json:"tranId,omitempty"`
	TranDate            string `json:"tranDate,omitempty"`
	CheckString         string `json:"checkString,omitempty"`
	ClientField1        string `json:"clientField1,omitempty"`
	ClientField2        string `json:"clientField2,omitempty"`
	ClientField3        string `json:"clientField3,omitempty"`
	ErrCode             string `json:"errCode,omitempty"`
	ErrInfo             string `json:"errInfo,omitempty"`
}

type ivrMember struct {
	PSPStatusCode       string `json:"pspStatusCode"`
	TransactionDatetime string `json:"transactionDatetime"`
	MemberID            string `json:"memberId,omitempty"`
	MemberName          string `json:"memberName,omitempty"`
	DeleteFlag          string `json:"deleteFlag,omitempty"`
	ErrCode             string `json:"errCode,omitempty"`
	ErrInfo             string `json:"errInfo,omitempty"`
}

type ivrCard struct {
	PSPStatusCode          string `json:"pspStatusCode"`
	TransactionDatetime    string `json:"transactionDatetime"`
	CardSeq                string `json:"cardSeq,omitempty"`
	CardNo                 string `json:"cardNo,omitempty"`
	Forward                string `json:"forward,omitempty"`
	ErrCode                string `json:"errCode,omitempty"`
	ErrInfo                string `json:"errInfo,omitempty"`
	Brand                  string `json:"brand,omitempty"`
	DomesticFlag           string `json:"domesticFlag,omitempty"`
	IssuerCode             string `json:"issuerCode,omitempty"`
	DebitPrepaidFlag       string `json:"debitPrepaidFlag,omitempty"`
	DebitPrepaidIssuerName string `json:"debitPrepaidIssuerName,omitempty"`
	ForwardFinal           string `json:"forwardFinal,omitempty"`
}

type ivrLast struct {
	EntryTran    *ivrEntryTran `json:"entryTran,omitempty"`
	ExecTran     *ivrExecTran  `json:"execTran,omitempty"`
	SearchMember *ivrMember    `json:"searchMember,omitempty"`
	SaveMember   *ivrMember    `json:"saveMember,omitempty"`
	TradedCard   *ivrCard      `json:"tradedCard,omitempty"`
	SaveCard     *ivrCard      `json:"saveCard,omitempty"`
}

type ivrHistory struct {
	EntryTran    []ivrEntryTran `json:"entryTran,omitempty"`
	ExecTran     []ivrExecTran  `json:"execTran,omitempty"`
	SearchMember []ivrMember    `json:"searchMember,omitempty"`
	SaveMember   []ivrMember    `json:"saveMember,omitempty"`
	TradedCard   []ivrCard      `json:"tradedCard,omitempty"`
	SaveCard     []ivrCard      `json:"saveCard,omitempty"`
}

// ivrSearchAnswer is AuthSearchApi's answer in seed 001's key order.
type ivrSearchAnswer struct {
	ResultCode         string      `json:"resultCode"`
	StatusCode         string      `json:"statusCode"`
	FlowLevelID        string      `json:"flowLevelId"`
	FlowLevelName      string      `json:"flowLevelName"`
	CallerTelNo        string      `json:"callerTelNo,omitempty"`
	IncomingDatetime   string      `json:"incomingDatetime,omitempty"`
	AnyItem            []ivrItem   `json:"anyItem,omitempty"`
	AuthSuccessFlg     string      `json:"authSuccessFlg,omitempty"`
	SaveSuccessFlg     string      `json:"saveSuccessFlg,omitempty"`
	LastTransaction    *ivrLast    `json:"lastTransaction,omitempty"`
	TransactionHistory *ivrHistory `json:"transactionHistory,omitempty"`
}

type ivrOrder struct {
	receipt, discrement string
	use                 string
	req                 ivrRegist
	orderID, memberID   string
	status              string
	caller, incoming    string
	last                ivrLast
	history             ivrHistory
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
	var req ivrRegist
	if err := json.Unmarshal(body, &req); err != nil {
		paramErr(w, ivrParam, "リクエストの形式が正しくありません。")
		return
	}
	var msgs []string
	use := req.UseDivisionCode
	if use != ivrUseAuth && use != ivrUseAuthSave && use != ivrUseSave {
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
	auth, save := use == ivrUseAuth || use == ivrUseAuthSave, use == ivrUseAuthSave || use == ivrUseSave
	if auth && (req.GMOPG.Auth == nil || req.GMOPG.ShopID == "") {
		msgs = append(msgs, "カードオーソリ情報が指定されていません。")
	}
	if save && (req.GMOPG.Save == nil || req.GMOPG.SiteID == "") {
		msgs = append(msgs, "カード登録情報が指定されていません。")
	}
	if len(msgs) > 0 {
		paramErr(w, ivrParam, msgs...)
		return
	}
	if auth {
		if m := checkAuth(req.GMOPG.Auth); len(m) > 0 {
			paramErr(w, ivrAuthParam, m...)
			return
		}
	}
	if save {
		if m := checkSave(req.GMOPG.Save, use); len(m) > 0 {
			paramErr(w, ivrSaveParam, m...)
			return
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.seq++
	now := v.GMO.Now().In(jst)
	// Seed 001's example receipt number has 22 digits
	// ("2017101109230000000010": yyyyMMddHHmm and a 10-digit sequence),
	// although its table says {yyyyMMdd}{連番10桁}; the example is what a
	// client must be ready for.
	o := &ivrOrder{receipt: now.Format("200601021504") + fmt.Sprintf("%010d", v.seq),
		discrement: fmt.Sprintf("%06d", 100000+v.seq%900000), use: use, req: req, status: ivrWaiting}
	out := map[string]any{"resultCode": ivrOK, "discrementId": o.discrement, "receiptNo": o.receipt}
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

func checkAuth(a *ivrAuth) []string {
	var m []string
	switch a.JobCd {
	case "CHECK", "CAPTURE", "AUTH", "SAUTH":
	default:
		m = append(m, "処理区分が正しくありません。")
	}
	if a.OrderID != "" && !orderIDOK(a.OrderID, 27) {
		m = append(m, "オーダーIDが正しくありません。")
	}
	if a.JobCd != "CHECK" {
		if n, err := strconv.ParseInt(a.Amount, 10, 64); err != nil || n < 1 || n > 9999999 {
			m = append(m, "利用金額が正しくありません。")
		}
		// 1 一括, 2 分割, 3 ボーナス一括, 5 リボ (ボーナス分割 removed in 1.01).
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
	for i, cf := range []string{a.ClientField1, a.ClientField2, a.ClientField3} {
		if n, ok := sjisLen(cf); !ok || n > 100 || strings.ContainsAny(cf, "^`{|}~&<>\"'") {
			m = append(m, fmt.Sprintf("加盟店自由項目%dが正しくありません。", i+1))
		}
	}
	return m
}

func checkSave(s *ivrSave, use string) []string {
	var m []string
	if s.MemberID != "" && (len(s.MemberID) > 60 || strings.ContainsAny(s.MemberID, "^`{}~&<> ")) {
		m = append(m, "会員IDが正しくありません。")
	}
	if n, ok := sjisLen(s.MemberName); !ok || n > 256 || strings.ContainsAny(s.MemberName, "^`{|}~&<>\"'") {
		m = append(m, "会員名が正しくありません。")
	}
	if len([]rune(s.HolderName)) > 50 {
		m = append(m, "名義人が正しくありません。")
	}
	if s.CardSeq != "" {
		if _, err := strconv.Atoi(s.CardSeq); err != nil {
			m = append(m, "カード登録連番が正しくありません。")
		}
	}
	if s.CardPass != "" && (len(s.CardPass) > 20 || !alnumOnly(s.CardPass)) {
		m = append(m, "カードパスワードが正しくありません。")
	}
	switch s.UpdateType {
	case "", "1", "2":
	default:
		m = append(m, "更新区分が正しくありません。")
	}
	return m
}

func alnumOnly(s string) bool {
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func (v *IVR) search(w http.ResponseWriter, body []byte) {
	var req ivrSearch
	if json.Unmarshal(body, &req) != nil || !digits(req.ReceiptNo, 18, 22) {
		paramErr(w, ivrParam, "受付番号が正しくありません。")
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	o := v.orders[req.ReceiptNo]
	if o == nil {
		writeIVR(w, map[string]any{"resultCode": ivrNoReceipt})
		return
	}
	out := ivrSearchAnswer{ResultCode: ivrOK, StatusCode: o.status, FlowLevelID: "0000", FlowLevelName: "受付待ち",
		AuthSuccessFlg: o.authOK, SaveSuccessFlg: o.saveOK}
	if o.status != ivrWaiting {
		out.FlowLevelID, out.FlowLevelName = "0100", "カード番号入力"
		out.CallerTelNo, out.IncomingDatetime = o.caller, o.incoming
	}
	if o.status == ivrCompleted {
		out.FlowLevelID, out.FlowLevelName = "9000", "終了"
		last := o.last
		out.LastTransaction = &last
	}
	if req.AnyItemReturnFlg == "1" {
		out.AnyItem = o.req.AnyItem
	}
	if req.DetailReturnFlg == "1" && o.status == ivrCompleted {
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
	case ivrCompleted:
		return "", fmt.Errorf("order %s is already completed", receipt)
	case ivrWaiting:
		o.status, o.caller, o.incoming = ivrInCall, "09000000000", v.stamp()
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
	o.status = ivrCompleted
	return "completed", nil
}

func (v *IVR) stamp() string { return v.GMO.Now().In(jst).Format("2006/01/02 15:04:05") }

// answerOf reads a card API answer into its values and its error.
func answerOf(out []kv) (m map[string]string, errCode, errInfo string) {
	m = map[string]string{}
	for _, p := range out {
		m[p.k] = p.v
	}
	return m, m["ErrCode"], m["ErrInfo"]
}

// play runs the call's transactions on the GMO simulator. Callers hold v.mu.
func (v *IVR) play(o *ivrOrder, outcome string) error {
	token := outcome
	switch outcome {
	case OutcomeSuccess, OutcomeTimeout, OutcomeEntryError:
		token = "tok_visa"
	case OutcomeHangup:
		o.authOK, o.saveOK = flagIf(o.use != ivrUseSave, "0"), flagIf(o.use != ivrUseAuth, "0")
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
	if a := o.req.GMOPG.Auth; a != nil {
		o.authOK = "0"
		entry := map[string]string{"ShopID": o.req.GMOPG.ShopID, "ShopPass": shopPass, "OrderID": o.orderID, "JobCd": a.JobCd, "Amount": a.Amount, "Tax": a.Tax}
		if outcome == OutcomeEntryError {
			entry["OrderID"] = ""
		}
		em, code, info := answerOf(g.entryTran(entry))
		en := ivrEntryTran{PSPStatusCode: "0", TransactionDatetime: v.stamp(), ErrCode: code, ErrInfo: info}
		if code == "" {
			en.AccessID, en.AccessPass = em["AccessID"], em["AccessPass"]
		}
		o.last.EntryTran = &en
		o.history.EntryTran = append(o.history.EntryTran, en)
		if code != "" {
			o.saveOK = flagIf(o.use == ivrUseAuthSave, "0")
			return nil
		}
		var ex ivrExecTran
		if outcome == OutcomeTimeout {
			// The IVR could not talk to the card system: nothing executed.
			ex = ivrExecTran{PSPStatusCode: "1", TransactionDatetime: v.stamp()}
		} else {
			exec := map[string]string{"AccessID": em["AccessID"], "AccessPass": em["AccessPass"], "OrderID": o.orderID, "Method": a.Method,
				"PayTimes": a.PayTimes, "Token": token, "ClientField1": a.ClientField1, "ClientField2": a.ClientField2,
				"ClientField3": a.ClientField3, "ClientFieldFlag": a.ClientFieldFlag}
			out, _ := g.execTran(exec)
			xm, code, info := answerOf(out)
			ex = ivrExecTran{PSPStatusCode: "0", TransactionDatetime: v.stamp()}
			if code != "" {
				// A decline: pspStatusCode 0 with the card API's codes
				// (seed 001's third example).
				ex.OrderID, ex.ErrCode, ex.ErrInfo = o.orderID, code, info
			} else {
				ex.ACS, ex.OrderID, ex.Forward, ex.Method, ex.PayTimes = xm["ACS"], xm["OrderID"], xm["Forward"], xm["Method"], xm["PayTimes"]
				ex.Approve, ex.TranID, ex.TranDate, ex.CheckString = xm["Approve"], xm["TranID"], xm["TranDate"], xm["CheckString"]
				ex.ClientField1, ex.ClientField2, ex.ClientField3 = xm["ClientField1"], xm["ClientField2"], xm["ClientField3"]
				o.authOK = "1"
			}
		}
		o.last.ExecTran = &ex
		o.history.ExecTran = append(o.history.ExecTran, ex)
		if o.authOK != "1" {
			o.saveOK = flagIf(o.use == ivrUseAuthSave, "0")
			return nil
		}
	}
	if o.use == ivrUseAuth {
		return nil
	}
	o.saveOK = "0"
	// Find or create the member, then store the card.
	sm, code, info := answerOf(g.memberAPI("SearchMember", site))
	search := ivrMember{PSPStatusCode: "0", TransactionDatetime: v.stamp(), ErrCode: code, ErrInfo: info}
	if code == "" {
		search.MemberID, search.MemberName, search.DeleteFlag = sm["MemberID"], sm["MemberName"], sm["DeleteFlag"]
	}
	o.last.SearchMember = &search
	o.history.SearchMember = append(o.history.SearchMember, search)
	if code != "" {
		f := map[string]string{"MemberName": o.req.GMOPG.Save.MemberName}
		for k, val := range site {
			f[k] = val
		}
		mm, code, info := answerOf(g.memberAPI("SaveMember", f))
		saved := ivrMember{PSPStatusCode: "0", TransactionDatetime: v.stamp(), MemberID: mm["MemberID"], ErrCode: code, ErrInfo: info}
		o.last.SaveMember = &saved
		o.history.SaveMember = append(o.history.SaveMember, saved)
		if code != "" {
			return nil
		}
	}
	s := o.req.GMOPG.Save
	f := map[string]string{"DefaultFlag": s.DefaultFlag, "HolderName": s.HolderName, "CardName": s.CardName, "SeqMode": "0"}
	for k, val := range site {
		f[k] = val
	}
	api := "SaveCard"
	if o.use == ivrUseAuthSave {
		api = "TradedCard"
		f["ShopID"], f["ShopPass"], f["OrderID"] = o.req.GMOPG.ShopID, shopPass, o.orderID
	} else {
		f["Token"], f["CardSeq"], f["CardPass"], f["UpdateType"] = token, s.CardSeq, s.CardPass, s.UpdateType
	}
	cm, code, info := answerOf(g.memberAPI(api, f))
	res := ivrCard{PSPStatusCode: "0", TransactionDatetime: v.stamp(), ErrCode: code, ErrInfo: info}
	if code == "" {
		res.CardSeq, res.CardNo, res.Forward = cm["CardSeq"], cm["CardNo"], cm["Forward"]
		if api == "SaveCard" {
			// Seed 001 lists the card attributes in saveCard's result
			// (国際ブランド; empty when it cannot be told).
			res.Brand, res.DomesticFlag, res.DebitPrepaidFlag, res.ForwardFinal = brandOf(TestCards[magic(token)].Number), "1", "0", "2a99662"
		}
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
