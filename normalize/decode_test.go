package normalize

import (
	"strings"
	"testing"
	"time"
)

func TestDecodeCreatePaymentValid(t *testing.T) {
	r, err := DecodeCreatePayment([]byte(`{"provider":"gmo","order_id":"ORD-1","amount":1000,"tax":100,"shipping":0,
		"capture":"manual","payment_method":{"token":"abc"},"installments":{"plan":"installments","count":3},
		"customer":{"email":"a@example.jp","phone":"0312345678"},"metadata":{"client_field_1":"x"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Amount != 1000 || r.Capture != CaptureManual || r.Installments.Count != 3 || r.Metadata["client_field_1"] != "x" {
		t.Fatalf("%+v", r)
	}
	r, err = DecodeCreatePayment([]byte(`{"amount":1,"payment_method":{"customer_id":"m-1","card_seq":0}}`))
	if err != nil || r.Capture != CaptureAutomatic || *r.PaymentMethod.CardSeq != 0 {
		t.Fatalf("%+v %v", r, err)
	}
}

func TestDecodeCreatePaymentErrors(t *testing.T) {
	cases := []struct {
		name, body, code, param string
		status                  int
	}{
		{"not json", `{"amount":`, "invalid_json", "", 400},
		{"empty", ``, "invalid_json", "", 400},
		{"array", `[1,2]`, "invalid_json", "", 400},
		{"trailing", `{"amount":1,"payment_method":{"token":"a"}} {}`, "invalid_json", "", 400},
		{"bad utf8", "{\"amount\":1,\"order_id\":\"\xff\"}", "invalid_encoding", "", 400},
		{"string amount", `{"amount":"1000","payment_method":{"token":"a"}}`, "parameter_invalid", "amount", 400},
		{"float amount", `{"amount":10.5,"payment_method":{"token":"a"}}`, "parameter_invalid", "amount", 400},
		{"huge amount", `{"amount":99999999999999999999,"payment_method":{"token":"a"}}`, "parameter_invalid", "amount", 400},
		{"unknown field", `{"amount":1,"amunt":2,"payment_method":{"token":"a"}}`, "parameter_unknown", "amunt", 400},
		{"zero amount", `{"amount":0,"payment_method":{"token":"a"}}`, "invalid_amount", "amount", 400},
		{"negative tax", `{"amount":1,"tax":-1,"payment_method":{"token":"a"}}`, "invalid_amount", "tax", 400},
		{"over max", `{"amount":10000000,"payment_method":{"token":"a"}}`, "invalid_amount", "amount", 400},
		{"verify with amount", `{"amount":5,"capture":"verify","payment_method":{"token":"a"}}`, "invalid_amount", "amount", 400},
		{"bad capture", `{"amount":5,"capture":"later","payment_method":{"token":"a"}}`, "parameter_invalid", "capture", 400},
		{"no method", `{"amount":5}`, "parameter_missing", "payment_method", 400},
		{"both methods", `{"amount":5,"payment_method":{"token":"a","customer_id":"m","card_seq":1}}`, "parameter_invalid", "payment_method", 400},
		{"no card_seq", `{"amount":5,"payment_method":{"customer_id":"m"}}`, "parameter_missing", "payment_method.card_seq", 400},
		{"bad order id", `{"amount":5,"order_id":"注文1","payment_method":{"token":"a"}}`, "invalid_order_id", "order_id", 400},
		{"bad installments", `{"amount":5,"installments":{"plan":"installments","count":1},"payment_method":{"token":"a"}}`, "parameter_invalid", "installments.count", 400},
		{"bad phone", `{"amount":5,"customer":{"phone":"03-1234"},"payment_method":{"token":"a"}}`, "parameter_invalid", "customer.phone", 400},
		{"bad metadata", `{"amount":5,"metadata":{"note":"x"},"payment_method":{"token":"a"}}`, "parameter_unknown", "metadata.note", 400},
		{"token with &", `{"amount":5,"payment_method":{"token":"a&Amount=1"}}`, "parameter_invalid", "payment_method.token", 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeCreatePayment([]byte(c.body))
			if err == nil {
				t.Fatal("want an error")
			}
			if err.Code != c.code || err.HTTPStatus() != c.status || err.Type != TypeInvalidRequest || err.MessageJa == "" || err.Message == "" {
				t.Fatalf("got %+v", err)
			}
			if c.param != "" && (err.Param == nil || *err.Param != c.param) {
				t.Fatalf("param: got %v want %s", err.Param, c.param)
			}
		})
	}
}

func TestValidationCollectsEveryField(t *testing.T) {
	_, err := DecodeCreatePayment([]byte(`{"amount":0,"tax":-5,"capture":"manual","payment_method":{}}`))
	if err == nil || len(err.Fields) != 3 {
		t.Fatalf("%+v", err)
	}
	for _, f := range err.Fields {
		if f.Message == "" || f.MessageJa == "" || f.Param == "" {
			t.Fatalf("incomplete field error %+v", f)
		}
	}
}

func TestCatalogIsComplete(t *testing.T) {
	for _, c := range Codes() {
		e := New(c)
		if e.Message == "" || e.MessageJa == "" || e.Status < 400 || e.Type == "" {
			t.Errorf("%s: %+v", c, e)
		}
	}
	if New("no_such_code").Code != "processing_error" {
		t.Fatal("unknown codes must become processing_error")
	}
}

func TestOrderIDAndPaymentID(t *testing.T) {
	id := NewOrderID(time.Date(2026, 11, 22, 23, 0, 0, 0, time.UTC))
	if !ValidOrderID(id, 27) || !strings.HasPrefix(id, "pn-261123") {
		t.Fatalf("%s", id)
	}
	a, k, ok := SplitPaymentID(PaymentID("gmo-2", "ORD-1"))
	if !ok || a != "gmo-2" || k != "ORD-1" {
		t.Fatal(a, k, ok)
	}
	for _, bad := range []string{"", "_x", "gmo_", "gmo"} {
		if _, _, ok := SplitPaymentID(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestBrandFromNumber(t *testing.T) {
	cases := map[string]string{"4111111111111111": "VISA", "5555555555554444": "MASTER", "2221000000000009": "MASTER",
		"3530111333300000": "JCB", "378282246310005": "AMEX", "30569309025904": "DINERS", "36000000000008": "DINERS",
		"*************111": "", "9999": ""}
	for n, want := range cases {
		if got := BrandFromNumber(n); got != want {
			t.Errorf("%s: got %q want %q", n, got, want)
		}
	}
	if MaskNumber("4111111111111111") != "************1111" {
		t.Fatal(MaskNumber("4111111111111111"))
	}
}

func FuzzDecodeCreatePayment(f *testing.F) {
	for _, s := range []string{`{"amount":1000,"payment_method":{"token":"tok_visa"}}`,
		`{"provider":"gmo","order_id":"A-1","amount":1,"tax":2,"shipping":3,"capture":"manual","payment_method":{"customer_id":"m","card_seq":0},"installments":{"plan":"installments","count":3},"metadata":{"client_field_1":"x"}}`,
		`{"amount":"x"}`, `[]`, `null`, `{"amount":1e3}`, "\xff", `{"metadata":{"a":"b"}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeCreatePayment(body)
		if err != nil {
			if r != nil || err.Type != TypeInvalidRequest || err.Message == "" || err.MessageJa == "" || err.HTTPStatus() >= 500 {
				t.Fatalf("bad error %+v", err)
			}
			return
		}
		if r.Amount < 0 || r.Amount > MaxAmount || r.Tax < 0 || r.Shipping < 0 {
			t.Fatalf("accepted amounts %+v", r)
		}
		if r.Capture != CaptureVerify && r.Amount < 1 {
			t.Fatalf("accepted zero amount %+v", r)
		}
		if r.PaymentMethod.Token == "" && (r.PaymentMethod.CustomerID == "" || r.PaymentMethod.CardSeq == nil) {
			t.Fatalf("accepted no payment method %+v", r)
		}
		if r.OrderID != "" && !ValidOrderID(r.OrderID, 50) {
			t.Fatalf("accepted order id %q", r.OrderID)
		}
	})
}
