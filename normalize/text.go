package normalize

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding/japanese"
)

// Text rules of the fields GMO stores as text. GMO's protocol-type API
// takes Shift_JIS (Windows-31J) only, and the IVR passes its text on to it,
// so one rule serves both paths: a value must have a Windows-31J encoding,
// and its length is counted the way GMO's own error says it counts: in
// Shift_JIS bytes where the error reads 最大バイト数 (ClientField
// E01320012, MemberName E01430012: a kanji counts two), in characters where
// it reads 最大文字数 (HolderName E01480011). Checking here, before any call,
// keeps a value GMO cannot take from leaving an unexecuted order behind.

// MaxClientFieldBytes is the size of each 加盟店自由項目 in Shift_JIS bytes.
const MaxClientFieldBytes = 100

// MaxMemberNameBytes is the size of 会員名 in Shift_JIS bytes (the IVR's
// AuthSearchApi reports 255; its AuthRegistApi table says 256, and the
// member it registers is the card API's, so the smaller one holds).
const MaxMemberNameBytes = 255

// MaxCardNameBytes is the size of カード会社略称 (seed 001: 桁 10). The
// docs do not say bytes or characters; bytes is the stricter reading.
const MaxCardNameBytes = 10

// gmoForbidden are the half-width symbols GMO refuses in 加盟店自由項目 and
// 会員名 (seed 001 items 15 and 19; E01320013 利用できない文字). The seed's
// extracted text shows a gap between '{' and '}' where the PDF's '|' stood;
// '|' also joins GMO's multi-value answers, so it is refused too.
const gmoForbidden = "^`{|}~&<>\"'"

// SJISLen returns the length of s in Windows-31J bytes. When a character
// has no Windows-31J encoding it returns that character and ok false.
func SJISLen(s string) (n int, bad rune, ok bool) {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return len(s), 0, true
	}
	enc := japanese.ShiftJIS.NewEncoder()
	for _, r := range s {
		if r < utf8.RuneSelf {
			n++
			continue
		}
		b, err := enc.String(string(r))
		if err != nil || r == utf8.RuneError {
			return n, r, false
		}
		n += len(b)
	}
	return n, 0, true
}

// runeName shows a character and its code point for a message, with the
// usual fix for the characters Mac and Windows input produce most often.
func runeName(r rune) (en, ja string) {
	s := fmt.Sprintf("%q (U+%04X)", string(r), r)
	switch r {
	case '\u301C': // WAVE DASH: CP932 has FULLWIDTH TILDE in its place
		return s + "; use U+FF5E ～ instead", s + "。代わりに U+FF5E「～」を使用してください"
	case '\u2212': // MINUS SIGN
		return s + "; use U+FF0D － instead", s + "。代わりに U+FF0D「－」を使用してください"
	case '\u2016': // DOUBLE VERTICAL LINE
		return s + "; use U+2225 ∥ instead", s + "。代わりに U+2225「∥」を使用してください"
	}
	return s, s
}

// textError is the field error of one text rule.
func textError(param, en, ja string) *FieldError {
	f := Field(param, "parameter_invalid", en, ja)
	return &f
}

// control reports a control character (line breaks, tabs, NUL...).
func control(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

// CheckSJIS checks that v can be sent to GMO at all (Windows-31J, no
// control characters) and is at most maxBytes Shift_JIS bytes long
// (maxBytes 0: no length rule). label names the field in messages.
func CheckSJIS(param, label string, v string, maxBytes int) *FieldError {
	if control(v) {
		return textError(param, label+" may not contain line breaks, tabs or other control characters.",
			label+"に改行・タブなどの制御文字は使用できません。")
	}
	n, bad, ok := SJISLen(v)
	if !ok {
		en, ja := runeName(bad)
		return textError(param,
			label+" contains a character GMO cannot take (Shift_JIS / Windows-31J only): "+en+".",
			label+"にShift_JIS(Windows-31J)で表せない文字が含まれています: "+ja+"。")
	}
	if maxBytes > 0 && n > maxBytes {
		return textError(param,
			fmt.Sprintf("%s is %d Shift_JIS bytes; GMO takes at most %d (a full-width character counts 2).", label, n, maxBytes),
			fmt.Sprintf("%sは%dバイトです。Shift_JISで%dバイト以内(全角文字は2バイト)で指定してください。", label, n, maxBytes))
	}
	return nil
}

// CheckGMOText is CheckSJIS plus GMO's forbidden half-width symbols
// ^ ` { | } ~ & < > " ' (加盟店自由項目, 会員名).
func CheckGMOText(param, label, v string, maxBytes int) *FieldError {
	if i := strings.IndexAny(v, gmoForbidden); i >= 0 {
		c := string(v[i])
		return textError(param,
			label+" may not contain the symbols ^ ` { | } ~ & < > \" ' (GMO refuses them); found "+c+".",
			label+"に半角記号 ^ ` { | } ~ & < > \" ' は使用できません(「"+c+"」が含まれています)。")
	}
	return CheckSJIS(param, label, v, maxBytes)
}

// ClientFieldKeys are the metadata keys paynorm accepts: GMO's 加盟店自由項目
// 1 to 3, which the other providers carry as free data.
var ClientFieldKeys = []string{"client_field_1", "client_field_2", "client_field_3"}

// IsClientFieldKey reports whether k is one of ClientFieldKeys.
func IsClientFieldKey(k string) bool {
	for _, c := range ClientFieldKeys {
		if k == c {
			return true
		}
	}
	return false
}

// CheckClientField applies GMO's 加盟店自由項目 rule (at most 100 Shift_JIS
// bytes, Windows-31J only, none of ^ ` { | } ~ & < > " ') to one metadata
// value. It is the one rule of metadata for every provider and path, so a
// payment can move between accounts and the IVR takes what the card API
// takes.
func CheckClientField(param, v string) *FieldError {
	return CheckGMOText(param, param, v, MaxClientFieldBytes)
}

// CheckMetadata applies CheckClientField to every value of md, and refuses
// keys other than ClientFieldKeys. prefix is the object md sits in ("" or
// "authorize.").
func CheckMetadata(prefix string, md map[string]string) []FieldError {
	var f []FieldError
	for _, k := range ClientFieldKeys {
		if v, ok := md[k]; ok {
			if e := CheckClientField(prefix+"metadata."+k, v); e != nil {
				f = append(f, *e)
			}
		}
	}
	for k := range md {
		if !IsClientFieldKey(k) {
			f = append(f, Field(prefix+"metadata."+k, "parameter_unknown", "metadata accepts client_field_1, client_field_2 and client_field_3.", "metadataにはclient_field_1〜3のみ指定できます。"))
		}
	}
	return f
}

// CheckMemberName applies GMO's 会員名 rule: at most 255 Shift_JIS bytes
// (E01430012 counts bytes), Windows-31J only, none of GMO's forbidden
// symbols.
func CheckMemberName(param, v string) *FieldError {
	return CheckGMOText(param, param, v, MaxMemberNameBytes)
}

// CheckCardName applies the カード会社略称 rule: at most 10 Shift_JIS
// bytes, Windows-31J only, and neither '&' nor '|', which would break
// GMO's raw k=v answers (SearchCard echoes it, '|' joins its columns).
func CheckCardName(param, v string) *FieldError {
	if strings.ContainsAny(v, "&|") {
		return textError(param, param+" may not contain & or |.", "カード会社略称に & | は使用できません。")
	}
	return CheckSJIS(param, param, v, MaxCardNameBytes)
}

// CheckCustomer applies the contact rules of a create (e-mail at most 254
// characters with an '@', phone 1 to 15 digits) to the customer a
// follow-up sends (j-payment's re-authorization takes em and pn).
func CheckCustomer(c *CustomerInfo) []FieldError {
	if c == nil {
		return nil
	}
	var f []FieldError
	if c.Email != "" && (len(c.Email) > 254 || !strings.Contains(c.Email, "@") || strings.ContainsAny(c.Email, " ,&=") || control(c.Email)) {
		f = append(f, Field("customer.email", "parameter_invalid", "customer.email is not a valid address.", "メールアドレスの形式が正しくありません。"))
	}
	if c.Phone != "" && !Digits(c.Phone, 1, 15) {
		f = append(f, Field("customer.phone", "parameter_invalid", "customer.phone must be 1 to 15 digits without hyphens.", "電話番号はハイフンなしの15桁以内の数字で指定してください。"))
	}
	return f
}
