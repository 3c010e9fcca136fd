package caddymodule

import (
	"strings"
	"testing"
)

func TestCustomersAndCards(t *testing.T) {
	e := newIVREnv(t)
	e.gmo.CardAttributes = true // a contract with GMO's card attributes (Brand...)
	if r := e.do("POST", "/v1/customers", `{"id":"cus-1","name":"山田太郎"}`, "k-cus-1"); r.Status != 200 || r.str("id") != "cus-1" || r.str("object") != "customer" || r.str("name") != "山田太郎" {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	if r := e.do("POST", "/v1/customers", `{"id":"cus-1"}`, ""); r.Status != 409 || r.str("error", "code") != "customer_exists" {
		t.Fatalf("duplicate: %d %s", r.Status, r.Body)
	}
	gen := e.do("POST", "/v1/customers", ``, "")
	if gen.Status != 200 || !strings.HasPrefix(gen.str("id"), "cus-") {
		t.Fatalf("generated id: %d %s", gen.Status, gen.Body)
	}
	// No cards yet: an empty list, not GMO's E01240002.
	if r := e.do("GET", "/v1/customers/cus-1/cards", "", ""); r.Status != 200 || len(r.JSON["data"].([]any)) != 0 {
		t.Fatalf("empty: %d %s", r.Status, r.Body)
	}
	add := e.do("POST", "/v1/customers/cus-1/cards", `{"token":"tok_visa_1","holder_name":"TARO YAMADA","expiry_month":"12","expiry_year":"30","masked_number":"41111********111"}`, "k-card-1")
	if add.Status != 200 || add.str("object") != "card" || add.str("brand") != "VISA" || add.str("masked_number") != "*************111" ||
		add.str("expiry_month") != "12" || add.str("expiry_year") != "30" || add.str("holder_name") != "TARO YAMADA" || add.JSON["seq"] != 0.0 {
		t.Fatalf("add: %d %s", add.Status, add.Body)
	}
	// Same key, same body: replayed, not stored twice.
	if again := e.do("POST", "/v1/customers/cus-1/cards", `{"token":"tok_visa_1","holder_name":"TARO YAMADA","expiry_month":"12","expiry_year":"30","masked_number":"41111********111"}`, "k-card-1"); again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("not replayed: %s", again.Body)
	}
	// The same key on another customer is a different request.
	if other := e.do("POST", "/v1/customers/"+gen.str("id")+"/cards", `{"token":"tok_visa_1","holder_name":"TARO YAMADA","expiry_month":"12","expiry_year":"30","masked_number":"41111********111"}`, "k-card-1"); other.Status != 422 {
		t.Fatalf("key reused across customers: %d %s", other.Status, other.Body)
	}
	if r := e.do("POST", "/v1/customers/cus-1/cards", `{"token":"tok_amex","holder_name":"HANAKO YAMADA","default":true,"expiry_month":"01","expiry_year":"30","masked_number":"378282*****0005"}`, ""); r.Status != 200 || r.str("brand") != "AMEX" || r.JSON["default"] != true || r.JSON["seq"] != 1.0 {
		t.Fatalf("add 2: %d %s", r.Status, r.Body)
	}
	g := e.do("GET", "/v1/customers/cus-1", "", "")
	cards, _ := g.JSON["cards"].([]any)
	if g.Status != 200 || len(cards) != 2 || cards[0].(map[string]any)["default"] != false || cards[1].(map[string]any)["default"] != true {
		t.Fatalf("get: %d %s", g.Status, g.Body)
	}
	if strings.Contains(string(g.Body), "4111111111111111") || strings.Contains(string(g.Body), "378282246310005") {
		t.Fatalf("full number leaked: %s", g.Body)
	}
	// Pay with the stored card, then read it back.
	p := e.do("POST", "/v1/payments", `{"order_id":"CUS-PAY-1","amount":1500,"capture":"manual","payment_method":{"customer_id":"cus-1","card_seq":1}}`, "")
	if p.Status != 200 || p.str("status") != "authorized" {
		t.Fatalf("pay: %d %s", p.Status, p.Body)
	}
	if r := e.do("GET", "/v1/payments/gmo_CUS-PAY-1", "", ""); r.str("status") != "authorized" || r.str("provider_data", "customer_id") != "cus-1" || r.str("card", "masked_number") != "***********0005" {
		t.Fatalf("read back: %s", r.Body)
	}
	if r := e.do("POST", "/v1/payments", `{"amount":10,"payment_method":{"customer_id":"cus-1","card_seq":7}}`, ""); r.Status != 404 || r.str("error", "code") != "resource_missing" {
		t.Fatalf("missing card: %d %s", r.Status, r.Body)
	}
	// Keep the card of a token payment (TradedCard).
	if r := e.do("POST", "/v1/payments", `{"order_id":"CUS-PAY-2","amount":300,"payment_method":{"token":"tok_diners"}}`, ""); r.Status != 200 {
		t.Fatalf("%s", r.Body)
	}
	tc := e.do("POST", "/v1/customers/cus-1/cards", `{"payment_id":"gmo_CUS-PAY-2"}`, "")
	if tc.Status != 200 || tc.JSON["seq"] != 2.0 || tc.str("brand") != "DINERS" || tc.str("masked_number") != "***********904" {
		t.Fatalf("traded card: %d %s", tc.Status, tc.Body)
	}
	if r := e.do("DELETE", "/v1/customers/cus-1/cards/0", "", ""); r.Status != 200 || r.JSON["deleted"] != true {
		t.Fatalf("delete card: %d %s", r.Status, r.Body)
	}
	if r := e.do("DELETE", "/v1/customers/cus-1/cards/0", "", ""); r.Status != 404 || r.str("error", "param") != "seq" {
		t.Fatalf("delete again: %d %s", r.Status, r.Body)
	}
	if r := e.do("GET", "/v1/customers/cus-1/cards", "", ""); len(r.JSON["data"].([]any)) != 2 {
		t.Fatalf("after delete: %s", r.Body)
	}
	if r := e.do("DELETE", "/v1/customers/cus-1", "", ""); r.Status != 200 || r.JSON["deleted"] != true {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	for _, path := range []string{"/v1/customers/cus-1", "/v1/customers/cus-1/cards", "/v1/customers/nobody"} {
		if r := e.do("GET", path, "", ""); r.Status != 404 || r.str("error", "code") != "resource_missing" {
			t.Fatalf("%s: %d %s", path, r.Status, r.Body)
		}
	}
}

// Seed 003's validation: field errors in English and Japanese, before any
// call to GMO.
func TestAddCardValidation(t *testing.T) {
	e := newIVREnv(t)
	e.do("POST", "/v1/customers", `{"id":"cus-v"}`, "")
	before := e.gmo.Calls("SaveCard")
	cases := map[string]struct{ body, param string }{
		"token required":  {`{"holder_name":"A B"}`, "token"},
		"holder required": {`{"token":"tok_visa"}`, "holder_name"},
		"holder charset":  {`{"token":"tok_visa","holder_name":"山田 太郎"}`, "holder_name"},
		"full number":     {`{"token":"tok_visa","holder_name":"A","masked_number":"4111111111111111"}`, "masked_number"},
		"month":           {`{"token":"tok_visa","holder_name":"A","expiry_month":"13","expiry_year":"30"}`, "expiry_month"},
		"month one digit": {`{"token":"tok_visa","holder_name":"A","expiry_month":"1","expiry_year":"30"}`, "expiry_month"},
		"year":            {`{"token":"tok_visa","holder_name":"A","expiry_month":"01","expiry_year":"2030"}`, "expiry_year"},
		"year alone":      {`{"token":"tok_visa","holder_name":"A","expiry_year":"30"}`, "expiry_month"},
		"token & payment": {`{"token":"tok_visa","payment_id":"gmo_X","holder_name":"A"}`, "token"},
		"unknown field":   {`{"token":"tok_visa","holder_name":"A","card_number":"4111111111111111"}`, "card_number"},
	}
	for name, c := range cases {
		r := e.do("POST", "/v1/customers/cus-v/cards", c.body, "")
		if r.Status != 400 || r.str("error", "param") != c.param || r.str("error", "message") == "" || r.str("error", "message_ja") == "" {
			t.Errorf("%s: %d %s", name, r.Status, r.Body)
		}
		if strings.Contains(string(r.Body), "4111111111111111") {
			t.Errorf("%s: number echoed: %s", name, r.Body)
		}
	}
	// Several failures come back together, field by field.
	r := e.do("POST", "/v1/customers/cus-v/cards", `{"expiry_month":"00","expiry_year":"x"}`, "")
	if f, _ := r.JSON["error"].(map[string]any)["fields"].([]any); len(f) != 4 {
		t.Fatalf("fields: %s", r.Body)
	}
	if e.gmo.Calls("SaveCard") != before {
		t.Fatal("invalid cards reached GMO")
	}
	if r := e.do("POST", "/v1/customers/cus-v/cards", `{"token":"tok_nonsense","holder_name":"A","expiry_month":"01","expiry_year":"30"}`, ""); r.Status != 402 || r.str("error", "code") != "token_invalid" {
		t.Fatalf("bad token: %d %s", r.Status, r.Body)
	}
	if r := e.do("POST", "/v1/customers/bad%20id/cards", `{"token":"tok_visa","holder_name":"A","expiry_month":"01","expiry_year":"30"}`, ""); r.Status != 404 {
		t.Fatalf("bad id: %d %s", r.Status, r.Body)
	}
}

// A GMO account without a site and an IVR account answer 422, never 500.
func TestCustomersUnsupported(t *testing.T) {
	e := newEnv(t, nil, nil) // card account without site_id
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/customers", `{"id":"a"}`},
		{"GET", "/v1/customers/a", ""},
		{"DELETE", "/v1/customers/a", ""},
		{"POST", "/v1/customers/a/cards", `{"token":"tok_visa","holder_name":"A","expiry_month":"01","expiry_year":"30"}`},
		{"GET", "/v1/customers/a/cards", ""},
		{"DELETE", "/v1/customers/a/cards/0", ""},
	} {
		r := e.do(c.method, c.path, c.body, "")
		if r.Status != 422 || r.str("error", "code") != "unsupported" || r.str("error", "message_ja") == "" {
			t.Errorf("%s %s: %d %s", c.method, c.path, r.Status, r.Body)
		}
	}
	if n := e.gmo.Calls("SaveMember") + e.gmo.Calls("SearchMember"); n != 0 {
		t.Fatalf("%d calls reached GMO", n)
	}
}
