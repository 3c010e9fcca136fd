package ledger

import "github.com/paynorm/paynorm/normalize"

// Source is the evidence a change rests on.
type Source int

const (
	// FromOperation is the provider's answer to a call paynorm made.
	FromOperation Source = iota
	// FromProvider is a read-back from the provider (GMO SearchTrade).
	FromProvider
	// FromClaim is an unauthenticated notification (a j-payment kickback):
	// it may settle an open record, never change a settled one.
	FromClaim
	// fromClaimedOrder writes the payment of an order record a claim has
	// just settled (ClaimOrder): born from the claim, never changing one.
	fromClaimedOrder
)

// verified reports whether a change rests on the provider's own word.
func (s Source) verified() bool { return s == FromOperation || s == FromProvider }

func (s Source) String() string {
	switch s {
	case FromOperation:
		return "operation"
	case FromProvider:
		return "provider"
	case fromClaimedOrder:
		return "claimed order"
	}
	return "claim"
}

// settled are the statuses a finished outcome can have.
var settled = []string{
	normalize.StatusVerified, normalize.StatusAuthorized, normalize.StatusCaptured,
	normalize.StatusVoided, normalize.StatusRefunded, normalize.StatusFailed,
}

// moves are the legal status changes of a payment record (DESIGN.md
// "Payment state"). "" is a record that does not exist yet. A status
// staying the same is always legal; what may change with it is checked
// separately (moneyFrozen).
var moves = map[string][]string{
	"":                      {normalize.StatusPending},
	normalize.StatusPending: append([]string{normalize.StatusUnknown, StatusRequiresAction}, settled...),
	normalize.StatusUnknown: settled,
	StatusRequiresAction:    {normalize.StatusAuthorized, normalize.StatusCaptured, normalize.StatusVerified, normalize.StatusFailed, normalize.StatusVoided},
	normalize.StatusAuthorized: {normalize.StatusCaptured, normalize.StatusVoided,
		// GMO cancels an authorization of an earlier day with RETURN, and
		// j-payment's re-authorization refunds what it replaces.
		normalize.StatusRefunded},
	normalize.StatusCaptured: {normalize.StatusRefunded},
	// A create that failed moved no money; the same order may be tried again.
	normalize.StatusFailed: {normalize.StatusPending},
}

// StatusRequiresAction waits for the card holder (3-D Secure).
const StatusRequiresAction = normalize.StatusRequiresAction

// Legal reports whether a record may move from one status to another on
// the given evidence. A claim only settles an open record; a read-back
// from the provider is the provider's own word and may also correct a
// settled status (an operation in the control panel), but never reopens one.
func Legal(from, to string, src Source) bool {
	if from == to {
		return true
	}
	if from == "" {
		// A record is born pending (write-ahead) or from the provider's
		// own word (a create's answer, a read-back); never from a claim.
		return src != FromClaim && (to == normalize.StatusPending || to == StatusRequiresAction || isSettled(to))
	}
	switch src {
	case fromClaimedOrder:
		return false
	case FromClaim:
		return (from == normalize.StatusPending || from == normalize.StatusUnknown) && isSettled(to)
	case FromProvider:
		if isSettled(to) && from != "" {
			return true
		}
	}
	for _, s := range moves[from] {
		if s == to {
			return true
		}
	}
	return false
}

func isSettled(status string) bool {
	for _, s := range settled {
		if s == status {
			return true
		}
	}
	return false
}

// Open reports whether a status still waits for its outcome.
func Open(status string) bool {
	return status == normalize.StatusPending || status == normalize.StatusUnknown
}

// moneyFrozen reports whether a change keeps the money facts of a settled
// payment: amount, approval code and transaction id change only through
// an operation paynorm made or the provider's own read-back.
func moneyFrozen(a, b *normalize.Payment) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Amount == b.Amount && a.Tax == b.Tax && a.Shipping == b.Shipping &&
		a.ApprovalCode == b.ApprovalCode && a.TransactionID == b.TransactionID
}
