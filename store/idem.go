package store

import "time"

// IdemEntry is how persistent backends keep one idempotency key. It is
// exported so every backend encodes it the same way.
type IdemEntry struct {
	Fingerprint string    `json:"fp"`
	Done        bool      `json:"done"`
	Response    *Response `json:"resp,omitempty"`
	Expires     time.Time `json:"exp"`
	// Epoch is the backend's open count when the claim was made; bolt uses
	// it to expire claims left by a process that died.
	Epoch uint64 `json:"epoch,omitempty"`
}

// Decide maps an existing live entry to the claim outcome for fingerprint fp.
func (e *IdemEntry) Decide(fp string) (IdemState, *Response) {
	switch {
	case e.Fingerprint != fp:
		return IdemMismatch, nil
	case !e.Done || e.Response == nil:
		return IdemInFlight, nil
	}
	r := *e.Response
	return IdemReplay, &r
}

// Unresolved reports whether a record still waits for an outcome: a create
// not settled, a payment waiting for its card holder (3-D Secure, which
// expires), or an operation in flight or unconfirmed.
func (r *PaymentRecord) Unresolved() bool {
	return r.Status == "pending" || r.Status == "unknown" || r.Status == "requires_action" || r.Lease != nil || r.Unconfirmed != ""
}
