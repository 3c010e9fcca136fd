package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Checkout is a demo shop served by the sandbox, so a newcomer can pay in
// a browser: a card form (GET /sandbox/checkout) whose POST is handled as
// a merchant's backend would, calling paynorm's unified API (create with
// three_d_secure and a return_url back here), sending the browser to
// next_action.url when the card holder must authenticate, and, when the
// browser comes back (GET /sandbox/checkout/return), calling complete and
// showing the result (GET /sandbox/checkout/result). It speaks to paynorm
// only over HTTP, as any app does.
type Checkout struct {
	mu sync.Mutex
	// api is paynorm's base URL (http://127.0.0.1:8080); key its app key
	// when clients are configured.
	api, key string
	sessions map[string]*checkoutSession
	client   *http.Client
}

type checkoutSession struct {
	Card, ThreeDS, Capture   string
	Amount                   int64
	PaymentID, Status        string
	Code, Message, MessageJa string
	Created                  time.Time
}

// maxCheckoutSessions bounds the demo's memory; the oldest go first.
const maxCheckoutSessions = 1000

// NewCheckout builds a checkout with no paynorm configured.
func NewCheckout() *Checkout {
	return &Checkout{sessions: map[string]*checkoutSession{}, client: &http.Client{Timeout: 2 * time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// SetAPI sets paynorm's base URL and an optional app key.
func (c *Checkout) SetAPI(base, key string) {
	c.mu.Lock()
	c.api, c.key = strings.TrimRight(base, "/"), key
	c.mu.Unlock()
}

// Handles reports whether path belongs to the checkout.
func (c *Checkout) Handles(path string) bool {
	return path == "/sandbox/checkout" || strings.HasPrefix(path, "/sandbox/checkout/")
}

// checkoutCards are the cards the form offers, with what each does.
var checkoutCards = []struct{ Token, Label string }{
	{TokThreeDSChallenge, "3-D Secure challenge: the issuer's page asks you to authenticate"},
	{TokThreeDSFrictionless, "3-D Secure frictionless: authenticated without a page"},
	{TokThreeDSFail, "3-D Secure challenge that fails"},
	{"tok_visa", "Visa not enrolled in 3-D Secure (attempt: plain authorization; required: declined)"},
	{"tok_insufficient_funds", "Insufficient funds (not enrolled)"},
}

func (c *Checkout) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case r.URL.Path == "/sandbox/checkout" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		c.render(w, http.StatusOK, "form", nil)
	case r.URL.Path == "/sandbox/checkout" && r.Method == http.MethodPost:
		c.pay(w, r)
	case r.URL.Path == "/sandbox/checkout/return" && (r.Method == http.MethodGet || r.Method == http.MethodPost):
		c.back(w, r)
	case r.URL.Path == "/sandbox/checkout/result" && r.Method == http.MethodGet:
		s := c.session(r.URL.Query().Get("session"))
		if s == nil {
			http.Error(w, "No such checkout session.", http.StatusNotFound)
			return
		}
		c.render(w, http.StatusOK, "result", s)
	default:
		http.NotFound(w, r)
	}
}

// pay is the merchant's backend: it creates the payment in paynorm.
func (c *Checkout) pay(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	s := &checkoutSession{Card: r.PostForm.Get("card"), ThreeDS: r.PostForm.Get("three_d_secure"), Capture: r.PostForm.Get("capture"), Created: time.Now()}
	known := false
	for _, k := range checkoutCards {
		known = known || k.Token == s.Card
	}
	amount, err := strconv.ParseInt(r.PostForm.Get("amount"), 10, 64)
	switch {
	case !known:
		http.Error(w, "card must be one of the form's cards", http.StatusBadRequest)
		return
	case err != nil || amount < 1 || amount > 9999999:
		http.Error(w, "amount must be 1 to 9999999 yen", http.StatusBadRequest)
		return
	case s.ThreeDS != "required" && s.ThreeDS != "attempt":
		http.Error(w, "three_d_secure must be required or attempt", http.StatusBadRequest)
		return
	case s.Capture != "automatic" && s.Capture != "manual":
		http.Error(w, "capture must be automatic or manual", http.StatusBadRequest)
		return
	}
	s.Amount = amount
	sid := randHex(32)
	c.put(sid, s)
	body, _ := json.Marshal(map[string]any{
		"amount": amount, "capture": s.Capture, "three_d_secure": s.ThreeDS,
		"return_url":     baseURL(r) + "/sandbox/checkout/return?session=" + sid,
		"payment_method": map[string]string{"token": s.Card},
	})
	ans, err := c.call(http.MethodPost, "/v1/payments", body, "checkout-"+sid)
	c.record(sid, ans, err)
	if ans != nil && ans.Status == "requires_action" && ans.NextAction != nil && httpURL(ans.NextAction.URL) {
		http.Redirect(w, r, ans.NextAction.URL, http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/sandbox/checkout/result?session="+sid, http.StatusSeeOther)
}

// back is where the card holder's browser returns after 3-D Secure: the
// backend completes the payment (the AccessID GMO appends is not needed:
// the session names the payment).
func (c *Checkout) back(w http.ResponseWriter, r *http.Request) {
	sid := r.URL.Query().Get("session")
	s := c.session(sid)
	if s == nil {
		http.Error(w, "No such checkout session.", http.StatusNotFound)
		return
	}
	if s.PaymentID != "" && s.Status == "requires_action" {
		ans, err := c.call(http.MethodPost, "/v1/payments/"+url.PathEscape(s.PaymentID)+"/complete", nil, "complete-"+sid)
		c.record(sid, ans, err)
	}
	http.Redirect(w, r, "/sandbox/checkout/result?session="+sid, http.StatusSeeOther)
}

// apiAnswer is what the checkout reads of paynorm's answers.
type apiAnswer struct {
	ID         string `json:"id"`
	Status     string `json:"status"`
	NextAction *struct {
		URL string `json:"url"`
	} `json:"next_action"`
	Error *struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		MessageJa string `json:"message_ja"`
		Payment   *struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"payment"`
	} `json:"error"`
}

func (c *Checkout) call(method, path string, body []byte, idem string) (*apiAnswer, error) {
	c.mu.Lock()
	api, key := c.api, c.key
	c.mu.Unlock()
	if api == "" {
		return nil, fmt.Errorf("the sandbox has no checkout_api: set it to paynorm's base URL in the paynorm_sandbox block")
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, api+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", idem)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("paynorm could not be reached at %s: %v", api, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var a apiAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("paynorm answered HTTP %d with a body that is not JSON", resp.StatusCode)
	}
	return &a, nil
}

// record keeps what paynorm answered in the session.
func (c *Checkout) record(sid string, a *apiAnswer, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[sid]
	if s == nil {
		return
	}
	s.Code, s.Message, s.MessageJa = "", "", ""
	switch {
	case err != nil:
		s.Code, s.Message = "unreachable", err.Error()
	case a.Error != nil:
		s.Code, s.Message, s.MessageJa = a.Error.Code, a.Error.Message, a.Error.MessageJa
		if p := a.Error.Payment; p != nil {
			s.PaymentID, s.Status = p.ID, p.Status
		}
	default:
		s.PaymentID, s.Status = a.ID, a.Status
	}
}

func (c *Checkout) put(sid string, s *checkoutSession) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.sessions) >= maxCheckoutSessions {
		oldest := ""
		for k, v := range c.sessions {
			if oldest == "" || v.Created.Before(c.sessions[oldest].Created) {
				oldest = k
			}
		}
		delete(c.sessions, oldest)
	}
	c.sessions[sid] = s
}

func (c *Checkout) session(sid string) *checkoutSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[sid]
	if s == nil {
		return nil
	}
	cp := *s
	return &cp
}

func httpURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func (c *Checkout) render(w http.ResponseWriter, status int, name string, s *checkoutSession) {
	c.mu.Lock()
	api := c.api
	c.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = checkoutPages.ExecuteTemplate(w, name, struct {
		API     string
		Cards   any
		S       *checkoutSession
		Success bool
	}{api, checkoutCards, s, s != nil && s.Code == "" && (s.Status == "captured" || s.Status == "authorized")})
}

var checkoutPages = template.Must(template.New("").Funcs(template.FuncMap{"yen": yen}).Parse(`
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>paynorm sandbox checkout</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:sans-serif;max-width:36em;margin:2em auto;padding:0 1em}label{display:block;margin:.3em 0}
fieldset{margin:1em 0}button{font-size:1em;padding:.5em 1.5em}.ok{color:#070}.ng{color:#a00}code{background:#eee;padding:0 .2em}</style></head><body>{{end}}

{{define "form"}}{{template "head"}}
<h1>Sandbox checkout</h1>
<p>A demo shop on the sandbox. Paying here makes this page's server call paynorm
({{if .API}}<code>{{.API}}</code>{{else}}<b>not configured: set <code>checkout_api</code> in the paynorm_sandbox block</b>{{end}})
like a merchant's backend: <code>POST /v1/payments</code> with <code>three_d_secure</code> and a <code>return_url</code> back here,
then <code>POST /v1/payments/{id}/complete</code> when your browser returns from 3-D Secure.</p>
<form method="post" action="/sandbox/checkout">
<fieldset><legend>Card (sandbox token)</legend>
{{range $i, $c := .Cards}}<label><input type="radio" name="card" value="{{$c.Token}}" id="card-{{$c.Token}}"{{if eq $i 0}} checked{{end}}> <code>{{$c.Token}}</code>: {{$c.Label}}</label>
{{end}}</fieldset>
<label>Amount (yen) <input type="number" name="amount" id="amount" value="1000" min="1" max="9999999"></label>
<label>3-D Secure <select name="three_d_secure" id="three_d_secure"><option value="required">required</option><option value="attempt">attempt</option></select></label>
<label>Capture <select name="capture" id="capture"><option value="automatic">automatic (即時売上)</option><option value="manual">manual (仮売上)</option></select></label>
<p><button type="submit" id="pay">Pay</button></p>
</form></body></html>{{end}}

{{define "result"}}{{template "head"}}
<h1>{{if .Success}}<span class="ok">Payment {{.S.Status}}</span>{{else}}<span class="ng">Payment not completed</span>{{end}}</h1>
<dl>
<dt>Status</dt><dd id="status">{{if .S.Status}}{{.S.Status}}{{else}}none{{end}}</dd>
{{if .S.Code}}<dt>Error code</dt><dd id="code">{{.S.Code}}</dd>
<dt>Message</dt><dd id="message">{{.S.Message}}</dd>{{if .S.MessageJa}}<dd id="message_ja">{{.S.MessageJa}}</dd>{{end}}{{end}}
<dt>Payment</dt><dd id="payment">{{if .S.PaymentID}}<code>{{.S.PaymentID}}</code>{{else}}none{{end}}</dd>
<dt>Card</dt><dd><code>{{.S.Card}}</code>, ¥{{yen .S.Amount}}, three_d_secure {{.S.ThreeDS}}, capture {{.S.Capture}}</dd>
</dl>
{{if and .S.PaymentID .API}}<p>Read it from paynorm: <code>curl -s {{.API}}/v1/payments/{{.S.PaymentID}}</code></p>{{end}}
<p><a href="/sandbox/checkout" id="again">Pay again</a></p></body></html>{{end}}
`))
