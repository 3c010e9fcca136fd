package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers/gmo"
)

func init() {
	routes = append(routes, apiRoute{"POST", "gmo/{api}", "gmo_passthrough", (*Handler).passthrough})
}

// passthrougher is a provider that can relay raw GMO .idPass calls.
type passthrougher interface {
	Passthrough(ctx context.Context, api string, params []gmo.Param) (gmo.Values, []gmo.ErrPair, *normalize.Error)
}

// PassthroughErrorHeader carries the normalized reading of a passthrough
// error as "<type>/<code>", beside GMO's own [{errCode, errInfo}] body.
const PassthroughErrorHeader = "X-Paynorm-Error"

// passErr is one element of the seed 000 error array. Errors paynorm makes
// itself (validation, timeouts) use errCode "paynorm" and the catalog code
// as errInfo, with the messages added.
type passErr struct {
	ErrCode   string `json:"errCode"`
	ErrInfo   string `json:"errInfo"`
	Message   string `json:"message,omitempty"`
	MessageJa string `json:"messageJa,omitempty"`
}

// passthroughCardData reports whether the account relays raw card data.
func (h *Handler) passthroughCardData(account string) bool {
	a := h.account(account)
	return a != nil && a.PassthroughCardData == "allow"
}

func (h *Handler) passthroughAPIs(account string) []string {
	if a := h.account(account); a != nil && len(a.PassthroughAPIs) > 0 {
		return a.PassthroughAPIs
	}
	return gmo.DefaultPassthroughAPIs
}

func (h *Handler) passthrough(c *call) int {
	api := c.params["api"]
	if !gmo.ValidAPIName(api) {
		return h.passFail(c, nil, normalize.Newf("route_not_found", "%q is not a GMO API name.", api).WithParam("api"))
	}
	p, perr := h.accountOf(c, "")
	if perr != nil {
		return h.passFail(c, nil, perr)
	}
	pt, ok := p.(passthrougher)
	if !ok {
		e := normalize.Newf("unsupported", "Provider account %q does not relay GMO APIs.", p.Account())
		e.Provider = p.Account()
		return h.passFail(c, nil, e)
	}
	if allowed := h.passthroughAPIs(p.Account()); !slices.Contains(allowed, api) {
		e := normalize.Newf("unsupported", "GMO API %s is not allowed through account %q (allowed: %s; see passthrough_apis).", api, p.Account(), strings.Join(allowed, " "))
		e.MessageJa = "このAPIは許可されていません(passthrough_apis)。"
		e.Provider = p.Account()
		return h.passFail(c, nil, e.WithParam("api").WithStatus(http.StatusForbidden))
	}
	body, berr := h.readBody(c.w, c.r)
	if berr != nil {
		return h.passFail(c, nil, berr)
	}
	params, verr := passParams(body, h.passthroughCardData(p.Account()))
	if verr != nil {
		return h.passFail(c, nil, verr)
	}
	vals, pairs, err := pt.Passthrough(c.ctx, api, params)
	if err != nil {
		return h.passFail(c, pairs, err)
	}
	out := make(map[string]string, len(vals))
	for k, v := range vals {
		out[gmo.LowerCamel(k)] = v
	}
	return writeJSON(c.w, http.StatusOK, out)
}

// passParams reads the lowerCamel JSON body: an object of strings or
// numbers (null is skipped), keys mapped onto GMO's wire names, every value
// checked with the unified API's rules (gmo.CheckParam) and raw card data
// refused unless allowCardData.
func passParams(body []byte, allowCardData bool) ([]gmo.Param, *normalize.Error) {
	var raw map[string]json.RawMessage
	if err := normalize.Decode(body, &raw); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	params := make([]gmo.Param, 0, len(keys))
	for _, k := range keys {
		if !gmo.ValidAPIName(gmo.UpperCamel(k)) {
			e := normalize.Newf("parameter_unknown", "%q is not a GMO parameter name.", k)
			return nil, e.WithParam(k)
		}
		v := bytes.TrimSpace(raw[k])
		var s string
		switch {
		case string(v) == "null":
			continue
		case len(v) > 0 && v[0] == '"':
			if json.Unmarshal(v, &s) != nil {
				return nil, normalize.Newf("invalid_json", "The value of %q is not a valid JSON string.", k).WithParam(k)
			}
		case len(v) > 0 && (v[0] == '-' || v[0] >= '0' && v[0] <= '9'):
			var n json.Number
			if json.Unmarshal(v, &n) != nil {
				return nil, normalize.Newf("parameter_invalid", "The value of %q is not a number.", k).WithParam(k)
			}
			s = n.String()
		default:
			e := normalize.Newf("parameter_invalid", "%q must be a string or a number.", k)
			e.MessageJa = k + "は文字列または数値で指定してください。"
			return nil, e.WithParam(k)
		}
		if e := gmo.CheckParam(k, gmo.UpperCamel(k), s, allowCardData); e != nil {
			return nil, e
		}
		params = append(params, gmo.Param{Key: gmo.UpperCamel(k), Value: s})
	}
	return params, nil
}

// passFail writes the seed 000 error shape: a non-200 status, a JSON array
// of {errCode, errInfo}, and the normalized error in a header.
func (h *Handler) passFail(c *call, pairs []gmo.ErrPair, e *normalize.Error) int {
	c.w.Header().Set(PassthroughErrorHeader, e.Type+"/"+e.Code)
	if ra := e.RetryAfterHeader(); ra != "" {
		c.w.Header().Set("Retry-After", ra)
	}
	out := make([]passErr, 0, max(1, len(pairs)))
	for _, p := range pairs {
		out = append(out, passErr{ErrCode: p.Code, ErrInfo: p.Info})
	}
	if len(out) == 0 {
		out = append(out, passErr{ErrCode: "paynorm", ErrInfo: e.Code, Message: e.Message, MessageJa: e.MessageJa})
	}
	status := e.HTTPStatus()
	if status < 400 {
		status = http.StatusBadGateway
	}
	return writeJSON(c.w, status, out)
}
