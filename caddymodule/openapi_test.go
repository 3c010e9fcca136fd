package caddymodule

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// openapiOperations reads "METHOD /path" pairs from openapi.yaml's paths
// section (two-space path keys, four-space method keys).
func openapiOperations(t *testing.T) []string {
	raw, err := os.ReadFile("../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pathRe := regexp.MustCompile(`^  (/[^:]+):\s*$`)
	methodRe := regexp.MustCompile(`^    (get|post|put|patch|delete):\s*$`)
	var out []string
	inPaths, current := false, ""
	for _, line := range strings.Split(string(raw), "\n") {
		switch {
		case line == "paths:":
			inPaths = true
			continue
		case inPaths && len(line) > 0 && line[0] != ' ':
			inPaths = false
		}
		if !inPaths {
			continue
		}
		if m := pathRe.FindStringSubmatch(line); m != nil {
			current = m[1]
		} else if m := methodRe.FindStringSubmatch(line); m != nil && current != "" {
			out = append(out, strings.ToUpper(m[1])+" "+current)
		}
	}
	sort.Strings(out)
	return out
}

func TestRoutesMatchOpenAPI(t *testing.T) {
	var handler []string
	for _, r := range routes {
		handler = append(handler, r.Method+" /v1/"+r.Pattern)
	}
	sort.Strings(handler)
	spec := openapiOperations(t)
	if strings.Join(handler, "\n") != strings.Join(spec, "\n") {
		t.Fatalf("handler routes and openapi.yaml differ\nhandler:\n%s\nspec:\n%s", strings.Join(handler, "\n"), strings.Join(spec, "\n"))
	}
	if len(spec) < 6 {
		t.Fatalf("only %d operations read from the spec", len(spec))
	}
}

func TestMatch(t *testing.T) {
	p, ok := match("payments/{id}/capture", "payments/gmo_A-1/capture")
	if !ok || p["id"] != "gmo_A-1" {
		t.Fatal(p, ok)
	}
	for _, path := range []string{"payments//capture", "payments/x", "payments/x/capture/y", "payment/x/capture"} {
		if _, ok := match("payments/{id}/capture", path); ok {
			t.Errorf("%s matched", path)
		}
	}
}
