package normalize

import (
	"encoding/json"
	"time"
)

// Payment statuses of the unified API.
const (
	StatusPending    = "pending"
	StatusVerified   = "verified"
	StatusAuthorized = "authorized"
	StatusCaptured   = "captured"
	StatusVoided     = "voided"
	StatusRefunded   = "refunded"
	StatusFailed     = "failed"
	// StatusUnknown means the request reached the provider and no answer came
	// back; paynorm never reports such a payment as failed.
	StatusUnknown = "unknown"
)

// Capture modes of a create-payment request.
const (
	CaptureAutomatic = "automatic" // 即時売上
	CaptureManual    = "manual"    // 仮売上
	CaptureVerify    = "verify"    // 有効性チェック
	// CaptureSimpleAuth is GMO's SAUTH (簡易オーソリ), a job code of the
	// IVR's AuthRegistApi (seed 001). It reads back as an authorization
	// (GMO SearchTrade status SAUTH); phone authorizations only.
	CaptureSimpleAuth = "simple_authorization"
)

// Installment plans.
const (
	PlanLumpSum      = "lump_sum"
	PlanInstallments = "installments"
	PlanBonus        = "bonus" // ボーナス一括 (GMO Method 3)
	PlanRevolving    = "revolving"
	// PlanBonusInstallments is ボーナス分割 (GMO Method 4) with a count,
	// where the merchant contract allows it (card API only: the IVR dropped
	// it in its spec 1.01).
	PlanBonusInstallments = "bonus_installments"
)

// PaymentMethod is either a one-time card token or a stored card.
type PaymentMethod struct {
	Token      string `json:"token,omitempty"`
	CustomerID string `json:"customer_id,omitempty"`
	CardSeq    *int   `json:"card_seq,omitempty"`
	// SecurityCode may accompany a stored card for a CVC re-check.
	SecurityCode string `json:"security_code,omitempty"`
}

// Installments selects the payment plan (支払方法) and count (支払回数).
type Installments struct {
	Plan  string `json:"plan"`
	Count int    `json:"count,omitempty"`
}

// CustomerInfo is contact data some providers require (j-payment em/pn).
type CustomerInfo struct {
	Email string `json:"email,omitempty"`
	Phone string `json:"phone,omitempty"`
}

// CreatePayment is the body of POST /v1/payments.
type CreatePayment struct {
	Provider      string            `json:"provider,omitempty"`
	OrderID       string            `json:"order_id,omitempty"`
	Amount        int64             `json:"amount"`
	Tax           int64             `json:"tax,omitempty"`
	Shipping      int64             `json:"shipping,omitempty"`
	Capture       string            `json:"capture,omitempty"`
	PaymentMethod PaymentMethod     `json:"payment_method"`
	Installments  *Installments     `json:"installments,omitempty"`
	Customer      *CustomerInfo     `json:"customer,omitempty"`
	Metadata      map[string]string `json:"metadata,omitempty"`
	// ThreeDSecure is "required", "attempt" or "off" ("" = the account's
	// default); ReturnURL is where the card holder's browser comes back.
	ThreeDSecure string `json:"three_d_secure,omitempty"`
	ReturnURL    string `json:"return_url,omitempty"`
}

// Capture is the body of POST /v1/payments/{id}/capture. An empty amount
// captures the authorized amount.
type CaptureRequest struct {
	Amount *int64 `json:"amount,omitempty"`
	// Metadata goes with the capture as j-payment free data (seed 002: その他
	// データ on SALES); GMO's AlterTran has no such field.
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Reauthorize is the body of POST /v1/payments/{id}/reauthorize.
type Reauthorize struct {
	Amount   int64 `json:"amount"`
	Tax      int64 `json:"tax,omitempty"`
	Shipping int64 `json:"shipping,omitempty"`
	// Customer and Metadata are sent with j-payment's re-authorization
	// (seed 002: em, pn and その他データ of re_auth.aspx); GMO's ChangeTran
	// takes neither.
	Customer *CustomerInfo     `json:"customer,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Card is what paynorm shows of a card: never the full number.
type Card struct {
	MaskedNumber string `json:"masked_number,omitempty"`
	Brand        string `json:"brand,omitempty"`
	Expiry       string `json:"expiry,omitempty"`
}

// Payment is the object every payment endpoint answers with.
type Payment struct {
	ID            string            `json:"id"`
	Object        string            `json:"object"`
	Provider      string            `json:"provider"`
	OrderID       string            `json:"order_id"`
	Status        string            `json:"status"`
	Amount        int64             `json:"amount"`
	Tax           int64             `json:"tax"`
	Shipping      int64             `json:"shipping"`
	Total         int64             `json:"total"`
	Capture       string            `json:"capture,omitempty"`
	ApprovalCode  string            `json:"approval_code,omitempty"`
	TransactionID string            `json:"transaction_id,omitempty"`
	Forward       string            `json:"forward,omitempty"`
	Card          *Card             `json:"card,omitempty"`
	Installments  *Installments     `json:"installments,omitempty"`
	Metadata      map[string]string `json:"metadata,omitempty"`
	CreatedAt     *time.Time        `json:"created_at,omitempty"`
	UpdatedAt     *time.Time        `json:"updated_at,omitempty"`
	// NextAction is set while the status is requires_action.
	NextAction   *NextAction    `json:"next_action,omitempty"`
	ProviderData map[string]any `json:"provider_data"`
}

// NewPayment fills the constant parts of a payment object.
func NewPayment(account, orderID string) *Payment {
	return &Payment{ID: PaymentID(account, orderID), Object: "payment", Provider: account,
		OrderID: orderID, ProviderData: map[string]any{}}
}

// MarshalJSON writes the timestamps in one format for every provider and
// path: RFC 3339 in Japan time, whole seconds (providers' own dates have
// seconds; paynorm's clock has nanoseconds, which apps must not see vary).
func (p Payment) MarshalJSON() ([]byte, error) {
	type plain Payment
	q := plain(p)
	q.CreatedAt, q.UpdatedAt = Stamp(p.CreatedAt), Stamp(p.UpdatedAt)
	return json.Marshal(q)
}

// Stamp is t in Japan time truncated to the second (nil stays nil).
func Stamp(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	s := t.In(JST).Truncate(time.Second)
	return &s
}

// SetAmounts sets amount, tax, shipping and the derived total.
func (p *Payment) SetAmounts(amount, tax, shipping int64) {
	p.Amount, p.Tax, p.Shipping, p.Total = amount, tax, shipping, amount+tax+shipping
}

// Copy returns a copy whose provider_data may be changed without touching
// the original's.
func (p *Payment) Copy() *Payment {
	c := *p
	c.ProviderData = make(map[string]any, len(p.ProviderData))
	for k, v := range p.ProviderData {
		c.ProviderData[k] = v
	}
	return &c
}
