package ledger

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/store"
)

// Event is the JSON body of a webhook delivery.
type Event struct {
	ID        string    `json:"id"`
	Object    string    `json:"object"`
	Type      string    `json:"type"`
	CreatedAt time.Time `json:"created_at"`
	// Provider is the account name the event concerns.
	Provider string `json:"provider"`
	// Verified is false when the event rests only on a provider
	// notification paynorm could not confirm (a j-payment kickback): a
	// claim, to be checked before goods are shipped on it.
	Verified bool      `json:"verified"`
	Data     EventData `json:"data"`
}

// EventData carries the payment and, for recurring billing, the subscription.
type EventData struct {
	Payment      *normalize.Payment `json:"payment,omitempty"`
	Subscription *Subscription      `json:"subscription,omitempty"`
	// Kickback is the provider's notification as received (passwords removed).
	Kickback map[string]string `json:"kickback,omitempty"`
}

// Subscription is j-payment recurring billing (自動課金) as events show it.
type Subscription struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	// Retrying is true while j-payment retries a failed recurring charge.
	Retrying bool `json:"retrying,omitempty"`
	Trial    bool `json:"trial,omitempty"`
}

// StableEventID derives an event id from what the event says, so the same
// fact announced twice is the same event and receivers can drop the copy.
func StableEventID(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x1f")))
	return "evt_" + hex.EncodeToString(sum[:12])
}

// Verb names the event of a payment status.
func Verb(status string) string {
	switch status {
	case normalize.StatusVoided, normalize.StatusRefunded:
		return "canceled"
	case "":
		return "updated"
	}
	return status
}

// stored encodes the event for the outbox, due at once.
func (ev *Event) stored(now time.Time) *store.Event {
	ev.Object = "event"
	if ev.CreatedAt.IsZero() {
		ev.CreatedAt = now.In(normalize.JST)
	}
	body, _ := json.Marshal(ev) // plain data: cannot fail
	return &store.Event{ID: ev.ID, Type: ev.Type, Body: body, CreatedAt: now, NextTry: now}
}
