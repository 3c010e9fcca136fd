package jpayment

import (
	"context"
	"strconv"
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
	job := providers.JobFor(req.Capture)
	params := []Param{{"jb", job}, {"rt", "1"}, {"tkn", req.PaymentMethod.Token}, {"cod", req.OrderID}}
	if req.Customer.Email != "" {
		params = append(params, Param{"em", req.Customer.Email})
	}
	if req.Customer.Phone != "" {
		params = append(params, Param{"pn", req.Customer.Phone})
	}
	params = append(params, Param{"am", itoa(req.Amount)}, Param{"tx", itoa(req.Tax)}, Param{"sf", itoa(req.Shipping)})
	for _, k := range []string{"client_field_1", "client_field_2", "client_field_3"} {
		if v, ok := req.Metadata[k]; ok {
			params = append(params, Param{k, v}) // free data, echoed back
		}
	}

	pay := normalize.NewPayment(p.Account(), "")
	pay.ID, pay.OrderID = "", req.OrderID
	pay.SetAmounts(req.Amount, req.Tax, req.Shipping)
	pay.Capture, pay.Metadata = req.Capture, req.Metadata
	now := p.now().In(normalize.JST)
	pay.CreatedAt, pay.UpdatedAt = &now, &now

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

// known is the recorded payment a follow-up acts on.
func (p *Provider) known(t providers.Target) (*normalize.Payment, *normalize.Error) {
	if t.Known == nil {
		e := normalize.Newf("resource_missing", "No payment %q is known to paynorm for this j-payment account (j-payment has no query API; paynorm answers from its own records).", normalize.PaymentID(p.Account(), t.Key))
		e.Provider = p.Account()
		return nil, e.WithParam("id")
	}
	pay := *t.Known
	pay.ProviderData = map[string]any{}
	for k, v := range t.Known.ProviderData {
		pay.ProviderData[k] = v
	}
	return &pay, nil
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
	return p.job(ctx, pay, t.Key, "SALES", normalize.StatusCaptured)
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
	return p.job(ctx, pay, t.Key, "CANCEL", want)
}

// job runs one follow-up job on gateway.aspx. No query API exists, so an
// unknown outcome leaves the record's confirmed status and names the
// unconfirmed operation; it is never retried.
func (p *Provider) job(ctx context.Context, pay *normalize.Payment, gid, jb, want string) (*normalize.Payment, error) {
	_, err := p.c.call(ctx, jb, PathGateway, []Param{{"jb", jb}, {"rt", "1"}, {"tid", gid}})
	if err != nil {
		if err.Uncertain {
			out := *pay
			out.Status = normalize.StatusUnknown
			err.Message += " The outcome of " + jb + " is unknown: check the j-payment control panel, or repeat the operation (j-payment refuses a second SALES with ER032 and a second CANCEL with ER033)."
			err.Retryable = false
			err.Payment = &out
			return nil, err
		}
		err.Payment = pay
		return nil, err
	}
	pay.Status = want
	pay.ProviderData["jpayment_job"] = jb
	now := p.now().In(normalize.JST)
	pay.UpdatedAt = &now
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
// the new amount again, which gives a new gid and so a new payment id. The
// answer is the new payment; the old record points to it.
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
	params := []Param{{"rt", "1"}, {"tid", key}, {"am", itoa(req.Amount)}, {"tx", itoa(req.Tax)}, {"sf", itoa(req.Shipping)}}
	res, err := p.c.call(ctx, "re_auth", PathReauth, params)
	if err != nil {
		if err.Uncertain {
			out := *pay
			out.Status = normalize.StatusUnknown
			err.Message += " The re-authorization's outcome is unknown: check the j-payment control panel before trying again."
			err.Retryable = false
			err.Payment = &out
			return nil, err
		}
		if err.Type == normalize.TypeCard {
			// A new authorization is made, so it can be declined although the
			// original succeeded.
			err.Message += " The re-authorization was declined; paynorm did not change the original payment."
		}
		err.Payment = pay
		return nil, err
	}
	if res.GID == "" || res.GID == "0" {
		e := normalize.Newf("invalid_response", "j-payment's re-authorization answer carries no payment number.")
		e.Provider, e.Payment = p.Account(), pay
		return nil, e
	}
	now := p.now().In(normalize.JST)
	next := normalize.NewPayment(p.Account(), res.GID)
	next.OrderID = pay.OrderID
	next.SetAmounts(req.Amount, req.Tax, req.Shipping)
	next.Status, next.Capture, next.Metadata, next.Card = pay.Status, pay.Capture, pay.Metadata, pay.Card
	next.CreatedAt, next.UpdatedAt = &now, &now
	p.fill(next, res)
	next.ProviderData["replaces"] = pay.ID
	return next, nil
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
