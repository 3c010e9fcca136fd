package gmo

import (
	"errors"
	"net/url"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/japanese"
)

// Notification is one GMO result notification (結果通知プログラム): a
// Shift_JIS form GMO POSTs to the shop's registered URL after a payment
// changes, resent about hourly (up to 5 times) until the answer is "0". It
// carries no signature, so it is a claim: only the fields paynorm needs to
// look the payment up are kept, and the passwords (masked by GMO anyway)
// are dropped.
type Notification struct {
	ShopID, OrderID, AccessID string
	Status, JobCd             string
	Amount, Tax               string
	ErrCode, ErrInfo          string
}

// maxNotification bounds a notification's body: the documented fields fit
// in well under 2 KiB.
const maxNotification = 8 << 10

// ParseNotification reads a result notification body (Shift_JIS
// x-www-form-urlencoded, as GMO sends it; plain ASCII/UTF-8 is accepted
// too). It checks the shape of every field it keeps.
func ParseNotification(body []byte) (*Notification, error) {
	if len(body) > maxNotification {
		return nil, errors.New("notification body too large")
	}
	text := string(body)
	if !utf8.ValidString(text) {
		b, err := japanese.ShiftJIS.NewDecoder().Bytes(body)
		if err != nil {
			return nil, errors.New("notification body is neither Shift_JIS nor UTF-8")
		}
		text = string(b)
	}
	v, err := url.ParseQuery(text)
	if err != nil {
		return nil, errors.New("notification body is not a form")
	}
	get := func(k string) string { return strings.TrimSpace(v.Get(k)) }
	n := &Notification{ShopID: get("ShopID"), OrderID: get("OrderID"), AccessID: get("AccessID"),
		Status: get("Status"), JobCd: get("JobCd"), Amount: get("Amount"), Tax: get("Tax"),
		ErrCode: get("ErrCode"), ErrInfo: get("ErrInfo")}
	switch {
	case n.ShopID == "" || len(n.ShopID) > 13 || !printableASCII(n.ShopID):
		return nil, errors.New("the shop id (ShopID) is missing or malformed")
	case n.OrderID == "" || len(n.OrderID) > 27 || !orderIDChars(n.OrderID):
		return nil, errors.New("the order id (OrderID) is missing or malformed")
	case len(n.AccessID) > 32 || !printableASCII(n.AccessID):
		return nil, errors.New("the access id (AccessID) is malformed")
	case len(n.Status) > 20 || !printableASCII(n.Status) || len(n.JobCd) > 20 || !printableASCII(n.JobCd):
		return nil, errors.New("the status (Status, JobCd) is malformed")
	case len(n.Amount) > 10 || !digitsOrEmpty(n.Amount) || len(n.Tax) > 10 || !digitsOrEmpty(n.Tax):
		return nil, errors.New("the amounts (Amount, Tax) are malformed")
	case len(n.ErrCode) > 200 || len(n.ErrInfo) > 400 || !printableASCII(n.ErrCode+n.ErrInfo):
		return nil, errors.New("the error codes (ErrCode, ErrInfo) are malformed")
	}
	return n, nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func orderIDChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func digitsOrEmpty(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
