package normalize

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"time"
)

// PaymentID derives the public id from the account name and the provider's
// own key (GMO OrderID, j-payment gid), so a lost store can be rebuilt from
// the provider. Account names never contain '_', so the first '_' splits.
func PaymentID(account, key string) string { return account + "_" + key }

// SplitPaymentID is the inverse of PaymentID.
func SplitPaymentID(id string) (account, key string, ok bool) {
	i := strings.IndexByte(id, '_')
	if i <= 0 || i == len(id)-1 {
		return "", "", false
	}
	return id[:i], id[i+1:], true
}

// NewOrderID makes an order id that fits every provider: "pn-" + 12 digits of
// JST date-time + 8 hex chars = 23 characters of [A-Za-z0-9-].
func NewOrderID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "pn-" + now.In(JST).Format("060102150405") + hex.EncodeToString(b[:])
}

// JST is Japan Standard Time, the timezone of every provider date.
var JST = time.FixedZone("JST", 9*60*60)
