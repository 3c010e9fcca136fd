package gmo

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"unicode"

	"github.com/paynorm/paynorm/normalize"
)

// DefaultPassthroughAPIs are the .idPass APIs the JSON passthrough allows
// when an account names none: a payment (EntryTran, ExecTran) and reads.
// Refunds, amount changes and card storage must be allowed explicitly.
var DefaultPassthroughAPIs = []string{"EntryTran", "ExecTran", "SearchTrade", "SearchMember", "SearchCard"}

// siteAPIs take SiteID/SitePass instead of ShopID/ShopPass.
var siteAPIs = map[string]bool{
	"SaveMember": true, "UpdateMember": true, "SearchMember": true, "DeleteMember": true,
	"SaveCard": true, "SearchCard": true, "DeleteCard": true, "SearchCardDetail": true,
}

// readAPIs may be repeated; everything else is a write, never repeated once
// sent.
var readAPIs = map[string]bool{
	"SearchTrade": true, "SearchTradeMulti": true, "SearchMember": true, "SearchCard": true, "SearchCardDetail": true,
	"SearchCardReverse": true, "SearchBookingInfo": true,
}

// credentialKeys are dropped from a passthrough request: paynorm injects
// its own.
var credentialKeys = map[string]bool{"ShopID": true, "ShopPass": true, "SiteID": true, "SitePass": true, "Version": true}

// UpperCamel maps a JSON key (orderID, accessPass, tds2Type) onto GMO's wire
// name (OrderID, AccessPass, Tds2Type).
func UpperCamel(k string) string {
	if k == "" {
		return k
	}
	return strings.ToUpper(k[:1]) + k[1:]
}

// LowerCamel maps a wire name onto JSON: a leading run of capitals is
// lowered up to the start of the next word (ACS -> acs, ACSUrl -> acsUrl,
// OrderID -> orderID, TranID -> tranID).
func LowerCamel(k string) string {
	n := 0
	for n < len(k) && k[n] >= 'A' && k[n] <= 'Z' {
		n++
	}
	switch {
	case n == 0:
		return k
	case n > 1 && n < len(k) && k[n] >= 'a' && k[n] <= 'z':
		n-- // the last capital starts the next word
	}
	return strings.ToLower(k[:n]) + k[n:]
}

// ValidAPIName reports whether api looks like an .idPass API name.
func ValidAPIName(api string) bool {
	if len(api) < 2 || len(api) > 40 || api[0] < 'A' || api[0] > 'Z' {
		return false
	}
	for i := 0; i < len(api); i++ {
		c := api[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Passthrough calls one .idPass API with the app's parameters (wire names)
// and the account's credentials. Credentials the app sent are ignored. A
// GMO error comes back as the error plus the raw pairs.
func (p *Provider) Passthrough(ctx context.Context, api string, params []Param) (Values, []ErrPair, *normalize.Error) {
	cfg := p.c.cfg
	var creds []Param
	memberPay := false
	for _, q := range params {
		if q.Key == "MemberID" {
			memberPay = true
		}
	}
	switch {
	case siteAPIs[api]:
		if cfg.SiteID == "" {
			_, err := p.site()
			return nil, nil, err
		}
		creds = []Param{{"SiteID", cfg.SiteID}, {"SitePass", cfg.SitePass}}
	default:
		creds = p.shop()
		// A payment or TradedCard with a member needs the site as well.
		if (memberPay || api == "TradedCard") && cfg.SiteID != "" {
			creds = append(creds, Param{"SiteID", cfg.SiteID}, Param{"SitePass", cfg.SitePass})
		}
	}
	out := make([]Param, 0, len(creds)+len(params))
	out = append(out, creds...)
	for _, q := range params {
		if !credentialKeys[q.Key] {
			out = append(out, q)
		}
	}
	kind := write
	if readAPIs[api] {
		kind = read
	}
	v, err := p.c.call(ctx, api, out, kind)
	if err != nil {
		return v, v.Errors(), err
	}
	return v, nil, nil
}

// cardDataKeys are the wire names of raw card data, in lower case: the
// card number, its expiry, the security code and the PIN. An app that
// sends them through the passthrough handles card data itself and is in
// full PCI DSS scope, so they are refused unless the account allows them
// explicitly.
var cardDataKeys = map[string]bool{"cardno": true, "expire": true, "securitycode": true, "pin": true}

// IsCardData reports whether the wire name key carries raw card data,
// whatever its case ("Cardno" is refused like "CardNo").
func IsCardData(key string) bool { return cardDataKeys[strings.ToLower(key)] }

// maxPassthroughValue bounds a value without a rule of its own, in bytes.
const maxPassthroughValue = 512

// CheckParam applies the unified API's rules to one passthrough parameter:
// key is GMO's wire name, param the name the app sent (for the error). Raw
// card data needs allowCardData. Values that have a unified rule (order
// id, amounts, client fields, token, member id, ...) must pass it; every
// other value must be Shift_JIS text without control characters and
// without & = |, which would forge fields in GMO's raw k=v&k=v answers
// (a ClientField3 of "x&Status=VOID" comes back as a Status). Credentials
// are not checked: paynorm drops them.
func CheckParam(param, key, value string, allowCardData bool) *normalize.Error {
	if credentialKeys[key] {
		return nil
	}
	if IsCardData(key) && !allowCardData {
		e := normalize.Newf("card_data_not_allowed", "%s is raw card data, which the passthrough does not relay for this account: send a card token (token) instead, or set passthrough_card_data allow on an account that is in PCI DSS scope.", param)
		return e.WithParam(param)
	}
	bad := func(en, ja string) *normalize.Error {
		return normalize.Validation([]normalize.FieldError{normalize.Field(param, "parameter_invalid", en, ja)})
	}
	digits := func(min, max int) *normalize.Error {
		if normalize.Digits(value, min, max) {
			return nil
		}
		if min == max {
			return bad(fmt.Sprintf("%s must be %d digits.", param, min), fmt.Sprintf("%sは%d桁の数字で指定してください。", param, min))
		}
		return bad(fmt.Sprintf("%s must be %d to %d digits.", param, min, max), fmt.Sprintf("%sは%d〜%d桁の数字で指定してください。", param, min, max))
	}
	switch key {
	case "OrderID":
		if !normalize.ValidOrderID(value, MaxOrderID) {
			return bad(param+" must be 1 to 27 characters of A-Z, a-z, 0-9 and '-'.", "オーダーIDは27文字以内の半角英数字とハイフンで指定してください。")
		}
	case "Amount", "Tax":
		return digits(1, 7) // 0 to 9,999,999 yen, as normalize.MaxAmount
	case "ClientField1", "ClientField2", "ClientField3":
		if f := normalize.CheckClientField(param, value); f != nil {
			return normalize.Validation([]normalize.FieldError{*f})
		}
	case "Token":
		if value == "" || !normalize.CardTokenOK(value) {
			return bad(param+" is malformed.", "カードトークンの形式が正しくありません。")
		}
	case "MemberID":
		if !normalize.ValidCustomerID(value) {
			return bad(param+" may contain only A-Z, a-z, 0-9, '-', '_', '.', '@' and at most 60 characters.", "会員IDの形式が正しくありません。")
		}
	case "MemberName":
		if f := normalize.CheckMemberName(param, value); f != nil {
			return normalize.Validation([]normalize.FieldError{*f})
		}
	case "CardSeq":
		return digits(1, 4)
	case "Method", "SeqMode", "DefaultFlag", "ClientFieldFlag", "TdFlag", "Tds2Type", "CallbackType":
		return digits(1, 1)
	case "PayTimes":
		return digits(1, 2)
	case "JobCd":
		if !upperWord(value, 10) {
			return bad(param+" must be a GMO job code such as AUTH or CAPTURE.", "処理区分の形式が正しくありません。")
		}
	case "AccessID", "AccessPass":
		if !alnum(value, 64) {
			return bad(param+" must be letters and digits only.", param+"は半角英数字で指定してください。")
		}
	case "CardNo":
		return digits(10, 19)
	case "Expire":
		return digits(4, 4) // YYMM
	case "SecurityCode":
		return digits(3, 4)
	case "PIN":
		return digits(4, 4)
	default:
		if strings.HasSuffix(key, "Url") || strings.HasSuffix(key, "URL") {
			return checkURLParam(param, value)
		}
		if strings.ContainsAny(value, "&=|") {
			return bad(param+" may not contain & = or | (GMO answers are raw key=value text).", param+"に & = | は使用できません。")
		}
		if len(value) > maxPassthroughValue {
			return bad(fmt.Sprintf("%s is longer than %d bytes.", param, maxPassthroughValue), fmt.Sprintf("%sは%dバイト以内で指定してください。", param, maxPassthroughValue))
		}
		if f := normalize.CheckSJIS(param, param, value, 0); f != nil {
			return normalize.Validation([]normalize.FieldError{*f})
		}
	}
	return nil
}

// checkURLParam accepts an absolute http(s) URL (3-D Secure RetUrl and the
// like) of at most 1024 bytes without control characters or '|'.
func checkURLParam(param, value string) *normalize.Error {
	u, err := url.Parse(value)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(value) > 1024 ||
		strings.ContainsAny(value, "|") || strings.IndexFunc(value, unicode.IsControl) >= 0 {
		f := normalize.Field(param, "parameter_invalid", param+" must be an absolute http(s) URL of at most 1024 bytes.", param+"はhttp(s)で始まる1024バイト以内のURLで指定してください。")
		return normalize.Validation([]normalize.FieldError{f})
	}
	return nil
}

func upperWord(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

func alnum(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
