package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// build compiles this package the way the Dockerfile does and returns the
// binary. There is no docker engine in CI, so the image is checked through
// its build line and the binary through its module list.
func build(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the paynorm binary")
	}
	bin := filepath.Join(t.TempDir(), "paynorm")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// run executes the binary with Caddy's state in a temp dir.
func run(t *testing.T, bin string, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	dir := t.TempDir()
	cmd.Env = append(os.Environ(), append([]string{"XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir, "HOME=" + dir}, env...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func TestListModulesMatchesExpected(t *testing.T) {
	bin := build(t)
	out, err := run(t, bin, nil, "list-modules")
	if err != nil {
		t.Fatalf("list-modules: %v\n%s", err, out)
	}
	// Module ids start in column 0; the summary lines are indented.
	var got []string
	for line := range strings.SplitSeq(out, "\n") {
		if line != "" && line[0] != ' ' && line[0] != '{' {
			got = append(got, strings.TrimSpace(line))
		}
	}
	want := readLines(t, "../../docker/expected-modules.txt")
	for _, m := range []string{"http.handlers.paynorm", "http.handlers.paynorm_sandbox", "http.handlers.reverse_proxy", "caddy.adapters.caddyfile"} {
		if !slices.Contains(want, m) {
			t.Errorf("docker/expected-modules.txt lacks %s", m)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	var missing, extra []string
	for _, m := range want {
		if _, ok := slices.BinarySearch(got, m); !ok {
			missing = append(missing, m)
		}
	}
	for _, m := range got {
		if _, ok := slices.BinarySearch(want, m); !ok {
			extra = append(extra, m)
		}
	}
	if len(missing)+len(extra) > 0 {
		t.Fatalf("paynorm list-modules differs from docker/expected-modules.txt (update the file when a module is added on purpose)\nmissing: %v\nunexpected: %v", missing, extra)
	}
}

// The image must hold the same binary as `go build ./cmd/paynorm`.
func TestDockerfileBuildsThisPackage(t *testing.T) {
	b, err := os.ReadFile("../../docker/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var builds []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, "RUN ") && strings.Contains(line, "go build") {
			builds = append(builds, line)
		}
	}
	if len(builds) != 1 {
		t.Fatalf("want exactly one RUN ... go build line in docker/Dockerfile, got %q", builds)
	}
	if !regexp.MustCompile(`go build .* \./cmd/paynorm$`).MatchString(builds[0]) {
		t.Fatalf("the Dockerfile must build ./cmd/paynorm, got %q", builds[0])
	}
	for _, want := range []string{"FROM golang:1.26 AS build", "USER nonroot", `VOLUME ["/data"]`, "XDG_DATA_HOME=/data", "HEALTHCHECK", `"health"`, "/v1/health"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("docker/Dockerfile lacks %q", want)
		}
	}
}

// The production Caddyfile shipped in the image must load with credentials
// from the environment, and the health subcommand must tell a serving
// paynorm from a dead one.
func TestProductionCaddyfileValidatesAndHealthCommand(t *testing.T) {
	bin := build(t)
	env := []string{"GMO_SHOP_ID=tshop00000001", "GMO_SHOP_PASS=secret-pass"}
	out, err := run(t, bin, env, "validate", "--config", "../../docker/Caddyfile.production", "--adapter", "caddyfile")
	if err != nil {
		t.Fatalf("validate docker/Caddyfile.production: %v\n%s", err, out)
	}
	if strings.Contains(out, "secret-pass") {
		t.Fatal("validate printed the shop password")
	}
	if out, err := run(t, bin, nil, "health", "--url", "http://127.0.0.1:1/v1/health", "--timeout", "1s"); err == nil {
		t.Fatalf("health against a closed port must fail, got %s", out)
	}

	// A running paynorm (against the sandbox) is healthy.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "Caddyfile")
	caddyfile := fmt.Sprintf("{\n\tadmin off\n\tauto_https off\n\tpersist_config off\n}\n:%d {\n\tpaynorm {\n\t\taccount gmo {\n\t\t\ttype gmo\n\t\t\tendpoint http://127.0.0.1:1\n\t\t\tshop_id s\n\t\t\tshop_pass p\n\t\t}\n\t}\n}\n", port)
	if err := os.WriteFile(conf, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := exec.Command(bin, "run", "--config", conf, "--adapter", "caddyfile")
	srv.Env = append(os.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir, "HOME="+dir)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	url := fmt.Sprintf("http://127.0.0.1:%d/v1/health", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := run(t, bin, nil, "health", "--url", url, "--timeout", "1s")
		if err == nil {
			if !strings.Contains(out, `"status":"ok"`) {
				t.Fatalf("health printed %q", out)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("paynorm never became healthy: %v\n%s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
