package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paynorm/paynorm/providers/sandbox"
)

// Config reloads through the admin API while payments flow: no request is
// lost, and breaker, limiter and store state carry over.
func TestReloadUnderLoadKeepsState(t *testing.T) {
	if testing.Short() {
		t.Skip("long: reloads a running paynorm")
	}
	gmo, sim := simGMO(t)
	apiPort := freePort(t)
	tmpl := fmt.Sprintf(`{
	admin {ADMIN}
	auto_https off
}
:%d {
	paynorm {
		store bolt %s
		max_body_bytes MAXBODY
		account gmo {
			type gmo
			three_d_secure off
			endpoint %s
			shop_id tshop00000001
			shop_pass %s
		}
		account fragile {
			type gmo
			three_d_secure off
			endpoint %[3]s
			shop_id tshop00000001
			shop_pass %[4]s
			breaker 2 10m
		}
		account limited {
			type gmo
			three_d_secure off
			endpoint %[3]s
			shop_id tshop00000001
			shop_pass %[4]s
			rate_limit 0.01 2
			max_wait 10ms
		}
	}
}
`, apiPort, filepath.Join(t.TempDir(), "paynorm.db"), sim, guardShopPass)
	api := fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	p := start(t, strings.Replace(tmpl, "MAXBODY", "65536", 1), api)
	pay := func(provider, key string) *answer {
		a, err := post(api+"/v1/payments", fmt.Sprintf(`{"provider":%q,"amount":500,"payment_method":{"token":"tok_visa"}}`, provider), key)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	// State before the reloads: an open breaker, a spent limiter, a stored key.
	gmo.InjectFault(sandbox.Fault{API: "EntryTran", Kind: sandbox.Fault5xx, Count: 2})
	pay("fragile", "")
	pay("fragile", "")
	if a := pay("fragile", ""); a.str("error", "code") != "circuit_open" {
		t.Fatalf("fragile: %s", a.Body)
	}
	if a := pay("limited", ""); a.Status != 200 { // EntryTran + ExecTran: both tokens
		t.Fatalf("limited: %s", a.Body)
	}
	kept := pay("gmo", "before-reload")

	// Load: a steady stream of payments while the config is replaced.
	var sent, ok atomic.Int64
	var failures sync.Map
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(1)
				a, err := postAsAppWould(api+"/v1/payments", `{"provider":"gmo","amount":100,"payment_method":{"token":"tok_visa"}}`, fmt.Sprintf("load-%d-%d", w, i))
				switch {
				case err != nil:
					failures.Store(fmt.Sprintf("%d-%d", w, i), err.Error())
				case a.Status != 200:
					failures.Store(fmt.Sprintf("%d-%d", w, i), fmt.Sprintf("%d %s", a.Status, a.Body))
				default:
					ok.Add(1)
				}
			}
		}()
	}
	admin := strings.TrimPrefix(p.Admin, "http://")
	reloads := 0
	for i, size := range []string{"65537", "65538", "65539"} {
		time.Sleep(400 * time.Millisecond)
		cf := strings.ReplaceAll(strings.Replace(tmpl, "MAXBODY", size, 1), "{ADMIN}", admin)
		req, _ := http.NewRequest("POST", p.Admin+"/load", strings.NewReader(cf))
		req.Header.Set("Content-Type", "text/caddyfile")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("reload %d: %v %v\n%s", i, err, resp, p.logs.String())
		}
		resp.Body.Close()
		reloads++
	}
	time.Sleep(400 * time.Millisecond)
	close(stop)
	wg.Wait()
	var lost []string
	failures.Range(func(k, v any) bool {
		lost = append(lost, fmt.Sprintf("%v: %v", k, v))
		return true
	})

	health := do(t, "GET", api+"/v1/health", "")
	breaker := ""
	for _, a := range health.JSON["providers"].([]any) {
		if m := a.(map[string]any); m["name"] == "fragile" {
			breaker, _ = m["breaker"].(string)
		}
	}
	limited := pay("limited", "")
	replay := pay("gmo", "before-reload")
	t.Logf("%d reloads under load: %d requests, %d answered 200, %d lost; after: fragile breaker %s, limited account %d %s, key from before %d replayed=%s; ledger charges %d",
		reloads, sent.Load(), ok.Load(), len(lost), breaker, limited.Status, limited.str("error", "code"), replay.Status, replay.Header.Get("Idempotent-Replayed"), gmo.Charges())
	if len(lost) > 0 {
		t.Fatalf("requests lost during reloads: %v", lost[:min(len(lost), 5)])
	}
	if int64(gmo.Charges()) != ok.Load()+2 {
		t.Fatalf("ledger charges %d for %d payments", gmo.Charges(), ok.Load()+2)
	}
	if sent.Load() < 20 {
		t.Fatalf("only %d requests ran", sent.Load())
	}
	if breaker != "open" || limited.Status != 429 || replay.Header.Get("Idempotent-Replayed") != "true" || replay.str("id") != kept.str("id") {
		t.Fatal("state was not kept across reloads")
	}
}

// postAsAppWould retries what an app with an Idempotency-Key may safely
// retry: a connection the old server closed during the reload (reset, EOF)
// and 409 while the first attempt is still in flight. The key makes the
// retry a replay, never a second charge; the ledger check proves it.
func postAsAppWould(url, body, key string) (*answer, error) {
	var a *answer
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		a, err = post(url, body, key)
		switch {
		case err != nil:
			time.Sleep(50 * time.Millisecond)
		case a.Status == 409:
			time.Sleep(100 * time.Millisecond)
		default:
			return a, nil
		}
	}
	return a, err
}
