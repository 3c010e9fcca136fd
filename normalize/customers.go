package normalize

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// Customer is a member stored at the provider (GMO 会員). Its id is the
// provider's own member id, so payment_method.customer_id takes it as is.
type Customer struct {
	ID       string `json:"id"`
	Object   string `json:"object"`
	Provider string `json:"provider"`
	Name     string `json:"name,omitempty"`
	// Cards are the customer's stored cards (GET only).
	Cards   []StoredCard `json:"cards,omitempty"`
	Deleted bool         `json:"deleted,omitempty"`
}

// StoredCard is one card kept at the provider. It never holds the full
// number: GMO itself answers masked numbers only.
type StoredCard struct {
	Object       string `json:"object"`
	CustomerID   string `json:"customer_id"`
	Provider     string `json:"provider"`
	Seq          int    `json:"seq"`
	MaskedNumber string `json:"masked_number,omitempty"`
	Brand        string `json:"brand,omitempty"`
	// ExpiryMonth and ExpiryYear are two digits each ("10", "25").
	ExpiryMonth string `json:"expiry_month,omitempty"`
	ExpiryYear  string `json:"expiry_year,omitempty"`
	HolderName  string `json:"holder_name,omitempty"`
	CardName    string `json:"card_name,omitempty"`
	Default     bool   `json:"default"`
	Deleted     bool   `json:"deleted,omitempty"`
}

// CreateCustomer is the body of POST /v1/customers.
type CreateCustomer struct {
	Provider string `json:"provider,omitempty"`
	// ID is the member id; paynorm makes one when it is absent.
	ID   string `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
}

// AddCard is the body of POST /v1/customers/{id}/cards (seed 003): a token
// from the provider's JavaScript, never a card number, or the id of an
// earlier payment whose card is to be kept (GMO TradedCard).
type AddCard struct {
	Provider   string `json:"provider,omitempty"`
	Token      string `json:"token,omitempty"`
	PaymentID  string `json:"payment_id,omitempty"`
	HolderName string `json:"holder_name,omitempty"`
	// MaskedNumber is the masked number getToken returned; it only names the
	// brand when the provider does not.
	MaskedNumber string `json:"masked_number,omitempty"`
	ExpiryMonth  string `json:"expiry_month,omitempty"`
	ExpiryYear   string `json:"expiry_year,omitempty"`
	CardName     string `json:"card_name,omitempty"`
	Default      bool   `json:"default,omitempty"`
}

// NewCustomerID makes a member id: "cus-" + 16 hex characters.
func NewCustomerID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "cus-" + hex.EncodeToString(b[:])
}

// ValidCustomerID reports whether s is a usable member id: 1..60 characters
// of A-Z a-z 0-9 - _ . @ (GMO's member id alphabet).
func ValidCustomerID(s string) bool { return validMemberID(s) }

// DecodeCreateCustomer decodes and validates POST /v1/customers.
func DecodeCreateCustomer(body []byte) (*CreateCustomer, *Error) {
	var r CreateCustomer
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := Decode(body, &r); err != nil {
			return nil, err
		}
	}
	var f []FieldError
	if r.ID != "" && !validMemberID(r.ID) {
		f = append(f, Field("id", "parameter_invalid", "id may contain only A-Z, a-z, 0-9, '-', '_', '.', '@' and at most 60 characters.", "会員IDは60文字以内の半角英数字と記号(-_.@)で指定してください。"))
	}
	if e := CheckMemberName("name", r.Name); e != nil {
		f = append(f, *e)
	}
	if err := Validation(f); err != nil {
		return nil, err
	}
	return &r, nil
}

// DecodeAddCard decodes and validates POST /v1/customers/{id}/cards with the
// rules of seed 003: token, holder name and a two-digit expiry month and
// year required, and no full card number.
func DecodeAddCard(body []byte) (*AddCard, *Error) {
	var r AddCard
	if err := Decode(body, &r); err != nil {
		return nil, err
	}
	var f []FieldError
	switch {
	case r.Token != "" && r.PaymentID != "":
		f = append(f, Field("token", "parameter_invalid", "Give either token or payment_id, not both.", "カードトークンと決済IDは同時に指定できません。"))
	case r.PaymentID != "":
		if _, key, ok := SplitPaymentID(r.PaymentID); !ok || !ValidOrderID(key, 50) {
			f = append(f, Field("payment_id", "parameter_invalid", "payment_id must be the id of a payment (<account>_<order id>).", "決済IDの形式が正しくありません。"))
		}
	case r.Token == "":
		f = append(f, Field("token", "parameter_missing", "token is required: the card token from the provider's JavaScript (getToken).", "カードトークンは必須項目です。"))
	case len(r.Token) > 1024 || strings.ContainsAny(r.Token, " \t\r\n&="):
		f = append(f, Field("token", "parameter_invalid", "token is malformed.", "カードトークンの形式が正しくありません。"))
	}
	switch h := r.HolderName; {
	case strings.TrimSpace(h) == "" && r.PaymentID == "":
		f = append(f, Field("holder_name", "parameter_missing", "holder_name is required.", "カード名義人は必須項目です。"))
	case h != "" && (len(h) > 50 || !holderChars(h)):
		f = append(f, Field("holder_name", "parameter_invalid", "holder_name is at most 50 characters of A-Z, a-z, 0-9, space and , - . /", "カード名義人は50文字以内の半角英数字・空白・記号(, - . /)で指定してください。"))
	}
	if n := r.MaskedNumber; n != "" {
		switch {
		case !strings.Contains(n, "*"):
			// A full number must never reach paynorm (PCI DSS scope).
			f = append(f, Field("masked_number", "parameter_invalid", "masked_number must be the masked number from getToken, never the full card number.", "カード番号はマスクされた番号(getTokenの戻り値)を指定してください。"))
		case len(n) < 10 || len(n) > 19 || strings.Trim(n, "0123456789*") != "":
			f = append(f, Field("masked_number", "parameter_invalid", "masked_number must be 10 to 19 digits and '*'.", "カード番号の形式が正しくありません。"))
		}
	}
	// Seed 003 requires both (digits:2 each) with a token; a card kept from
	// a payment (payment_id) has GMO's own expiry.
	switch {
	case r.Token != "" && r.ExpiryMonth == "":
		f = append(f, Field("expiry_month", "parameter_missing", "expiry_month is required: two digits, 01 to 12.", "カード有効期限(月)は必須項目です。"))
	case r.PaymentID != "" && (r.ExpiryMonth == "") != (r.ExpiryYear == ""):
		f = append(f, Field("expiry_month", "parameter_missing", "Give expiry_month and expiry_year together.", "有効期限は月と年の両方を指定してください。"))
	}
	if r.Token != "" && r.ExpiryYear == "" {
		f = append(f, Field("expiry_year", "parameter_missing", "expiry_year is required: two digits.", "カード有効期限(年)は必須項目です。"))
	}
	if m := r.ExpiryMonth; m != "" && (!Digits(m, 2, 2) || m < "01" || m > "12") {
		f = append(f, Field("expiry_month", "parameter_invalid", "expiry_month must be two digits from 01 to 12.", "有効期限(月)は01から12の2桁で指定してください。"))
	}
	if y := r.ExpiryYear; y != "" && !Digits(y, 2, 2) {
		f = append(f, Field("expiry_year", "parameter_invalid", "expiry_year must be two digits.", "有効期限(年)は2桁の数字で指定してください。"))
	}
	if e := CheckCardName("card_name", r.CardName); e != nil {
		f = append(f, *e)
	}
	if err := Validation(f); err != nil {
		return nil, err
	}
	return &r, nil
}

// holderChars is GMO's 名義人 alphabet: ASCII letters, digits, space and
// , - . /
func holderChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(" ,-./", c) >= 0) {
			return false
		}
	}
	return true
}

// SplitExpiry turns GMO's YYMM into two-digit month and year.
func SplitExpiry(yymm string) (month, year string) {
	if !Digits(yymm, 4, 4) {
		return "", ""
	}
	return yymm[2:], yymm[:2]
}
