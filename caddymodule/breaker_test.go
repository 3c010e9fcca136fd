package caddymodule

import (
	"fmt"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/paynorm/paynorm/providers/sandbox"
)

// The provider goes down for a while: the breaker opens after the
// configured faults, no call reaches the provider while it is open, and it
// closes again after the provider recovered. Calls are counted per phase.
func TestBreakerProviderDownAndRecovers(t *testing.T) {
	e := newEnv(t, nil, func(h *Handler) {
		h.Accounts[0].BreakerFailures = 3
		h.Accounts[0].BreakerOpen = caddy.Duration(time.Second)
	})
	total := func() int64 {
		var n int64
		for _, api := range []string{"EntryTran", "ExecTran", "SearchTrade", "AlterTran"} {
			n += e.gmo.Calls(api)
		}
		return n
	}
	var transitions []string
	state := func() string {
		s := e.h.providers["gmo"].Breaker()
		if len(transitions) == 0 || transitions[len(transitions)-1] != s {
			transitions = append(transitions, s)
		}
		return s
	}
	state()
	phase := func(name string, n int) (calls int64, codes map[string]int) {
		codes = map[string]int{}
		before := total()
		for i := 0; i < n; i++ {
			r := e.do("POST", "/v1/payments", createBody("", "tok_visa", 100), "")
			code := r.str("error", "code")
			if r.Status == 200 {
				code = r.str("status")
			}
			codes[code]++
			state()
		}
		calls = total() - before
		t.Logf("phase %-10s %2d requests -> provider calls %2d, answers %v, breaker %s", name, n, calls, codes, state())
		return calls, codes
	}

	e.gmo.InjectFault(sandbox.Fault{API: "*", Kind: sandbox.Fault5xx, Count: 1000})
	calls, codes := phase("down", 10)
	if calls != 3 || codes["provider_unavailable"] != 3 || codes["circuit_open"] != 7 || state() != "open" {
		t.Fatalf("down: %d calls, %v, breaker %s", calls, codes, state())
	}
	e.gmo.ClearFaults()
	calls, codes = phase("recovered", 5)
	if calls != 0 || codes["circuit_open"] != 5 {
		t.Fatalf("still open: %d calls, %v", calls, codes)
	}
	if r := e.do("GET", "/v1/health", "", ""); r.str("status") != "degraded" {
		t.Fatalf("health %s", r.Body)
	}
	time.Sleep(1100 * time.Millisecond)
	calls, codes = phase("after", 5)
	if calls != 10 || codes["captured"] != 5 || state() != "closed" {
		t.Fatalf("after: %d calls, %v, breaker %s", calls, codes, state())
	}
	t.Logf("breaker transitions: %v", transitions)
	if fmt.Sprint(transitions) != "[closed open closed]" && fmt.Sprint(transitions) != "[closed open half-open closed]" {
		t.Fatalf("transitions %v", transitions)
	}
	if e.gmo.Charges() != 5 {
		t.Fatalf("charges %d", e.gmo.Charges())
	}
}
