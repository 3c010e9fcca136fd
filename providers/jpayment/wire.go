// Package jpayment speaks ROBOT PAYMENT's (ex j-payment) card gateway:
// form-encoded requests to the *.aspx endpoints, rt=1 answers that are one
// comma-separated line read by position, "ER:<code>" error bodies, and the
// rt=0 kickback notifications the gateway sends to the merchant.
package jpayment

import (
	"errors"
	"net/url"
	"strconv"
	"strings"

	"github.com/paynorm/paynorm/normalize"
)

// ContentType of every request body.
const ContentType = "application/x-www-form-urlencoded"

// MaxResponse bounds an answer body; a real one is well under 2 KiB.
const MaxResponse = 16 << 10

// Param is one request field; order is kept so captures read like the
// official samples.
type Param struct{ Key, Value string }

// EncodeForm form-encodes params as UTF-8, percent-encoded. The spec names
// no charset for its free data (その他データ: "key=value 1024バイト以内",
// spaces and line breaks encoded); paynorm's own values are ASCII (ids,
// digits, tokens, e-mail), and metadata, which may be Japanese, goes out as
// UTF-8 like a form posted from a UTF-8 page, the only non-ASCII echo on
// record (a kickback carrying submit=%E8%B3%BC%E5%85%A5, UTF-8 "購入").
// The echo in an answer's 13th field is kept as given, never decoded.
func EncodeForm(params []Param) []byte {
	var b strings.Builder
	for i, p := range params {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(p.Key))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(p.Value))
	}
	return []byte(b.String())
}

// Result is one rt=1 answer, fields named as in the connection spec.
type Result struct {
	GID string // 決済番号: the payment's key at j-payment
	Rst string // 1 success, 2 failure
	Ap  string // 承認番号
	Ec  string // error code (G... from the card company, sometimes ER...)
	God string // オーダーコード
	Cod string // the merchant's order number
	Am  string
	Tx  string
	Sf  string
	Ta  string // am+tx+sf
	ID  string // 発行ID (ID/PW products only)
	PS  string // 発行パスワード: never logged or returned
	// Extra is the free key=value data echoed back, commas kept.
	Extra string
}

// Answer is a parsed body: either ErrCode (from an "ER:<code>" body) or Result.
type Answer struct {
	ErrCode string
	Result  *Result
}

// Errors of ParseAnswer.
var (
	ErrEmpty     = errors.New("jpayment: empty answer")
	ErrMalformed = errors.New("jpayment: answer is neither ER:<code> nor a result line")
)

// resultFields is the number of positional fields up to and including the
// free data (spec p.9: gid ... ps, その他).
const resultFields = 13

// ParseAnswer reads an rt=1 body. Carriage returns are dropped first (the
// gateway writes CRLF); the line is split by position, the 13th field and
// anything after it being free data that may itself contain commas or any
// other character the merchant sent ("<VIP>" included: a charged answer is
// never refused for what it echoes). An HTML error page is refused by its
// shape (several lines, or a first field that is not a payment number).
func ParseAnswer(body []byte) (*Answer, error) {
	s := strings.ReplaceAll(string(body), "\r", "")
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, ErrEmpty
	}
	if code, ok := strings.CutPrefix(s, "ER:"); ok {
		code = strings.TrimSpace(code)
		if !isCode(code) {
			return nil, ErrMalformed
		}
		return &Answer{ErrCode: code}, nil
	}
	if strings.Contains(s, "\n") {
		return nil, ErrMalformed // HTML pages, several lines
	}
	f := strings.SplitN(s, ",", resultFields)
	if len(f) < 10 {
		return nil, ErrMalformed
	}
	for len(f) < resultFields {
		f = append(f, "")
	}
	r := &Result{GID: f[0], Rst: f[1], Ap: f[2], Ec: f[3], God: f[4], Cod: f[5], Am: f[6], Tx: f[7], Sf: f[8], Ta: f[9], ID: f[10], PS: f[11], Extra: f[12]}
	if !normalize.Digits(r.GID, 1, 20) || (r.Rst != "1" && r.Rst != "2") || (r.Ec != "" && !isCode(r.Ec)) {
		return nil, ErrMalformed
	}
	for _, n := range []string{r.Am, r.Tx, r.Sf, r.Ta} {
		if n != "" && !normalize.Digits(n, 1, 10) {
			return nil, ErrMalformed
		}
	}
	return &Answer{Result: r}, nil
}

// Amounts returns am, tx, sf as integers (0 when empty).
func (r *Result) Amounts() (am, tx, sf int64) {
	am, _ = strconv.ParseInt(r.Am, 10, 64)
	tx, _ = strconv.ParseInt(r.Tx, 10, 64)
	sf, _ = strconv.ParseInt(r.Sf, 10, 64)
	return
}

// isCode accepts error codes like ER003 and G0442G040000.
func isCode(s string) bool {
	if len(s) < 2 || len(s) > 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Kickback results (rst) of an rt=0 notification. 3-5 come only from
// recurring (自動課金) charges.
const (
	RstSuccess          = "1"
	RstFailure          = "2"
	RstRetryFailed      = "3" // a recurring charge failed; j-payment retries
	RstStopped          = "4" // recurring billing stopped
	RstTrialRetryFailed = "5" // failed retry during a trial period
)

// Kickback is one rt=0 notification. PS (a password) is parsed so that it
// can be dropped, never forwarded.
type Kickback struct {
	GID, Rst, Ap, Ec, God, Cod string
	Am, Tx, Sf, Ta             int64
	// HasAmounts is false when the notification carried no am (stop notices).
	HasAmounts bool
	// Acid is the recurring billing number (自動課金番号), when present.
	Acid string
	ID   string
}

// ErrKickback describes a notification that cannot be used.
type ErrKickback struct{ Param, Reason string }

func (e *ErrKickback) Error() string { return "kickback " + e.Param + ": " + e.Reason }

// ParseKickback validates the parameters of an rt=0 notification (query
// string or form body). Unknown keys (free data, recurring settings) are
// ignored; every known one is checked for shape and size.
func ParseKickback(v url.Values) (*Kickback, error) {
	get := func(k string) string { return strings.TrimSpace(v.Get(k)) }
	k := &Kickback{GID: get("gid"), Rst: get("rst"), Ap: get("ap"), Ec: get("ec"), God: get("god"),
		Cod: get("cod"), Acid: get("acid"), ID: get("id")}
	switch {
	case !normalize.Digits(k.GID, 1, 20) || strings.Trim(k.GID, "0") == "":
		return nil, &ErrKickback{"gid", "must be the payment number (digits)"}
	case len(k.Rst) != 1 || k.Rst < "1" || k.Rst > "5":
		return nil, &ErrKickback{"rst", "must be 1 to 5"}
	case k.Ap != "" && !apCode(k.Ap):
		return nil, &ErrKickback{"ap", "must be an approval number or a result word (CPL, CVS_CAN, BAN_SAL)"}
	case k.Ec != "" && !isCode(k.Ec):
		return nil, &ErrKickback{"ec", "must be an error code"}
	case k.God != "" && !normalize.Digits(k.God, 1, 20):
		return nil, &ErrKickback{"god", "must be digits"}
	case len(k.Cod) > 50 || strings.ContainsAny(k.Cod, "\x00\r\n"):
		return nil, &ErrKickback{"cod", "must be at most 50 bytes on one line"}
	case k.Acid != "" && !normalize.Digits(k.Acid, 1, 20):
		return nil, &ErrKickback{"acid", "must be digits"}
	case k.Rst > RstFailure && k.Acid == "":
		return nil, &ErrKickback{"acid", "is required with rst 3, 4 and 5 (recurring billing)"}
	case len(k.ID) > 50:
		return nil, &ErrKickback{"id", "must be at most 50 characters"}
	}
	var seen int
	for _, f := range []struct {
		key string
		dst *int64
	}{{"am", &k.Am}, {"tx", &k.Tx}, {"sf", &k.Sf}, {"ta", &k.Ta}} {
		s := get(f.key)
		if s == "" {
			continue
		}
		if !normalize.Digits(s, 1, 10) {
			return nil, &ErrKickback{f.key, "must be an amount in yen"}
		}
		*f.dst, _ = strconv.ParseInt(s, 10, 64)
		seen++
	}
	k.HasAmounts = seen > 0
	if k.HasAmounts && get("ta") != "" && get("am") != "" && k.Ta != k.Am+k.Tx+k.Sf {
		return nil, &ErrKickback{"ta", "is not am+tx+sf"}
	}
	return k, nil
}

// apCode accepts what a kickback's ap carries: a card approval number
// (6-7 alphanumerics, "TestMod" in test mode) or, for convenience-store and
// bank payments, a result word with an underscore (CPL, CVS_CAN, BAN_SAL;
// wire notes §1.10).
func apCode(s string) bool {
	if len(s) == 0 || len(s) > 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
