package caddymodule

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers"
	"github.com/paynorm/paynorm/providers/gmoivr"
	"github.com/paynorm/paynorm/store"
)

func init() {
	routes = append(routes,
		apiRoute{"POST", "phone_authorizations", "create_phone_authorization", (*Handler).createPhone},
		apiRoute{"GET", "phone_authorizations/{receipt_no}", "get_phone_authorization", (*Handler).getPhone},
	)
}

func newIVRProvider(a *Account, st *accountState, observe providers.Observer) providers.Provider {
	c := gmoivr.NewClient(gmoivr.Config{Account: a.Name, Endpoint: a.Endpoint, APIKey: a.APIKey, APIPassword: a.APIPassword,
		ShopID: a.ShopID, SiteID: a.SiteID, ShopPass: a.ShopPass, Timeout: time.Duration(a.Timeout)}, st.transport, st.guard, observe)
	return gmoivr.New(c)
}

// phoneRecordID keys paynorm's note of a registered phone order. Its status
// "phone" keeps it out of the payment resolver.
func phoneRecordID(account, receipt string) string { return "phone:" + account + ":" + receipt }

// phoneProvider returns the account's phone API or a 422 unsupported.
func (h *Handler) phoneProvider(c *call, bodyProvider string) (providers.PhoneAuthorizations, string, *normalize.Error) {
	name := c.r.URL.Query().Get("provider")
	if name == "" {
		name = bodyProvider
	}
	if name == "" {
		// The only IVR account is the natural pick, whatever the default
		// account for card payments is.
		var ivr []string
		for _, n := range h.visible(c) {
			if _, ok := h.providers[n].(providers.PhoneAuthorizations); ok {
				ivr = append(ivr, n)
			}
		}
		if len(ivr) == 1 {
			name = ivr[0]
		}
	}
	p, err := h.pick(c, name)
	if err != nil {
		return nil, "", err
	}
	pp, ok := p.(providers.PhoneAuthorizations)
	if !ok {
		e := providers.Unsupported(p.Account(), "phone authorizations (configure an account of type gmo_ivr)")
		e.MessageJa = "この決済代行会社アカウントではIVR決済は利用できません。"
		return nil, "", e
	}
	return pp, p.Account(), nil
}

func (h *Handler) createPhone(c *call) int {
	body, berr := h.readBody(c.w, c.r)
	if berr != nil {
		return h.fail(c.w, c.rid, berr)
	}
	req, derr := normalize.DecodeCreatePhoneAuthorization(body)
	if derr != nil {
		return h.fail(c.w, c.rid, derr)
	}
	pp, account, perr := h.phoneProvider(c, req.Provider)
	if perr != nil {
		return h.fail(c.w, c.rid, perr)
	}
	out, err := pp.CreatePhoneAuthorization(c.ctx, req)
	if err == nil {
		h.notePhone(c.ctx, account, out, req)
	}
	return h.answerAny(c, out, err)
}

// notePhone keeps the request beside the receipt number: the IVR's status
// answer has no job code nor the tax/shipping split, and the ids GMO
// numbered are filled in.
func (h *Handler) notePhone(ctx context.Context, account string, out *normalize.PhoneAuthorization, req *normalize.CreatePhoneAuthorization) {
	note := *req
	if note.Authorize != nil {
		a := *note.Authorize
		a.OrderID = out.OrderID
		note.Authorize = &a
	}
	if note.Save != nil {
		s := *note.Save
		s.CustomerID = out.CustomerID
		note.Save = &s
	}
	raw, _ := json.Marshal(note)
	now := time.Now()
	rec := &store.PaymentRecord{ID: phoneRecordID(account, out.ReceiptNo), Account: account, Key: out.ReceiptNo,
		Status: "phone", Op: "phone", Payment: raw, CreatedAt: now, UpdatedAt: now}
	// A note, not a payment: written once per receipt number, never changed.
	if err := h.store.SwapPayment(context.WithoutCancel(ctx), rec); err != nil {
		h.logger.Warn("store write failed", zap.String("receipt_no", out.ReceiptNo), zap.Error(err))
	}
}

func (h *Handler) getPhone(c *call) int {
	receipt := c.params["receipt_no"]
	if len(receipt) > 32 || !isToken(receipt) {
		e := normalize.Newf("resource_missing", "No phone authorization %q.", receipt)
		return h.fail(c.w, c.rid, e.WithParam("receipt_no"))
	}
	pp, account, perr := h.phoneProvider(c, "")
	if perr != nil {
		return h.fail(c.w, c.rid, perr)
	}
	q := providers.PhoneQuery{History: queryFlag(c.r, "history"), Items: queryFlag(c.r, "items")}
	if rec, err := h.store.GetPayment(c.ctx, phoneRecordID(account, receipt)); err == nil {
		var note normalize.CreatePhoneAuthorization
		if json.Unmarshal(rec.Payment, &note) == nil {
			q.Request = &note
		}
	}
	out, err := pp.GetPhoneAuthorization(c.ctx, receipt, q)
	return h.answerAny(c, out, err)
}

func queryFlag(r *http.Request, name string) bool {
	switch r.URL.Query().Get(name) {
	case "true", "1", "yes":
		return true
	}
	return false
}
