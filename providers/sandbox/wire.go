package sandbox

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding/japanese"
)

// The simulators' own wire code. It shares nothing with the codecs it
// tests (providers/gmo, providers/jpayment, providers/gmoivr): written from
// the recordings in testdata/fixtures and the seeds, so an assumption the
// codec makes is not silently made here too. A test keeps it that way
// (imports_test.go).

// kv is one key=value pair of a GMO answer, in answer order.
type kv struct{ k, v string }

// jst is Japan time, the zone of every provider date.
var jst = time.FixedZone("JST", 9*60*60)

// errBadForm is a request body GMO could not read.
var errBadForm = errors.New("sandbox: malformed form body")

// parseSJISForm reads a form body the way GMO does: percent-decoded bytes in
// Shift_JIS (Windows-31J), '+' as a space.
func parseSJISForm(body []byte) (map[string]string, error) {
	out := map[string]string{}
	for _, piece := range strings.Split(string(body), "&") {
		if piece == "" {
			continue
		}
		k, v, _ := strings.Cut(piece, "=")
		kb, err1 := percentDecode(k)
		vb, err2 := percentDecode(v)
		if err1 != nil || err2 != nil {
			return nil, errBadForm
		}
		s, err := fromSJIS(vb)
		if err != nil {
			return nil, err
		}
		out[string(kb)] = s
	}
	return out, nil
}

func percentDecode(s string) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			out = append(out, ' ')
		case '%':
			if i+2 >= len(s) {
				return nil, errBadForm
			}
			b, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return nil, errBadForm
			}
			out = append(out, byte(b))
			i += 2
		default:
			out = append(out, c)
		}
	}
	return out, nil
}

// fromSJIS decodes Windows-31J; bytes that are not Windows-31J are refused.
func fromSJIS(b []byte) (string, error) {
	if utf8.Valid(b) && !bytes.ContainsFunc(b, func(r rune) bool { return r >= utf8.RuneSelf }) {
		return string(b), nil
	}
	out, err := japanese.ShiftJIS.NewDecoder().Bytes(b)
	if err != nil || bytes.ContainsRune(out, utf8.RuneError) {
		return "", errBadForm
	}
	return string(out), nil
}

// encodeAnswer writes a GMO answer: raw k=v pairs joined by '&', values
// neither percent-encoded nor quoted, Japanese text as Shift_JIS bytes, no
// trailing newline (fixtures: INDEX.md §4, §6, §7, §8).
func encodeAnswer(pairs []kv) []byte {
	var b bytes.Buffer
	enc := japanese.ShiftJIS.NewEncoder()
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		if s, err := enc.String(p.v); err == nil {
			b.WriteString(s)
		} else {
			b.WriteString(p.v)
		}
	}
	return b.Bytes()
}

// checkString is ExecTran's MD5 over OrderID, Forward, Method, PayTimes,
// Approve, TranID and TranDate of the answer plus the shop password,
// lower-case hex (seed 000's CheckString row: 出力パラメータのNo2~8の値+
// ショップパスワード).
func checkString(values []string, shopPass string) string {
	h := md5.New()
	for _, v := range values {
		h.Write([]byte(v))
	}
	h.Write([]byte(shopPass))
	return hex.EncodeToString(h.Sum(nil))
}

// orderIDOK is GMO's OrderID alphabet: 1..max of A-Z a-z 0-9 '-'.
func orderIDOK(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// maskKeep4 is how SearchTrade, SearchTradeMulti and TradedCard mask a
// number: all '*' but the last four digits ("************1111").
func maskKeep4(n string) string {
	if len(n) <= 4 {
		return strings.Repeat("*", len(n))
	}
	return strings.Repeat("*", len(n)-4) + n[len(n)-4:]
}

// maskKeep3 is how SaveCard and SearchCard mask a number: all '*' but the
// last three digits ("*************111"; INDEX.md §11).
func maskKeep3(n string) string {
	if len(n) <= 3 {
		return strings.Repeat("*", len(n))
	}
	return strings.Repeat("*", len(n)-3) + n[len(n)-3:]
}

// brandOf names a test card's brand by its leading digits, as GMO's card
// attribute columns do (VISA, MASTER, JCB, AMEX, DINERS; seed 001 item 64).
func brandOf(n string) string {
	switch {
	case strings.HasPrefix(n, "4"):
		return "VISA"
	case strings.HasPrefix(n, "5"), strings.HasPrefix(n, "2"):
		return "MASTER"
	case strings.HasPrefix(n, "35"):
		return "JCB"
	case strings.HasPrefix(n, "34"), strings.HasPrefix(n, "37"):
		return "AMEX"
	case strings.HasPrefix(n, "30"), strings.HasPrefix(n, "36"), strings.HasPrefix(n, "38"):
		return "DINERS"
	}
	return ""
}

func digits(s string, min, max int) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// sameDay, sameMonth compare two instants as Japan dates.
func sameDay(a, b time.Time) bool {
	a, b = a.In(jst), b.In(jst)
	return a.Year() == b.Year() && a.YearDay() == b.YearDay()
}

func sameMonth(a, b time.Time) bool {
	a, b = a.In(jst), b.In(jst)
	return a.Year() == b.Year() && a.Month() == b.Month()
}

// monthsBetween counts calendar months from a to b in Japan time.
func monthsBetween(a, b time.Time) int {
	a, b = a.In(jst), b.In(jst)
	return (b.Year()-a.Year())*12 + int(b.Month()) - int(a.Month())
}

// sjisLen is the length of s in Windows-31J bytes; ok is false when a
// character has no Windows-31J encoding.
func sjisLen(s string) (int, bool) {
	b, err := japanese.ShiftJIS.NewEncoder().String(s)
	return len(b), err == nil
}
