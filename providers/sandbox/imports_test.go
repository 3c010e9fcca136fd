package sandbox

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The simulators share no code with paynorm: not the codecs they simulate
// (a simulator that calls gmo.CheckString or jpayment's month rule agrees
// with the codec on every mistake, and the tests built on it prove
// nothing), and no other paynorm package either (normalize's rules are the
// codecs' assumptions too). go list -deps sees every package the sandbox
// is built from, directly or not.
func TestSandboxImportsNothingOfPaynorm(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil && os.Getenv("GOROOT") != "" {
		goBin, err = filepath.Join(os.Getenv("GOROOT"), "bin", "go"), nil
	}
	if err != nil {
		t.Fatalf("the go command is needed to list the sandbox's dependencies: %v", err)
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	const self = "github.com/paynorm/paynorm/providers/sandbox"
	deps := strings.Fields(string(out))
	if len(deps) < 10 || deps[len(deps)-1] != self {
		t.Fatalf("go list -deps gave an unexpected list (%d packages, last %q)", len(deps), deps[len(deps)-1])
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "github.com/paynorm/paynorm") && d != self {
			t.Errorf("providers/sandbox depends on %s: a simulator must keep its own wire code", d)
		}
	}
}
