package gmo

import (
	"context"
	"strings"

	"github.com/paynorm/paynorm/normalize"
)

// DefaultPassthroughAPIs are the .idPass APIs the JSON passthrough allows
// when an account names none: a payment (EntryTran, ExecTran) and reads.
// Refunds, amount changes and card storage must be allowed explicitly.
var DefaultPassthroughAPIs = []string{"EntryTran", "ExecTran", "SearchTrade", "SearchMember", "SearchCard"}

// siteAPIs take SiteID/SitePass instead of ShopID/ShopPass.
var siteAPIs = map[string]bool{
	"SaveMember": true, "UpdateMember": true, "SearchMember": true, "DeleteMember": true,
	"SaveCard": true, "SearchCard": true, "DeleteCard": true, "SearchCardDetail": true,
}

// readAPIs may be repeated; everything else is a write, never repeated once
// sent.
var readAPIs = map[string]bool{
	"SearchTrade": true, "SearchTradeMulti": true, "SearchMember": true, "SearchCard": true, "SearchCardDetail": true,
	"SearchCardReverse": true, "SearchBookingInfo": true,
}

// credentialKeys are dropped from a passthrough request: paynorm injects
// its own.
var credentialKeys = map[string]bool{"ShopID": true, "ShopPass": true, "SiteID": true, "SitePass": true, "Version": true}

// UpperCamel maps a JSON key (orderID, accessPass, tds2Type) onto GMO's wire
// name (OrderID, AccessPass, Tds2Type).
func UpperCamel(k string) string {
	if k == "" {
		return k
	}
	return strings.ToUpper(k[:1]) + k[1:]
}

// LowerCamel maps a wire name onto JSON: a leading run of capitals is
// lowered up to the start of the next word (ACS -> acs, ACSUrl -> acsUrl,
// OrderID -> orderID, TranID -> tranID).
func LowerCamel(k string) string {
	n := 0
	for n < len(k) && k[n] >= 'A' && k[n] <= 'Z' {
		n++
	}
	switch {
	case n == 0:
		return k
	case n > 1 && n < len(k) && k[n] >= 'a' && k[n] <= 'z':
		n-- // the last capital starts the next word
	}
	return strings.ToLower(k[:n]) + k[n:]
}

// ValidAPIName reports whether api looks like an .idPass API name.
func ValidAPIName(api string) bool {
	if len(api) < 2 || len(api) > 40 || api[0] < 'A' || api[0] > 'Z' {
		return false
	}
	for i := 0; i < len(api); i++ {
		c := api[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Passthrough calls one .idPass API with the app's parameters (wire names)
// and the account's credentials. Credentials the app sent are ignored. A
// GMO error comes back as the error plus the raw pairs.
func (p *Provider) Passthrough(ctx context.Context, api string, params []Param) (Values, []ErrPair, *normalize.Error) {
	cfg := p.c.cfg
	var creds []Param
	memberPay := false
	for _, q := range params {
		if q.Key == "MemberID" {
			memberPay = true
		}
	}
	switch {
	case siteAPIs[api]:
		if cfg.SiteID == "" {
			_, err := p.site()
			return nil, nil, err
		}
		creds = []Param{{"SiteID", cfg.SiteID}, {"SitePass", cfg.SitePass}}
	default:
		creds = p.shop()
		// A payment or TradedCard with a member needs the site as well.
		if (memberPay || api == "TradedCard") && cfg.SiteID != "" {
			creds = append(creds, Param{"SiteID", cfg.SiteID}, Param{"SitePass", cfg.SitePass})
		}
	}
	out := make([]Param, 0, len(creds)+len(params))
	out = append(out, creds...)
	for _, q := range params {
		if !credentialKeys[q.Key] {
			out = append(out, q)
		}
	}
	kind := write
	if readAPIs[api] {
		kind = read
	}
	v, err := p.c.call(ctx, api, out, kind)
	if err != nil {
		return v, v.Errors(), err
	}
	return v, nil, nil
}
