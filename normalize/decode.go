package normalize

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxAmount is the largest amount, tax or shipping in yen any provider takes
// (GMO: 7 digits).
const MaxAmount = 9_999_999

// Decode parses a JSON request body strictly into v: valid UTF-8, one JSON
// object, no unknown fields, no trailing data. Type errors name the field.
func Decode(body []byte, v any) *Error {
	if !utf8.Valid(body) {
		return New("invalid_encoding")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return Newf("invalid_json", "The request body is empty; a JSON object is required.")
	}
	if k := duplicateKey(body); k != "" {
		e := Newf("parameter_duplicate", "The request body names %q more than once (keys are compared without case, as the decoder matches them).", k)
		e.MessageJa = "項目 " + k + " が複数回指定されています(大文字・小文字は区別しません)。"
		return e.WithParam(k)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Newf("invalid_json", "The request body has data after the JSON object.")
	}
	return nil
}

// duplicateKey returns the first key that appears twice in one object of
// body, keys compared the way encoding/json matches them to fields (Unicode
// simple case folding): {"AMOUNT":5000,"amount":7} decodes as amount 7 (the
// last wins) while a fingerprint sees two keys, so the same Idempotency-Key
// with the keys swapped would replay an answer for another amount. Such a
// body is refused instead. Syntax errors are left to the decoder.
func duplicateKey(body []byte) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type frame struct {
		seen    map[string]bool // nil for an array
		wantKey bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		if n := len(stack); n > 0 && stack[n-1].seen != nil && stack[n-1].wantKey {
			if k, ok := tok.(string); ok {
				top, f := stack[n-1], foldKey(k)
				if top.seen[f] {
					return k
				}
				top.seen[f], top.wantKey = true, false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{seen: map[string]bool{}, wantKey: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) == 0 {
			return "" // the top-level value is complete
		}
		if top := stack[len(stack)-1]; top.seen != nil {
			top.wantKey = true // a member's value ended: a key comes next
		}
	}
}

// foldKey maps s onto one representative of its case-folding class: every
// rune becomes the smallest rune of its simple-folding orbit (k, K and the
// Kelvin sign all become K), so two keys encoding/json would match to the
// same field fold to the same string.
func foldKey(s string) string {
	var b strings.Builder
	for _, r := range s {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		b.WriteRune(m)
	}
	return b.String()
}

func jsonError(err error) *Error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return Newf("invalid_json", "The request body must be a JSON object.")
		}
		e := Newf("parameter_invalid", "%s must be of type %s, not %s.", field, jsonKind(te.Type.Kind().String()), te.Value)
		e.MessageJa = field + "の型が正しくありません。"
		return e.WithParam(field)
	case errors.As(err, &se):
		return Newf("invalid_json", "The request body is not valid JSON (at byte %d).", se.Offset)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		e := Newf("parameter_unknown", "Unknown parameter %q.", field)
		e.MessageJa = "不明な項目 " + field + " が含まれています。"
		return e.WithParam(field)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return Newf("invalid_json", "The request body ends before the JSON object does.")
	}
	return Newf("invalid_json", "The request body is not valid JSON.")
}

func jsonKind(k string) string {
	switch k {
	case "int64", "int", "int32":
		return "integer"
	case "map", "struct":
		return "object"
	case "slice":
		return "array"
	}
	return k
}

// DecodeCreatePayment decodes and validates POST /v1/payments.
func DecodeCreatePayment(body []byte) (*CreatePayment, *Error) {
	var r CreatePayment
	if err := Decode(body, &r); err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Validate applies the provider-independent rules and fills defaults.
func (r *CreatePayment) Validate() *Error {
	f := checkCapture("", &r.Capture, r.Amount, r.Tax, r.Shipping)
	if r.OrderID != "" && !ValidOrderID(r.OrderID, 50) {
		f = append(f, Field("order_id", "invalid_order_id", "order_id may contain only A-Z, a-z, 0-9 and '-'.", "オーダーIDは半角英数字とハイフンのみ使用できます。"))
	}
	pm := r.PaymentMethod
	switch {
	case pm.Token != "" && (pm.CustomerID != "" || pm.CardSeq != nil):
		f = append(f, Field("payment_method", "parameter_invalid", "Give either payment_method.token or payment_method.customer_id with card_seq, not both.", "トークンと登録カードは同時に指定できません。"))
	case pm.Token != "":
		if !CardTokenOK(pm.Token) {
			f = append(f, Field("payment_method.token", "parameter_invalid", "payment_method.token is malformed.", "カードトークンの形式が正しくありません。"))
		}
	case pm.CustomerID != "":
		if !validMemberID(pm.CustomerID) {
			f = append(f, Field("payment_method.customer_id", "parameter_invalid", "customer_id may contain only A-Z, a-z, 0-9, '-', '_', '.', '@' and at most 60 characters.", "会員IDの形式が正しくありません。"))
		}
		if pm.CardSeq == nil {
			f = append(f, Field("payment_method.card_seq", "parameter_missing", "payment_method.card_seq is required with customer_id.", "カード登録連番を指定してください。"))
		} else if *pm.CardSeq < 0 || *pm.CardSeq > 9999 {
			f = append(f, Field("payment_method.card_seq", "parameter_invalid", "card_seq must be between 0 and 9999.", "カード登録連番は0から9999の数字で指定してください。"))
		}
	default:
		f = append(f, Field("payment_method", "parameter_missing", "payment_method needs a token, or a customer_id with a card_seq.", "カードトークンまたは登録カードを指定してください。"))
	}
	if pm.SecurityCode != "" && !Digits(pm.SecurityCode, 3, 4) {
		f = append(f, Field("payment_method.security_code", "parameter_invalid", "security_code must be 3 or 4 digits.", "セキュリティコードは3桁または4桁の数字で指定してください。"))
	}
	f = append(f, r.validateInstallments()...)
	if c := r.Customer; c != nil {
		if c.Email != "" && (len(c.Email) > 254 || !strings.Contains(c.Email, "@") || strings.ContainsAny(c.Email, " ,&=")) {
			f = append(f, Field("customer.email", "parameter_invalid", "customer.email is not a valid address.", "メールアドレスの形式が正しくありません。"))
		}
		if c.Phone != "" && !Digits(c.Phone, 1, 15) {
			f = append(f, Field("customer.phone", "parameter_invalid", "customer.phone must be 1 to 15 digits without hyphens.", "電話番号はハイフンなしの15桁以内の数字で指定してください。"))
		}
	}
	for k, v := range r.Metadata {
		if k != "client_field_1" && k != "client_field_2" && k != "client_field_3" {
			f = append(f, Field("metadata."+k, "parameter_unknown", "metadata accepts client_field_1, client_field_2 and client_field_3.", "metadataにはclient_field_1〜3のみ指定できます。"))
			continue
		}
		if e := CheckClientField("metadata."+k, v); e != nil { // GMO's 加盟店自由項目 rule (text.go)
			f = append(f, *e)
		}
	}
	return Validation(f)
}

func (r *CreatePayment) validateInstallments() []FieldError {
	in := r.Installments
	if in == nil {
		return nil
	}
	switch in.Plan {
	case PlanLumpSum, PlanBonus, "":
		if in.Count > 1 {
			return []FieldError{Field("installments.count", "parameter_invalid", "installments.count is only used with the installments plan.", "支払回数は分割払いの場合のみ指定できます。")}
		}
	case PlanInstallments, PlanBonusInstallments:
		if in.Count < 2 || in.Count > 99 {
			return []FieldError{Field("installments.count", "parameter_invalid", "installments.count must be between 2 and 99.", "分割回数は2から99の間で指定してください。")}
		}
	case PlanRevolving:
	default:
		return []FieldError{Field("installments.plan", "parameter_invalid", "installments.plan must be lump_sum, installments, bonus or revolving.", "支払方法にはlump_sum、installments、bonus、revolvingのいずれかを指定してください。")}
	}
	if in.Plan == "" {
		in.Plan = PlanLumpSum
	}
	return nil
}

// checkCapture defaults the capture mode and checks it with the amounts it
// needs (>= 1 yen to charge, exactly 0 to verify). prefix names the object
// the fields sit in ("" or "authorize.").
func checkCapture(prefix string, capture *string, amount, tax, shipping int64) []FieldError {
	var f []FieldError
	if *capture == "" {
		*capture = CaptureAutomatic
	}
	switch *capture {
	case CaptureAutomatic, CaptureManual:
		if amount < 1 {
			f = append(f, Field(prefix+"amount", "invalid_amount", prefix+"amount must be an integer of at least 1 yen.", "金額は1円以上の整数で指定してください。"))
		}
	case CaptureVerify:
		if amount != 0 || tax != 0 || shipping != 0 {
			f = append(f, Field(prefix+"amount", "invalid_amount", "A verify request has amount 0 and no tax or shipping.", "有効性チェックでは金額は0を指定してください。"))
		}
	default:
		f = append(f, Field(prefix+"capture", "parameter_invalid", prefix+"capture must be automatic, manual or verify.", "captureにはautomatic、manual、verifyのいずれかを指定してください。"))
	}
	for _, e := range checkAmounts(amount, tax, shipping) {
		e.Param = prefix + e.Param
		f = append(f, e)
	}
	return f
}

func checkAmounts(amount, tax, shipping int64) []FieldError {
	var f []FieldError
	for _, a := range []struct {
		name string
		v    int64
	}{{"amount", amount}, {"tax", tax}, {"shipping", shipping}} {
		if a.v < 0 || a.v > MaxAmount {
			f = append(f, Field(a.name, "invalid_amount", fmt.Sprintf("%s must be between 0 and %d yen.", a.name, MaxAmount), "金額は0円から9,999,999円の間で指定してください。"))
		}
	}
	return f
}

// CardTokenOK is the unified API's rule for a card token: at most 1024
// bytes, no whitespace and none of the form separators & and =.
func CardTokenOK(s string) bool {
	return len(s) <= 1024 && !strings.ContainsAny(s, " \t\r\n&=")
}

// ValidOrderID reports whether s is 1..max characters of [A-Za-z0-9-].
func ValidOrderID(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func validMemberID(s string) bool {
	if len(s) == 0 || len(s) > 60 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.@", c) >= 0) {
			return false
		}
	}
	return true
}

// Digits reports whether s is min..max ASCII digits.
func Digits(s string, min, max int) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// DecodeReauthorize decodes and validates POST .../reauthorize.
func DecodeReauthorize(body []byte) (*Reauthorize, *Error) {
	var r Reauthorize
	if err := Decode(body, &r); err != nil {
		return nil, err
	}
	f := checkAmounts(r.Amount, r.Tax, r.Shipping)
	if r.Amount < 1 {
		f = append(f, Field("amount", "invalid_amount", "amount must be an integer of at least 1 yen.", "金額は1円以上の整数で指定してください。"))
	}
	if err := Validation(f); err != nil {
		return nil, err
	}
	return &r, nil
}

// DecodeCapture decodes POST .../capture; an empty body is allowed.
func DecodeCapture(body []byte) (*CaptureRequest, *Error) {
	var r CaptureRequest
	if len(bytes.TrimSpace(body)) == 0 {
		return &r, nil
	}
	if err := Decode(body, &r); err != nil {
		return nil, err
	}
	if r.Amount != nil && (*r.Amount < 1 || *r.Amount > MaxAmount) {
		return nil, Validation([]FieldError{Field("amount", "invalid_amount", "amount must be between 1 and 9999999 yen.", "金額は1円から9,999,999円の間で指定してください。")})
	}
	return &r, nil
}

// DecodeEmpty accepts an empty body or an empty JSON object (cancel).
func DecodeEmpty(body []byte) *Error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	var v struct{}
	return Decode(body, &v)
}
