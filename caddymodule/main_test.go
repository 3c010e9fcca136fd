package caddymodule

import (
	"fmt"
	"net/http"
	"os"
	"testing"

	"github.com/paynorm/paynorm/internal/apicheck"
)

// spec is openapi.yaml; every HTTP exchange of this package's tests with
// the unified API is checked against it (internal/apicheck).
var spec *apicheck.Spec

func TestMain(m *testing.M) {
	var err error
	if spec, err = apicheck.Load("../openapi.yaml"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	http.DefaultTransport = spec.Transport(http.DefaultTransport)
	code := m.Run()
	if testing.Verbose() {
		for k, n := range spec.Seen() {
			fmt.Printf("openapi-checked %5d  %s\n", n, k)
		}
	}
	os.Exit(code)
}
