package gmo

// EMV 3-D Secure 2 (GMO's "3DS2.0") for card payments, per DESIGN.md
// "3-D Secure". Wire facts (wire notes §3; public GMO clients: GMO's own
// EC-CUBE module LC_Mdl_PG_MULPAY, abyssparanoia/go-gmo payment/,
// t-k/gmo-payment-ruby):
//   - EntryTran TdFlag=2 (3DS2), Tds2Type 2 (refuse a card that cannot do
//     3DS2) or 3 (plain authorization then; 1, the 3DS1 fallback, ended
//     with 3DS1 in October 2022), TdTenantName = the shop name as EUC-JP
//     bytes in Base64, at most 25 bytes of Base64;
//   - ExecTran RetUrl and CallbackType (1 POST, 3 GET, 2 the merchant's
//     own 3DS server flow); the answer ACS=2 carries RedirectUrl (with a
//     raw "&t=", re-joined by ParseResponse), ACS=0 is a finished payment;
//   - after the browser comes back to RetUrl, SecureTran2 (AccessID,
//     AccessPass) executes the payment and answers like ExecTran without
//     ACS: OrderID Forward Method PayTimes Approve TranID TranDate
//     CheckString (the recorded 2025 cassette and go-gmo's struct);
//   - Tds2Result (shop, AccessID, AccessPass) answers Tds2TransResult
//     (Y A N U R) and Tds2TransResultReason.
// What GMO appends to RetUrl is not in any public client: paynorm does not
// depend on it (the app knows its payment id; complete reads AccessID and
// AccessPass back with SearchTrade).

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"

	"golang.org/x/text/encoding/japanese"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers"
)

var _ providers.Completer = (*Provider)(nil)

// MaxTenantName is GMO's limit for TdTenantName, counted on the Base64
// text (GMO's own module checks strlen(base64_encode(eucjp)) <= 25): with
// Base64's padding that is 18 bytes of EUC-JP, 18 ASCII characters or 9
// kanji.
const MaxTenantName = 25

// callbackGET is ExecTran's CallbackType 3: GMO sends the card holder's
// browser back to RetUrl with a GET, which any page (and curl) can follow;
// a POST (1) would make a browser re-submit a form on reload.
const callbackGET = "3"

// EncodeTenantName turns a shop name into TdTenantName: EUC-JP, then
// Base64. A name with a character EUC-JP lacks, a control character, or
// one longer than MaxTenantName once encoded is an error that says so.
func EncodeTenantName(name string) (string, error) {
	if name == "" {
		return "", nil
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("tenant_name %q contains a control character", name)
		}
	}
	b, err := japanese.EUCJP.NewEncoder().String(name)
	if err != nil {
		return "", fmt.Errorf("tenant_name %q has a character EUC-JP cannot encode (GMO's TdTenantName is EUC-JP)", name)
	}
	enc := base64.StdEncoding.EncodeToString([]byte(b))
	if len(enc) > MaxTenantName {
		return "", fmt.Errorf("tenant_name %q is %d bytes once EUC-JP and Base64 encoded; GMO takes at most %d (18 ASCII characters or 9 kanji)", name, len(enc), MaxTenantName)
	}
	return enc, nil
}

// tds2Type is EntryTran's Tds2Type for a mode: 2 fails a card that cannot
// do 3DS2 (required), 3 authorizes it without authentication (attempt).
func tds2Type(mode string) string {
	if mode == normalize.ThreeDSAttempt {
		return "3"
	}
	return "2"
}

// useThreeDS decides whether a create runs 3-D Secure. The handler fills
// the account's default and checks return_url; this repeats what a direct
// caller could get wrong, before anything is sent. A verify (CHECK)
// without return_url runs without 3-D Secure, as the handler allows it.
func (p *Provider) useThreeDS(req *normalize.CreatePayment, job string) (bool, *normalize.Error) {
	switch req.ThreeDSecure {
	case "", normalize.ThreeDSOff:
		return false, nil
	case normalize.ThreeDSRequired, normalize.ThreeDSAttempt:
	default:
		return false, p.invalid("three_d_secure", "parameter_invalid", "three_d_secure must be required, attempt or off.", "three_d_secureはrequired・attempt・offのいずれかで指定してください。")
	}
	if req.ReturnURL == "" {
		if job == "CHECK" {
			return false, nil
		}
		return false, p.invalid("return_url", "parameter_missing", "return_url is required with 3-D Secure: the card holder's browser comes back there after authenticating.", "3Dセキュアを利用する場合はreturn_url(認証後にブラウザが戻るURL)が必須です。")
	}
	if p.c.tenantErr != nil {
		e := normalize.Newf("provider_misconfigured", "The account's %v; nothing was sent.", p.c.tenantErr)
		e.MessageJa = "3Dセキュア表示店舗名(tenant_name)はEUC-JPでBase64エンコードして25バイト以内にしてください(送信していません)。"
		e.Provider = p.Account()
		return false, e
	}
	return true, nil
}

// entryThreeDS is what EntryTran adds for 3-D Secure.
func (p *Provider) entryThreeDS(mode string) []Param {
	out := []Param{{"TdFlag", "2"}, {"Tds2Type", tds2Type(mode)}}
	if p.c.tenant != "" {
		out = append(out, Param{"TdTenantName", p.c.tenant})
	}
	return out
}

// requiresAction answers ExecTran's ACS=2: nothing is charged yet, the
// card holder's browser must go to RedirectUrl. The URL is checked before
// it reaches a browser: only an absolute https URL (http on loopback, the
// sandbox) is sent on, never a javascript: or relative one.
func (p *Provider) requiresAction(pay *normalize.Payment, r Values) (*normalize.Payment, error) {
	u := r.Get("RedirectUrl")
	if !redirectURLOK(u) {
		// The challenge exists at GMO but nobody can reach it: nothing will
		// be charged, and the resolver settles the record from SearchTrade.
		pay.Status = normalize.StatusUnknown
		e := normalize.Newf("invalid_response", "GMO asked for 3-D Secure authentication (ACS=2) without a usable RedirectUrl; nothing was charged and the payment is being checked.")
		e.Provider, e.Payment = p.Account(), pay
		return nil, e
	}
	pay.Status = normalize.StatusRequiresAction
	pay.NextAction = &normalize.NextAction{Type: "redirect_to_url", URL: u}
	pay.ProviderData["gmo_status"] = "UNPROCESSED"
	return pay, nil
}

func redirectURLOK(raw string) bool {
	if raw == "" || len(raw) > 2048 || strings.ContainsAny(raw, " \t\r\n<>\"'") {
		return false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return false
	}
	switch u.Scheme {
	case "https":
		return true
	case "http":
		h := u.Hostname()
		return h == "localhost" || h == "127.0.0.1" || h == "::1"
	}
	return false
}

// refuseThreeDS1 answers ExecTran's ACS=1, 3-D Secure 1.0 (ACSUrl, PaReq,
// MD). The card brands ended 3DS1 in October 2022 and paynorm never asks
// for it (Tds2Type is 2 or 3, never the fallback 1), so it runs no 3DS1
// authentication: nothing is charged until SecureTran, which paynorm
// never sends, so the payment is failed.
func (p *Provider) refuseThreeDS1(pay *normalize.Payment) (*normalize.Payment, error) {
	pay.Status = normalize.StatusFailed
	pay.ProviderData["gmo_acs"] = "1"
	e := normalize.Newf("unsupported", "GMO asked for 3-D Secure 1.0 authentication (ExecTran ACS=1), which the card brands ended in October 2022 and paynorm does not run; nothing was charged. Check the shop's 3-D Secure settings with GMO (EMV 3-D Secure 2, Tds2Type 2 or 3).")
	e.MessageJa = "GMOから3Dセキュア1.0(ACS=1)の認証を求められましたが、3Dセキュア1.0は2022年10月に終了しており利用できません(請求はされていません)。GMOの3Dセキュア設定(3DS2.0)をご確認ください。"
	e.Provider, e.Payment = p.Account(), pay
	return nil, e
}

// Complete finishes a 3-D Secure payment after the card holder's browser
// came back: SecureTran2 with the trade's AccessID and AccessPass (read
// with SearchTrade). SecureTran2 moves money: it is sent once and never
// repeated; an answer that does not arrive is read back once with
// SearchTrade, and otherwise the payment is unknown. A trade GMO already
// executed is answered as it is, without any call that moves money.
func (p *Provider) Complete(ctx context.Context, t providers.Target) (*normalize.Payment, error) {
	pay, tr, err := p.search(ctx, t.Key)
	if err != nil {
		return nil, err
	}
	keep(pay, t.Known)
	switch tr.Get("Status") {
	case "UNPROCESSED", "AUTHENTICATED":
	case "AUTH", "SAUTH", "CAPTURE", "SALES", "CHECK":
		return pay, nil // executed already (an earlier completion): GMO's word
	default:
		return nil, p.stateError("invalid_state", pay)
	}
	job := tr.Get("JobCd")
	if job == "" && t.Known != nil {
		job = providers.JobFor(t.Known.Capture)
	}
	params := []Param{{"AccessID", tr.Get("AccessID")}, {"AccessPass", tr.Get("AccessPass")}}
	r, cerr := p.c.call(ctx, "SecureTran2", params, write)
	if cerr != nil {
		return p.completeFailed(ctx, t, pay, tr, cerr)
	}
	if !p.checkStringOK(r) {
		pay.Status = normalize.StatusUnknown
		e := normalize.Newf("invalid_response", "GMO's SecureTran2 answer failed CheckString verification; the payment outcome is being checked.")
		e.Provider, e.Payment = p.Account(), pay
		return nil, e
	}
	pay.Status = providers.StatusForJob(job)
	pay.NextAction = nil
	pay.ApprovalCode, pay.TransactionID, pay.Forward = r.Get("Approve"), r.Get("TranID"), r.Get("Forward")
	if in := installmentsFrom(r.Get("Method"), r.Get("PayTimes")); in != nil && job != "CHECK" {
		pay.Installments = in
	}
	pay.ProviderData["gmo_status"] = job
	pay.UpdatedAt = p.stamp()
	if d, ok := parseDate(r.Get("TranDate")); ok {
		pay.UpdatedAt = &d
	}
	return pay, nil
}

// completeFailed reads a SecureTran2 that did not succeed. An uncertain
// one (timeout, GMO's own fault) is read back once; a card holder who
// failed to authenticate (E21) or a decline leaves the payment failed,
// with GMO's authentication result (Tds2Result) attached when it answers;
// any other refusal changes nothing (the payment still waits).
func (p *Provider) completeFailed(ctx context.Context, t providers.Target, pay *normalize.Payment, tr Values, cerr *normalize.Error) (*normalize.Payment, error) {
	executed := func(after *normalize.Payment) bool {
		switch after.Status {
		case normalize.StatusAuthorized, normalize.StatusCaptured, normalize.StatusVerified:
			return true
		}
		return false
	}
	switch {
	case cerr.Uncertain:
		if after, _, serr := p.search(ctx, t.Key); serr == nil && executed(after) {
			keep(after, t.Known)
			return after, nil
		}
		pay.Status = normalize.StatusUnknown
		if cerr.Type != normalize.TypeProviderTimeout {
			cerr.Message += " The outcome is unknown and is being checked."
		}
		cerr.Payment = pay
		return nil, cerr
	case cerr.Code == "already_processed":
		// Executed by an earlier SecureTran2 whose answer was lost.
		if after, _, serr := p.search(ctx, t.Key); serr == nil && executed(after) {
			keep(after, t.Known)
			return after, nil
		}
		return nil, cerr
	case cerr.Type == normalize.TypeCard:
		pay.Status = normalize.StatusFailed
		pay.NextAction = nil
		p.tds2Result(ctx, pay, tr)
		cerr.Payment = pay
		return nil, cerr
	}
	return nil, cerr
}

// tds2Result adds GMO's authentication result to a payment's provider
// data (Tds2TransResult: Y authenticated, A attempted, N not
// authenticated, U could not be performed, R rejected; with a reason code).
// It is a read and only informs: a failure is ignored.
func (p *Provider) tds2Result(ctx context.Context, pay *normalize.Payment, tr Values) {
	v, err := p.c.call(ctx, "Tds2Result", append(p.shop(), Param{"AccessID", tr.Get("AccessID")}, Param{"AccessPass", tr.Get("AccessPass")}), read)
	if err != nil {
		return
	}
	if res := v.Get("Tds2TransResult"); res != "" {
		pay.ProviderData["tds2_trans_result"] = res
		if reason := v.Get("Tds2TransResultReason"); reason != "" {
			pay.ProviderData["tds2_trans_result_reason"] = reason
		}
	}
}
