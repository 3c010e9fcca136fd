package gmoivr

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers"
	"github.com/paynorm/paynorm/providers/gmo"
)

// Provider is an IVR account. It takes phone authorizations only; the
// card payment endpoints answer 422 unsupported (the resulting payment is
// followed up through the GMO card account of the same shop).
type Provider struct {
	c   *Client
	now func() time.Time
}

var (
	_ providers.Provider            = (*Provider)(nil)
	_ providers.PhoneAuthorizations = (*Provider)(nil)
)

// New wraps a client as a provider.
func New(c *Client) *Provider { return &Provider{c: c, now: time.Now} }

// Account is the configured account name.
func (p *Provider) Account() string { return p.c.cfg.Account }

// Kind is "gmo_ivr".
func (p *Provider) Kind() string { return "gmo_ivr" }

// Breaker is the account's breaker state.
func (p *Provider) Breaker() string { return p.c.x.Guard.State() }

func (p *Provider) unsupported() error {
	e := providers.Unsupported(p.Account(), "card payments: it is a GMO IVR account; use /v1/phone_authorizations, and a GMO card account for follow-ups")
	e.MessageJa = "IVR決済のアカウントではカード決済APIは利用できません。"
	return e
}

// CreatePayment is unsupported on an IVR account.
func (p *Provider) CreatePayment(context.Context, *normalize.CreatePayment) (*normalize.Payment, error) {
	return nil, p.unsupported()
}

// GetPayment is unsupported on an IVR account.
func (p *Provider) GetPayment(context.Context, string) (*normalize.Payment, error) {
	return nil, p.unsupported()
}

// Capture is unsupported on an IVR account.
func (p *Provider) Capture(context.Context, providers.Target, *normalize.CaptureRequest) (*normalize.Payment, error) {
	return nil, p.unsupported()
}

// Cancel is unsupported on an IVR account.
func (p *Provider) Cancel(context.Context, providers.Target) (*normalize.Payment, error) {
	return nil, p.unsupported()
}

// Reauthorize is unsupported on an IVR account.
func (p *Provider) Reauthorize(context.Context, providers.Target, *normalize.Reauthorize) (*normalize.Payment, error) {
	return nil, p.unsupported()
}

var useCodes = map[string]string{
	normalize.PhoneUseAuthorize:        "1",
	normalize.PhoneUseAuthorizeAndSave: "2",
	normalize.PhoneUseSave:             "3",
}

// methodFor maps installments onto the IVR's method (seed 001 items 9 and
// the auth table: 1 一括, 2 分割, 3 ボーナス一括, 5 リボ; ボーナス分割 4 was
// removed in the spec's 1.01, and validation refuses it).
func methodFor(in *normalize.Installments) (method, times string) {
	if in == nil {
		return "1", ""
	}
	switch in.Plan {
	case normalize.PlanInstallments:
		return "2", strconv.Itoa(in.Count)
	case normalize.PlanBonus:
		return "3", ""
	case normalize.PlanRevolving:
		return "5", ""
	}
	return "1", ""
}

func installmentsFrom(method, times string) *normalize.Installments {
	n, _ := strconv.Atoi(times)
	switch method {
	case "1":
		return &normalize.Installments{Plan: normalize.PlanLumpSum}
	case "2":
		return &normalize.Installments{Plan: normalize.PlanInstallments, Count: n}
	case "3":
		return &normalize.Installments{Plan: normalize.PlanBonus}
	case "5":
		return &normalize.Installments{Plan: normalize.PlanRevolving}
	}
	return nil
}

// BuildRegist turns the unified request into AuthRegistApi's body (without
// credentials).
func (p *Provider) BuildRegist(req *normalize.CreatePhoneAuthorization) *RegistRequest {
	r := &RegistRequest{UseDivisionCode: useCodes[req.Use], UserID: req.UserID}
	for _, it := range req.Items {
		r.AnyItem = append(r.AnyItem, AnyItem(it))
	}
	if a := req.Authorize; a != nil {
		r.GMOPG.ShopID = p.c.cfg.ShopID
		b := &AuthBlock{OrderID: a.OrderID, JobCd: providers.JobFor(a.Capture), ItemCode: a.ItemCode}
		if b.JobCd != "CHECK" {
			b.Amount = strconv.FormatInt(a.Amount, 10)
			if t := a.Tax + a.Shipping; t > 0 {
				b.Tax = strconv.FormatInt(t, 10)
			}
			b.Method, b.PayTimes = methodFor(a.Installments)
		}
		if len(a.Metadata) > 0 {
			b.ClientField1, b.ClientField2, b.ClientField3 = a.Metadata["client_field_1"], a.Metadata["client_field_2"], a.Metadata["client_field_3"]
			b.ClientFieldFlag = "1"
		}
		r.GMOPG.Auth = b
	}
	if s := req.Save; s != nil {
		r.GMOPG.SiteID = p.c.cfg.SiteID
		b := &SaveBlock{MemberID: s.CustomerID, MemberName: s.CustomerName, SeqMode: "0", CardName: s.CardName,
			CardPass: s.CardPassword, HolderName: s.HolderName}
		if s.CardSeq != nil {
			b.CardSeq = strconv.Itoa(*s.CardSeq)
		}
		switch s.UpdateType {
		case normalize.UpdateAll:
			b.UpdateType = "1"
		case normalize.UpdateKeepCardNumber:
			b.UpdateType = "2"
		}
		if s.Default {
			b.DefaultFlag = "1"
		}
		r.GMOPG.Save = b
	}
	return r
}

// CreatePhoneAuthorization registers the order (AuthRegistApi) and answers
// the receipt and identification numbers the operator's call needs.
func (p *Provider) CreatePhoneAuthorization(ctx context.Context, req *normalize.CreatePhoneAuthorization) (*normalize.PhoneAuthorization, error) {
	if req.Authorize != nil && p.c.cfg.ShopID == "" || req.Save != nil && p.c.cfg.SiteID == "" {
		e := providers.Unsupported(p.Account(), "this use without shop_id (authorizations) and site_id (card registration) configured")
		e.MessageJa = "ショップID・サイトIDが設定されていないため、この利用区分は利用できません。"
		return nil, e
	}
	var resp RegistResponse
	if err := p.c.call(ctx, "AuthRegistApi", p.BuildRegist(req), &resp, true); err != nil {
		if err.Uncertain {
			err.Message += " The order may have been registered; no card is charged before the operator's call. Check with GMO before registering it again."
			err.MessageJa += " オーソリ情報が登録された可能性があります。再登録の前にGMOの管理画面でご確認ください。"
			err.Retryable = false
		}
		return nil, err
	}
	switch resp.ResultCode {
	case ResultOK:
	case ResultParam, ResultAuthParam, ResultSaveParam:
		return nil, p.paramError(resp.ResultCode, resp.ErrorMessageList)
	default:
		return nil, p.unexpected("AuthRegistApi", resp.ResultCode)
	}
	if resp.ReceiptNo == "" {
		return nil, p.unexpected("AuthRegistApi", "0 without receiptNo")
	}
	out := &normalize.PhoneAuthorization{ID: resp.ReceiptNo, Object: "phone_authorization", Provider: p.Account(),
		ReceiptNo: resp.ReceiptNo, IdentificationID: resp.DiscrementID, Status: normalize.PhoneWaiting, Use: req.Use}
	if a := req.Authorize; a != nil {
		out.OrderID = a.OrderID
		if resp.OrderID != "" {
			out.OrderID = resp.OrderID
		}
	}
	if s := req.Save; s != nil {
		out.CustomerID = s.CustomerID
		if resp.MemberID != "" {
			out.CustomerID = resp.MemberID
		}
	}
	if out.OrderID != "" {
		pay := p.newPayment(out.OrderID, req)
		pay.Status = normalize.StatusPending
		out.Payment = pay
	}
	return out, nil
}

// paramError turns result codes 30/31/32 into field errors: GMO's messages
// are Japanese only, so they go to message_ja and are quoted in message.
func (p *Provider) paramError(code string, msgs []string) *normalize.Error {
	param, what := "request", "a parameter"
	switch code {
	case ResultAuthParam:
		param, what = "authorize", "a parameter of the authorize block"
	case ResultSaveParam:
		param, what = "save", "a parameter of the save block"
	}
	if len(msgs) == 0 {
		msgs = []string{"パラメータに誤りがあります。"}
	}
	fields := make([]normalize.FieldError, 0, len(msgs))
	for _, m := range msgs {
		fields = append(fields, normalize.Field(param, "parameter_invalid", "GMO IVR rejected "+what+": "+m, m))
	}
	e := normalize.Validation(fields)
	e.Provider = p.Account()
	e.ProviderCodes = []normalize.ProviderCode{{Code: code}}
	return e
}

func (p *Provider) unexpected(api, code string) *normalize.Error {
	e := normalize.Newf("invalid_response", "GMO IVR %s answered an unexpected result code %q.", api, code)
	e.Provider = p.Account()
	e.ProviderCodes = []normalize.ProviderCode{{Code: code}}
	return e
}

// GetPhoneAuthorization reads the order's progress (AuthSearchApi).
func (p *Provider) GetPhoneAuthorization(ctx context.Context, receiptNo string, q providers.PhoneQuery) (*normalize.PhoneAuthorization, error) {
	req := &SearchRequest{ReceiptNo: receiptNo}
	if q.Items {
		req.AnyItemReturnFlg = "1"
	}
	if q.History {
		req.DetailReturnFlg = "1"
	}
	var resp SearchResponse
	if err := p.c.call(ctx, "AuthSearchApi", req, &resp, false); err != nil {
		return nil, err
	}
	switch resp.ResultCode {
	case ResultOK:
	case ResultNoReceipt:
		e := normalize.Newf("resource_missing", "No phone authorization with receipt number %q exists at GMO IVR.", receiptNo)
		e.Provider = p.Account()
		e.ProviderCodes = []normalize.ProviderCode{{Code: resp.ResultCode}}
		return nil, e.WithParam("receipt_no")
	case ResultParam, ResultAuthParam, ResultSaveParam:
		e := p.paramError(resp.ResultCode, resp.ErrorMessageList)
		for i := range e.Fields {
			e.Fields[i].Param = "receipt_no"
		}
		return nil, e.WithParam("receipt_no")
	default:
		return nil, p.unexpected("AuthSearchApi", resp.ResultCode)
	}
	out, err := p.Normalize(receiptNo, &resp, q)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Normalize maps a successful AuthSearchApi answer onto the unified object.
func (p *Provider) Normalize(receiptNo string, r *SearchResponse, q providers.PhoneQuery) (*normalize.PhoneAuthorization, *normalize.Error) {
	out := &normalize.PhoneAuthorization{ID: receiptNo, Object: "phone_authorization", Provider: p.Account(), ReceiptNo: receiptNo}
	switch r.StatusCode {
	case StatusWaiting:
		out.Status = normalize.PhoneWaiting
	case StatusInCall:
		out.Status = normalize.PhoneInCall
	case StatusCompleted:
		out.Status = normalize.PhoneCompleted
	default:
		return nil, p.unexpected("AuthSearchApi", "statusCode "+r.StatusCode)
	}
	hint := q.Request
	if hint != nil {
		out.Use = hint.Use
	}
	if r.CallerTelNo != "" || r.IncomingDatetime != "" || r.FlowLevelID != "" {
		out.Call = &normalize.PhoneCall{CallerPhone: r.CallerTelNo, StartedAt: ivrTime(r.IncomingDatetime),
			FlowLevelID: r.FlowLevelID, FlowLevelName: r.FlowLevelName}
	}
	if q.Items {
		for _, it := range r.AnyItem {
			out.Items = append(out.Items, normalize.PhoneItem(it))
		}
	}
	out.Authorized, out.CardSaved = flag(r.AuthSuccessFlg), flag(r.SaveSuccessFlg)
	lt := r.LastTransaction
	if lt == nil {
		lt = &LastTransaction{}
	}
	authorizes := lt.EntryTran != nil || lt.ExecTran != nil || out.Authorized != nil ||
		hint != nil && hint.Authorize != nil
	if authorizes {
		out.Payment, out.PaymentError = p.payment(out.Status, lt, hint)
		if out.Payment != nil {
			out.OrderID = out.Payment.OrderID
		}
	}
	out.Card, out.CardError = p.card(lt, hint)
	switch {
	case lt.SaveMember != nil && lt.SaveMember.MemberID != "":
		out.CustomerID = lt.SaveMember.MemberID
	case lt.SearchMember != nil && lt.SearchMember.MemberID != "":
		out.CustomerID = lt.SearchMember.MemberID
	case hint != nil && hint.Save != nil:
		out.CustomerID = hint.Save.CustomerID
	}
	if out.Card != nil && out.Card.CustomerID == "" {
		out.Card.CustomerID = out.CustomerID
	}
	if q.History && r.TransactionHistory != nil {
		out.History = p.history(r.TransactionHistory)
	}
	return out, nil
}

func flag(s string) *bool {
	switch s {
	case "1":
		t := true
		return &t
	case "0":
		f := false
		return &f
	}
	return nil
}

// ivrTime parses the IVR's "yyyy/MM/dd HH:mm:ss" (Japan time).
func ivrTime(s string) *time.Time {
	t, err := time.ParseInLocation("2006/01/02 15:04:05", s, normalize.JST)
	if err != nil {
		return nil
	}
	return &t
}

func (p *Provider) newPayment(orderID string, hint *normalize.CreatePhoneAuthorization) *normalize.Payment {
	pay := normalize.NewPayment(p.Account(), orderID)
	if hint != nil && hint.Authorize != nil {
		a := hint.Authorize
		pay.SetAmounts(a.Amount, a.Tax, a.Shipping)
		pay.Capture, pay.Installments, pay.Metadata = a.Capture, a.Installments, a.Metadata
	}
	pay.ProviderData["channel"] = "ivr"
	return pay
}

// stepErrors maps a step's ErrCode/ErrInfo through the card API's table;
// several codes are joined by '|' (or by spaces, as the IVR spec shows).
func (p *Provider) stepErrors(s Step) *normalize.Error {
	split := func(v string) []string {
		return strings.FieldsFunc(v, func(r rune) bool { return r == '|' || r == ' ' })
	}
	codes, infos := split(s.ErrCode), split(s.ErrInfo)
	if len(codes) == 0 && len(infos) == 0 {
		return nil
	}
	pairs := make([]gmo.ErrPair, max(len(codes), len(infos)))
	for i := range pairs {
		if i < len(codes) {
			pairs[i].Code = codes[i]
		}
		if i < len(infos) {
			pairs[i].Info = infos[i]
		}
	}
	return gmo.NormalizeErrors(p.Account(), pairs)
}

// payment reads the authorization out of the last entryTran/execTran. A
// decline comes as pspStatusCode 0 with errCode/errInfo (seed 001's third
// example); pspStatusCode 1 without a code is what seed 001 shows for "オー
// ソリが失敗した場合 (処理エラー。通信タイムアウトなど)" with authSuccessFlg
// 0: a failed authorization, as the IVR itself reports it.
func (p *Provider) payment(status string, lt *LastTransaction, hint *normalize.CreatePhoneAuthorization) (*normalize.Payment, *normalize.Error) {
	orderID := ""
	if hint != nil && hint.Authorize != nil {
		orderID = hint.Authorize.OrderID
	}
	if ex := lt.ExecTran; ex != nil && ex.OrderID != "" {
		orderID = ex.OrderID
	}
	pay := p.newPayment(orderID, hint)
	if orderID == "" {
		pay.ID = ""
	}
	ex, en := lt.ExecTran, lt.EntryTran
	switch {
	case ex != nil:
		pay.UpdatedAt = ivrTime(ex.TransactionDatetime)
		if e := p.stepErrors(ex.Step); e != nil {
			pay.Status = normalize.StatusFailed
			return pay, e
		}
		if ex.PSPStatusCode != "0" {
			pay.Status = normalize.StatusFailed
			e := normalize.Newf("processing_error", "GMO IVR reports the authorization failed with a processing error between the IVR and the card system (pspStatusCode 1, authSuccessFlg 0, no error code; seed 001: e.g. a communication timeout). Nothing is authorized by the IVR's account of it; check the order in GMO's admin screen if the card holder says otherwise.")
			e.MessageJa = "IVRとマルチペイメントサービス間の処理エラー(通信タイムアウトなど)によりオーソリに失敗しました。"
			e.Provider = p.Account()
			return pay, e
		}
		if e := p.verifyCheckString(ex); e != nil {
			pay.Status = normalize.StatusUnknown
			return pay, e
		}
		pay.Status = normalize.StatusAuthorized
		if hint != nil && hint.Authorize != nil {
			pay.Status = providers.StatusForJob(providers.JobFor(hint.Authorize.Capture))
		} else {
			pay.ProviderData["capture_unknown"] = true // paynorm's record of the request was lost
		}
		if p.c.cfg.ShopPass == "" {
			pay.ProviderData["check_string_verified"] = false
		}
		pay.ApprovalCode, pay.TransactionID, pay.Forward = ex.Approve, ex.TranID, ex.Forward
		if in := installmentsFrom(ex.Method, ex.PayTimes); in != nil {
			pay.Installments = in
		}
		if t, err := time.ParseInLocation("20060102150405", ex.TranDate, normalize.JST); err == nil {
			pay.CreatedAt, pay.UpdatedAt = &t, &t
		}
		md := map[string]string{}
		for k, v := range map[string]string{"client_field_1": ex.ClientField1, "client_field_2": ex.ClientField2, "client_field_3": ex.ClientField3} {
			if v != "" {
				md[k] = v
			}
		}
		if len(md) > 0 {
			pay.Metadata = md
		}
		return pay, nil
	case en != nil && (en.PSPStatusCode != "0" || en.ErrCode != ""):
		// The order could not even be registered: nothing was charged.
		pay.Status = normalize.StatusFailed
		pay.UpdatedAt = ivrTime(en.TransactionDatetime)
		if e := p.stepErrors(en.Step); e != nil {
			return pay, e
		}
		e := normalize.Newf("processing_error", "GMO IVR could not register the transaction; nothing was charged.")
		e.Provider = p.Account()
		return pay, e
	case status == normalize.PhoneCompleted:
		// The call ended before the card was charged.
		pay.Status = normalize.StatusFailed
		e := normalize.Newf("card_declined", "The phone call ended without an authorization.")
		e.MessageJa = "通話がオーソリを行わずに終了しました。"
		e.Provider = p.Account()
		return pay, e
	}
	pay.Status = normalize.StatusPending
	return pay, nil
}

// verifyCheckString checks execTran's MD5 (seed 001 item 58: OrderID to
// TranDate plus the shop password, the card API's CheckString) when the
// account has shop_pass. A forged or corrupted result proves nothing about
// the charge.
func (p *Provider) verifyCheckString(ex *ExecTranResult) *normalize.Error {
	if p.c.cfg.ShopPass == "" {
		return nil
	}
	want := gmo.CheckString(ex.OrderID, ex.Forward, ex.Method, ex.PayTimes, ex.Approve, ex.TranID, ex.TranDate, p.c.cfg.ShopPass)
	if strings.EqualFold(want, ex.CheckString) {
		return nil
	}
	e := normalize.Newf("invalid_response", "GMO IVR's ExecTran result failed checkString verification with this account's shop_pass; the payment outcome is unknown. Check shop_pass, and the order in GMO's admin screen.")
	e.Provider = p.Account()
	return e
}

// card reads the card registration (TradedCard after a payment, SaveCard
// for a registration only, and the member steps before them).
func (p *Provider) card(lt *LastTransaction, hint *normalize.CreatePhoneAuthorization) (*normalize.StoredCard, *normalize.Error) {
	if m := lt.SaveMember; m != nil {
		if e := p.stepErrors(m.Step); e != nil {
			return nil, e
		}
	}
	c := lt.SaveCard
	if c == nil {
		c = lt.TradedCard
	}
	if c == nil {
		return nil, nil
	}
	if e := p.stepErrors(c.Step); e != nil {
		return nil, e
	}
	if c.PSPStatusCode != "0" {
		e := normalize.Newf("processing_error", "GMO IVR could not store the card.")
		e.Provider = p.Account()
		return nil, e
	}
	seq, _ := strconv.Atoi(c.CardSeq)
	card := &normalize.StoredCard{Object: "card", Provider: p.Account(), Seq: seq, MaskedNumber: c.CardNo, Brand: c.Brand}
	if card.Brand == "" {
		card.Brand = normalize.BrandFromNumber(c.CardNo)
	}
	if hint != nil && hint.Save != nil {
		card.HolderName, card.CardName, card.Default = hint.Save.HolderName, hint.Save.CardName, hint.Save.Default
	}
	return card, nil
}

// history flattens the execution history in time order. AccessID and
// AccessPass are not decoded, so they cannot show up here.
func (p *Provider) history(h *History) []normalize.PhoneStep {
	var out []normalize.PhoneStep
	add := func(api string, s Step, details map[string]string) {
		st := normalize.PhoneStep{API: api, At: ivrTime(s.TransactionDatetime), OK: s.PSPStatusCode == "0" && s.ErrCode == ""}
		for k, v := range details {
			if v == "" {
				delete(details, k)
			}
		}
		if len(details) > 0 {
			st.Details = details
		}
		st.Error = p.stepErrors(s)
		out = append(out, st)
	}
	for _, s := range h.EntryTran {
		add("EntryTran", s.Step, nil)
	}
	for _, s := range h.ExecTran {
		add("ExecTran", s.Step, map[string]string{"order_id": s.OrderID, "approval_code": s.Approve, "transaction_id": s.TranID, "forward": s.Forward})
	}
	for _, s := range h.SearchMember {
		add("SearchMember", s.Step, map[string]string{"customer_id": s.MemberID})
	}
	for _, s := range h.SaveMember {
		add("SaveMember", s.Step, map[string]string{"customer_id": s.MemberID})
	}
	for _, s := range h.TradedCard {
		add("TradedCard", s.Step, map[string]string{"card_seq": s.CardSeq, "masked_number": s.CardNo})
	}
	for _, s := range h.SaveCard {
		add("SaveCard", s.Step, map[string]string{"card_seq": s.CardSeq, "masked_number": s.CardNo, "brand": s.Brand})
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].At, out[j].At
		return a != nil && b != nil && a.Before(*b)
	})
	return out
}
