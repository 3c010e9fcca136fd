package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paynorm/paynorm/providers/sandbox"
)

// Two paynorm processes share one Redis: an Idempotency-Key is one key
// across both.
func TestIdempotencyAcrossTwoInstancesOnRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("long: starts two paynorm processes")
	}
	const redisAddr = "127.0.0.1:6379"
	if c, err := net.DialTimeout("tcp", redisAddr, time.Second); err != nil {
		t.Skipf("no Redis answers on %s (%v): skipped; .ci/run starts redis-server", redisAddr, err)
	} else {
		c.Close()
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "paynorm-e2e-" + hex.EncodeToString(b[:]) + ":"
	gmo, sim := simGMO(t)
	extra := fmt.Sprintf("store redis %s {\n\t\t\tprefix %s\n\t\t}", redisAddr, prefix)
	portA, portB := freePort(t), freePort(t)
	a := start(t, guardCaddyfile(portA, sim, extra), fmt.Sprintf("http://127.0.0.1:%d", portA))
	bb := start(t, guardCaddyfile(portB, sim, extra), fmt.Sprintf("http://127.0.0.1:%d", portB))
	urlA, urlB := a.API+"/v1/payments", bb.API+"/v1/payments"
	body := `{"amount":4321,"payment_method":{"token":"tok_visa"}}`

	// In flight on A -> 409 on B.
	gmo.InjectFault(sandbox.Fault{API: "ExecTran", Kind: sandbox.FaultDelay, Delay: 800 * time.Millisecond})
	done := make(chan *answer)
	go func() {
		r, _ := post(urlA, body, "shared-1")
		done <- r
	}()
	time.Sleep(300 * time.Millisecond)
	inflight, err := post(urlB, body, "shared-1")
	if err != nil || inflight.Status != 409 || inflight.str("error", "code") != "idempotency_key_in_use" {
		t.Fatalf("B while A is in flight: %v %v", err, inflight)
	}
	first := <-done
	if first == nil || first.Status != 200 {
		t.Fatalf("A: %v", first)
	}
	// Finished on A -> replayed by B; a different body -> 422 on B.
	replay, _ := post(urlB, body, "shared-1")
	if replay.Status != 200 || !bytes.Equal(replay.Body, first.Body) || replay.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("B replay: %d %s", replay.Status, replay.Body)
	}
	reused, _ := post(urlB, strings.Replace(body, "4321", "4322", 1), "shared-1")
	if reused.Status != 422 || reused.str("error", "code") != "idempotency_key_reused" {
		t.Fatalf("B different body: %d %s", reused.Status, reused.Body)
	}

	// N requests with one key spread over both instances: one charge.
	gmo.InjectFault(sandbox.Fault{API: "ExecTran", Kind: sandbox.FaultDelay, Delay: 400 * time.Millisecond})
	chargesBefore := gmo.Charges()
	const n = 40
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := urlA
			if i%2 == 1 {
				u = urlB
			}
			if r, err := post(u, `{"amount":777,"payment_method":{"token":"tok_visa"}}`, "shared-2"); err == nil {
				statuses[i] = r.Status
			}
		}()
	}
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	charges := gmo.Charges() - chargesBefore
	t.Logf("two instances on one Redis: in flight -> %d, replay -> %d (%s), other body -> %d; %d requests with one key over both -> answers %v, charges %d",
		inflight.Status, replay.Status, replay.Header.Get("Idempotent-Replayed"), reused.Status, n, count, charges)
	if charges != 1 || count[200]+count[409] != n || count[200] < 1 {
		t.Fatalf("charges %d, answers %v", charges, count)
	}
	if h := do(t, "GET", urlB[:len(urlB)-len("/payments")]+"/health", ""); h.str("store") != "redis" {
		t.Fatalf("health %s", h.Body)
	}
	_ = http.DefaultClient
}
