package gmo

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers"
)

// Provider is a GMO account behind the unified API. It keeps no state: every
// follow-up reads AccessID/AccessPass and the status back with SearchTrade.
type Provider struct {
	c   *Client
	now func() time.Time
}

var _ providers.Provider = (*Provider)(nil)

// New wraps a client as a unified provider.
func New(c *Client) *Provider { return &Provider{c: c, now: time.Now} }

// SetClock replaces the clock (tests of the cancel jobs' date rules).
func (p *Provider) SetClock(now func() time.Time) { p.now = now }

// Account is the configured account name.
func (p *Provider) Account() string { return p.c.cfg.Account }

// Kind is "gmo".
func (p *Provider) Kind() string { return "gmo" }

// Breaker is the account's breaker state.
func (p *Provider) Breaker() string { return p.c.x.Guard.State() }

// MaxOrderID is GMO's OrderID limit.
const MaxOrderID = 27

// methodFor maps installments onto Method/PayTimes. GMO's 支払方法 (seed
// 001 lines 67 and 190): 1 一括, 2 分割, 3 ボーナス一括, 4 ボーナス分割,
// 5 リボ; PayTimes goes with 2 and 4 only.
func methodFor(in *normalize.Installments) (method, times string) {
	if in == nil {
		return "1", ""
	}
	switch in.Plan {
	case normalize.PlanInstallments:
		return "2", strconv.Itoa(in.Count)
	case normalize.PlanBonus:
		return "3", ""
	case normalize.PlanBonusInstallments:
		return "4", strconv.Itoa(in.Count)
	case normalize.PlanRevolving:
		return "5", ""
	}
	return "1", ""
}

// installmentsFrom reads Method/PayTimes back (SearchTrade, ExecTran).
func installmentsFrom(method, times string) *normalize.Installments {
	n, _ := strconv.Atoi(times)
	switch method {
	case "1":
		return &normalize.Installments{Plan: normalize.PlanLumpSum}
	case "2":
		return &normalize.Installments{Plan: normalize.PlanInstallments, Count: n}
	case "3":
		return &normalize.Installments{Plan: normalize.PlanBonus}
	case "4":
		return &normalize.Installments{Plan: normalize.PlanBonusInstallments, Count: n}
	case "5":
		return &normalize.Installments{Plan: normalize.PlanRevolving}
	}
	return nil
}

func (p *Provider) shop() []Param {
	return []Param{{"ShopID", p.c.cfg.ShopID}, {"ShopPass", p.c.cfg.ShopPass}}
}

// CreatePayment runs EntryTran then ExecTran.
func (p *Provider) CreatePayment(ctx context.Context, req *normalize.CreatePayment) (*normalize.Payment, error) {
	if req.OrderID == "" {
		req.OrderID = normalize.NewOrderID(p.now())
	}
	if !normalize.ValidOrderID(req.OrderID, MaxOrderID) {
		return nil, p.invalid("order_id", "invalid_order_id", "order_id must be 1 to 27 characters of A-Z, a-z, 0-9 and '-' for GMO.", "GMOのオーダーIDは27文字以内の半角英数字とハイフンで指定してください。")
	}
	if req.PaymentMethod.CustomerID != "" && p.c.cfg.SiteID == "" {
		return nil, p.invalid("payment_method.customer_id", "unsupported", "This GMO account has no site_id configured, so stored cards cannot be used.", "サイトIDが設定されていないため登録カードは利用できません。")
	}
	// Text GMO cannot take must be refused before EntryTran: found at
	// ExecTran it would leave an unexecuted order at GMO.
	if f := normalize.CheckMetadata("", req.Metadata); len(f) > 0 {
		e := normalize.Validation(f)
		e.Provider = p.Account()
		return nil, e
	}
	job := providers.JobFor(req.Capture)
	tds, terr := p.useThreeDS(req, job)
	if terr != nil {
		return nil, terr
	}
	entry := append(p.shop(), Param{"OrderID", req.OrderID}, Param{"JobCd", job})
	if job != "CHECK" {
		entry = append(entry, Param{"Amount", strconv.FormatInt(req.Amount, 10)}, Param{"Tax", strconv.FormatInt(req.Tax+req.Shipping, 10)})
	}
	if tds {
		entry = append(entry, p.entryThreeDS(req.ThreeDSecure)...)
	}
	vals, err := p.c.call(ctx, "EntryTran", entry, register)
	accessID, accessPass := vals.Get("AccessID"), vals.Get("AccessPass")
	if err != nil {
		if err.Code != "order_id_exists" {
			if err.Uncertain {
				// EntryTran moves no money: say so, and let the app retry.
				err.Message = "GMO did not answer the transaction registration; no charge was made. Retry with the same order_id."
				err.Retryable = true
			}
			return nil, err
		}
		// The order exists: resume an entry that never got executed, or
		// answer with the payment that already exists.
		existing, t, serr := p.search(ctx, req.OrderID)
		if serr != nil {
			return nil, err
		}
		if t.Get("Status") != "UNPROCESSED" {
			return p.duplicate(existing, req)
		}
		accessID, accessPass = t.Get("AccessID"), t.Get("AccessPass")
	}
	exec := []Param{{"AccessID", accessID}, {"AccessPass", accessPass}, {"OrderID", req.OrderID}}
	if job != "CHECK" {
		// 有効性チェック takes no 支払方法 (GMO answers Method empty).
		method, times := methodFor(req.Installments)
		exec = append(exec, Param{"Method", method})
		if times != "" {
			exec = append(exec, Param{"PayTimes", times})
		}
	}
	if pm := req.PaymentMethod; pm.Token != "" {
		exec = append(exec, Param{"Token", pm.Token})
	} else {
		exec = append(exec, Param{"SiteID", p.c.cfg.SiteID}, Param{"SitePass", p.c.cfg.SitePass},
			Param{"MemberID", pm.CustomerID}, Param{"SeqMode", "0"}, Param{"CardSeq", strconv.Itoa(*pm.CardSeq)})
	}
	if sc := req.PaymentMethod.SecurityCode; sc != "" {
		exec = append(exec, Param{"SecurityCode", sc})
	}
	if len(req.Metadata) > 0 {
		for i, k := range normalize.ClientFieldKeys {
			if v, ok := req.Metadata[k]; ok {
				exec = append(exec, Param{"ClientField" + strconv.Itoa(i+1), v})
			}
		}
		exec = append(exec, Param{"ClientFieldFlag", "1"})
	}
	if tds {
		exec = append(exec, Param{"RetUrl", req.ReturnURL}, Param{"CallbackType", callbackGET})
	}
	pay := normalize.NewPayment(p.Account(), req.OrderID)
	pay.SetAmounts(req.Amount, req.Tax, req.Shipping)
	pay.Capture = req.Capture
	pay.Installments = req.Installments
	pay.Metadata = req.Metadata
	pay.CreatedAt, pay.UpdatedAt = p.stamp(), p.stamp()
	if tds {
		pay.ProviderData["three_d_secure"] = req.ThreeDSecure
	}

	r, err := p.c.call(ctx, "ExecTran", exec, write)
	if err != nil {
		if err.Uncertain {
			return p.resolveCreate(ctx, pay, err)
		}
		pay.Status = normalize.StatusFailed
		err.Payment = pay
		return nil, err
	}
	switch r.Get("ACS") {
	case "2":
		// EMV 3-D Secure 2: the card holder authenticates in a browser
		// first; complete (SecureTran2) charges once the browser is back.
		return p.requiresAction(pay, r)
	case "1":
		return p.refuseThreeDS1(pay)
	}
	if !p.checkStringOK(r) {
		// A forged or corrupted answer proves nothing about the charge.
		pay.Status = normalize.StatusUnknown
		e := normalize.Newf("invalid_response", "GMO's ExecTran answer failed CheckString verification; the payment outcome is being checked.")
		e.Provider, e.Payment = p.Account(), pay
		return nil, e
	}
	pay.Status = providers.StatusForJob(job)
	pay.ApprovalCode, pay.TransactionID, pay.Forward = r.Get("Approve"), r.Get("TranID"), r.Get("Forward")
	if t, ok := parseDate(r.Get("TranDate")); ok {
		pay.CreatedAt, pay.UpdatedAt = &t, &t
	}
	return pay, nil
}

// checkStringOK verifies ExecTran's MD5 over OrderID+Forward+Method+PayTimes+
// Approve+TranID+TranDate+ShopPass (wire notes §5).
func (p *Provider) checkStringOK(r Values) bool {
	sum := md5.Sum([]byte(r.Get("OrderID") + r.Get("Forward") + r.Get("Method") + r.Get("PayTimes") +
		r.Get("Approve") + r.Get("TranID") + r.Get("TranDate") + p.c.cfg.ShopPass))
	return hex.EncodeToString(sum[:]) == r.Get("CheckString")
}

// CheckString computes GMO's ExecTran CheckString (used by the sandbox too).
func CheckString(orderID, forward, method, payTimes, approve, tranID, tranDate, shopPass string) string {
	sum := md5.Sum([]byte(orderID + forward + method + payTimes + approve + tranID + tranDate + shopPass))
	return hex.EncodeToString(sum[:])
}

// resolveCreate runs after an ExecTran whose outcome is unknown: one
// SearchTrade decides; if it cannot, the payment stays unknown (504).
func (p *Provider) resolveCreate(ctx context.Context, pay *normalize.Payment, cause *normalize.Error) (*normalize.Payment, error) {
	pay.Status = normalize.StatusUnknown
	if ctx.Err() == nil {
		if found, _, err := p.search(ctx, pay.OrderID); err == nil && found.Status != normalize.StatusPending {
			found.Capture, found.Metadata = pay.Capture, pay.Metadata
			keep(found, pay) // created_at, plan and tax/shipping split as requested
			return found, nil
		}
	}
	e := normalize.New("provider_timeout")
	if cause.Type != normalize.TypeProviderTimeout {
		e = cause
		e.Message = cause.Message + " The payment outcome is unknown and is being checked."
	}
	e.Provider, e.ProviderCodes, e.Payment, e.Retryable = p.Account(), cause.ProviderCodes, pay, false
	return nil, e
}

// duplicate answers a create whose order id already ran: the same request
// gets the existing payment; a different amount is an order_id_exists error.
func (p *Provider) duplicate(existing *normalize.Payment, req *normalize.CreatePayment) (*normalize.Payment, error) {
	if existing.Amount == req.Amount && existing.Tax == req.Tax+req.Shipping {
		existing.Tax, existing.Shipping = req.Tax, req.Shipping
		existing.Capture = req.Capture
		return existing, nil
	}
	e := normalize.New("order_id_exists")
	e.Provider, e.Payment = p.Account(), existing
	return nil, e.WithParam("order_id")
}

// search runs SearchTrade and maps the trade to a payment.
func (p *Provider) search(ctx context.Context, orderID string) (*normalize.Payment, Values, *normalize.Error) {
	v, err := p.c.call(ctx, "SearchTrade", append(p.shop(), Param{"OrderID", orderID}), read)
	if err != nil {
		if err.Code == "resource_missing" || err.Code == "invalid_order_id" {
			err = normalize.Newf("resource_missing", "No payment with order ID %q exists at this GMO account.", orderID)
			err.Provider = p.Account()
		}
		return nil, nil, err
	}
	return p.fromTrade(v), v, nil
}

// fromTrade maps a SearchTrade answer. GMO keeps amount and tax (tax plus
// shipping) only, so shipping reads back as part of tax.
func (p *Provider) fromTrade(v Values) *normalize.Payment {
	pay := normalize.NewPayment(p.Account(), v.Get("OrderID"))
	amount, _ := strconv.ParseInt(v.Get("Amount"), 10, 64)
	tax, _ := strconv.ParseInt(v.Get("Tax"), 10, 64)
	pay.SetAmounts(amount, tax, 0)
	pay.Status = StatusFromTrade(v.Get("Status"))
	switch v.Get("JobCd") {
	case "AUTH", "SAUTH":
		pay.Capture = normalize.CaptureManual
	case "CHECK":
		pay.Capture = normalize.CaptureVerify
	case "CAPTURE":
		pay.Capture = normalize.CaptureAutomatic
	}
	pay.ApprovalCode, pay.TransactionID, pay.Forward = v.Get("Approve"), v.Get("TranID"), v.Get("Forward")
	if n := v.Get("CardNo"); n != "" {
		pay.Card = &normalize.Card{MaskedNumber: n, Brand: normalize.BrandFromNumber(n), Expiry: v.Get("Expire")}
	}
	pay.Installments = installmentsFrom(v.Get("Method"), v.Get("PayTimes"))
	md := map[string]string{}
	for i, k := range normalize.ClientFieldKeys {
		if f := v.Get("ClientField" + strconv.Itoa(i+1)); f != "" {
			md[k] = f
		}
	}
	if len(md) > 0 {
		pay.Metadata = md
	}
	if t, ok := parseDate(v.Get("ProcessDate")); ok {
		pay.UpdatedAt = &t
	}
	pay.ProviderData["gmo_status"] = v.Get("Status")
	if m := v.Get("MemberID"); m != "" {
		pay.ProviderData["customer_id"] = m
	}
	return pay
}

// StatusFromTrade maps a GMO trade Status onto the unified statuses.
// UNPROCESSED is an entry whose execution failed or has not finished: only
// paynorm's own record can tell which, so it reads as pending here.
// AUTHENTICATED (3-D Secure done, SecureTran2 not yet) is pending too:
// nothing is charged, and paynorm's record says requires_action.
func StatusFromTrade(s string) string {
	switch s {
	case "UNPROCESSED", "AUTHENTICATED":
		return normalize.StatusPending
	case "CHECK":
		return normalize.StatusVerified
	case "AUTH", "SAUTH":
		return normalize.StatusAuthorized
	case "CAPTURE", "SALES", "PAYSUCCESS":
		return normalize.StatusCaptured
	case "VOID":
		return normalize.StatusVoided
	case "RETURN", "RETURNX":
		return normalize.StatusRefunded
	case "PAYFAIL", "EXPIRED", "CANCEL":
		return normalize.StatusFailed
	}
	return normalize.StatusPending
}

func parseDate(s string) (time.Time, bool) {
	for _, layout := range []string{"20060102150405", "20060102"} {
		if len(s) == len(layout) {
			if t, err := time.ParseInLocation(layout, s, normalize.JST); err == nil {
				return t, true
			}
		}
	}
	return time.Time{}, false
}

// GetPayment reads the current state from SearchTrade.
func (p *Provider) GetPayment(ctx context.Context, key string) (*normalize.Payment, error) {
	pay, _, err := p.search(ctx, key)
	if err != nil {
		return nil, err
	}
	return pay, nil
}

// Capture runs AlterTran SALES on an authorization (実売上).
func (p *Provider) Capture(ctx context.Context, target providers.Target, req *normalize.CaptureRequest) (*normalize.Payment, error) {
	if len(req.Metadata) > 0 {
		return nil, p.invalid("metadata", "unsupported", "GMO's capture (AlterTran SALES) takes no free data; metadata is set when the payment is created.", "GMOの売上確定(AlterTran)では加盟店自由項目を指定できません。")
	}
	pay, t, err := p.search(ctx, target.Key)
	if err != nil {
		return nil, err
	}
	if cerr := providers.CheckCapturable(p.Account(), "GMO", pay, req); cerr != nil {
		return nil, cerr
	}
	keep(pay, target.Known)
	params := append(p.shop(), Param{"AccessID", t.Get("AccessID")}, Param{"AccessPass", t.Get("AccessPass")},
		Param{"JobCd", "SALES"}, Param{"Amount", t.Get("Amount")}, Param{"Tax", t.Get("Tax")})
	return p.alter(ctx, pay, "AlterTran", params, normalize.StatusCaptured, "not_capturable", func(after *normalize.Payment) bool {
		return after.Status == normalize.StatusCaptured
	})
}

// keep restores on a payment read back from SearchTrade what GMO does not
// keep and paynorm's record has: when it was created, the capture mode,
// metadata and plan as sent, and the tax/shipping split (GMO has one Tax).
func keep(pay, known *normalize.Payment) {
	if known == nil {
		return
	}
	if pay.CreatedAt == nil {
		pay.CreatedAt = known.CreatedAt
	}
	if pay.Capture == "" {
		pay.Capture = known.Capture
	}
	if pay.Metadata == nil {
		pay.Metadata = known.Metadata
	}
	if pay.Installments == nil {
		pay.Installments = known.Installments
	}
	if known.Shipping > 0 && pay.Amount == known.Amount && pay.Tax == known.Tax+known.Shipping {
		pay.SetAmounts(pay.Amount, known.Tax, known.Shipping)
	}
}

// CancelJob picks VOID on the transaction's own day, RETURN later in the same
// month and RETURNX after the month, all in Japan time.
func CancelJob(processed, now time.Time) string {
	a, b := processed.In(normalize.JST), now.In(normalize.JST)
	switch {
	case a.Year() == b.Year() && a.YearDay() == b.YearDay():
		return "VOID"
	case a.Year() == b.Year() && a.Month() == b.Month():
		return "RETURN"
	}
	return "RETURNX"
}

// Cancel voids or refunds the whole payment; paynorm picks the job.
func (p *Provider) Cancel(ctx context.Context, target providers.Target) (*normalize.Payment, error) {
	pay, t, err := p.search(ctx, target.Key)
	if err != nil {
		return nil, err
	}
	if pay.Status != normalize.StatusAuthorized && pay.Status != normalize.StatusCaptured {
		return nil, p.stateError("not_cancelable", pay)
	}
	processed, ok := parseDate(t.Get("ProcessDate"))
	if !ok {
		processed = p.now()
	}
	keep(pay, target.Known)
	job := CancelJob(processed, p.now())
	// The answer says what SearchTrade will say afterwards (StatusFromTrade):
	// VOID is voided; RETURN and RETURNX are refunded, an authorization of
	// an earlier day included (GMO cancels it with RETURN; no sale was ever
	// made, and the authorization is released).
	want := normalize.StatusVoided
	if job != "VOID" {
		want = normalize.StatusRefunded
	}
	params := append(p.shop(), Param{"AccessID", t.Get("AccessID")}, Param{"AccessPass", t.Get("AccessPass")}, Param{"JobCd", job})
	out, aerr := p.alter(ctx, pay, "AlterTran", params, want, "not_cancelable", func(after *normalize.Payment) bool {
		return after.Status == normalize.StatusVoided || after.Status == normalize.StatusRefunded
	})
	if out != nil {
		out.ProviderData["gmo_job"] = job
	}
	return out, aerr
}

// Reauthorize changes the amount with ChangeTran, keeping the capture state.
func (p *Provider) Reauthorize(ctx context.Context, target providers.Target, req *normalize.Reauthorize) (*normalize.Payment, error) {
	if req.Customer != nil || len(req.Metadata) > 0 {
		return nil, p.invalid("metadata", "unsupported", "GMO's ChangeTran changes amounts only; customer and metadata are not taken.", "GMOの金額変更(ChangeTran)では顧客情報・加盟店自由項目を指定できません。")
	}
	pay, t, err := p.search(ctx, target.Key)
	if err != nil {
		return nil, err
	}
	var job string
	switch {
	case pay.Status == normalize.StatusAuthorized && t.Get("Status") == "SAUTH":
		job = "SAUTH" // a 簡易オーソリ stays one
	case pay.Status == normalize.StatusAuthorized:
		job = "AUTH"
	case pay.Status == normalize.StatusCaptured:
		job = "CAPTURE"
	default:
		return nil, p.stateError("invalid_state", pay)
	}
	keep(pay, target.Known)
	tax := req.Tax + req.Shipping
	params := append(p.shop(), Param{"AccessID", t.Get("AccessID")}, Param{"AccessPass", t.Get("AccessPass")},
		Param{"JobCd", job}, Param{"Amount", strconv.FormatInt(req.Amount, 10)}, Param{"Tax", strconv.FormatInt(tax, 10)})
	out, aerr := p.alter(ctx, pay, "ChangeTran", params, pay.Status, "invalid_state", func(after *normalize.Payment) bool {
		return after.Amount == req.Amount && after.Tax == tax
	})
	if out != nil {
		out.SetAmounts(req.Amount, req.Tax, req.Shipping)
	}
	return out, aerr
}

// alter runs one money-moving follow-up call. An unknown outcome is settled
// by one SearchTrade and is never retried. stateCode names a refusal for
// the trade's state in this operation's words (GMO's E11010002 "not
// executed, cannot change" is not_capturable on a capture, not_cancelable
// on a cancel).
func (p *Provider) alter(ctx context.Context, pay *normalize.Payment, api string, params []Param, want, stateCode string, done func(*normalize.Payment) bool) (*normalize.Payment, error) {
	r, err := p.c.call(ctx, api, params, write)
	if err != nil {
		if err.Code == "invalid_state" && stateCode != err.Code {
			ne := normalize.New(stateCode)
			ne.Provider, ne.ProviderCodes = err.Provider, err.ProviderCodes
			err = ne
		}
		if err.Uncertain {
			if after, _, serr := p.search(ctx, pay.OrderID); serr == nil && done(after) {
				keep(after, pay)
				return after, nil
			}
			pay.Status = normalize.StatusUnknown
			if err.Type != normalize.TypeProviderTimeout {
				err.Message += " The outcome is unknown and is being checked."
			}
		}
		err.Payment = pay
		return nil, err
	}
	pay.Status = want
	if job := jobOf(params); job != "" {
		pay.ProviderData["gmo_status"] = job
	}
	if v := r.Get("Approve"); v != "" {
		pay.ApprovalCode = v
	}
	if v := r.Get("TranID"); v != "" {
		pay.TransactionID = v
	}
	if v := r.Get("Forward"); v != "" {
		pay.Forward = v
	}
	pay.UpdatedAt = p.stamp()
	if t, ok := parseDate(r.Get("TranDate")); ok {
		pay.UpdatedAt = &t
	}
	return pay, nil
}

// stamp is the provider's clock as a payment timestamp (JST, seconds).
func (p *Provider) stamp() *time.Time {
	now := p.now()
	return normalize.Stamp(&now)
}

// jobOf is the JobCd a follow-up call sets, which becomes the trade status
// (ChangeTran's CAPTURE/AUTH keep it).
func jobOf(params []Param) string {
	for _, p := range params {
		if p.Key == "JobCd" {
			switch p.Value {
			case "SALES", "VOID", "RETURN", "RETURNX":
				return p.Value
			}
		}
	}
	return ""
}

func (p *Provider) stateError(code string, pay *normalize.Payment) *normalize.Error {
	return providers.StateError(p.Account(), code, pay)
}

func (p *Provider) invalid(param, code, en, ja string) *normalize.Error {
	e := normalize.Validation([]normalize.FieldError{normalize.Field(param, code, en, ja)})
	if code == "unsupported" {
		e = normalize.New("unsupported")
		e.Message, e.MessageJa = en, ja
		e.WithParam(param)
	}
	e.Provider = p.Account()
	return e
}
