package caddymodule

import (
	"testing"

	"github.com/paynorm/paynorm/providers/sandbox"
)

// A create GMO refused before anything could move money (EntryTran 503)
// frees its Idempotency-Key: the app retries after Retry-After with the
// same key and gets a payment, charged once. A 503 after ExecTran was
// sent carries the payment (unknown) and stays replayed.
func TestRetryAfter503WithTheSameKey(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.gmo.InjectFault(sandbox.Fault{API: "EntryTran", Kind: sandbox.Fault5xx})
	first := e.do("POST", "/v1/payments", createBody("", "tok_visa", 1200), "retry-1")
	if first.Status != 503 || first.Header.Get("Retry-After") == "" || first.str("error", "code") != "provider_unavailable" {
		t.Fatalf("first %d %s", first.Status, first.Body)
	}
	again := e.do("POST", "/v1/payments", createBody("", "tok_visa", 1200), "retry-1")
	if again.Status != 200 || again.Header.Get("Idempotent-Replayed") != "" || again.str("status") != "captured" || e.gmo.Charges() != 1 {
		t.Fatalf("retry %d %s, charges %d", again.Status, again.Body, e.gmo.Charges())
	}

	e.gmo.InjectFault(sandbox.Fault{API: "ExecTran", Kind: sandbox.Fault5xx})
	sent := e.do("POST", "/v1/payments", createBody("", "tok_visa", 1300), "retry-2")
	replay := e.do("POST", "/v1/payments", createBody("", "tok_visa", 1300), "retry-2")
	if sent.Status != 503 || sent.str("error", "payment", "id") == "" || replay.Header.Get("Idempotent-Replayed") != "true" || e.gmo.Calls("ExecTran") != 2 {
		t.Fatalf("after ExecTran was sent: %d %s, replay %d %s, ExecTran %d", sent.Status, sent.Body, replay.Status, replay.Body, e.gmo.Calls("ExecTran"))
	}
}
