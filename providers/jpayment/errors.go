package jpayment

import (
	"strings"

	"github.com/paynorm/paynorm/normalize"
)

// Mapped is the normalized reading of one j-payment code.
type Mapped struct {
	Code  string
	Param string
}

// erCodes maps every ER code (errors raised before the card company is
// contacted, so no money moved) of the reference table.
var erCodes = map[string]Mapped{
	"ER000": {"provider_unavailable", ""}, // internal exception
	"ER001": {"parameter_invalid", ""},
	"ER002": {"provider_misconfigured", ""}, // Referer (HTML link only)
	"ER003": {"egress_ip_not_allowed", ""},
	"ER004": {"provider_misconfigured", ""}, // shop not registered
	"ER005": {"provider_misconfigured", ""}, // product (iid) not registered
	"ER006": {"provider_misconfigured", ""}, // no ID/PW left to issue
	"ER010": {"provider_unavailable", ""},   // busy
	"ER011": {"card_declined", ""},          // rejected by the shop's IP rules
	"ER012": {"card_declined", ""},          // rejected e-mail
	"ER013": {"card_declined", ""},          // rejected card number
	"ER014": {"incorrect_number", ""},
	"ER015": {"card_not_supported", ""},
	"ER016": {"invalid_amount", "amount"}, // ご利用可能金額上限: the shop's own ceiling, not the card's limit
	"ER017": {"invalid_amount", "amount"},
	"ER018": {"invalid_amount", "amount"},
	"ER019": {"invalid_installments", ""},
	"ER021": {"parameter_invalid", ""},      // one-touch charge conditions
	"ER022": {"provider_misconfigured", ""}, // quick charge conditions
	"ER023": {"invalid_state", ""},          // recurring billing stopped
	"ER024": {"invalid_state", ""},
	"ER030": {"card_declined", ""},
	"ER031": {"card_declined", ""},        // CHECK failed
	"ER032": {"not_capturable", ""},       // 実売上失敗(SALES): refused, reason not given
	"ER033": {"not_cancelable", ""},       // 取消失敗: refused, reason not given
	"ER042": {"provider_unavailable", ""}, // communication error
	"ER050": {"provider_misconfigured", ""},
	"ER051": {"processing_error", ""}, // jb: paynorm builds it
	"ER052": {"processing_error", ""}, // rt
	"ER053": {"resource_missing", ""}, // tid
	"ER054": {"invalid_order_id", "order_id"},
	"ER055": {"incorrect_number", ""},
	"ER056": {"expired_card", ""},
	"ER057": {"parameter_invalid", "payment_method.token"}, // holder first name
	"ER058": {"parameter_invalid", "payment_method.token"}, // holder last name
	"ER059": {"parameter_invalid", "customer.email"},
	"ER060": {"parameter_invalid", "customer.phone"},
	"ER061": {"invalid_amount", "amount"},
	"ER062": {"invalid_amount", "tax"},
	"ER063": {"invalid_amount", "shipping"},
	"ER064": {"invalid_installments", ""},
	"ER065": {"invalid_installments", ""},
	"ER068": {"provider_misconfigured", ""}, // iid
	"ER069": {"processing_error", ""},       // cmd
	"ER072": {"parameter_invalid", "subscription"},
	"ER079": {"incorrect_cvc", ""},
	"ER107": {"processing_error", ""}, // request method
	"ER114": {"provider_misconfigured", ""},
	"ER117": {"provider_misconfigured", ""},
	"ER119": {"provider_misconfigured", ""},
	"ER125": {"parameter_invalid", "subscription"},
	"ER126": {"parameter_invalid", "subscription"},
	"ER127": {"parameter_invalid", "subscription"},
	"ER128": {"parameter_invalid", "subscription"},
	"ER129": {"parameter_invalid", "subscription"},
	"ER554": {"processing_error", ""},
	"ER559": {"provider_misconfigured", ""},
	"ER564": {"provider_misconfigured", ""},
	"ER565": {"provider_misconfigured", ""},
	"ER567": {"provider_misconfigured", ""},
	"ER570": {"parameter_invalid", "subscription"},
	"ER571": {"parameter_invalid", "subscription"},
	"ER572": {"parameter_invalid", "subscription"},
	"ER573": {"invalid_amount", "subscription"},
	"ER574": {"invalid_amount", "subscription"},
	"ER575": {"invalid_amount", "subscription"},
	"ER576": {"parameter_invalid", "subscription"},
	"ER577": {"parameter_invalid", "subscription"},
	"ER578": {"parameter_invalid", "subscription"},
	"ER579": {"parameter_invalid", "subscription"},
	"ER580": {"invalid_amount", "subscription"},
	"ER581": {"invalid_amount", "subscription"},
	"ER582": {"invalid_amount", "subscription"},
	"ER583": {"token_invalid", "payment_method.token"},
	"ER584": {"token_invalid", "payment_method.token"},
	"ER585": {"token_expired", "payment_method.token"},
	"ER586": {"processing_error", ""}, // cn sent with a token: paynorm never does
	"ER900": {"authentication_failed", ""},
	"ER901": {"authentication_failed", ""},
	"ER902": {"parameter_invalid", ""},
	"ER903": {"parameter_invalid", ""},
	"ER904": {"parameter_invalid", ""},
	"ER905": {"processing_error", ""},
	"ER998": {"provider_misconfigured", ""}, // account suspended
	"ER999": {"provider_maintenance", ""},
}

// gCodes maps the card company codes. Each embeds the GMO-style ErrInfo
// (G0442G040000 carries 42G040000) and maps to the same catalog code as
// GMO's, so an app sees the same decline from either provider.
var gCodes = map[string]string{
	"G04": "insufficient_funds", // debit/prepaid balance
	"G12": "card_declined",
	"G30": "card_declined",
	"G42": "incorrect_pin",
	"G44": "incorrect_cvc",
	"G45": "incorrect_cvc",
	"G54": "card_declined",
	"G55": "exceeds_limit",
	"G56": "card_declined", // card read error
	"G60": "card_declined", // stolen/lost card: never say so to the payer
	"G61": "card_declined",
	"G65": "incorrect_number",
	"G68": "card_declined",
	"G69": "card_declined",
	"G74": "invalid_installments",
	"G78": "card_declined",
	"G80": "card_declined",
	"G83": "expired_card",
	"G97": "card_declined",
	"G98": "card_declined",
	"G99": "card_declined",
}

// MapCode maps one ER or G code onto the catalog. Unknown ER codes become
// processing_error and unknown G codes card_declined (the card company
// refused); the raw code is always kept in provider_codes.
func MapCode(code string) Mapped {
	code = strings.TrimSpace(code)
	if m, ok := erCodes[code]; ok {
		return m
	}
	if strings.HasPrefix(code, "G") && len(code) >= 3 {
		if c, ok := gCodes[code[:3]]; ok {
			return Mapped{Code: c}
		}
		return Mapped{Code: "card_declined"}
	}
	return Mapped{Code: "processing_error"}
}

// NormalizeCode builds the unified error for a code the account answered.
func NormalizeCode(account, code string) *normalize.Error {
	m := MapCode(code)
	e := normalize.New(m.Code)
	switch code {
	case "ER003":
		e.Message = "j-payment rejected the request's source IP (ER003): register paynorm's egress IP in the j-payment control panel (決済ゲートウェイ＆CTI決済設定 → 決済データ送信元IP), or set source_address/proxy_url so that requests leave from the registered IP."
	case "ER016":
		e.Message = "The amount is above what this shop may charge at j-payment (ER016 ご利用可能金額上限: the shop's ceiling, not the card's limit)."
		e.MessageJa = "決済可能上限額を超えています(ER016 ご利用可能金額上限)。決済金額をご確認ください。"
	case "ER032":
		e.Message = "j-payment refused the capture (ER032 実売上失敗) without giving a reason: the payment may already be captured or canceled, or its authorization expired (90 days). Check it in the j-payment control panel."
		e.MessageJa = "実売上に失敗しました(ER032)。管理画面で決済の状態をご確認ください。"
	case "ER033":
		e.Message = "j-payment refused the cancellation (ER033 取消失敗) without giving a reason: the payment may already be canceled. Check it in the j-payment control panel."
		e.MessageJa = "取消に失敗しました(ER033)。管理画面で決済の状態をご確認ください。"
	}
	if m.Param != "" {
		e.WithParam(m.Param)
	}
	e.Provider = account
	e.ProviderCodes = []normalize.ProviderCode{{Code: code}}
	return e
}
