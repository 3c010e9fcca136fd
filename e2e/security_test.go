package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nonLoopbackIPv4 is an address of this host that is not loopback ("" when
// there is none).
func nonLoopbackIPv4() string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return n.IP.String()
		}
	}
	return ""
}

// The repo's Caddyfile, run as `paynorm run` does (the Caddyfile in the
// working directory, no flags) with no credentials in the environment:
// it serves the sandbox out of the box, listens on loopback only (the API
// and the sandbox with its fault injection), writes no autosave.json, and
// its running config shows placeholders, never the secrets the environment
// holds (issue 11, items 1 and 3). Only the ports are changed, so the test
// runs beside anything else on this host.
func TestRepoCaddyfileIsLoopbackOnlyAndSecretFree(t *testing.T) {
	src, err := os.ReadFile("../Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	api, sim, admin := freePort(t), freePort(t), freePort(t)
	cf := string(src)
	for old, port := range map[string]int{":8080": api, ":8090": sim, "localhost:2019": admin} {
		if !strings.Contains(cf, old) {
			t.Fatalf("the Caddyfile no longer has %s", old)
		}
		if old == "localhost:2019" {
			cf = strings.ReplaceAll(cf, old, fmt.Sprintf("127.0.0.1:%d", port))
			continue
		}
		cf = strings.ReplaceAll(cf, old, fmt.Sprintf(":%d", port))
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(cf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "run")
	cmd.Dir = dir
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	// No credentials at all: the sandbox's test credentials apply. One
	// secret is set, for an account whose endpoint is the sandbox, to show
	// it stays out of the running config.
	env := []string{"XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir, "HOME=" + dir, "GMO_SHOP_PASS=e2e-secret-shop-pass-0123"}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GMO_ENDPOINT", "GMO_SHOP_ID", "GMO_SHOP_PASS", "GMO_SITE_ID", "GMO_SITE_PASS", "JPAYMENT_ENDPOINT", "JPAYMENT_AID",
			"GMO_IVR_ENDPOINT", "GMO_IVR_API_KEY", "GMO_IVR_API_PASSWORD", "PAYNORM_KICKBACK_TOKEN", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "HOME":
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, logs: logs}
	t.Cleanup(p.stop)
	base := fmt.Sprintf("http://127.0.0.1:%d", api)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/v1/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("paynorm run did not come up: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Out of the box: a payment against the sandbox.
	r := do(t, "POST", base+"/v1/payments", `{"order_id":"E2E-SEC-1","amount":1000,"capture":"manual","payment_method":{"token":"tok_visa"},"return_url":"https://shop.example.jp/checkout/return"}`)
	if r.Status != 200 || r.str("status") != "authorized" {
		t.Fatalf("create: %d %s\n%s", r.Status, r.Body, logs.String())
	}

	// Loopback only: the host's own network address reaches neither the
	// API nor the sandbox, whatever Host header a request would carry.
	if ip := nonLoopbackIPv4(); ip != "" {
		for _, port := range []int{api, sim} {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("%s:%d", ip, port), time.Second)
			if err == nil {
				c.Close()
				t.Errorf("%s:%d accepts connections", ip, port)
			}
		}
	} else {
		t.Log("no non-loopback IPv4 address on this host: the network check is skipped")
	}

	// The running config holds placeholders, not secrets.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/config/", admin))
	if err != nil {
		t.Fatal(err)
	}
	conf, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(conf), "e2e-secret-shop-pass") || !strings.Contains(string(conf), "{env.GMO_SHOP_PASS}") {
		t.Fatalf("admin /config: %s", conf)
	}
	var autosaves []string
	_ = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err == nil && info.Name() == "autosave.json" {
			autosaves = append(autosaves, path)
		}
		return nil
	})
	if len(autosaves) > 0 {
		t.Fatalf("persist_config off, yet %v was written", autosaves)
	}
	if strings.Contains(logs.String(), "e2e-secret-shop-pass") {
		t.Fatal("the shop password is in the log")
	}
	if !strings.Contains(logs.String(), "sandbox's test credentials") {
		t.Errorf("no log line says the sandbox credentials are in use:\n%s", logs.String())
	}
}

// A secret written into the Caddyfile as text is warned about at load,
// by setting name only; with an app key configured, a call without it is
// answered 401 by the real binary, and the key appears in no log line.
func TestLiteralSecretIsWarnedAndKeysAreRequired(t *testing.T) {
	_, sim := simGMO(t)
	api := freePort(t)
	const key = "e2e-app-key-0123456789abcdef0123456789abcdef"
	cf := fmt.Sprintf(`{
	admin {ADMIN}
	auto_https off
	persist_config off
}
:%d {
	bind 127.0.0.1
	paynorm {
		store bolt {env.XDG_DATA_HOME}/paynorm.db
		client app {
			key {env.PAYNORM_E2E_APP_KEY}
			accounts gmo
		}
		account gmo {
			type gmo
			three_d_secure off
			endpoint %s
			shop_id tshop1
			shop_pass literal-shop-pass-e2e
		}
	}
}
`, api, sim)
	t.Setenv("PAYNORM_E2E_APP_KEY", key)
	p := start(t, cf, fmt.Sprintf("http://127.0.0.1:%d", api))
	base := fmt.Sprintf("http://127.0.0.1:%d", api)
	body := `{"amount":1000,"payment_method":{"token":"tok_visa"}}`
	if r := do(t, "POST", base+"/v1/payments", body); r.Status != 401 || r.str("error", "code") != "api_key_missing" {
		t.Fatalf("without a key: %d %s", r.Status, r.Body)
	}
	if r := do(t, "POST", base+"/v1/payments", body, "Authorization", "Bearer "+key); r.Status != 200 {
		t.Fatalf("with the key: %d %s", r.Status, r.Body)
	}
	logs := p.logs.String()
	if !strings.Contains(logs, "secrets are written literally") || !strings.Contains(logs, "account gmo shop_pass") {
		t.Fatalf("no warning about the literal shop_pass:\n%s", logs)
	}
	if strings.Contains(logs, "literal-shop-pass-e2e") || strings.Contains(logs, key) {
		t.Fatalf("a secret is in the log:\n%s", logs)
	}
}
