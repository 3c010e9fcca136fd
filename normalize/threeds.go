package normalize

import (
	"net/url"
	"strings"
)

// StatusRequiresAction is a payment waiting for the card holder to
// authenticate in a browser (3-D Secure): nothing is charged until the app
// calls complete after the browser returns.
const StatusRequiresAction = "requires_action"

// 3-D Secure modes of a create request (and of an account's default).
const (
	// ThreeDSRequired: authenticate, and fail when the issuer cannot do
	// EMV 3-D Secure 2 (GMO Tds2Type 2).
	ThreeDSRequired = "required"
	// ThreeDSAttempt: authenticate where the issuer can, else a plain
	// authorization (GMO Tds2Type 3).
	ThreeDSAttempt = "attempt"
	// ThreeDSOff: no 3-D Secure (shops outside the mandate, MOTO).
	ThreeDSOff = "off"
)

// NextAction tells the app what the card holder must do next.
type NextAction struct {
	// Type is "redirect_to_url": send the browser to URL.
	Type string `json:"type"`
	URL  string `json:"url"`
}

// ValidThreeDSMode reports whether m is a 3-D Secure mode ("" = the
// account's default).
func ValidThreeDSMode(m string) bool {
	switch m {
	case "", ThreeDSRequired, ThreeDSAttempt, ThreeDSOff:
		return true
	}
	return false
}

// CheckReturnURL validates the page the card holder's browser returns to:
// an absolute http(s) URL without credentials or a fragment, at most 512
// bytes (GMO RetUrl). http is accepted for loopback pages only (the
// sandbox and local development).
func CheckReturnURL(raw string) *Error {
	bad := func(why string) *Error {
		return Validation([]FieldError{Field("return_url", "parameter_invalid",
			"return_url "+why+".", "return_urlが正しくありません("+why+")。")})
	}
	if len(raw) > 512 {
		return bad("must be at most 512 bytes")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" || strings.ContainsAny(raw, " \t\r\n") {
		return bad("must be an absolute URL without credentials or fragment")
	}
	host := u.Hostname()
	loopback := host == "localhost" || host == "127.0.0.1" || host == "::1"
	if u.Scheme != "https" && !(u.Scheme == "http" && loopback) {
		return bad("must use https (http only for localhost)")
	}
	return nil
}
