package exchange

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers"
	"github.com/paynorm/paynorm/resilience"
)

type rig struct {
	hits  atomic.Int64
	srv   *httptest.Server
	c     *Caller
	mu    sync.Mutex
	calls []providers.CallInfo
}

// newRig serves answer for every request and counts what arrives.
func newRig(t *testing.T, answer func(w http.ResponseWriter, n int64)) *rig {
	r := &rig{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		answer(w, r.hits.Add(1))
	}))
	t.Cleanup(r.srv.Close)
	r.c = &Caller{Account: "acct", Kind: "test", Label: "Test", Client: r.srv.Client(),
		Guard: resilience.New(resilience.Settings{Name: "acct"}), Timeout: 200 * time.Millisecond,
		Observe: func(ci providers.CallInfo) { r.mu.Lock(); r.calls = append(r.calls, ci); r.mu.Unlock() }}
	return r
}

func (r *rig) call(kind Kind, decode Decode) *normalize.Error {
	return r.c.Call(context.Background(), "Api", kind, func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodPost, r.srv.URL, nil)
	}, decode)
}

func okDecode(status int, _ []byte) (string, *normalize.Error) {
	if status != 200 {
		return http.StatusText(status), StatusError("Test", status)
	}
	return "", nil
}

func TestWriteIsNeverRepeatedOnceSent(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, _ int64) { w.WriteHeader(503) })
	e := r.call(Write, okDecode)
	if e == nil || !e.Uncertain || e.Retryable || r.hits.Load() != 1 {
		t.Fatalf("err %+v, hits %d", e, r.hits.Load())
	}
}

func TestReadIsRetriedAfterFaults(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, n int64) {
		if n < 3 {
			w.WriteHeader(502)
		}
	})
	if e := r.call(Read, okDecode); e != nil || r.hits.Load() != 3 {
		t.Fatalf("err %v, hits %d", e, r.hits.Load())
	}
	if len(r.calls) != 3 || r.calls[0].Outcome != providers.OutcomeFault || r.calls[2].Outcome != providers.OutcomeOK || r.calls[2].Attempt != 3 {
		t.Fatalf("observed %+v", r.calls)
	}
}

func TestTimeoutAfterSendIsUnknown(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, _ int64) { time.Sleep(time.Second) })
	e := r.call(Write, okDecode)
	if e == nil || e.Type != normalize.TypeProviderTimeout || !e.Uncertain || r.hits.Load() != 1 {
		t.Fatalf("err %+v hits %d", e, r.hits.Load())
	}
	if r.calls[0].Outcome != providers.OutcomeTimeout {
		t.Fatalf("outcome %s", r.calls[0].Outcome)
	}
}

func TestNotSentWriteIsRetriedOnce(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens: every dial is refused
	r := newRig(t, func(http.ResponseWriter, int64) {})
	e := r.c.Call(context.Background(), "Api", Write, func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr, nil)
	}, okDecode)
	if e == nil || e.Uncertain || !e.Retryable || len(r.calls) != 2 || r.calls[0].Outcome != providers.OutcomeNotSent {
		t.Fatalf("err %+v calls %+v", e, r.calls)
	}
}

func TestBusinessAnswerIsDeclinedNotFault(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, _ int64) { _, _ = w.Write([]byte("NG")) })
	e := r.call(Read, func(int, []byte) (string, *normalize.Error) { return "G02", normalize.New("insufficient_funds") })
	if e == nil || e.Fault || r.hits.Load() != 1 || r.calls[0].Outcome != providers.OutcomeDeclined || r.calls[0].Code != "G02" {
		t.Fatalf("err %+v calls %+v", e, r.calls)
	}
	if r.c.Guard.State() != "closed" {
		t.Fatal("a decline must not count against the breaker")
	}
}

func TestOversizedAnswerIsUnusable(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, _ int64) { _, _ = w.Write(make([]byte, 2048)) })
	r.c.MaxBody = 1024
	e := r.call(Write, okDecode)
	if e == nil || e.Code != "invalid_response" || !e.Uncertain {
		t.Fatalf("%+v", e)
	}
}

// A provider endpoint that answers 307 must not get the request re-sent to
// the Location: that would post the shop password (or a card token) to
// another origin and send a write twice. The 3xx is an unusable answer.
func TestRedirectIsNeverFollowed(t *testing.T) {
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	for _, code := range []int{301, 302, 307, 308} {
		r := newRig(t, func(w http.ResponseWriter, _ int64) {
			w.Header().Set("Location", other.URL+"/steal")
			w.WriteHeader(code)
		})
		e := r.call(Write, okDecode)
		if e == nil || !e.Fault || !e.Uncertain || e.Code != "invalid_response" || r.hits.Load() != 1 {
			t.Fatalf("%d: err %+v hits %d", code, e, r.hits.Load())
		}
	}
	if n := elsewhere.Load(); n != 0 {
		t.Fatalf("the redirect target received %d requests", n)
	}
}

// A read that fails twice and then answers is one successful operation:
// the breaker sees no failure. A write that faults is one failed operation.
func TestCallIsOneOperationForTheBreaker(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, n int64) {
		if n < 3 {
			w.WriteHeader(502)
		}
	})
	r.c.Guard = resilience.New(resilience.Settings{Name: "acct", FailureThreshold: 1})
	if e := r.call(Read, okDecode); e != nil {
		t.Fatal(e)
	}
	if st := r.c.Guard.State(); st != "closed" {
		t.Fatalf("a read that recovered within its retries opened the breaker: %s", st)
	}
	bad := newRig(t, func(w http.ResponseWriter, _ int64) { w.WriteHeader(503) })
	bad.c.Guard = r.c.Guard
	if e := bad.call(Write, okDecode); e == nil {
		t.Fatal("want a fault")
	}
	if st := r.c.Guard.State(); st != "open" {
		t.Fatalf("breaker %s after a failed operation with threshold 1", st)
	}
}

// Budget is never shorter than what a call really takes when every
// attempt runs to its timeout.
func TestBudgetCoversTimedOutAttempts(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, _ int64) { time.Sleep(400 * time.Millisecond) })
	for _, kind := range []Kind{Read, Write} {
		start := time.Now()
		if e := r.call(kind, okDecode); e == nil {
			t.Fatal("want a timeout")
		}
		took := time.Since(start)
		if b := Budget(r.c.Timeout, 0, kind); b < took {
			t.Fatalf("kind %d took %v, budget %v", kind, took, b)
		}
	}
	if got, want := Budget(30*time.Second, time.Second, Write, Read), 2*(31*time.Second+attemptSlack)+50*time.Millisecond+3*(31*time.Second+attemptSlack)+150*time.Millisecond; got != want {
		t.Fatalf("Budget = %v, want %v", got, want)
	}
}
