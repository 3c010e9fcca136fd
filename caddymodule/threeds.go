package caddymodule

import (
	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers"
)

// account returns the configuration of an account by name.
func (h *Handler) account(name string) *Account {
	for i := range h.Accounts {
		if h.Accounts[i].Name == name {
			return &h.Accounts[i]
		}
	}
	return nil
}

// threeDS fills a create's 3-D Secure mode from the account's default and
// checks return_url, which a GMO payment needs whenever the card holder
// may be sent to authenticate. j-payment runs 3-D Secure in the browser
// before the token exists; its mode is recorded as given and not used.
func (h *Handler) threeDS(p providers.Provider, req *normalize.CreatePayment) *normalize.Error {
	if !normalize.ValidThreeDSMode(req.ThreeDSecure) {
		return normalize.Validation([]normalize.FieldError{normalize.Field("three_d_secure", "parameter_invalid",
			"three_d_secure must be required, attempt or off.", "three_d_secureはrequired・attempt・offのいずれかで指定してください。")})
	}
	a := h.account(p.Account())
	if req.ThreeDSecure == "" && a != nil {
		req.ThreeDSecure = a.threeDSMode()
	}
	if req.ReturnURL != "" {
		if e := normalize.CheckReturnURL(req.ReturnURL); e != nil {
			return e
		}
	}
	if p.Kind() == "gmo" && req.ThreeDSecure != normalize.ThreeDSOff && req.Capture != normalize.CaptureVerify && req.ReturnURL == "" {
		return normalize.Validation([]normalize.FieldError{normalize.Field("return_url", "parameter_missing",
			"return_url is required with 3-D Secure (three_d_secure "+req.ThreeDSecure+"): the card holder's browser comes back there after authenticating.",
			"3Dセキュアを利用する場合はreturn_url(認証後にブラウザが戻るURL)が必須です。")})
	}
	return nil
}
