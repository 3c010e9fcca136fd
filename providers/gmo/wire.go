// Package gmo speaks GMO Payment Gateway's protocol-type card API
// ("*.idPass"): form-encoded Shift_JIS requests, raw k=v&k=v Shift_JIS
// answers, and the mapping of its ErrInfo codes onto paynorm's catalog.
package gmo

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/japanese"
)

// ContentType is sent explicitly: without it GMO does not parse the body and
// answers E01190001 (wire notes §7).
const ContentType = "application/x-www-form-urlencoded; charset=Windows-31J"

// Param is one request field; order is kept because GMO's own SDK sends
// fields in a fixed order and operators compare captures against it.
type Param struct{ Key, Value string }

// ErrNotShiftJIS reports a value that has no Windows-31J encoding.
var ErrNotShiftJIS = errors.New("value cannot be encoded in Shift_JIS")

const hexDigits = "0123456789ABCDEF"

// AppendForm appends params form-encoded in Shift_JIS (CP932) to dst. ASCII
// values take an allocation-free path; only non-ASCII ones are transcoded.
func AppendForm(dst []byte, params []Param) ([]byte, error) {
	first := true
	for _, p := range params {
		if !first {
			dst = append(dst, '&')
		}
		first = false
		dst = appendEscaped(dst, p.Key)
		dst = append(dst, '=')
		if isASCII(p.Value) {
			dst = appendEscaped(dst, p.Value)
			continue
		}
		var err error
		if dst, err = appendEscapedSJIS(dst, p.Value); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// sjisScratch holds a reusable encoder and buffers, so Japanese text costs
// no allocation per request either.
type sjisScratch struct {
	enc      *encoding.Encoder
	src, out []byte
}

var sjisPool = sync.Pool{New: func() any { return &sjisScratch{enc: japanese.ShiftJIS.NewEncoder()} }}

// appendEscapedSJIS transcodes v to Shift_JIS and percent-encodes it. A
// Shift_JIS encoding is never longer than the UTF-8 text, so one pass fits.
func appendEscapedSJIS(dst []byte, v string) ([]byte, error) {
	s := sjisPool.Get().(*sjisScratch)
	defer sjisPool.Put(s)
	s.enc.Reset()
	s.src = append(s.src[:0], v...)
	s.out = slices.Grow(s.out[:0], len(v))[:len(v)]
	n, _, err := s.enc.Transform(s.out, s.src, true)
	if err != nil {
		return dst, ErrNotShiftJIS
	}
	return appendEscaped(dst, unsafeString(s.out[:n])), nil
}

// unsafeString views b as a string for the duration of a call that only
// reads it.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// appendEscaped percent-encodes like url.QueryEscape (space as '+').
func appendEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == '~':
			dst = append(dst, c)
		case c == ' ':
			dst = append(dst, '+')
		default:
			dst = append(dst, '%', hexDigits[c>>4], hexDigits[c&15])
		}
	}
	return dst
}

// Values is a parsed GMO answer.
type Values map[string]string

// Get returns the value of key ("" when absent).
func (v Values) Get(key string) string { return v[key] }

// List splits a '|'-joined multi-record value (SearchCard and friends).
func (v Values) List(key string) []string {
	s, ok := v[key]
	if !ok {
		return nil
	}
	return strings.Split(s, "|")
}

// ErrPair is one ErrCode/ErrInfo pair.
type ErrPair struct{ Code, Info string }

// Errors pairs the n-th ErrCode with the n-th ErrInfo; a missing partner
// stays empty rather than shifting the others.
func (v Values) Errors() []ErrPair {
	codes, infos := v.List("ErrCode"), v.List("ErrInfo")
	if len(codes) == 0 && len(infos) == 0 {
		return nil
	}
	n := max(len(codes), len(infos))
	out := make([]ErrPair, 0, n)
	for i := 0; i < n; i++ {
		var p ErrPair
		if i < len(codes) {
			p.Code = strings.TrimSpace(codes[i])
		}
		if i < len(infos) {
			p.Info = strings.TrimSpace(infos[i])
		}
		if p.Code == "" && p.Info == "" {
			continue
		}
		out = append(out, p)
	}
	return out
}

// ErrMalformed is returned for an answer that is not a GMO k=v body.
var ErrMalformed = errors.New("malformed GMO response")

// MaxResponse bounds what paynorm reads from GMO; real answers are < 8 KiB.
const MaxResponse = 1 << 20

// ParseResponse decodes a raw Shift_JIS k=v&k=v body. Values are not
// percent-decoded (GMO does not encode them). A piece that does not start
// with a GMO key (they all begin with an upper-case letter) belongs to the
// previous value: this re-joins the raw "&t=" inside the 3DS2 RedirectUrl
// and '&' inside ACSUrl/PaReq.
func ParseResponse(body []byte) (Values, error) {
	body = bytes.TrimRight(body, "\r\n")
	if len(body) == 0 {
		return nil, ErrMalformed
	}
	text, err := decodeSJIS(body)
	if err != nil {
		return nil, err
	}
	// Sized to the answer so the map never grows while filling.
	out := make(Values, strings.Count(text, "&")+1)
	last := ""
	for piece := range strings.SplitSeq(text, "&") {
		k, val, hasEq := strings.Cut(piece, "=")
		if !hasEq || !isGMOKey(k) {
			if last == "" {
				return nil, ErrMalformed
			}
			out[last] += "&" + piece
			continue
		}
		out[k] = val
		last = k
	}
	return out, nil
}

func isGMOKey(k string) bool {
	if k == "" || k[0] < 'A' || k[0] > 'Z' || len(k) > 64 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// decodeSJIS turns Shift_JIS into UTF-8 and rejects bytes that are not
// Windows-31J, so a corrupted answer is never taken as data.
func decodeSJIS(b []byte) (string, error) {
	if isASCII(string(b)) {
		return string(b), nil
	}
	out, err := japanese.ShiftJIS.NewDecoder().Bytes(b)
	if err != nil || bytes.ContainsRune(out, utf8.RuneError) {
		return "", ErrMalformed
	}
	return string(out), nil
}
