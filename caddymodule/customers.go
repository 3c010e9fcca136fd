package caddymodule

import (
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers"
)

// Customer, phone and passthrough routes live beside their code; init adds
// them to the route table (and so to the openapi.yaml check).
func init() {
	routes = append(routes,
		apiRoute{"POST", "customers", "create_customer", (*Handler).createCustomer},
		apiRoute{"GET", "customers/{id}", "get_customer", func(h *Handler, c *call) int { return h.customerOp(c, "get") }},
		apiRoute{"DELETE", "customers/{id}", "delete_customer", func(h *Handler, c *call) int { return h.customerOp(c, "delete") }},
		apiRoute{"POST", "customers/{id}/cards", "add_card", (*Handler).addCard},
		apiRoute{"GET", "customers/{id}/cards", "list_cards", func(h *Handler, c *call) int { return h.customerOp(c, "cards") }},
		apiRoute{"DELETE", "customers/{id}/cards/{seq}", "delete_card", (*Handler).deleteCard},
	)
}

// accountOf picks the account of a request: ?provider= first, then the
// body's provider, then the default.
func (h *Handler) accountOf(c *call, bodyProvider string) (providers.Provider, *normalize.Error) {
	name := c.r.URL.Query().Get("provider")
	if name == "" {
		name = bodyProvider
	} else if bodyProvider != "" && bodyProvider != name {
		e := normalize.Newf("parameter_invalid", "The provider query parameter (%q) and the body's provider (%q) differ.", name, bodyProvider)
		e.MessageJa = "クエリとリクエスト本文のproviderが異なります。"
		return nil, e.WithParam("provider")
	}
	return h.pick(c, name)
}

// customers returns the account's customer API or a 422 unsupported.
func (h *Handler) customers(c *call, bodyProvider string) (providers.Customers, *normalize.Error) {
	p, err := h.accountOf(c, bodyProvider)
	if err != nil {
		return nil, err
	}
	cs, ok := p.(providers.Customers)
	if !ok {
		e := providers.Unsupported(p.Account(), "customers and stored cards")
		e.MessageJa = "この決済代行会社アカウントでは会員・カード登録は利用できません。"
		return nil, e
	}
	return cs, nil
}

// customerID checks the {id} path parameter.
func customerID(c *call) (string, *normalize.Error) {
	id := c.params["id"]
	if !normalize.ValidCustomerID(id) {
		e := normalize.Newf("resource_missing", "No customer %q: customer ids are 1 to 60 characters of A-Z a-z 0-9 - _ . @.", id)
		return "", e.WithParam("id")
	}
	return id, nil
}

func (h *Handler) createCustomer(c *call) int {
	body, berr := h.readBody(c.w, c.r)
	if berr != nil {
		return h.fail(c.w, c.rid, berr)
	}
	req, derr := normalize.DecodeCreateCustomer(body)
	if derr != nil {
		return h.fail(c.w, c.rid, derr)
	}
	cs, err := h.customers(c, req.Provider)
	if err != nil {
		return h.fail(c.w, c.rid, err)
	}
	out, cerr := cs.CreateCustomer(c.ctx, req)
	return h.answerAny(c, out, cerr)
}

// customerOp serves GET and DELETE on a customer and GET of its cards.
func (h *Handler) customerOp(c *call, op string) int {
	id, ierr := customerID(c)
	if ierr != nil {
		return h.fail(c.w, c.rid, ierr)
	}
	cs, err := h.customers(c, "")
	if err != nil {
		return h.fail(c.w, c.rid, err)
	}
	switch op {
	case "get":
		out, gerr := cs.GetCustomer(c.ctx, id)
		return h.answerAny(c, out, gerr)
	case "delete":
		out, derr := cs.DeleteCustomer(c.ctx, id)
		return h.answerAny(c, out, derr)
	}
	cards, lerr := cs.ListCards(c.ctx, id)
	if lerr != nil {
		return h.answerAny(c, nil, lerr)
	}
	if cards == nil {
		cards = []normalize.StoredCard{}
	}
	return writeJSON(c.w, http.StatusOK, map[string]any{"object": "list", "customer_id": id, "data": cards})
}

func (h *Handler) addCard(c *call) int {
	id, ierr := customerID(c)
	if ierr != nil {
		return h.fail(c.w, c.rid, ierr)
	}
	body, berr := h.readBody(c.w, c.r)
	if berr != nil {
		return h.fail(c.w, c.rid, berr)
	}
	req, derr := normalize.DecodeAddCard(body)
	if derr != nil {
		return h.fail(c.w, c.rid, derr)
	}
	cs, err := h.customers(c, req.Provider)
	if err != nil {
		return h.fail(c.w, c.rid, err)
	}
	out, aerr := cs.AddCard(c.ctx, id, req)
	return h.answerAny(c, out, aerr)
}

func (h *Handler) deleteCard(c *call) int {
	id, ierr := customerID(c)
	if ierr != nil {
		return h.fail(c.w, c.rid, ierr)
	}
	seq, serr := strconv.Atoi(c.params["seq"])
	if serr != nil || seq < 0 || seq > 9999 {
		e := normalize.Newf("resource_missing", "No card %q: card numbers (seq) are 0 to 9999.", c.params["seq"])
		return h.fail(c.w, c.rid, e.WithParam("seq"))
	}
	cs, err := h.customers(c, "")
	if err != nil {
		return h.fail(c.w, c.rid, err)
	}
	out, derr := cs.DeleteCard(c.ctx, id, seq)
	return h.answerAny(c, out, derr)
}

// answerAny writes a result object or the normalized error. A typed nil
// pointer in out is only written when err is nil.
func (h *Handler) answerAny(c *call, out any, err error) int {
	if err != nil {
		var ne *normalize.Error
		if !asNormalized(err, &ne) {
			ne = normalize.New("processing_error")
		}
		return h.fail(c.w, c.rid, ne)
	}
	return writeJSON(c.w, http.StatusOK, out)
}

// routeParams joins a route's path parameters for the idempotency
// fingerprint, so one key cannot replay across customers, cards or GMO APIs.
// A lone {id} stays as it is, keeping payment fingerprints unchanged.
func routeParams(p map[string]string) string {
	if len(p) <= 1 {
		return p["id"] + p["api"] + p["receipt_no"]
	}
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + p[k] + "\x00")
	}
	return b.String()
}
