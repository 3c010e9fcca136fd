package gmo

import (
	"strings"

	"github.com/paynorm/paynorm/normalize"
)

// exact maps single ErrInfo values whose meaning differs from their group.
var exact = map[string]string{
	"E01040010": "order_id_exists",
	"E01060010": "amount_mismatch",
	"E01110002": "resource_missing",
	// 指定された取引は決済が完了していません: the trade exists but was never
	// executed. A state refusal, not a 404; a follow-up names it in its own
	// words (not_capturable, not_cancelable).
	"E01110010": "invalid_state",
	// 3D必須店舗にも関わらず3Dセキュア使用フラグがOFF: the contract requires
	// 3-D Secure.
	"E01080101": "authentication_required",
	// 3-D Secure settings GMO refused before anything was charged:
	// 3Dセキュア利用しない契約ですが、TdFlagが指定されています (the shop
	// has no 3-D Secure contract), 3DS2.0非対応時取り扱いの書式が正しく
	// ありません (Tds2Type), 戻りURLが指定されていません (RetUrl).
	"E01080010": "three_d_secure_not_contracted",
	"E01950008": "three_d_secure_invalid",
	"E01E30001": "return_url_missing",
	// EMV 3-D Secure 2 (GMO's 3DS2.0) outcomes, each its own code:
	// 認証失敗(認証初期化), 認証失敗, 認証非対応 (the card cannot do
	// 3DS2 and Tds2Type 2 demanded it), 認証必須 (3DS2 was required and
	// could not be performed for the card).
	"E21030001": "authentication_setup_failed",
	"E21030007": "authentication_failed",
	"E21030201": "card_not_enrolled",
	"E21030202": "authentication_unavailable",
	"E01240002": "resource_missing",
	"E01390002": "resource_missing",
	"E01390010": "customer_exists", // SaveMember: member already registered
	"E01220010": "customer_exists", // duplicate member id
	"E01410010": "invalid_state",
	"E01420010": "authorization_expired",
	"E01030061": "provider_misconfigured",
	"E11010001": "already_processed",
	// この取引は決済が終了していませんので、変更する事ができません: a state
	// refusal whatever the operation (capture or cancel say it their way).
	"E11010002": "invalid_state",
	"E11010003": "invalid_state",
	"E11010099": "card_not_supported",
	"E11010999": "already_processed",
	"E31500014": "processing_error",
	"E41170002": "card_not_supported",
	"E41170099": "incorrect_number",
	// ご利用出来ないカードをご利用になったもしくはカード番号が誤っております:
	// the payer is to use another card (the contract does not take this
	// one); not a fault of paynorm's configuration.
	"E61010002": "card_not_supported",
	"E82010001": "rate_limited",
	"E90010001": "processing_in_progress",
	"E91020001": "provider_timeout",
	"E91099997": "processing_error",
	"E91050001": "provider_misconfigured",
	"E92000001": "rate_limited",
	"E92000002": "rate_limited",
	"EX1000301": "token_invalid",
	"EX1000302": "token_invalid",
	"EX1000303": "token_expired",
	"EX1000304": "token_invalid",
	"42G020000": "insufficient_funds",
	"42G040000": "insufficient_funds",
	"42G060000": "insufficient_funds",
	"42G030000": "exceeds_limit",
	"42G050000": "exceeds_limit",
	"42G070000": "exceeds_limit",
	"42G550000": "exceeds_limit",
	"42G420000": "incorrect_pin",
	"42G440000": "incorrect_cvc",
	"42G450000": "incorrect_cvc",
	"42G650000": "incorrect_number",
	"42G830000": "expired_card",
	"42G910000": "issuer_unavailable",
}

// exactParams names the request field of an exact code where there is one.
var exactParams = map[string]string{
	"E01080101": "three_d_secure",
	"E01080010": "three_d_secure",
	"E01950008": "three_d_secure",
	"E01E30001": "return_url",
}

// groups maps the first six characters of an E01 ErrInfo (the field it is
// about) to a code and the unified request field it concerns.
var groups = map[string]struct{ code, param string }{
	"E01010": {"provider_misconfigured", ""}, // ShopID
	"E01020": {"provider_misconfigured", ""}, // ShopPass
	"E01030": {"provider_misconfigured", ""}, // shop not found
	"E01190": {"provider_misconfigured", ""}, // SiteID
	"E01200": {"provider_misconfigured", ""}, // SitePass
	"E01210": {"provider_misconfigured", ""}, // site not found
	"E01650": {"provider_misconfigured", ""}, // shop not in site
	"E01040": {"invalid_order_id", "order_id"},
	"E01060": {"invalid_amount", "amount"},
	"E01070": {"invalid_amount", "tax"},
	"E01490": {"invalid_amount", "amount"},
	"E01090": {"resource_missing", ""}, // AccessID
	"E01100": {"resource_missing", ""}, // AccessPass
	"E01110": {"resource_missing", ""},
	"E01160": {"parameter_invalid", "installments"},
	"E01260": {"parameter_invalid", "installments.plan"},
	"E01270": {"parameter_invalid", "installments.count"},
	"E01730": {"parameter_invalid", "installments"},
	"E01170": {"incorrect_number", "card_number"},
	"E01180": {"expired_card", "expiry"},
	"E01460": {"incorrect_cvc", "security_code"},
	"E01800": {"incorrect_pin", "pin"},
	"E01220": {"parameter_invalid", "customer_id"},
	"E01390": {"resource_missing", "customer_id"},
	"E01880": {"parameter_invalid", "customer_id"},
	"E01230": {"parameter_invalid", "card_seq"},
	"E01240": {"resource_missing", "card_seq"},
	"E01890": {"parameter_invalid", "card_seq"},
	"E01250": {"parameter_invalid", "card_password"},
	"E01480": {"parameter_invalid", "holder_name"},
	"E01430": {"parameter_invalid", "name"},
	"E01320": {"parameter_invalid", "metadata.client_field_1"},
	"E01330": {"parameter_invalid", "metadata.client_field_2"},
	"E01340": {"parameter_invalid", "metadata.client_field_3"},
	"E01870": {"token_invalid", "payment_method.token"},
	"E01950": {"three_d_secure_invalid", "three_d_secure"}, // Tds2Type
	"E01E30": {"parameter_invalid", "return_url"},          // RetUrl (E01E30005: too long)
}

// Mapped is the normalized reading of one ErrInfo.
type Mapped struct {
	Code  string
	Param string
}

// MapErrInfo maps one GMO ErrInfo onto the catalog. Every code in the
// reference catalog maps to a known code; anything else becomes
// processing_error and keeps its raw value in provider_codes.
func MapErrInfo(info string) Mapped {
	info = strings.TrimSpace(info)
	if c, ok := exact[info]; ok {
		return Mapped{Code: c, Param: exactParams[info]}
	}
	if len(info) >= 6 {
		if g, ok := groups[info[:6]]; ok {
			return Mapped{Code: g.code, Param: g.param}
		}
	}
	switch {
	case strings.HasPrefix(info, "42G"):
		n := info[3:min(5, len(info))]
		if n >= "70" && n <= "76" {
			return Mapped{Code: "invalid_installments"}
		}
		return Mapped{Code: "card_declined"}
	case strings.HasPrefix(info, "42C"):
		return Mapped{Code: "issuer_unavailable"}
	case strings.HasPrefix(info, "E00"), strings.HasPrefix(info, "E31"):
		return Mapped{Code: "processing_error"}
	case strings.HasPrefix(info, "E01"):
		return Mapped{Code: "parameter_invalid"}
	case strings.HasPrefix(info, "E11010"):
		return Mapped{Code: "refund_window_passed"} // 180日超え
	case strings.HasPrefix(info, "E113"):
		return Mapped{Code: "invalid_state"} // link payment states
	case strings.HasPrefix(info, "E21"):
		return Mapped{Code: "authentication_failed"}
	case strings.HasPrefix(info, "E61"):
		return Mapped{Code: "provider_misconfigured"}
	case strings.HasPrefix(info, "E91"):
		return Mapped{Code: "provider_unavailable"}
	case strings.HasPrefix(info, "EX1"):
		return Mapped{Code: "token_invalid"}
	}
	return Mapped{Code: "processing_error"}
}

// severity orders codes when an answer carries several: the most telling
// one (a fault, then a decline) becomes the error's code.
func severity(code string) int {
	switch normalize.TypeOf(code) {
	case normalize.TypeProviderTimeout, normalize.TypeProviderUnavailable:
		return 5
	case normalize.TypeRateLimited:
		return 4
	case normalize.TypeProviderError:
		return 3
	case normalize.TypeCard:
		return 2
	}
	return 1
}

// NormalizeErrors builds one unified error from an answer's error pairs.
func NormalizeErrors(account string, pairs []ErrPair) *normalize.Error {
	best := Mapped{Code: "processing_error"}
	bestSev := -1
	codes := make([]normalize.ProviderCode, 0, len(pairs))
	var fields []normalize.FieldError
	for _, p := range pairs {
		m := MapErrInfo(p.Info)
		if p.Info == "" {
			m = Mapped{Code: "processing_error"}
		}
		codes = append(codes, normalize.ProviderCode{Code: p.Code, Info: p.Info})
		if s := severity(m.Code); s > bestSev {
			best, bestSev = m, s
		}
		if m.Param != "" {
			ref := normalize.New(m.Code)
			fields = append(fields, normalize.Field(m.Param, m.Code, ref.Message, ref.MessageJa))
		}
	}
	e := normalize.New(best.Code)
	if best.Param != "" {
		e.WithParam(best.Param)
	}
	if e.Type == normalize.TypeInvalidRequest && len(fields) > 1 {
		e.Fields = fields
	}
	e.Provider = account
	e.ProviderCodes = codes
	return e
}
