package resilience

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/paynorm/paynorm/normalize"
)

func fault() error {
	e := normalize.New("provider_unavailable")
	return e
}

// op runs one operation of the given call outcomes through g.
func op(g *Guard, outcomes ...error) error {
	ctx, end := Operation(context.Background())
	defer end()
	for _, want := range outcomes {
		err := g.Do(ctx, func() error { return want })
		g.Report(ctx, err)
		if err != nil && !errors.Is(err, want) && err != want { //nolint:errorlint // identity check on purpose
			return err
		}
	}
	return nil
}

// A GMO create whose ExecTran faults while EntryTran and the SearchTrade
// read-back succeed is one failed operation: N of them in a row open the
// breaker, although no two calls in a row faulted (issue 11, item 12).
func TestFailedOperationsOpenTheBreaker(t *testing.T) {
	g := New(Settings{Name: "gmo", FailureThreshold: 5})
	for i := 0; i < 4; i++ {
		_ = op(g, nil, fault(), nil)
		if st := g.State(); st != "closed" {
			t.Fatalf("open after %d failed operations", i+1)
		}
	}
	_ = op(g, nil, fault(), nil)
	if st := g.State(); st != "open" {
		t.Fatalf("breaker %s after 5 failed operations", st)
	}
	err := op(g, nil)
	var ne *normalize.Error
	if !errors.As(err, &ne) || ne.Code != "circuit_open" || ne.Fault {
		t.Fatalf("open breaker answered %v", err)
	}
}

// Failed payments interleaved with reads that work still open it: a third
// or more of the operations failing, at least the threshold of them.
func TestFailuresBetweenSuccessfulReadsOpenTheBreaker(t *testing.T) {
	g := New(Settings{Name: "gmo", FailureThreshold: 3})
	for i := 0; i < 3; i++ {
		_ = op(g, nil, fault(), nil)
		_ = op(g, nil) // the app reads the payment back
	}
	if st := g.State(); st != "open" {
		t.Fatalf("breaker %s", st)
	}
}

// Declines are the provider working: never a failure.
func TestDeclinesNeverCount(t *testing.T) {
	g := New(Settings{Name: "gmo", FailureThreshold: 1})
	for i := 0; i < 20; i++ {
		_ = op(g, nil, normalize.New("insufficient_funds"))
	}
	if st := g.State(); st != "closed" {
		t.Fatalf("breaker %s after declines", st)
	}
}

// While half-open one trial operation is let in, with all of its calls;
// a second operation is refused until the trial ends, and a successful
// trial closes the breaker.
func TestHalfOpenTrialRunsAllItsCalls(t *testing.T) {
	g := New(Settings{Name: "gmo", FailureThreshold: 1, OpenTimeout: 50 * time.Millisecond})
	_ = op(g, fault())
	time.Sleep(60 * time.Millisecond)
	if st := g.State(); st != "half-open" {
		t.Fatalf("state %s", st)
	}
	ctx, end := Operation(context.Background())
	for i := 0; i < 3; i++ {
		if err := g.Do(ctx, func() error { return nil }); err != nil {
			t.Fatalf("trial call %d refused: %v", i, err)
		}
	}
	if err := op(g, nil); err == nil {
		t.Fatal("a second operation ran during the trial")
	}
	end()
	end() // ending twice is harmless
	if st := g.State(); st != "closed" {
		t.Fatalf("state %s after a good trial", st)
	}
}

// A call made after its operation ended (a goroutine outliving a request)
// counts on its own instead of holding a half-open breaker forever.
func TestCallAfterOperationEndCountsAlone(t *testing.T) {
	g := New(Settings{Name: "gmo", FailureThreshold: 1})
	ctx, end := Operation(context.Background())
	end()
	_ = g.Do(ctx, func() error { return fault() })
	if st := g.State(); st != "open" {
		t.Fatalf("state %s", st)
	}
}
