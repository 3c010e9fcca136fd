// Package exchange makes one provider call the way every paynorm client
// must: through the account's limiter and breaker, with a timeout, knowing
// whether any byte of the request was written, never repeating a write that
// may have reached the provider, retrying reads after faults, and telling the
// observer (one log line and the metrics) about every attempt. The provider
// clients only build requests and read answers.
package exchange

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/paynorm/paynorm/egress"
	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers"
	"github.com/paynorm/paynorm/resilience"
)

// Kind says whether a call may be repeated after it reached the provider.
type Kind int

const (
	// Read calls (SearchTrade, AuthSearchApi...) are safe to repeat.
	Read Kind = iota
	// Write calls may move money: repeated only when provably never sent,
	// and sent only once the operation's write-ahead record is durable.
	Write
	// Register calls write but move no money (GMO EntryTran registers an
	// order): never repeated once sent, like a write, but they may go
	// while the write-ahead record is on its way to the disk.
	Register
)

// Caller makes the calls of one provider account.
type Caller struct {
	// Account and Kind label logs and metrics ("gmo-main", "gmo").
	Account, Kind string
	// Label names the provider in messages ("GMO", "j-payment").
	Label  string
	Client *http.Client
	Guard  *resilience.Guard
	// Observe is told of every attempt (nil: nobody).
	Observe providers.Observer
	// Timeout bounds one attempt (default 30s).
	Timeout time.Duration
	// ReadTries is how often a read is tried (default 3).
	ReadTries int
	// MaxBody bounds what is read of an answer (default 1 MiB).
	MaxBody int64
}

// Build makes one attempt's request with the given context.
type Build func(ctx context.Context) (*http.Request, error)

// Decode reads one complete answer. It returns the provider's result code
// for the log line ("" when none) and what the answer means: nil for
// success, an error without Fault for a business answer (a decline), a
// Fault error for an unusable one.
type Decode func(status int, body []byte) (code string, err *normalize.Error)

// DefaultReadTries is how often a read is tried when ReadTries is unset.
const DefaultReadTries = 3

// writeTries: a write is repeated only when it provably never left paynorm.
const writeTries = 2

// tries is how many attempts a call of kind may make.
func tries(kind Kind, readTries int) int {
	if kind == Read {
		if readTries <= 0 {
			return DefaultReadTries
		}
		return readTries
	}
	return writeTries
}

// attemptSlack bounds the work of one attempt outside its timeout (building
// the request, decoding the answer, the log line).
const attemptSlack = 100 * time.Millisecond

// backoff is the pause after the given failed attempt.
func backoff(attempt int) time.Duration { return time.Duration(attempt) * 50 * time.Millisecond }

// Budget is the longest a sequence of calls can take under Call's rules:
// every attempt waits the full limiter wait (maxWait) and then runs to its
// timeout, reads are tried DefaultReadTries times, writes twice (a write is
// repeated only when nothing was sent, and a dial that fails still runs
// within the attempt's timeout), with the pauses between attempts and
// attemptSlack for the work around each attempt. Leases that must outlast
// an operation are derived from it.
func Budget(timeout, maxWait time.Duration, seq ...Kind) time.Duration {
	var d time.Duration
	for _, k := range seq {
		n := tries(k, 0)
		d += time.Duration(n) * (maxWait + timeout + attemptSlack)
		for a := 1; a < n; a++ {
			d += backoff(a)
		}
	}
	return d
}

// Call runs one API call with the retry rules of its kind. The call belongs
// to the operation in ctx (resilience.Operation), or is one of its own: the
// account's breaker counts operations, and a call's outcome is reported
// after its retries.
func (c *Caller) Call(ctx context.Context, api string, kind Kind, build Build, decode Decode) *normalize.Error {
	ctx, end := resilience.Operation(ctx)
	defer end()
	nerr := c.call(ctx, api, kind, build, decode)
	if nerr != nil {
		c.Guard.Report(ctx, nerr)
	}
	return nerr
}

func (c *Caller) call(ctx context.Context, api string, kind Kind, build Build, decode Decode) *normalize.Error {
	if kind == Write {
		if err := providers.AwaitWriteAhead(ctx); err != nil {
			e := normalize.Newf("store_unavailable", "paynorm could not record the operation before calling %s; nothing that moves money was sent.", c.Label)
			e.Provider = c.Account
			return e
		}
	}
	tries := tries(kind, c.ReadTries)
	for attempt := 1; ; attempt++ {
		nerr, sent := c.once(ctx, api, attempt, build, decode)
		if nerr == nil || !nerr.Fault {
			return nerr
		}
		retry := attempt < tries && ctx.Err() == nil && (!sent || kind == Read)
		if !retry {
			if kind != Read && nerr.Uncertain {
				nerr.Retryable = false
			}
			return nerr
		}
		select {
		case <-time.After(backoff(attempt)):
		case <-ctx.Done():
		}
	}
}

// noRedirects keeps a provider's 3xx as the answer. Following it would
// send the request again (breaking "sent once") and hand its body, with
// the shop password, card token or IVR password, to whatever origin the
// Location names.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// client is the Caller's HTTP client with redirects refused, whatever the
// provider client set.
func (c *Caller) client() *http.Client {
	cl := *c.Client
	cl.CheckRedirect = noRedirects
	return &cl
}

// once makes one guarded attempt; sent reports whether the request may have
// reached the provider.
func (c *Caller) once(ctx context.Context, api string, attempt int, build Build, decode Decode) (*normalize.Error, bool) {
	start := time.Now()
	info := providers.CallInfo{Account: c.Account, Kind: c.Kind, API: api, RequestID: providers.RequestID(ctx), Attempt: attempt}
	var tracker egress.Sent
	gerr := c.Guard.Do(ctx, func() error {
		timeout := c.Timeout
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		cctx, cancel := context.WithTimeout(tracker.Trace(ctx), timeout)
		defer cancel()
		req, err := build(cctx)
		if err != nil {
			return normalize.Newf("provider_misconfigured", "The %s endpoint URL is invalid.", c.Label)
		}
		resp, err := c.client().Do(req)
		if err != nil {
			return c.transportError(err, tracker.Wrote(), cctx)
		}
		defer resp.Body.Close()
		limit := c.MaxBody
		if limit <= 0 {
			limit = 1 << 20
		}
		raw, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if err != nil {
			return c.transportError(err, true, cctx)
		}
		if int64(len(raw)) > limit {
			return Unusable("%s's answer is larger than paynorm accepts.", c.Label)
		}
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			info.Code = http.StatusText(resp.StatusCode)
			return Unusable("%s answered a redirect (HTTP %d), which paynorm never follows; check the endpoint.", c.Label, resp.StatusCode)
		}
		code, derr := decode(resp.StatusCode, raw)
		info.Code = code
		if derr != nil {
			return derr
		}
		return nil
	})
	sent := tracker.Wrote()
	info.Duration = time.Since(start)
	observe := c.Observe
	if observe == nil {
		observe = func(providers.CallInfo) {}
	}
	if gerr == nil {
		info.Outcome = providers.OutcomeOK
		if info.Code != "" {
			info.Outcome = providers.OutcomeDeclined
		}
		observe(info)
		return nil, true
	}
	var ne *normalize.Error
	if !errors.As(gerr, &ne) {
		ne = normalize.New("processing_error")
	}
	if ne.Provider == "" {
		ne.Provider = c.Account
	}
	info.Outcome = outcomeOf(ne, sent)
	if info.Code == "" {
		info.Code = ne.Code
	}
	observe(info)
	return ne, sent
}

// StatusError is the error of an answer with an unexpected HTTP status:
// the provider may have processed the request, and it counts as a fault.
func StatusError(label string, status int) *normalize.Error {
	code := "provider_unavailable"
	if status < 500 {
		code = "invalid_response"
	}
	e := normalize.Newf(code, "%s answered HTTP %d.", label, status)
	e.Fault, e.Uncertain = true, true
	return e
}

// Unusable is the error of an answer paynorm cannot read: a fault whose
// outcome is unknown.
func Unusable(format string, args ...any) *normalize.Error {
	e := normalize.Newf("invalid_response", format, args...)
	e.Fault, e.Uncertain = true, true
	return e
}

func outcomeOf(e *normalize.Error, sent bool) string {
	switch {
	case e.Code == "circuit_open" || (e.Type == normalize.TypeRateLimited && len(e.ProviderCodes) == 0):
		return providers.OutcomeRejected
	case !sent && e.Fault:
		return providers.OutcomeNotSent
	case e.Type == normalize.TypeProviderTimeout:
		return providers.OutcomeTimeout
	case e.Fault:
		return providers.OutcomeFault
	}
	return providers.OutcomeDeclined
}

// transportError classifies a failed exchange. Nothing of the request (card
// data, passwords) goes into the text.
func (c *Caller) transportError(err error, wrote bool, ctx context.Context) *normalize.Error {
	if !wrote {
		e := normalize.Newf("provider_unavailable", "paynorm could not connect to %s; nothing was sent.", c.Label)
		e.Fault = true
		return e
	}
	if ctx.Err() != nil || isTimeout(err) {
		e := normalize.New("provider_timeout")
		e.Fault, e.Uncertain = true, true
		return e
	}
	e := normalize.Newf("provider_unavailable", "The connection to %s failed after the request was sent; the outcome is unknown.", c.Label)
	e.Fault, e.Uncertain = true, true
	return e
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout() || errors.Is(err, context.DeadlineExceeded)
}
