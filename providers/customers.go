package providers

import (
	"context"

	"github.com/paynorm/paynorm/normalize"
)

// Customers is implemented by providers that keep members and their cards
// (GMO's site API). A provider without it answers 422 unsupported.
type Customers interface {
	CreateCustomer(ctx context.Context, req *normalize.CreateCustomer) (*normalize.Customer, error)
	// GetCustomer returns the member with its stored cards.
	GetCustomer(ctx context.Context, id string) (*normalize.Customer, error)
	DeleteCustomer(ctx context.Context, id string) (*normalize.Customer, error)
	AddCard(ctx context.Context, customerID string, req *normalize.AddCard) (*normalize.StoredCard, error)
	ListCards(ctx context.Context, customerID string) ([]normalize.StoredCard, error)
	DeleteCard(ctx context.Context, customerID string, seq int) (*normalize.StoredCard, error)
}
