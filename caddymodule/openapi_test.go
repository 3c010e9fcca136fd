package caddymodule

import (
	"sort"
	"strings"
	"testing"

	"github.com/paynorm/paynorm/normalize"
)

// The handler's routes are exactly the spec's operations.
func TestRoutesMatchOpenAPI(t *testing.T) {
	var handler, ops []string
	for _, r := range routes {
		handler = append(handler, r.Method+" /v1/"+r.Pattern)
	}
	for path, item := range spec.Doc.Paths.Map() {
		for method := range item.Operations() {
			ops = append(ops, method+" "+path)
		}
	}
	sort.Strings(handler)
	sort.Strings(ops)
	if strings.Join(handler, "\n") != strings.Join(ops, "\n") {
		t.Fatalf("handler routes and openapi.yaml differ\nhandler:\n%s\nspec:\n%s", strings.Join(handler, "\n"), strings.Join(ops, "\n"))
	}
}

// The spec's error codes are the catalog: the enum of error.code is every
// catalog code, each route lists only catalog codes, and every catalog code
// is listed by some route or as common.
func TestSpecErrorCodesAreTheCatalog(t *testing.T) {
	catalog := normalize.Codes()
	sort.Strings(catalog)
	var enum []string
	for _, v := range spec.Doc.Components.Schemas["Error"].Value.Properties["code"].Value.Enum {
		enum = append(enum, v.(string))
	}
	sort.Strings(enum)
	if strings.Join(enum, ",") != strings.Join(catalog, ",") {
		t.Fatalf("error.code enum %v\ncatalog %v", enum, catalog)
	}
	listed := map[string]bool{}
	for _, c := range spec.CommonCodes() {
		if !normalize.Known(c) {
			t.Errorf("x-common-error-codes: %q is not a catalog code", c)
		}
		listed[c] = true
	}
	for op, codes := range spec.OperationCodes() {
		for _, c := range codes {
			if !normalize.Known(c) {
				t.Errorf("%s x-error-codes: %q is not a catalog code", op, c)
			}
			listed[c] = true
		}
	}
	for _, c := range catalog {
		if !listed[c] {
			t.Errorf("catalog code %q is listed by no route", c)
		}
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
