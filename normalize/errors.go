// Package normalize holds paynorm's provider-independent model: the unified
// request and response types, their validation, payment statuses and the
// closed error catalog every provider answer is mapped onto.
package normalize

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Error types of the unified API. Each maps to one HTTP status family.
const (
	TypeInvalidRequest      = "invalid_request_error"
	TypeCard                = "card_error"
	TypeIdempotency         = "idempotency_error"
	TypeRateLimited         = "rate_limited"
	TypeProviderUnavailable = "provider_unavailable"
	TypeProviderTimeout     = "provider_timeout"
	TypeProviderError       = "provider_error"
)

// ProviderCode is one raw code pair as the provider sent it, kept so that an
// operator can look it up in the provider's own manual.
type ProviderCode struct {
	Code string `json:"code"`
	Info string `json:"info,omitempty"`
}

// FieldError is one failed validation rule on one request field.
type FieldError struct {
	Param     string `json:"param"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	MessageJa string `json:"message_ja"`
}

// Error is the one error shape of the unified API. It is also a Go error so
// providers can return it through ordinary error paths.
type Error struct {
	Type          string         `json:"type"`
	Code          string         `json:"code"`
	Message       string         `json:"message"`
	MessageJa     string         `json:"message_ja"`
	Retryable     bool           `json:"retryable"`
	Param         *string        `json:"param"`
	Fields        []FieldError   `json:"fields,omitempty"`
	Provider      string         `json:"provider,omitempty"`
	ProviderCodes []ProviderCode `json:"provider_codes,omitempty"`
	RequestID     string         `json:"request_id,omitempty"`
	Payment       *Payment       `json:"payment,omitempty"`

	// Status is the HTTP status the error is answered with.
	Status int `json:"-"`
	// RetryAfter, when set, becomes the Retry-After header.
	RetryAfter time.Duration `json:"-"`
	// Fault marks an error that is the provider's fault (timeouts, 5xx,
	// maintenance); only these count against the circuit breaker.
	Fault bool `json:"-"`
	// Uncertain marks a money-moving call that may have been processed by
	// the provider although no usable answer came back.
	Uncertain bool `json:"-"`
}

func (e *Error) Error() string {
	if e == nil {
		return "<nil>"
	}
	return e.Type + "/" + e.Code + ": " + e.Message
}

// RetryAfterHeader renders RetryAfter in whole seconds, at least 1.
func (e *Error) RetryAfterHeader() string {
	if e.RetryAfter <= 0 {
		return ""
	}
	s := int((e.RetryAfter + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.Itoa(s)
}

// Body is the JSON envelope of an error answer.
type Body struct {
	Error *Error `json:"error"`
}

// entry is one catalog row: the type, HTTP status and messages of a code.
type entry struct {
	typ       string
	status    int
	retryable bool
	en, ja    string
}

// catalog is the closed list of codes the unified API may answer with.
// Adding a provider code means mapping it onto one of these, never adding raw
// provider codes here.
var catalog = map[string]entry{
	// paynorm's own validation
	"parameter_missing":     {TypeInvalidRequest, 400, false, "A required parameter is missing.", "必須項目が指定されていません。"},
	"parameter_invalid":     {TypeInvalidRequest, 400, false, "A parameter has an invalid value.", "項目の値が正しくありません。"},
	"parameter_unknown":     {TypeInvalidRequest, 400, false, "The request contains an unknown parameter.", "不明な項目が含まれています。"},
	"invalid_json":          {TypeInvalidRequest, 400, false, "The request body is not valid JSON.", "リクエスト本文が正しいJSONではありません。"},
	"invalid_encoding":      {TypeInvalidRequest, 400, false, "The request body is not valid UTF-8.", "リクエスト本文がUTF-8ではありません。"},
	"body_too_large":        {TypeInvalidRequest, 413, false, "The request body is too large.", "リクエスト本文が大きすぎます。"},
	"invalid_amount":        {TypeInvalidRequest, 400, false, "The amount is invalid.", "金額が正しくありません。"},
	"invalid_order_id":      {TypeInvalidRequest, 400, false, "The order ID is invalid.", "オーダーIDが正しくありません。"},
	"resource_missing":      {TypeInvalidRequest, 404, false, "No such resource.", "指定されたデータが存在しません。"},
	"route_not_found":       {TypeInvalidRequest, 404, false, "No such endpoint.", "指定されたAPIは存在しません。"},
	"method_not_allowed":    {TypeInvalidRequest, 405, false, "This method is not allowed on this endpoint.", "このAPIでは指定されたHTTPメソッドは使えません。"},
	"unsupported":           {TypeInvalidRequest, 422, false, "This operation is not supported by the provider.", "この操作は指定された決済代行会社では利用できません。"},
	"unknown_provider":      {TypeInvalidRequest, 400, false, "No provider account of that name is configured.", "指定された決済代行会社アカウントは設定されていません。"},
	"order_id_exists":       {TypeInvalidRequest, 409, false, "A payment with this order ID already exists.", "このオーダーIDの取引はすでに存在します。"},
	"customer_exists":       {TypeInvalidRequest, 409, false, "A customer with this ID already exists.", "この会員IDの会員はすでに存在します。"},
	"already_captured":      {TypeInvalidRequest, 409, false, "The payment has already been captured.", "この取引はすでに売上確定済みです。"},
	"already_processed":     {TypeInvalidRequest, 409, false, "The payment has already been processed.", "この取引はすでに決済が終了しています。"},
	"not_capturable":        {TypeInvalidRequest, 409, false, "The payment cannot be captured in its current state.", "この取引は現在の状態では売上確定できません。"},
	"not_cancelable":        {TypeInvalidRequest, 409, false, "The payment cannot be canceled in its current state.", "この取引は現在の状態では取消できません。"},
	"invalid_state":         {TypeInvalidRequest, 409, false, "The payment does not allow this operation in its current state.", "この取引は現在の状態ではこの操作を行えません。"},
	"amount_mismatch":       {TypeInvalidRequest, 422, false, "The amount does not match the authorized amount.", "金額がオーソリ金額と一致しません。"},
	"authorization_expired": {TypeInvalidRequest, 422, false, "The authorization has expired.", "仮売上の有効期間を超えています。"},
	"refund_window_passed":  {TypeInvalidRequest, 422, false, "The payment is too old for this operation.", "期限を過ぎた取引のため処理できません。"},
	"source_not_allowed":    {TypeInvalidRequest, 403, false, "The request's source address is not allowed to call this endpoint.", "送信元IPアドレスが許可されていません。"},
	"parameter_duplicate":   {TypeInvalidRequest, 400, false, "The request body names a parameter more than once (keys are compared without case).", "同じ項目が複数回指定されています(大文字・小文字は区別しません)。"},
	"request_timeout":       {TypeInvalidRequest, 408, true, "The request body did not arrive in time.", "リクエスト本文の受信がタイムアウトしました。"},
	"api_key_missing":       {TypeInvalidRequest, 401, false, "An API key is required: send Authorization: Bearer <key>.", "APIキーが必要です(Authorization: Bearer <key>)。"},
	"api_key_invalid":       {TypeInvalidRequest, 401, false, "The API key is not valid.", "APIキーが正しくありません。"},
	"account_not_permitted": {TypeInvalidRequest, 403, false, "This API key may not use that provider account.", "このAPIキーではこの決済代行会社アカウントを利用できません。"},
	"card_data_not_allowed": {TypeInvalidRequest, 403, false, "Raw card data (card number, expiry, security code, PIN) is not accepted here; send a card token.", "カード番号・有効期限・セキュリティコード・暗証番号は送信できません。カードトークンを使用してください。"},

	// the merchant contract demands 3-D Secure (GMO E01080101)
	"authentication_required": {TypeInvalidRequest, 422, false, "The merchant contract requires 3-D Secure for this payment and it was sent without it; nothing was charged.", "この加盟店では3Dセキュアが必須のため、決済できませんでした(請求はされていません)。"},
	// 3-D Secure settings GMO refused (E01080010, E01950008, E01E30001): nothing was charged
	"three_d_secure_not_contracted": {TypeInvalidRequest, 422, false, "This merchant's contract has no 3-D Secure; send three_d_secure off (or set the account's three_d_secure off). Nothing was charged.", "この加盟店は3Dセキュアを契約していないため、three_d_secureにoffを指定してください(請求はされていません)。"},
	"three_d_secure_invalid":        {TypeInvalidRequest, 400, false, "The provider refused the 3-D Secure mode sent for three_d_secure; nothing was charged.", "3Dセキュアの指定(three_d_secure)が受け付けられませんでした(請求はされていません)。"},
	"return_url_missing":            {TypeInvalidRequest, 400, false, "return_url is required with 3-D Secure: the card holder's browser comes back there after authenticating. Nothing was charged.", "3Dセキュアを利用する場合はreturn_url(認証後にブラウザが戻るURL)が必須です(請求はされていません)。"},

	// card and issuer outcomes
	"card_declined":         {TypeCard, 402, false, "The card was declined.", "このカードでは取引をする事ができません。"},
	"insufficient_funds":    {TypeCard, 402, false, "The card has insufficient funds.", "カード残高が不足しているため、決済を完了できませんでした。"},
	"exceeds_limit":         {TypeCard, 402, false, "The payment exceeds the card's limit.", "カード限度額を超えているため、決済を完了できませんでした。"},
	"incorrect_cvc":         {TypeCard, 402, false, "The card's security code is incorrect.", "セキュリティコードが誤っています。"},
	"incorrect_pin":         {TypeCard, 402, false, "The card's PIN is incorrect.", "暗証番号が誤っています。"},
	"expired_card":          {TypeCard, 402, false, "The card has expired or its expiry date is wrong.", "カードの有効期限が切れているか、誤っています。"},
	"incorrect_number":      {TypeCard, 402, false, "The card number is incorrect.", "カード番号に誤りがあります。"},
	"card_not_supported":    {TypeCard, 402, false, "This card brand or type is not accepted.", "このカードはご利用になれません。"},
	"invalid_installments":  {TypeCard, 402, false, "The installment plan is not available for this card.", "指定された支払方法・分割回数はこのカードでご利用になれません。"},
	"token_invalid":         {TypeCard, 402, false, "The card token is invalid or was already used.", "カードトークンが正しくないか、使用済みです。もう一度カード番号を入力してください。"},
	"token_expired":         {TypeCard, 402, false, "The card token has expired.", "カードトークンの有効期限が切れています。もう一度カード番号を入力してください。"},
	"authentication_failed": {TypeCard, 402, false, "3-D Secure authentication failed; nothing was charged.", "3Dセキュア認証に失敗しました。もう一度、購入画面からやり直してください。"},
	"issuer_unavailable":    {TypeCard, 402, true, "The card issuer could not be reached; try again later.", "カード会社との通信に失敗しました。しばらくしてから再度お試しください。"},

	// EMV 3-D Secure 2 could not run for this card (GMO E21030001, E21030201, E21030202)
	"authentication_setup_failed": {TypeCard, 402, false, "3-D Secure authentication could not be started for this card; nothing was charged. Start the payment again.", "3Dセキュア認証を開始できませんでした(請求はされていません)。もう一度、購入画面からやり直してください。"},
	"card_not_enrolled":           {TypeCard, 402, false, "This card cannot do EMV 3-D Secure 2, which this payment requires; nothing was charged. Use another card.", "このカードは3Dセキュア(EMV 3-Dセキュア)に対応していないため、決済できませんでした。3Dセキュア認証に対応したカードをお使いください。"},
	"authentication_unavailable":  {TypeCard, 402, false, "The card's issuer could not perform the EMV 3-D Secure 2 authentication this payment requires; nothing was charged. Use another card.", "カード会社で3Dセキュア認証を実施できなかったため、決済できませんでした。3Dセキュア認証に対応したカードをお使いください。"},

	// idempotency
	"payment_busy":           {TypeInvalidRequest, 409, true, "Another operation on this payment is in progress; nothing was sent. Retry shortly.", "この取引に対する別の操作を処理中です(送信はしていません)。少し待ってから再度お試しください。"},
	"idempotency_key_in_use": {TypeIdempotency, 409, true, "A request with this Idempotency-Key is still being processed.", "同じIdempotency-Keyのリクエストを処理中です。"},
	"idempotency_key_reused": {TypeIdempotency, 422, false, "This Idempotency-Key was used with a different request body.", "このIdempotency-Keyは異なるリクエストで使用済みです。"},

	// limits and provider health
	"rate_limited":           {TypeRateLimited, 429, true, "Too many requests; retry after the indicated time.", "只今大変込み合っています。しばらく時間をあけて再度お試しください。"},
	"provider_unavailable":   {TypeProviderUnavailable, 503, true, "The payment provider is temporarily unavailable.", "決済代行会社が一時的に利用できません。"},
	"circuit_open":           {TypeProviderUnavailable, 503, true, "The payment provider is failing; calls are paused.", "決済代行会社の障害のため、一時的に接続を停止しています。"},
	"provider_maintenance":   {TypeProviderUnavailable, 503, true, "The payment provider is under maintenance.", "決済代行会社はメンテナンス中です。"},
	"processing_in_progress": {TypeProviderUnavailable, 503, true, "The provider is still processing a request for this payment.", "現在処理を行っています。しばらくお待ちください。"},
	"store_unavailable":      {TypeProviderUnavailable, 503, true, "paynorm's record store is unavailable; nothing was sent to the provider.", "決済記録ストアが利用できないため、処理を行いませんでした。"},
	"provider_timeout":       {TypeProviderTimeout, 504, false, "The provider did not answer in time; the outcome is unknown and is being checked.", "決済代行会社から応答がありませんでした。結果を確認中です。"},

	// provider answered something unusable or paynorm is misconfigured
	"processing_error":       {TypeProviderError, 502, false, "The provider reported an error paynorm does not know.", "決済処理に失敗しました。"},
	"invalid_response":       {TypeProviderError, 502, false, "The provider's answer could not be understood or failed verification.", "決済代行会社の応答を解釈できませんでした。"},
	"provider_misconfigured": {TypeProviderError, 502, false, "The provider rejected paynorm's merchant configuration (credentials or contract).", "加盟店設定エラーです。設定内容を確認してください。"},
	"egress_ip_not_allowed":  {TypeProviderError, 502, false, "The provider rejected the source IP: register paynorm's egress IP with the provider.", "送信元IPエラーです。決済代行会社の管理画面に送信元IPを登録してください。"},
}

// Known reports whether code is in the catalog.
func Known(code string) bool { _, ok := catalog[code]; return ok }

// TypeOf returns the error type a catalog code belongs to.
func TypeOf(code string) string { return catalog[code].typ }

// Codes lists every catalog code.
func Codes() []string {
	out := make([]string, 0, len(catalog))
	for c := range catalog {
		out = append(out, c)
	}
	return out
}

// New builds an Error for a catalog code with its default messages. An
// unknown code is a programming error and becomes processing_error.
func New(code string) *Error {
	e, ok := catalog[code]
	if !ok {
		code, e = "processing_error", catalog["processing_error"]
	}
	return &Error{Type: e.typ, Code: code, Message: e.en, MessageJa: e.ja,
		Retryable: e.retryable, Status: e.status,
		Fault: e.typ == TypeProviderUnavailable || e.typ == TypeProviderTimeout}
}

// Newf is New with an English message of the caller's.
func Newf(code, format string, args ...any) *Error {
	e := New(code)
	e.Message = fmt.Sprintf(format, args...)
	return e
}

// WithParam sets the request field the error is about.
func (e *Error) WithParam(p string) *Error { e.Param = &p; return e }

// WithStatus overrides the HTTP status (e.g. 404 for an unknown id).
func (e *Error) WithStatus(s int) *Error { e.Status = s; return e }

// HTTPStatus is the status to answer with.
func (e *Error) HTTPStatus() int {
	if e.Status == 0 {
		return http.StatusInternalServerError
	}
	return e.Status
}

// Field builds one field-level validation error from a catalog code.
func Field(param, code, en, ja string) FieldError {
	return FieldError{Param: param, Code: code, Message: en, MessageJa: ja}
}

// Validation wraps field errors into one invalid_request_error whose code,
// message and param are those of the first field.
func Validation(fields []FieldError) *Error {
	if len(fields) == 0 {
		return nil
	}
	e := New(fields[0].Code)
	if e.Type != TypeInvalidRequest {
		e = New("parameter_invalid")
	}
	e.Message, e.MessageJa = fields[0].Message, fields[0].MessageJa
	e.Fields = fields
	return e.WithParam(fields[0].Param)
}
