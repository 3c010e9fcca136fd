package e2e

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/paynorm/paynorm/providers/sandbox"
)

// kill -9 paynorm while 200 payments are in flight, restart it on the same
// store file, and check against the sandbox's ledger: every payment ends in
// a known state that matches, none is charged twice, none is lost; every
// answer given before the kill is replayed for its key after the restart.
// Then the apps retry what got no answer, with the same keys: every payment
// ends charged exactly once. On both embedded stores: the journal (the
// default) and bolt.
func TestKill9DuringPayments(t *testing.T) {
	if testing.Short() {
		t.Skip("long: kills and restarts paynorm")
	}
	for _, backend := range []string{"journal", "bolt"} {
		t.Run(backend, func(t *testing.T) { kill9DuringPayments(t, backend) })
	}
}

func kill9DuringPayments(t *testing.T, backend string) {
	gmo, sim := simGMO(t)
	dir := t.TempDir()
	apiPort := freePort(t)
	cf := guardCaddyfile(apiPort, sim, fmt.Sprintf("store %s %s\n\t\tresolve_after 1s", backend, filepath.Join(dir, "paynorm."+backend)))
	api := fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	p := start(t, cf, api)

	// ExecTran takes a while, so the kill finds payments in every stage.
	gmo.InjectFault(sandbox.Fault{API: "ExecTran", Kind: sandbox.FaultDelay, Delay: 400 * time.Millisecond, Count: 1000})
	const n = 200
	body := func(i int) string {
		return fmt.Sprintf(`{"order_id":"K9-%03d","amount":%d,"payment_method":{"token":"tok_visa"}}`, i, 1000+i)
	}
	answers := make([]*answer, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 4 * time.Millisecond) // a stream, not one burst
			answers[i], _ = post(api+"/v1/payments", body(i), fmt.Sprintf("k9-%03d", i))
		}()
	}
	time.Sleep(450 * time.Millisecond)
	p.kill9(t)
	wg.Wait()
	answered := 0
	for _, a := range answers {
		if a != nil {
			answered++
		}
	}
	time.Sleep(500 * time.Millisecond) // let the sandbox finish what it was sent
	gmo.ClearFaults()
	before := ledger(t, sim)

	start(t, cf, api)
	// Phase 1: without any app retry, every payment settles on the ledger.
	settled := map[string]string{}
	deadline := time.Now().Add(30 * time.Second)
	for len(settled) < n && time.Now().Before(deadline) {
		for i := 0; i < n; i++ {
			id := fmt.Sprintf("gmo_K9-%03d", i)
			if _, ok := settled[id]; ok {
				continue
			}
			a := do(t, "GET", api+"/v1/payments/"+id, "")
			if s := a.str("status"); a.Status == 200 && s != "pending" && s != "unknown" {
				settled[id] = s
			} else if a.Status == 404 && before[fmt.Sprintf("K9-%03d", i)].OrderID == "" {
				settled[id] = "failed" // paynorm never sent it: nothing exists anywhere
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	var mismatched, lost, doubled, charged, never int
	for i := 0; i < n; i++ {
		if before[fmt.Sprintf("K9-%03d", i)].OrderID == "" {
			never++
		}
	}
	for i := 0; i < n; i++ {
		order := fmt.Sprintf("K9-%03d", i)
		row := before[order]
		charged += row.Charges
		if row.Charges > 1 {
			doubled++
		}
		got, ok := settled["gmo_"+order]
		if !ok || got != unified(row.Status) {
			mismatched++
			t.Errorf("%s: paynorm %q, ledger %q", order, got, row.Status)
		}
		if row.Charges == 1 && got != "captured" {
			lost++
		}
	}
	t.Logf("kill -9 with %d payments in flight: %d answered before the kill, %d cut; %d never reached GMO; after restart %d settled, ledger charges %d, mismatched %d, lost %d, charged twice %d",
		n, answered, n-answered, never, len(settled), charged, mismatched, lost, doubled)
	if mismatched+lost+doubled > 0 || len(settled) != n {
		t.Fatal("state after the crash does not match the ledger")
	}
	// How many finished before the kill depends on the machine's speed;
	// what matters is that the kill cut payments in flight.
	if answered == n {
		t.Fatalf("the kill must cut payments in flight (answered %d of %d)", answered, n)
	}

	// Every answer given before the kill was durable: its key replays it.
	replayed := 0
	for i := 0; i < n; i++ {
		if answers[i] == nil {
			continue
		}
		a, err := post(api+"/v1/payments", body(i), fmt.Sprintf("k9-%03d", i))
		if err != nil || a.Status != answers[i].Status || a.Header.Get("Idempotent-Replayed") != "true" || a.str("id") != answers[i].str("id") {
			t.Fatalf("replay of answered request %d after the restart: %v %+v (first answer %d %s)", i, err, a, answers[i].Status, answers[i].Body)
		}
		replayed++
	}
	t.Logf("%d answers given before the kill replayed after the restart", replayed)

	// Phase 2: apps retry every unanswered request with its key.
	retried := 0
	for i := 0; i < n; i++ {
		if answers[i] != nil {
			continue
		}
		retried++
		a, err := post(api+"/v1/payments", body(i), fmt.Sprintf("k9-%03d", i))
		if err != nil || a.Status != 200 || a.str("status") != "captured" {
			t.Fatalf("retry %d: %v %v", i, err, a)
		}
	}
	after := ledger(t, sim)
	total, doubled := 0, 0
	for i := 0; i < n; i++ {
		c := after[fmt.Sprintf("K9-%03d", i)].Charges
		total += c
		if c != 1 {
			doubled++
		}
	}
	t.Logf("after %d app retries with the same keys: %d payments, %d charges, %d not charged exactly once", retried, n, total, doubled)
	if total != n || doubled != 0 {
		t.Fatal("every payment must be charged exactly once")
	}
}
