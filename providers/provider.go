// Package providers defines what paynorm needs from a payment provider and
// the hooks shared by every provider client (logging, metrics, request ids).
package providers

import (
	"context"
	"time"

	"github.com/paynorm/paynorm/normalize"
)

// Provider is one configured provider account speaking the unified API.
// Every error it returns is a *normalize.Error. Keys are the provider's own
// payment keys (GMO OrderID, j-payment gid), never paynorm ids.
type Provider interface {
	Account() string
	Kind() string
	CreatePayment(ctx context.Context, req *normalize.CreatePayment) (*normalize.Payment, error)
	GetPayment(ctx context.Context, key string) (*normalize.Payment, error)
	Capture(ctx context.Context, t Target, req *normalize.CaptureRequest) (*normalize.Payment, error)
	Cancel(ctx context.Context, t Target) (*normalize.Payment, error)
	Reauthorize(ctx context.Context, t Target, req *normalize.Reauthorize) (*normalize.Payment, error)
	// Breaker reports the circuit breaker state of the account.
	Breaker() string
}

// Target is the payment a follow-up operation acts on. Providers never
// read or write paynorm's records: the caller hands them what it knows.
type Target struct {
	// Key is the provider's key (GMO OrderID, j-payment gid).
	Key string
	// Known is paynorm's record of the payment, nil when it has none. A
	// provider that can be queried reads its own state instead.
	Known *normalize.Payment
}

// NoQuery is implemented by providers that have no query API (j-payment):
// paynorm's record is all there is to know about their payments.
type NoQuery interface{ NoQuery() bool }

// Queryable reports whether the provider can be asked for a payment.
func Queryable(p Provider) bool {
	n, ok := p.(NoQuery)
	return !ok || !n.NoQuery()
}

// Outcomes of one provider call, as labels for metrics and logs.
const (
	OutcomeOK       = "ok"       // the provider answered success
	OutcomeDeclined = "declined" // a business error (decline, validation)
	OutcomeFault    = "fault"    // 5xx, maintenance, garbage
	OutcomeTimeout  = "timeout"  // sent, no answer
	OutcomeNotSent  = "not_sent" // dial error: provably not sent
	OutcomeRejected = "rejected" // paynorm's limiter or breaker
)

// CallInfo describes one finished provider call.
type CallInfo struct {
	Account, Kind, API string
	Outcome            string
	// Code is the provider's result code ("" on success).
	Code      string
	Duration  time.Duration
	RequestID string
	Attempt   int
}

// Observer is told of every provider call (logs, metrics).
type Observer func(CallInfo)

type ctxKey struct{}

// WithRequestID stores the unified API request id for provider-call logs.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// RequestID returns the request id stored in ctx.
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(ctxKey{}).(string)
	return s
}

type writeAheadKey struct{}

// WithWriteAhead stores the wait for an operation's write-ahead record
// (its lease in paynorm's store): a call that may move money is sent only
// once that record is durable, while calls that move none (GMO EntryTran,
// SearchTrade) go while it is on its way to the disk.
func WithWriteAhead(ctx context.Context, durable func() error) context.Context {
	return context.WithValue(ctx, writeAheadKey{}, durable)
}

// AwaitWriteAhead waits for the write-ahead record in ctx to be durable
// (nil at once when there is none, or it already is).
func AwaitWriteAhead(ctx context.Context) error {
	if wait, _ := ctx.Value(writeAheadKey{}).(func() error); wait != nil {
		return wait()
	}
	return nil
}

// Unsupported is the answer of a provider to an operation it lacks.
func Unsupported(account, what string) *normalize.Error {
	e := normalize.Newf("unsupported", "Provider account %q does not support %s.", account, what)
	e.Provider = account
	return e
}

// KeyAssigner is implemented by providers whose payment key is assigned by
// the provider on success (j-payment's gid) rather than being the order id.
type KeyAssigner interface{ AssignsKey() bool }

// CreateRecordKey is the key of a create's write-ahead record. For a
// provider that assigns its own keys the order id is put in a namespace of
// its own ('.' never occurs in order ids or gids), so an all-digit order id
// can never collide with a payment's gid.
func CreateRecordKey(p Provider, orderID string) string {
	if k, ok := p.(KeyAssigner); ok && k.AssignsKey() {
		return "order." + orderID
	}
	return orderID
}

// JobFor maps a unified capture mode onto the job code both GMO (JobCd) and
// j-payment (jb) use for it: 仮売上 AUTH, 即時売上 CAPTURE, 有効性チェック CHECK,
// and GMO's 簡易オーソリ SAUTH (IVR only).
func JobFor(capture string) string {
	switch capture {
	case normalize.CaptureManual:
		return "AUTH"
	case normalize.CaptureVerify:
		return "CHECK"
	case normalize.CaptureSimpleAuth:
		return "SAUTH"
	}
	return "CAPTURE"
}

// StatusForJob is the unified status after a successful AUTH, SAUTH, CHECK
// or CAPTURE job.
func StatusForJob(job string) string {
	switch job {
	case "AUTH", "SAUTH":
		return normalize.StatusAuthorized
	case "CHECK":
		return normalize.StatusVerified
	}
	return normalize.StatusCaptured
}

// StateError answers an operation the payment's status does not allow,
// with the payment attached so the app sees where it stands.
func StateError(account, code string, pay *normalize.Payment) *normalize.Error {
	e := normalize.New(code)
	e.Message += " (status: " + pay.Status + ")"
	e.Provider, e.Payment = account, pay
	return e
}

// CheckCapturable allows a capture of an authorization, for exactly the
// authorized amount: neither GMO's SALES nor j-payment's take another one.
func CheckCapturable(account, label string, pay *normalize.Payment, req *normalize.CaptureRequest) *normalize.Error {
	switch pay.Status {
	case normalize.StatusAuthorized:
	case normalize.StatusCaptured:
		return StateError(account, "already_captured", pay)
	default:
		return StateError(account, "not_capturable", pay)
	}
	if req.Amount != nil && *req.Amount != pay.Amount {
		e := normalize.Newf("amount_mismatch", "%s captures exactly the authorized amount (%d yen); use reauthorize to change it first.", label, pay.Amount)
		e.Provider, e.Payment = account, pay
		return e.WithParam("amount")
	}
	return nil
}
