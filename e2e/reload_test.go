package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func metric(t *testing.T, p *proc, name string) string {
	t.Helper()
	resp, err := http.Get(p.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(regexp.QuoteMeta(name) + ` (\S+)`).FindStringSubmatch(string(b))
	if m == nil {
		return ""
	}
	return m[1]
}

// A config reload keeps the breaker state and the metrics' counts.
func TestReloadKeepsBreakerAndMetrics(t *testing.T) {
	p, _ := sandboxSetup(t)
	api := p.API + "/v1"
	for i := 0; i < 2; i++ {
		do(t, "POST", api+"/payments", `{"provider":"gmo-fragile","amount":100,"payment_method":{"token":"tok_fault_e91"}}`)
	}
	if a := do(t, "POST", api+"/payments", `{"provider":"gmo-fragile","amount":100,"payment_method":{"token":"tok_visa"}}`); a.str("error", "code") != "circuit_open" {
		t.Fatalf("breaker not open before reload: %s", a.Body)
	}
	before := metric(t, p, `paynorm_provider_calls_total{account="gmo-fragile",api="EntryTran",outcome="ok"}`)
	if before == "" {
		t.Fatal("no call metric before reload")
	}
	cf, err := os.ReadFile(filepath.Join(p.Dir, "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", p.Admin+"/load", strings.NewReader(string(cf)))
	req.Header.Set("Content-Type", "text/caddyfile")
	req.Header.Set("Cache-Control", "must-revalidate") // force a reload of an identical config
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("reload: %d %s", resp.StatusCode, body)
	}
	// The old servers close their idle keep-alive connections after /load
	// answers; a POST on such a connection fails with EOF and is not retried
	// by net/http, so start on fresh connections.
	http.DefaultClient.CloseIdleConnections()
	if a := do(t, "POST", api+"/payments", `{"provider":"gmo-fragile","amount":100,"payment_method":{"token":"tok_visa"}}`); a.str("error", "code") != "circuit_open" {
		t.Fatalf("breaker state lost in reload: %s", a.Body)
	}
	if after := metric(t, p, `paynorm_provider_calls_total{account="gmo-fragile",api="EntryTran",outcome="ok"}`); after != before {
		t.Fatalf("call counter %s before reload, %s after", before, after)
	}
	if n := strings.Count(p.logs.String(), "paynorm sandbox simulators enabled"); n != 2 {
		t.Fatalf("the config was provisioned %d times, want 2 (start and reload)", n)
	}
}
