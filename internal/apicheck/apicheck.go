// Package apicheck holds paynorm to its published contract in tests: an
// http.RoundTripper that checks every exchange with the unified API (paths
// under /v1/) against openapi.yaml, using kin-openapi. A response whose
// status, headers or body the spec does not allow, an error code the route
// does not list, or a request the spec forbids that paynorm accepted, fails
// the call, and with it the test that made it.
package apicheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Extensions of the spec that list error codes: per operation, and the
// ones every route can answer (limits, store, provider faults).
const (
	extOperationCodes = "x-error-codes"
	extCommonCodes    = "x-common-error-codes"
)

// Spec is a loaded, validated openapi.yaml.
type Spec struct {
	Doc    *openapi3.T
	router routers.Router
	common map[string]bool

	mu   sync.Mutex
	seen map[string]int // "METHOD /path status" exchanges checked
}

// Load reads and validates the spec at path.
func Load(path string) (*Spec, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("apicheck: %s: %w", path, err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("apicheck: %s is not a valid OpenAPI document: %w", path, err)
	}
	// Tests serve paynorm on random loopback ports: match paths, not hosts.
	doc.Servers = openapi3.Servers{{URL: "/"}}
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	s := &Spec{Doc: doc, router: r, common: map[string]bool{}, seen: map[string]int{}}
	for _, c := range codesOf(doc.Extensions[extCommonCodes]) {
		s.common[c] = true
	}
	return s, nil
}

func codesOf(v any) []string {
	var out []string
	switch x := v.(type) {
	case []any:
		for _, c := range x {
			if s, ok := c.(string); ok {
				out = append(out, s)
			}
		}
	case json.RawMessage:
		_ = json.Unmarshal(x, &out)
	}
	return out
}

// Transport wraps base so that every /v1/ exchange is checked.
func (s *Spec) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &checking{spec: s, base: base}
}

// Seen lists the checked exchanges ("METHOD /path status": count).
func (s *Spec) Seen() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.seen))
	for k, v := range s.seen {
		out[k] = v
	}
	return out
}

type checking struct {
	spec *Spec
	base http.RoundTripper
}

// Violation is an exchange that disagrees with the spec.
type Violation struct {
	Method, Path string
	Status       int
	Problem      string
}

func (v *Violation) Error() string {
	return fmt.Sprintf("openapi.yaml violation: %s %s -> %d: %s", v.Method, v.Path, v.Status, v.Problem)
}

// CloseIdleConnections passes on to the wrapped transport, so that
// http.Client.CloseIdleConnections still works through the check.
func (c *checking) CloseIdleConnections() {
	if ci, ok := c.base.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

func (c *checking) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.HasPrefix(req.URL.Path, "/v1/") && req.URL.Path != "/v1" {
		return c.base.RoundTrip(req)
	}
	var reqBody []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		reqBody = b
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	// The router and validators need an absolute URL with the spec's
	// server (any host); they see a copy.
	probe := req.Clone(context.Background())
	probe.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, params, routeErr := c.spec.router.FindRoute(probe)

	var reqErr error
	var input *openapi3filter.RequestValidationInput
	if routeErr == nil {
		input = &openapi3filter.RequestValidationInput{Request: probe, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		reqErr = openapi3filter.ValidateRequest(context.Background(), input)
	}

	resp, err := c.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))

	v := &Violation{Method: req.Method, Path: req.URL.Path, Status: resp.StatusCode}
	if routeErr != nil {
		// Not in the spec: paynorm must not serve it either.
		if code := errorCode(body); (resp.StatusCode != 404 && resp.StatusCode != 405) || (code != "route_not_found" && code != "method_not_allowed" && code != "resource_missing") {
			v.Problem = fmt.Sprintf("the path is not in the spec (%v) but paynorm answered %d %s", routeErr, resp.StatusCode, trim(body))
			return nil, v
		}
		c.spec.note(req.Method+" (unrouted) "+fmt.Sprint(resp.StatusCode), 1)
		return resp, nil
	}
	if reqErr != nil && resp.StatusCode < 400 {
		v.Problem = fmt.Sprintf("the spec forbids this request (%v) but paynorm accepted it", firstLine(reqErr))
		return nil, v
	}
	rin := &openapi3filter.ResponseValidationInput{RequestValidationInput: input, Status: resp.StatusCode, Header: resp.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: false}}
	rin.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), rin); err != nil {
		v.Problem = fmt.Sprintf("the answer does not match the spec: %v\nbody: %s", firstLine(err), trim(body))
		return nil, v
	}
	if resp.Header.Get("X-Request-Id") == "" {
		v.Problem = "no X-Request-Id header"
		return nil, v
	}
	if code := errorCode(body); code != "" && resp.StatusCode >= 400 {
		listed := codesOf(route.Operation.Extensions[extOperationCodes])
		if !c.spec.common[code] && !contains(listed, code) {
			v.Problem = fmt.Sprintf("error code %q is not listed for this route (%s: %v, or %s)", code, extOperationCodes, listed, extCommonCodes)
			return nil, v
		}
	}
	c.spec.note(req.Method+" "+route.Path+" "+fmt.Sprint(resp.StatusCode), 1)
	return resp, nil
}

func (s *Spec) note(k string, n int) {
	s.mu.Lock()
	s.seen[k] += n
	s.mu.Unlock()
}

// errorCode is error.code of a normalized error body ("" otherwise).
func errorCode(body []byte) string {
	var b struct {
		Error *struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &b) != nil || b.Error == nil {
		return ""
	}
	return b.Error.Code
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func firstLine(err error) string {
	var me openapi3.MultiError
	if errors.As(err, &me) && len(me) > 0 {
		err = me[0]
	}
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i > 0 && i < 400 {
		return s[:i]
	}
	if len(s) > 600 {
		return s[:600]
	}
	return s
}

func trim(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}

// OperationCodes lists, per "METHOD /path", the error codes the spec
// documents for it (for the catalog test).
func (s *Spec) OperationCodes() map[string][]string {
	out := map[string][]string{}
	for path, item := range s.Doc.Paths.Map() {
		for method, op := range item.Operations() {
			codes := codesOf(op.Extensions[extOperationCodes])
			sort.Strings(codes)
			out[method+" "+path] = codes
		}
	}
	return out
}

// CommonCodes lists the codes every route may answer.
func (s *Spec) CommonCodes() []string {
	var out []string
	for c := range s.common {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}
