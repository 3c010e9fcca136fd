package notify

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paynorm/paynorm/store"
	"github.com/paynorm/paynorm/store/bolt"
)

const secret = "whsec_test_0123456789"

func TestSignVerify(t *testing.T) {
	body := []byte(`{"id":"evt_1"}`)
	now := time.Unix(1_700_000_000, 0)
	sig := Sign(secret, now.Unix(), body)
	if err := Verify(secret, "1700000000", sig, body, 5*time.Minute, now); err != nil {
		t.Fatal(err)
	}
	if Verify(secret, "1700000000", sig, []byte(`{"id":"evt_2"}`), 5*time.Minute, now) != ErrBadSignature {
		t.Error("tampered body accepted")
	}
	if Verify("other", "1700000000", sig, body, 5*time.Minute, now) != ErrBadSignature {
		t.Error("wrong secret accepted")
	}
	if Verify(secret, "1700000001", sig, body, 5*time.Minute, now) != ErrBadSignature {
		t.Error("timestamp not covered by the signature")
	}
	if Verify(secret, "1700000000", sig, body, 5*time.Minute, now.Add(10*time.Minute)) != ErrStale {
		t.Error("replay outside tolerance accepted")
	}
}

func TestBackoffDoublesAndCaps(t *testing.T) {
	n := New(Config{MinBackoff: time.Second, MaxBackoff: 30 * time.Second})
	for attempts, base := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 5: 16 * time.Second, 6: 30 * time.Second, 40: 30 * time.Second} {
		got := n.Backoff(attempts)
		if got < base || got > base+base/10 {
			t.Errorf("attempt %d: %v, want %v..%v", attempts, got, base, base+base/10)
		}
	}
}

// receiver verifies every delivery like the README tells merchants to.
type receiver struct {
	t    *testing.T
	up   atomic.Bool
	mu   sync.Mutex
	got  []string // event ids
	hits atomic.Int64
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.hits.Add(1)
	if !rc.up.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	body, _ := io.ReadAll(r.Body)
	if err := Verify(secret, r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature), body, 5*time.Minute, time.Now()); err != nil {
		rc.t.Errorf("delivery fails verification: %v", err)
		http.Error(w, "bad signature", http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	rc.got = append(rc.got, r.Header.Get(HeaderID))
	rc.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) ids() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.got...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func pending(t *testing.T, st store.Store) []*store.Event {
	evs, err := st.DueEvents(context.Background(), time.Now().Add(24*time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestDeliveredAfterReceiverComesBack(t *testing.T) {
	rc := &receiver{t: t}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	st := store.NewMemory()
	n := New(Config{URL: srv.URL, Secret: secret, Store: st, MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, Poll: 5 * time.Millisecond})
	n.Start()
	defer n.Stop()
	if err := n.Enqueue(context.Background(), &store.Event{ID: "evt_a", Type: "payment.captured", Body: []byte(`{"id":"evt_a"}`)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "three failed attempts", func() bool { return rc.hits.Load() >= 3 })
	if evs := pending(t, st); len(evs) != 1 || evs[0].Attempts < 2 {
		t.Fatalf("outbox while down: %+v", evs)
	}
	rc.up.Store(true)
	waitFor(t, "delivery", func() bool { return len(rc.ids()) == 1 })
	waitFor(t, "outbox to empty", func() bool { return len(pending(t, st)) == 0 })
	if rc.ids()[0] != "evt_a" {
		t.Fatalf("got %v", rc.ids())
	}
}

// A notifier that stops (a paynorm restart) with events still undelivered
// leaves them in the store; the next notifier over the same store sends them.
func TestPendingEventsSurviveANewNotifier(t *testing.T) {
	st := store.NewMemory()
	// First life: the receiver's port refuses connections.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + l.Addr().String()
	l.Close()
	first := New(Config{URL: deadURL, Secret: secret, Store: st, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, Poll: 5 * time.Millisecond})
	first.Start()
	for _, id := range []string{"evt_1", "evt_2"} {
		if err := first.Enqueue(context.Background(), &store.Event{ID: id, Type: "payment.failed", Body: []byte(`{"id":"` + id + `"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "failed attempts", func() bool {
		evs := pending(t, st)
		return len(evs) == 2 && evs[0].Attempts > 0 && evs[1].Attempts > 0
	})
	first.Stop()

	// Second life: the receiver is up.
	rc := &receiver{t: t}
	rc.up.Store(true)
	srv := httptest.NewServer(rc)
	defer srv.Close()
	second := New(Config{URL: srv.URL, Secret: secret, Store: st, MinBackoff: time.Millisecond, Poll: 5 * time.Millisecond})
	second.Start()
	defer second.Stop()
	waitFor(t, "both events", func() bool { return len(rc.ids()) == 2 })
	waitFor(t, "outbox to empty", func() bool { return len(pending(t, st)) == 0 })
}

// The same over a bolt file closed and reopened in between: a real restart.
func TestPendingEventsSurviveReopeningABoltStore(t *testing.T) {
	path := t.TempDir() + "/paynorm.db"
	st, err := bolt.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rc := &receiver{t: t}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	first := New(Config{URL: srv.URL, Secret: secret, Store: st, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, Poll: 5 * time.Millisecond})
	first.Start()
	if err := first.Enqueue(context.Background(), &store.Event{ID: "evt_bolt", Type: "payment.captured", Body: []byte(`{"id":"evt_bolt"}`)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a failed attempt", func() bool { return rc.hits.Load() > 0 })
	first.Stop()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st, err = bolt.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rc.up.Store(true)
	second := New(Config{URL: srv.URL, Secret: secret, Store: st, MinBackoff: time.Millisecond, Poll: 5 * time.Millisecond})
	second.Start()
	defer second.Stop()
	waitFor(t, "delivery after reopening", func() bool { return len(rc.ids()) == 1 && rc.ids()[0] == "evt_bolt" })
}

// A poison event (its receiver hangs on it) is tried MaxAttempts times and
// then moved to the dead-letter list, and it never holds up the events
// behind it: they are delivered while it hangs.
func TestPoisonEventIsDeadLetteredAndNeverBlocksOthers(t *testing.T) {
	var good atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(HeaderID) == "evt_poison" {
			time.Sleep(700 * time.Millisecond) // past the client timeout
			return
		}
		good.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	st := store.NewMemory()
	var dead atomic.Int64
	n := New(Config{URL: srv.URL, Secret: secret, Store: st, Client: &http.Client{Timeout: 300 * time.Millisecond},
		MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Poll: 5 * time.Millisecond, MaxAttempts: 3,
		OnDeadLetter: func(*store.Event) { dead.Add(1) }})
	ctx := context.Background()
	if err := n.Enqueue(ctx, &store.Event{ID: "evt_poison", Type: "payment.captured", Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	n.Start()
	defer n.Stop()
	start := time.Now()
	for i := 0; i < 5; i++ {
		if err := n.Enqueue(ctx, &store.Event{ID: "evt_" + string(rune('a'+i)), Type: "payment.captured", Body: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the five good events", func() bool { return good.Load() == 5 })
	took := time.Since(start)
	if took > 250*time.Millisecond {
		t.Fatalf("the good events took %v: they waited behind the poison event", took)
	}
	waitFor(t, "the poison event to be dead-lettered", func() bool { return dead.Load() == 1 })
	if evs := pending(t, st); len(evs) != 0 {
		t.Fatalf("outbox still holds %+v", evs)
	}
	dl, err := st.DeadEvents(ctx, 0)
	if err != nil || len(dl) != 1 || dl[0].ID != "evt_poison" || dl[0].Attempts != 3 || dl[0].LastError == "" || dl[0].DeadAt.IsZero() {
		t.Fatalf("dead letters %+v %v", dl, err)
	}
	t.Logf("5 good events delivered in %v while the poison one hung; poison dead-lettered after %d attempts, %v (%s)",
		took.Round(time.Millisecond), dl[0].Attempts, time.Since(start).Round(time.Millisecond), dl[0].LastError)
}

// An event older than MaxAge is dead-lettered at its next failure.
func TestOldEventIsDeadLetteredByAge(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) }))
	defer srv.Close()
	st := store.NewMemory()
	n := New(Config{URL: srv.URL, Secret: secret, Store: st, MaxAge: time.Hour})
	ctx := context.Background()
	if err := n.Enqueue(ctx, &store.Event{ID: "evt_old", Type: "payment.captured", Body: []byte(`{}`), CreatedAt: time.Now().Add(-2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if n.DeliverDue(ctx) != 0 {
		t.Fatal("delivered")
	}
	if dl, _ := st.DeadEvents(ctx, 0); len(dl) != 1 || dl[0].Attempts != 1 || dl[0].LastError != "receiver answered HTTP 500" {
		t.Fatalf("dead letters %+v", dl)
	}
}

// A receiver that redirects does not get the signed body re-posted to the
// Location: the 3xx is a failed delivery.
func TestRedirectIsNotFollowed(t *testing.T) {
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/collect", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	st := store.NewMemory()
	n := New(Config{URL: srv.URL, Secret: secret, Store: st, Client: &http.Client{}})
	ctx := context.Background()
	if err := n.Enqueue(ctx, &store.Event{ID: "evt_r", Type: "payment.captured", Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if n.DeliverDue(ctx) != 0 {
		t.Fatal("a redirect counted as delivered")
	}
	evs := pending(t, st)
	if len(evs) != 1 || evs[0].Attempts != 1 || evs[0].LastError != "receiver answered HTTP 307 (redirects are not followed)" {
		t.Fatalf("outbox %+v", evs)
	}
	if elsewhere.Load() != 0 {
		t.Fatal("the event was re-posted to the redirect target")
	}
}
