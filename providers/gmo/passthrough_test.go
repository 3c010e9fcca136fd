package gmo

import "testing"

// Passthrough values follow the unified API's rules; raw card data needs
// the account's explicit allowance; credentials are not checked (paynorm
// drops them).
func TestCheckParam(t *testing.T) {
	ok := []struct{ key, value string }{
		{"OrderID", "ORD-1"}, {"Amount", "1000"}, {"Tax", "0"}, {"ClientField1", "項目1"}, {"Token", "tok_visa"},
		{"MemberID", "cus-1"}, {"CardSeq", "0"}, {"Method", "1"}, {"PayTimes", "12"}, {"JobCd", "AUTH"},
		{"AccessID", "0123456789abcdef0123456789abcdef"}, {"HolderName", "TARO YAMADA"}, {"RetUrl", "https://shop.example/3ds?o=1&x=2"},
		{"ShopPass", "x&y"}, {"MemberName", "花子"},
	}
	for _, c := range ok {
		if e := CheckParam("x", c.key, c.value, false); e != nil {
			t.Errorf("%s=%q refused: %+v", c.key, c.value, e)
		}
	}
	bad := []struct{ key, value, code string }{
		{"ClientField3", "x&Status=VOID&Amount=1", "parameter_invalid"},
		{"ClientField1", "a|b", "parameter_invalid"},
		{"OrderID", "ORD_1", "parameter_invalid"},
		{"OrderID", "0123456789012345678901234567", "parameter_invalid"},
		{"Amount", "10000000", "parameter_invalid"},
		{"Amount", "-1", "parameter_invalid"},
		{"Token", "a&Amount=1", "parameter_invalid"},
		{"Token", "", "parameter_invalid"},
		{"MemberID", "m 1", "parameter_invalid"},
		{"JobCd", "AUTH&Amount=1", "parameter_invalid"},
		{"ItemCode", "0000990&Status=SALES", "parameter_invalid"},
		{"ItemCode", "a\nb", "parameter_invalid"},
		{"RetUrl", "javascript:alert(1)", "parameter_invalid"},
		{"HolderName", "TARO\u2600", "parameter_invalid"},
		{"CardNo", "4111111111111111", "card_data_not_allowed"},
		{"Expire", "3012", "card_data_not_allowed"},
		{"SecurityCode", "737", "card_data_not_allowed"},
		{"PIN", "1234", "card_data_not_allowed"},
		{"Cardno", "4111111111111111", "card_data_not_allowed"},
	}
	for _, c := range bad {
		e := CheckParam("p", c.key, c.value, false)
		if e == nil || e.Code != c.code || e.Param == nil || *e.Param != "p" || e.MessageJa == "" {
			t.Errorf("%s=%q: got %+v, want %s", c.key, c.value, e, c.code)
			continue
		}
		if c.code == "card_data_not_allowed" && e.HTTPStatus() != 403 {
			t.Errorf("%s: status %d", c.key, e.HTTPStatus())
		}
	}
	// Allowed card data is still checked as card data.
	if e := CheckParam("cardNo", "CardNo", "4111111111111111", true); e != nil {
		t.Errorf("allowed card number refused: %+v", e)
	}
	if e := CheckParam("cardNo", "CardNo", "4111-1111", true); e == nil {
		t.Error("malformed card number accepted")
	}
	if e := CheckParam("securityCode", "SecurityCode", "73", true); e == nil {
		t.Error("two-digit security code accepted")
	}
}
