package normalize

import (
	"strings"
	"testing"
)

func TestDecodeAddCardSeed003(t *testing.T) {
	// The seed's own example body, in paynorm's names.
	r, err := DecodeAddCard([]byte(`{"masked_number":"41111********111","holder_name":"MASATOSHI KUMAGAI","expiry_month":"10","expiry_year":"25","token":"fa98erqp98hj23qja4op9348ytup498hjliwohjf98w3ayu4toiyu34to9yw39g8"}`))
	if err != nil || r.HolderName != "MASATOSHI KUMAGAI" || BrandFromNumber(r.MaskedNumber) != "VISA" {
		t.Fatal(r, err)
	}
	_, err = DecodeAddCard([]byte(`{}`))
	if err == nil || len(err.Fields) != 2 || err.Fields[0].Param != "token" || err.Fields[1].Param != "holder_name" ||
		!strings.Contains(err.Fields[1].MessageJa, "必須") || err.HTTPStatus() != 400 {
		t.Fatalf("%+v", err)
	}
}

func TestDecodePhone(t *testing.T) {
	r, err := DecodeCreatePhoneAuthorization([]byte(`{"use":"authorize_and_save","authorize":{"amount":100}}`))
	if err != nil || r.Save == nil || r.Authorize.Capture != CaptureAutomatic {
		t.Fatal(r, err)
	}
	if _, err := DecodeCreatePhoneAuthorization([]byte(`{"use":"save","authorize":{"amount":1}}`)); err == nil || err.Fields[0].Param != "authorize" {
		t.Fatal(err)
	}
	if _, err := DecodeCreatePhoneAuthorization([]byte(`{"use":"authorize","authorize":{"amount":1,"installments":{"plan":"installments","count":1}}}`)); err == nil || err.Fields[0].Param != "authorize.installments.count" {
		t.Fatal(err)
	}
}

func FuzzDecodeAddCard(f *testing.F) {
	f.Add([]byte(`{"token":"tok_visa","holder_name":"A B","expiry_month":"01","expiry_year":"30"}`))
	f.Add([]byte(`{"payment_id":"gmo_X-1"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeAddCard(b)
		if err == nil && r.Token == "" && r.PaymentID == "" {
			t.Fatal("accepted a card with neither token nor payment")
		}
		if err != nil && (err.Type != TypeInvalidRequest || err.Message == "" || err.MessageJa == "") {
			t.Fatalf("%+v", err)
		}
	})
}

func FuzzDecodePhone(f *testing.F) {
	f.Add([]byte(`{"use":"authorize","items":[{"name":"a","value":"b"}],"authorize":{"amount":100,"order_id":"A-1"}}`))
	f.Add([]byte(`{"use":"save","save":{"customer_id":"m@x","card_seq":2}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeCreatePhoneAuthorization(b)
		if err == nil && (len(r.Items) > MaxPhoneItems || (r.Use != PhoneUseSave) != (r.Authorize != nil)) {
			t.Fatalf("accepted %s", b)
		}
		if err != nil && (err.Type != TypeInvalidRequest || err.MessageJa == "") {
			t.Fatalf("%+v", err)
		}
	})
}
