package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/paynorm/paynorm/providers/sandbox"
)

// The guarantee tests run the sandbox in the test process, so its ledger
// outlives paynorm processes that are killed or reloaded.

const guardShopPass = "guardShopPass"

// simGMO starts a sandbox GMO on a loopback httptest server.
func simGMO(t *testing.T) (*sandbox.GMO, string) {
	t.Helper()
	g := sandbox.NewGMO()
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return g, srv.URL
}

// guardCaddyfile is a paynorm config for the guarantee tests: {ADMIN} is
// filled by start; extra goes inside the paynorm block.
func guardCaddyfile(apiPort int, sim, extra string) string {
	return fmt.Sprintf(`{
	admin {ADMIN}
	auto_https off
}
:%d {
	paynorm {
		%s
		account gmo {
			type gmo
			three_d_secure off
			endpoint %s
			shop_id tshop00000001
			shop_pass %s
			timeout 5s
		}
	}
}
`, apiPort, extra, sim, guardShopPass)
}

// ledgerRow is one order of the sandbox's /sandbox/ledger.
type ledgerRow struct {
	OrderID string `json:"order_id"`
	Status  string `json:"status"`
	Amount  int64  `json:"amount"`
	Charges int    `json:"charges"`
}

func ledger(t *testing.T, sim string) map[string]ledgerRow {
	t.Helper()
	resp, err := http.Get(sim + "/sandbox/ledger")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rows []ledgerRow
	if err := json.NewDecoder(resp.Body).Decode(&rows); err != nil {
		t.Fatal(err)
	}
	out := map[string]ledgerRow{}
	for _, r := range rows {
		out[r.OrderID] = r
	}
	return out
}

// unified maps a ledger status to the status paynorm must settle on.
func unified(gmoStatus string) string {
	switch gmoStatus {
	case "CAPTURE", "SALES":
		return "captured"
	case "AUTH":
		return "authorized"
	case "", "UNPROCESSED":
		return "failed"
	}
	return strings.ToLower(gmoStatus)
}

// client is for goroutines: errors are returned, not fatal.
var client = &http.Client{Timeout: 20 * time.Second}

// post sends a create (or any POST) with an optional Idempotency-Key.
func post(url, body, key string) (*answer, error) {
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	a := &answer{Status: resp.StatusCode, Header: resp.Header, Body: b}
	_ = json.Unmarshal(b, &a.JSON)
	return a, nil
}

// kill9 ends a paynorm process the hard way.
func (p *proc) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
}
