package gmoivr

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers"
	"github.com/paynorm/paynorm/providers/gmo"
	"github.com/paynorm/paynorm/providers/sandbox"
	"github.com/paynorm/paynorm/resilience"
)

func simEnv(t *testing.T, shopPass string) (*Provider, *sandbox.IVR, *sandbox.GMO) {
	t.Helper()
	g := sandbox.NewGMO()
	g.Shops = map[string]string{"tshop00000001": "shoppass"}
	v := sandbox.NewIVR(g)
	srv := httptest.NewServer(v)
	t.Cleanup(srv.Close)
	c := NewClient(Config{Account: "ivr", Endpoint: srv.URL, APIKey: "k", APIPassword: "p", ShopID: "tshop00000001",
		SiteID: "tsite00000001", ShopPass: shopPass, Timeout: 2 * time.Second}, http.DefaultTransport, resilience.New(resilience.Settings{Name: "ivr"}), nil)
	return New(c), v, g
}

func decodePhone(t *testing.T, body string) *normalize.CreatePhoneAuthorization {
	t.Helper()
	r, err := normalize.DecodeCreatePhoneAuthorization([]byte(body))
	if err != nil {
		t.Fatalf("%s: %+v", body, err)
	}
	return r
}

// Issue 15 item 8: result 90 on AuthRegistApi says nothing of whether the
// order was registered. It is uncertain and never resent, by paynorm or
// (retryable false) by the app: a second registration is a second order.
func TestResult90OnRegistrationIsUncertainNeverResent(t *testing.T) {
	p, v, _ := simEnv(t, "")
	v.InjectFault(sandbox.Fault{API: "AuthRegistApi", Kind: sandbox.FaultResult90})
	_, err := p.CreatePhoneAuthorization(context.Background(), decodePhone(t, `{"use":"authorize","authorize":{"amount":1000}}`))
	ne, ok := err.(*normalize.Error)
	if !ok || ne.Retryable || ne.Code != "provider_unavailable" || !strings.Contains(ne.Message, "may have been registered") {
		t.Fatalf("%+v", err)
	}
	if n := v.Calls("AuthRegistApi"); n != 1 {
		t.Fatalf("AuthRegistApi sent %d times", n)
	}
}

// Seed 001 save.cardPass and save.updateType, and job code SAUTH, reach the
// wire; the password is never written back out.
func TestRegistCarriesCardPassUpdateTypeAndSAUTH(t *testing.T) {
	p := &Provider{c: &Client{cfg: Config{Account: "ivr", ShopID: "shop1", SiteID: "site1"}}}
	r := p.BuildRegist(decodePhone(t, `{"use":"save","save":{"customer_id":"m","card_seq":2,"card_password":"Pw1234","update_type":"keep_card_number"}}`))
	b, _ := json.Marshal(r)
	if !strings.Contains(string(b), `"cardPass":"Pw1234"`) || !strings.Contains(string(b), `"updateType":"2"`) || !strings.Contains(string(b), `"cardSeq":"2"`) {
		t.Fatalf("%s", b)
	}
	req := decodePhone(t, `{"use":"authorize","authorize":{"capture":"simple_authorization","amount":1000}}`)
	if r := p.BuildRegist(req); r.GMOPG.Auth.JobCd != "SAUTH" || r.GMOPG.Auth.Method != "1" {
		t.Fatalf("%+v", r.GMOPG.Auth)
	}
	note, _ := json.Marshal(decodePhone(t, `{"use":"save","save":{"card_password":"Pw1234"}}`))
	if strings.Contains(string(note), "Pw1234") {
		t.Fatalf("the card password is written out: %s", note)
	}
}

// A phone SAUTH is an authorization at GMO (SearchTrade status SAUTH),
// and with shop_pass the IVR's checkString is verified.
func TestPhoneSimpleAuthorizationWithVerifiedCheckString(t *testing.T) {
	p, v, g := simEnv(t, "shoppass")
	ctx := context.Background()
	req := decodePhone(t, `{"use":"authorize","authorize":{"order_id":"TEL-S1","capture":"simple_authorization","amount":2000}}`)
	out, err := p.CreatePhoneAuthorization(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Advance(out.ReceiptNo, "success", true); err != nil {
		t.Fatal(err)
	}
	got, err := p.GetPhoneAuthorization(ctx, out.ReceiptNo, providers.PhoneQuery{Request: req})
	if err != nil || got.Payment.Status != normalize.StatusAuthorized || got.PaymentError != nil || got.Payment.ProviderData["check_string_verified"] != nil {
		t.Fatalf("%+v %+v %v", got, got.Payment, err)
	}
	if st, _ := g.TradeStatus("tshop00000001", "TEL-S1"); st != "SAUTH" {
		t.Fatalf("GMO status %s", st)
	}
}

// A checkString that does not verify with the account's shop_pass proves
// nothing about the charge: unknown, invalid_response.
func TestIVRCheckStringMismatchIsUnknown(t *testing.T) {
	p := &Provider{c: &Client{cfg: Config{Account: "ivr", ShopPass: "shoppass"}}}
	var r SearchResponse
	if err := json.Unmarshal([]byte(seedOK), &r); err != nil {
		t.Fatal(err)
	}
	out, err := p.Normalize("2017101109230000000010", &r, providers.PhoneQuery{})
	if err != nil || out.Payment.Status != normalize.StatusUnknown || out.PaymentError == nil || out.PaymentError.Code != "invalid_response" {
		t.Fatalf("%+v %+v %v", out.Payment, out.PaymentError, err)
	}
	ex := r.LastTransaction.ExecTran
	ex.CheckString = gmo.CheckString(ex.OrderID, ex.Forward, ex.Method, ex.PayTimes, ex.Approve, ex.TranID, ex.TranDate, "shoppass")
	out, _ = p.Normalize("2017101109230000000010", &r, providers.PhoneQuery{})
	if out.Payment.Status != normalize.StatusAuthorized || out.PaymentError != nil {
		t.Fatalf("%+v %+v", out.Payment, out.PaymentError)
	}
}

// The same 加盟店自由項目 rule as the card API (issue 15 item 3): 100
// Shift_JIS bytes, GMO's forbidden symbols; and ボーナス分割 is refused.
func TestPhoneClientFieldsFollowTheCardRule(t *testing.T) {
	ok := `{"use":"authorize","authorize":{"amount":1000,"metadata":{"client_field_1":"` + strings.Repeat("漢", 50) + `"}}}`
	if _, err := normalize.DecodeCreatePhoneAuthorization([]byte(ok)); err != nil {
		t.Fatalf("50 kanji (100 Shift_JIS bytes): %+v", err)
	}
	for _, bad := range []string{strings.Repeat("漢", 51), "it's", "a{b}", "10〜12"} {
		body, _ := json.Marshal(map[string]any{"use": "authorize", "authorize": map[string]any{"amount": 1000, "metadata": map[string]string{"client_field_1": bad}}})
		_, err := normalize.DecodeCreatePhoneAuthorization(body)
		if err == nil || err.Fields[0].Param != "authorize.metadata.client_field_1" {
			t.Errorf("%q: %+v", bad, err)
		}
	}
	_, err := normalize.DecodeCreatePhoneAuthorization([]byte(`{"use":"authorize","authorize":{"amount":1000,"installments":{"plan":"bonus_installments","count":2}}}`))
	if err == nil || err.Fields[0].Param != "authorize.installments.plan" {
		t.Fatalf("%+v", err)
	}
}
