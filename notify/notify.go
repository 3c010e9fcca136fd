// Package notify delivers paynorm's webhook events to the merchant's
// notify_url: each event is persisted in the store's outbox before it is
// acknowledged upstream, signed with HMAC-SHA256, and retried with
// exponential backoff until the receiver answers 2xx (at-least-once; the
// stable event id lets receivers drop duplicates). An event that still
// fails after MaxAttempts tries or MaxAge moves to the store's dead-letter
// list; deliveries run side by side, so one poison event never holds up
// the others. Redirects are never followed.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/paynorm/paynorm/store"
)

// Header names of a delivery.
const (
	HeaderID        = "Paynorm-Event-Id"
	HeaderType      = "Paynorm-Event-Type"
	HeaderTimestamp = "Paynorm-Timestamp"
	// HeaderSignature is "v1=" + hex(HMAC-SHA256(secret, timestamp + "." + body)).
	HeaderSignature = "Paynorm-Signature"
)

// Sign computes the v1 signature of body sent at unix time ts.
func Sign(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// Verification errors.
var (
	ErrBadSignature = errors.New("notify: signature does not match")
	ErrStale        = errors.New("notify: timestamp outside the tolerance")
)

// Verify checks a delivery's headers against body, as a receiver should:
// the signature in constant time and the timestamp within tolerance (replay
// protection).
func Verify(secret, timestamp, signature string, body []byte, tolerance time.Duration, now time.Time) error {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	if !hmac.Equal([]byte(Sign(secret, ts, body)), []byte(signature)) {
		return ErrBadSignature
	}
	return nil
}

// Config configures a Notifier.
type Config struct {
	// URL receives POSTed events.
	URL string
	// Secret signs every delivery.
	Secret string
	// Store holds the outbox.
	Store store.Store
	// Client sends deliveries (default: 10s timeout). Its redirect policy
	// is replaced: a 3xx is a failed delivery, never followed (the signed
	// body would go to another origin).
	Client *http.Client
	// MinBackoff is the wait after the first failure (default 1s); it
	// doubles per attempt up to MaxBackoff (default 1h).
	MinBackoff, MaxBackoff time.Duration
	// MaxAttempts failed deliveries (default 30), or an event older than
	// MaxAge (default 72h) after a failed one, move it to the dead-letter
	// list, where it is kept for the operator (admin API) and not retried.
	MaxAttempts int
	MaxAge      time.Duration
	// Workers is how many deliveries run at once (default 8): a receiver
	// that hangs on one event does not hold up the others.
	Workers int
	// OnDeadLetter is told of every event moved to the dead-letter list
	// (the metric).
	OnDeadLetter func(ev *store.Event)
	// Poll is how often the outbox is scanned when nothing wakes the loop
	// (default 1s).
	Poll   time.Duration
	Logger *zap.Logger
	// Now is the clock (tests).
	Now func() time.Time
}

// Notifier runs the delivery loop over one store's outbox.
type Notifier struct {
	cfg  Config
	wake chan struct{}
	stop context.CancelFunc
	done chan struct{}
	sem  chan struct{} // one slot per delivery in flight
	wg   sync.WaitGroup

	mu       sync.Mutex
	inflight map[string]bool // event ids being delivered
}

// New builds a notifier; Start runs its loop.
func New(cfg Config) *Notifier {
	client := &http.Client{Timeout: 10 * time.Second}
	if cfg.Client != nil {
		c := *cfg.Client
		client = &c
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	cfg.Client = client
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 30
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 72 * time.Hour
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Hour
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Notifier{cfg: cfg, wake: make(chan struct{}, 1), sem: make(chan struct{}, cfg.Workers), inflight: map[string]bool{}}
}

// Enqueue persists ev in the outbox (due now) and wakes the loop. Once it
// returns nil the event survives a restart of a durable store.
func (n *Notifier) Enqueue(ctx context.Context, ev *store.Event) error {
	now := n.cfg.Now()
	if ev.CreatedAt.IsZero() {
		ev.CreatedAt = now
	}
	ev.NextTry = now
	if err := n.cfg.Store.AddEvent(ctx, ev); err != nil {
		return err
	}
	select {
	case n.wake <- struct{}{}:
	default:
	}
	return nil
}

// Wake starts a delivery pass now: events were written to the outbox by
// someone else (the ledger, with the change they announce).
func (n *Notifier) Wake() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Start runs the delivery loop until Stop.
func (n *Notifier) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	n.stop, n.done = cancel, make(chan struct{})
	go func() {
		defer close(n.done)
		t := time.NewTicker(n.cfg.Poll)
		defer t.Stop()
		for {
			n.dispatch(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-n.wake:
			}
		}
	}()
}

// Stop ends the loop and waits for the deliveries in flight.
func (n *Notifier) Stop() {
	if n.stop != nil {
		n.stop()
		<-n.done
	}
	n.wg.Wait()
}

// DeliverDue makes one pass over the due events, waits for the deliveries
// it started and reports how many succeeded.
func (n *Notifier) DeliverDue(ctx context.Context) int {
	var delivered atomic.Int64
	var wg sync.WaitGroup
	n.start(ctx, &wg, &delivered)
	wg.Wait()
	return int(delivered.Load())
}

// dispatch starts deliveries of the due events and returns at once.
func (n *Notifier) dispatch(ctx context.Context) { n.start(ctx, nil, nil) }

// start begins a delivery for each due event not already in flight, as
// long as a worker slot is free (the rest wait for the next pass).
func (n *Notifier) start(ctx context.Context, wg *sync.WaitGroup, delivered *atomic.Int64) {
	evs, err := n.cfg.Store.DueEvents(ctx, n.cfg.Now(), 100)
	if err != nil {
		if ctx.Err() == nil {
			n.cfg.Logger.Error("webhook outbox unreadable", zap.Error(err))
		}
		return
	}
	for _, ev := range evs {
		if ctx.Err() != nil {
			return
		}
		n.mu.Lock()
		busy := n.inflight[ev.ID]
		n.mu.Unlock()
		if busy {
			continue
		}
		select {
		case n.sem <- struct{}{}:
		default:
			return // every worker is busy: the next pass goes on
		}
		n.mu.Lock()
		n.inflight[ev.ID] = true
		n.mu.Unlock()
		n.wg.Add(1)
		if wg != nil {
			wg.Add(1)
		}
		go func(ev *store.Event) {
			defer func() {
				n.mu.Lock()
				delete(n.inflight, ev.ID)
				n.mu.Unlock()
				<-n.sem
				n.wg.Done()
				if wg != nil {
					wg.Done()
				}
			}()
			if n.handle(ctx, ev) && delivered != nil {
				delivered.Add(1)
			}
		}(ev)
	}
}

// handle delivers one event and records the outcome: deleted when
// delivered, rescheduled after a failure, or moved to the dead-letter list
// when it has failed too often or for too long.
func (n *Notifier) handle(ctx context.Context, ev *store.Event) bool {
	err := n.deliver(ctx, ev)
	if err == nil {
		if err := n.cfg.Store.DeleteEvent(ctx, ev.ID); err != nil {
			// Delivered but still in the outbox: it goes out again, which
			// at-least-once delivery allows.
			n.cfg.Logger.Error("webhook outbox delete failed", zap.String("event_id", ev.ID), zap.Error(err))
		}
		n.cfg.Logger.Info("webhook delivered", zap.String("event_id", ev.ID), zap.String("type", ev.Type), zap.Int("attempts", ev.Attempts+1))
		return true
	}
	if ctx.Err() != nil {
		return false // shutting down: the attempt was cut short, not failed
	}
	now := n.cfg.Now()
	ev.Attempts++
	ev.LastError = err.Error()
	if ev.Attempts >= n.cfg.MaxAttempts || now.Sub(ev.CreatedAt) >= n.cfg.MaxAge {
		ev.DeadAt = now
		if berr := n.cfg.Store.BuryEvent(ctx, ev); berr != nil {
			n.cfg.Logger.Error("webhook dead-letter write failed", zap.String("event_id", ev.ID), zap.Error(berr))
			return false
		}
		n.cfg.Logger.Error("webhook given up: moved to the dead-letter list", zap.String("event_id", ev.ID), zap.String("type", ev.Type),
			zap.Int("attempts", ev.Attempts), zap.Duration("age", now.Sub(ev.CreatedAt)), zap.String("error", ev.LastError))
		if n.cfg.OnDeadLetter != nil {
			n.cfg.OnDeadLetter(ev)
		}
		return false
	}
	wait := n.Backoff(ev.Attempts)
	ev.NextTry = now.Add(wait)
	if uerr := n.cfg.Store.UpdateEvent(ctx, ev); uerr != nil {
		n.cfg.Logger.Error("webhook outbox update failed", zap.String("event_id", ev.ID), zap.Error(uerr))
	}
	n.cfg.Logger.Warn("webhook delivery failed", zap.String("event_id", ev.ID), zap.String("type", ev.Type),
		zap.Int("attempts", ev.Attempts), zap.Duration("next_in", wait), zap.String("error", ev.LastError))
	return false
}

// Backoff is the wait after the n-th failed attempt: MinBackoff doubled per
// attempt, capped at MaxBackoff, with up to 10% jitter so that many events
// failing together do not retry in lockstep.
func (n *Notifier) Backoff(attempts int) time.Duration {
	d := n.cfg.MinBackoff
	for i := 1; i < attempts && d < n.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, n.cfg.MaxBackoff)
	return d + time.Duration(rand.Int64N(int64(d)/10+1))
}

func (n *Notifier) deliver(ctx context.Context, ev *store.Event) error {
	ts := n.cfg.Now().Unix()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.cfg.URL, bytes.NewReader(ev.Body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "paynorm-webhooks/1")
	req.Header.Set(HeaderID, ev.ID)
	req.Header.Set(HeaderType, ev.Type)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(n.cfg.Secret, ts, ev.Body))
	resp, err := n.cfg.Client.Do(req)
	if err != nil {
		return errors.New(strings.ReplaceAll(err.Error(), n.cfg.URL, "notify_url"))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return fmt.Errorf("receiver answered HTTP %d (redirects are not followed)", resp.StatusCode)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("receiver answered HTTP %d", resp.StatusCode)
	}
	return nil
}
