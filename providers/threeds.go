package providers

import (
	"context"

	"github.com/paynorm/paynorm/normalize"
)

// Completer is implemented by providers that finish a 3-D Secure payment
// on the server after the card holder's browser returns (GMO SecureTran2).
// Complete moves money: it is called once, under the payment's lease, and
// never retried blindly; an unknown outcome is read back.
type Completer interface {
	Complete(ctx context.Context, t Target) (*normalize.Payment, error)
}
