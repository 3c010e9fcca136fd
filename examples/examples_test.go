// Package examples runs the app examples (Python, Node.js, shell) against a
// real paynorm built from this repo and configured by the repo's own
// Caddyfile (ports moved to free ones, events sent to the example's
// receiver), exactly as a newcomer would run them after
// `go run ./cmd/paynorm run`.
package examples

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/paynorm/paynorm/notify"
)

const notifySecret = "whsec_examples_0123456789"

// paynorm builds the binary once per test binary run.
func buildPaynorm(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "paynorm")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/paynorm")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// instance is one paynorm from the repo Caddyfile on free ports.
type instance struct {
	api, sandbox string
	hookPort     int
	logs         *bytes.Buffer
}

func startPaynorm(t *testing.T, bin string) *instance {
	t.Helper()
	raw, err := os.ReadFile("../Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	api, sim, admin, hook := freePort(t), freePort(t), freePort(t), freePort(t)
	cf := string(raw)
	cf = strings.ReplaceAll(cf, "8080", fmt.Sprint(api))
	cf = strings.ReplaceAll(cf, "8090", fmt.Sprint(sim))
	cf = regexp.MustCompile(`localhost:2019`).ReplaceAllString(cf, fmt.Sprintf("127.0.0.1:%d", admin))
	// Events go to the example's own receiver.
	cf = strings.Replace(cf, "\tpaynorm {\n", fmt.Sprintf("\tpaynorm {\n\t\tnotify_url http://127.0.0.1:%d/hook\n\t\tnotify_secret %s\n", hook, notifySecret), 1)
	dir := t.TempDir()
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(cf), 0o600); err != nil {
		t.Fatal(err)
	}
	in := &instance{api: fmt.Sprintf("http://127.0.0.1:%d", api), sandbox: fmt.Sprintf("http://127.0.0.1:%d", sim), hookPort: hook, logs: &bytes.Buffer{}}
	cmd := exec.Command(bin, "run", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir, "HOME="+dir)
	cmd.Stdout, cmd.Stderr = in.logs, in.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(in.api + "/v1/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return in
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("paynorm did not come up: %v\n%s", err, in.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// run runs one example against a fresh paynorm and checks it finished
// every step.
func run(t *testing.T, bin string, want []string, name string, args ...string) {
	t.Helper()
	in := startPaynorm(t, bin)
	cmd := exec.Command(name, args...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "PAYNORM_URL="+in.api, "PAYNORM_SANDBOX_URL="+in.sandbox,
		fmt.Sprintf("PAYNORM_WEBHOOK_PORT=%d", in.hookPort), "PAYNORM_NOTIFY_SECRET="+notifySecret)
	out, err := cmd.CombinedOutput()
	t.Logf("%s\n%s", strings.Join(cmd.Args, " "), out)
	if err != nil {
		t.Fatalf("example failed: %v\npaynorm logs:\n%s", err, in.logs)
	}
	for _, w := range want {
		if !strings.Contains(string(out), w) {
			t.Errorf("output lacks %q", w)
		}
	}
}

// Every example shows the same steps.
var steps = []string{"retrying in 1s with the same key", "created ", "declined: insufficient_funds", "captured ", "OK"}

func need(t *testing.T, tool string) {
	if _, err := exec.LookPath(tool); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed (.ci/run installs it)", tool)
		}
		t.Skipf("%s is not installed: this example is skipped (.ci/run installs it)", tool)
	}
}

func TestPythonExample(t *testing.T) {
	need(t, "python3")
	run(t, buildPaynorm(t), append(steps, "webhook verified: payment.captured"), "python3", "examples/python/quickstart.py")
}

func TestNodeExample(t *testing.T) {
	need(t, "node")
	run(t, buildPaynorm(t), append(steps, "webhook verified: payment.captured"), "node", "examples/node/quickstart.mjs")
}

func TestCurlExample(t *testing.T) {
	need(t, "curl")
	need(t, "openssl")
	run(t, buildPaynorm(t), append(steps, "a tampered body is refused"), "bash", "examples/curl/quickstart.sh")
}

// The shell example's recorded delivery is one paynorm would sign.
func TestCurlExampleSignatureIsPaynorms(t *testing.T) {
	raw, err := os.ReadFile("curl/quickstart.sh")
	if err != nil {
		t.Fatal(err)
	}
	sig := regexp.MustCompile(`sig=(v1=[0-9a-f]{64})`).FindSubmatch(raw)
	if sig == nil {
		t.Fatal("no recorded signature in the shell example")
	}
	body := []byte(`{"id":"evt_x","type":"payment.captured"}`)
	if got := notify.Sign("whsec_example_secret", 1764547200, body); got != string(sig[1]) {
		t.Fatalf("paynorm signs %s, the example expects %s", got, sig[1])
	}
}
