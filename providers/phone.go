package providers

import (
	"context"

	"github.com/paynorm/paynorm/normalize"
)

// PhoneQuery tunes a phone authorization read.
type PhoneQuery struct {
	// History asks for the provider's execution history.
	History bool
	// Items asks for the free items registered with the order.
	Items bool
	// Request is what paynorm recorded when the order was registered (nil
	// when lost); the provider's answer lacks the job and the amounts' split.
	Request *normalize.CreatePhoneAuthorization
}

// PhoneAuthorizations is implemented by providers that take card payments
// over an operator's phone call (GMO IVR).
type PhoneAuthorizations interface {
	CreatePhoneAuthorization(ctx context.Context, req *normalize.CreatePhoneAuthorization) (*normalize.PhoneAuthorization, error)
	GetPhoneAuthorization(ctx context.Context, receiptNo string, q PhoneQuery) (*normalize.PhoneAuthorization, error)
}
