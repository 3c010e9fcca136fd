package jpayment

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers"
)

// Provider is a j-payment account behind the unified API. j-payment has no
// query API, so follow-up operations act on the payment paynorm recorded
// (providers.Target.Known), which the caller owns; the provider never
// touches the store.
type Provider struct {
	c   *Client
	now func() time.Time
}

var _ providers.Provider = (*Provider)(nil)

// New wraps a client.
func New(c *Client) *Provider { return &Provider{c: c, now: time.Now} }

// SetClock replaces the clock (tests of the month rule of re-authorization).
func (p *Provider) SetClock(now func() time.Time) { p.now = now }

// NoQuery tells the caller that j-payment cannot be asked for a payment.
func (p *Provider) NoQuery() bool { return true }

// Account is the configured account name.
func (p *Provider) Account() string { return p.c.cfg.Account }

// Kind is "jpayment".
func (p *Provider) Kind() string { return "jpayment" }

// Breaker is the account's breaker state.
func (p *Provider) Breaker() string { return p.c.x.Guard.State() }

// AssignsKey tells the handler that j-payment names payments by gid, which
// exists only after the call: create records are kept apart from gids.
func (p *Provider) AssignsKey() bool { return true }

// MaxOrderID is the byte limit of cod.
const MaxOrderID = 50

// CreatePayment charges a CPToken token on gateway_token.aspx.
func (p *Provider) CreatePayment(ctx context.Context, req *normalize.CreatePayment) (*normalize.Payment, error) {
	if req.PaymentMethod.CustomerID != "" {
		return nil, p.unsupported("payment_method.customer_id", "j-payment has no stored cards for one-off payments; pay with a CPToken token.", "j-paymentでは登録カードによる決済はできません。カードトークンを指定してください。")
	}
	if in := req.Installments; in != nil && in.Plan != normalize.PlanLumpSum {
		return nil, p.unsupported("installments", "j-payment takes the installment plan from the card token (CPToken.TokenCreate md/pt), not from the payment request.", "j-paymentの支払方法・分割回数はカードトークン作成時(md/pt)に指定してください。")
	}
	if c := req.Customer; c == nil || (c.Email == "" && c.Phone == "") {
		e := normalize.Validation([]normalize.FieldError{normalize.Field("customer", "parameter_missing",
			"j-payment requires customer.email or customer.phone (at least one).", "j-paymentではメールアドレスまたは電話番号のどちらかが必須です。")})
		e.Provider = p.Account()
		return nil, e
	}
	if req.OrderID == "" {
		req.OrderID = normalize.NewOrderID(p.now())
	}
	if !normalize.ValidOrderID(req.OrderID, MaxOrderID) {
		e := normalize.Validation([]normalize.FieldError{normalize.Field("order_id", "invalid_order_id",
			"order_id must be 1 to 50 characters of A-Z, a-z, 0-9 and '-' for j-payment.", "j-paymentのオーダー番号は50文字以内の半角英数字とハイフンで指定してください。")})
		e.Provider = p.Account()
		return nil, e
	}
	if f := normalize.CheckMetadata("", req.Metadata); len(f) > 0 {
		e := normalize.Validation(f)
		e.Provider = p.Account()
		return nil, e
	}
	job := providers.JobFor(req.Capture)
	if job == "SAUTH" {
		return nil, p.unsupported("capture", "j-payment has no simple authorization (SAUTH).", "j-paymentでは簡易オーソリは利用できません。")
	}
	params := []Param{{"jb", job}, {"rt", "1"}, {"tkn", req.PaymentMethod.Token}, {"cod", req.OrderID}}
	params = appendContact(params, req.Customer)
	if job != "CHECK" {
		// The CHECK request of the token spec (有効性チェック, p.8) has no
		// am, tx or sf: it is a 0 yen check.
		params = append(params, Param{"am", itoa(req.Amount)}, Param{"tx", itoa(req.Tax)}, Param{"sf", itoa(req.Shipping)})
	}
	params = appendFreeData(params, req.Metadata)

	pay := normalize.NewPayment(p.Account(), "")
	// Until j-payment names the payment by its gid, it is the order's
	// record (providers.CreateRecordKey): the id an app can read it by.
	pay.ID, pay.OrderID = p.orderPaymentID(req.OrderID), req.OrderID
	pay.SetAmounts(req.Amount, req.Tax, req.Shipping)
	pay.Capture, pay.Metadata = req.Capture, req.Metadata
	pay.CreatedAt, pay.UpdatedAt = p.stamp(), p.stamp()

	res, err := p.c.call(ctx, "gateway_token", PathToken, params)
	if res != nil && res.GID != "" && res.GID != "0" {
		pay.ID = normalize.PaymentID(p.Account(), res.GID)
		p.fill(pay, res)
	}
	if err != nil {
		if err.Uncertain {
			// No query API exists: the payment stays unknown until a kickback
			// or the control panel tells. Never reported as failed.
			pay.Status = normalize.StatusUnknown
			err.Message += " j-payment has no query API: check the control panel for order " + req.OrderID + " (a kickback, when configured, settles it)."
			err.Retryable = false // retrying could charge twice
		} else if len(err.ProviderCodes) > 0 {
			pay.Status = normalize.StatusFailed // j-payment answered: nothing charged
		} else {
			return nil, err // never reached j-payment (not sent, limiter, breaker)
		}
		err.Payment = pay
		return nil, err
	}
	pay.Status = providers.StatusForJob(job)
	return pay, nil
}

// fill copies an answer's identifiers onto pay. The issued password (ps) is
// never kept.
func (p *Provider) fill(pay *normalize.Payment, res *Result) {
	pay.ApprovalCode = res.Ap
	pay.TransactionID = res.God
	pay.ProviderData["gid"] = res.GID
	if res.God != "" {
		pay.ProviderData["god"] = res.God
	}
	if res.Ec != "" {
		pay.ProviderData["ec"] = res.Ec
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// stamp is the provider's clock as a payment timestamp (JST, seconds).
func (p *Provider) stamp() *time.Time {
	now := p.now()
	return normalize.Stamp(&now)
}

// orderPaymentID is the id of a payment j-payment has not named yet: its
// order's record (a timeout, a refusal without a gid).
func (p *Provider) orderPaymentID(orderID string) string {
	return normalize.PaymentID(p.Account(), providers.CreateRecordKey(p, orderID))
}

// appendContact adds em/pn (one of them is required on gateway_token,
// both are optional on re_auth).
func appendContact(params []Param, c *normalize.CustomerInfo) []Param {
	if c == nil {
		return params
	}
	if c.Email != "" {
		params = append(params, Param{"em", c.Email})
	}
	if c.Phone != "" {
		params = append(params, Param{"pn", c.Phone})
	}
	return params
}

// appendFreeData adds metadata as その他データ: key=value pairs j-payment
// echoes in the answer's last field (seed 002, token spec ※3).
func appendFreeData(params []Param, md map[string]string) []Param {
	for _, k := range normalize.ClientFieldKeys {
		if v, ok := md[k]; ok {
			params = append(params, Param{k, v})
		}
	}
	return params
}

// checkFollowUp validates what a follow-up adds to its call: customer
// contact (re_auth) and metadata (free data).
func (p *Provider) checkFollowUp(c *normalize.CustomerInfo, md map[string]string) *normalize.Error {
	f := normalize.CheckMetadata("", md)
	f = append(f, normalize.CheckCustomer(c)...)
	if len(f) == 0 {
		return nil
	}
	e := normalize.Validation(f)
	e.Provider = p.Account()
	return e
}

// known is the recorded payment a follow-up acts on.
func (p *Provider) known(t providers.Target) (*normalize.Payment, *normalize.Error) {
	if t.Known == nil {
		e := normalize.Newf("resource_missing", "No payment %q is known to paynorm for this j-payment account (j-payment has no query API; paynorm answers from its own records).", normalize.PaymentID(p.Account(), t.Key))
		e.Provider = p.Account()
		return nil, e.WithParam("id")
	}
	return t.Known.Copy(), nil
}

// GetPayment is not possible: j-payment has no query API. The caller
// answers from its own record.
func (p *Provider) GetPayment(context.Context, string) (*normalize.Payment, error) {
	return nil, providers.Unsupported(p.Account(), "querying payments (j-payment has no query API)")
}

// Capture runs gateway.aspx jb=SALES on an authorization (実売上).
func (p *Provider) Capture(ctx context.Context, t providers.Target, req *normalize.CaptureRequest) (*normalize.Payment, error) {
	pay, lerr := p.known(t)
	if lerr != nil {
		return nil, lerr
	}
	if cerr := providers.CheckCapturable(p.Account(), "j-payment", pay, req); cerr != nil {
		return nil, cerr
	}
	if verr := p.checkFollowUp(nil, req.Metadata); verr != nil {
		return nil, verr
	}
	return p.job(ctx, pay, t.Key, "SALES", normalize.StatusCaptured, req.Metadata)
}

// Cancel runs gateway.aspx jb=CANCEL: a void of an authorization or a
// refund of a sale.
func (p *Provider) Cancel(ctx context.Context, t providers.Target) (*normalize.Payment, error) {
	pay, lerr := p.known(t)
	if lerr != nil {
		return nil, lerr
	}
	want := normalize.StatusVoided
	switch pay.Status {
	case normalize.StatusAuthorized:
	case normalize.StatusCaptured:
		want = normalize.StatusRefunded
	default:
		return nil, p.stateError("not_cancelable", pay)
	}
	// The unified cancel takes no body, so CANCEL carries no free data.
	return p.job(ctx, pay, t.Key, "CANCEL", want, nil)
}

// job runs one follow-up job on gateway.aspx. No query API exists, so an
// unknown outcome leaves the record's confirmed status and names the
// unconfirmed operation; it is never retried.
func (p *Provider) job(ctx context.Context, pay *normalize.Payment, gid, jb, want string, md map[string]string) (*normalize.Payment, error) {
	_, err := p.c.call(ctx, jb, PathGateway, appendFreeData([]Param{{"jb", jb}, {"rt", "1"}, {"tid", gid}}, md))
	if err != nil {
		if err.Uncertain {
			out := *pay
			out.Status = normalize.StatusUnknown
			refusal := "ER033"
			if jb == "SALES" {
				refusal = "ER032"
			}
			err.Message += " The outcome of " + jb + " is unknown: check the j-payment control panel before repeating it (a repeated " + jb + " of one that went through is refused with " + refusal + ")."
			err.Retryable = false
			err.Payment = &out
			return nil, err
		}
		err.Payment = pay
		return nil, err
	}
	pay.Status = want
	pay.ProviderData["jpayment_job"] = jb
	pay.UpdatedAt = p.stamp()
	return pay, nil
}

// ReauthWindowOK reports whether a payment made at created may be
// re-authorized at now: only payments of this or the previous month, in
// Japan time (seed 002).
func ReauthWindowOK(created, now time.Time) bool {
	c, n := created.In(normalize.JST), now.In(normalize.JST)
	months := (n.Year()-c.Year())*12 + int(n.Month()) - int(c.Month())
	return months == 0 || months == 1
}

// Reauthorize runs re_auth.aspx: j-payment cancels the payment and charges
// the new amount again (seed 002: 対象の決済の取消を行い、金額を訂正して決済を
// する), which gives a new gid and so a new payment id. The answer is the
// new payment; the old record points to it.
//
// The new authorization can be declined although the original succeeded
// (seed 002). The spec's order (cancel first, then authorize) implies the
// original is then canceled: the error carries the original as voided (an
// authorization) or refunded (a sale), for the caller to record. An ER code
// that may come after the cancel (ER000, ER030, ER042) leaves the original
// unknown; any other ER code refused the request before anything was done.
func (p *Provider) Reauthorize(ctx context.Context, t providers.Target, req *normalize.Reauthorize) (*normalize.Payment, error) {
	key := t.Key
	pay, lerr := p.known(t)
	if lerr != nil {
		return nil, lerr
	}
	if pay.Status != normalize.StatusAuthorized && pay.Status != normalize.StatusCaptured {
		return nil, p.stateError("invalid_state", pay)
	}
	if pay.CreatedAt != nil && !ReauthWindowOK(*pay.CreatedAt, p.now()) {
		e := normalize.Newf("refund_window_passed", "j-payment re-authorizes only payments of this or last month (JST); this one was made %s.", pay.CreatedAt.In(normalize.JST).Format("2006-01-02"))
		e.Provider, e.Payment = p.Account(), pay
		return nil, e
	}
	if verr := p.checkFollowUp(req.Customer, req.Metadata); verr != nil {
		return nil, verr
	}
	params := []Param{{"rt", "1"}, {"tid", key}, {"am", itoa(req.Amount)}, {"tx", itoa(req.Tax)}, {"sf", itoa(req.Shipping)}}
	params = appendFreeData(appendContact(params, req.Customer), req.Metadata)
	res, err := p.c.call(ctx, "re_auth", PathReauth, params)
	if err != nil {
		out := pay.Copy()
		switch reauthRefusal(res, err) {
		case originalUnknown:
			out.Status = normalize.StatusUnknown
			if err.Uncertain {
				err.Message += " The re-authorization's outcome is unknown: check the j-payment control panel before trying again."
			} else {
				err.Message += " j-payment's re-authorization cancels the original payment before authorizing again (seed 002), and this answer does not say how far it got: check gid " + key + " in the j-payment control panel before capturing or canceling it."
			}
			err.Retryable = false
		case originalCanceled:
			out.Status = normalize.StatusVoided
			if pay.Status == normalize.StatusCaptured {
				out.Status = normalize.StatusRefunded
			}
			out.ProviderData["reauthorization_declined"] = true
			if res != nil && res.GID != "" && res.GID != "0" {
				out.ProviderData["reauthorization_gid"] = res.GID
			}
			out.UpdatedAt = p.stamp()
			err.Message += " j-payment's re-authorization cancels the original payment before authorizing the new amount (seed 002), so gid " + key + " is reported " + out.Status + " and nothing is authorized now; verify in the j-payment control panel, and create a new payment to charge again."
			err.MessageJa += " 再オーソリは元の決済を取消してから与信を行うため(再オーソリ仕様)、元の決済は取消済みとして扱います。管理画面でご確認のうえ、改めて決済を作成してください。"
		default:
			out = pay // refused before anything was done
		}
		err.Payment = out
		return nil, err
	}
	if res.GID == "" || res.GID == "0" {
		e := normalize.Newf("invalid_response", "j-payment's re-authorization answer carries no payment number.")
		e.Provider, e.Payment = p.Account(), pay
		return nil, e
	}
	next := normalize.NewPayment(p.Account(), res.GID)
	next.OrderID = pay.OrderID
	next.SetAmounts(req.Amount, req.Tax, req.Shipping)
	next.Status, next.Capture, next.Card = pay.Status, pay.Capture, pay.Card
	next.Metadata = pay.Metadata
	if req.Metadata != nil {
		next.Metadata = req.Metadata
	}
	next.CreatedAt, next.UpdatedAt = p.stamp(), p.stamp()
	p.fill(next, res)
	next.ProviderData["replaces"] = pay.ID
	return next, nil
}

// What a refused re-authorization says about the original payment.
const (
	originalUnchanged = iota // refused before anything was done
	originalCanceled         // the new authorization was declined
	originalUnknown          // no answer, or an error that may follow the cancel
)

// reauthUncertainER are the ER codes a re-authorization may give after its
// cancel step: an internal exception, a payment failure without a reason,
// a communication error. Every other ER code is a refusal of the request
// itself (parameters, source IP, shop, maintenance...).
var reauthUncertainER = map[string]bool{"ER000": true, "ER030": true, "ER042": true}

func reauthRefusal(res *Result, err *normalize.Error) int {
	if err.Uncertain {
		return originalUnknown
	}
	code := ""
	if len(err.ProviderCodes) > 0 {
		code = err.ProviderCodes[0].Code
	}
	switch {
	case strings.HasPrefix(code, "ER") && reauthUncertainER[code]:
		return originalUnknown
	case strings.HasPrefix(code, "ER"):
		return originalUnchanged
	case res != nil && res.Rst == "2":
		return originalCanceled // the card company refused the new authorization
	}
	return originalUnchanged
}

func (p *Provider) stateError(code string, pay *normalize.Payment) *normalize.Error {
	return providers.StateError(p.Account(), code, pay)
}

func (p *Provider) unsupported(param, en, ja string) *normalize.Error {
	e := normalize.New("unsupported")
	e.Message, e.MessageJa = en, ja
	e.Provider = p.Account()
	return e.WithParam(param)
}
