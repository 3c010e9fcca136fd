package normalize

import "testing"

// encoding/json matches keys to fields without case and lets the last one
// win, so {"AMOUNT":5000,"amount":7} is a 7 yen payment to the decoder and
// a different body to the idempotency fingerprint than the same keys
// swapped. Every decode refuses a key named twice in one object, however
// its case (Unicode folding included), at any depth.
func TestDecodeRefusesDuplicateAndCaseVariantKeys(t *testing.T) {
	for name, body := range map[string]string{
		"exact twice":       `{"amount":7,"amount":5000,"payment_method":{"token":"a"}}`,
		"case variant":      `{"AMOUNT":5000,"amount":7,"payment_method":{"token":"a"}}`,
		"swapped":           `{"amount":7,"AMOUNT":5000,"payment_method":{"token":"a"}}`,
		"nested":            `{"amount":7,"payment_method":{"token":"a","Token":"b"}}`,
		"kelvin sign":       "{\"amount\":7,\"payment_method\":{\"\u212aey\":\"a\",\"key\":\"b\"}}",
		"long s folds to s": "{\"amount\":7,\"payment_method\":{\"token\":\"a\"},\"shipping\":1,\"\u017fhipping\":2}",
		"metadata":          `{"amount":7,"payment_method":{"token":"a"},"metadata":{"client_field_1":"x","CLIENT_FIELD_1":"y"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeCreatePayment([]byte(body))
			if err == nil || err.Code != "parameter_duplicate" || err.HTTPStatus() != 400 || err.Param == nil || err.MessageJa == "" {
				t.Fatalf("got %+v", err)
			}
		})
	}
	// The same key in different objects, or in objects inside an array, is
	// no duplicate.
	var v struct {
		A struct{ X int } `json:"a"`
		B struct{ X int } `json:"b"`
		L []struct{ X int }
	}
	if err := Decode([]byte(`{"a":{"x":1},"b":{"x":2},"l":[{"x":1},{"x":2}]}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.A.X != 1 || v.B.X != 2 || len(v.L) != 2 {
		t.Fatalf("%+v", v)
	}
	if err := Decode([]byte(`{"l":[{"x":1},{"x":2,"X":3}]}`), &v); err == nil || err.Code != "parameter_duplicate" {
		t.Fatalf("duplicate inside an array element: %+v", err)
	}
}

func TestFoldKey(t *testing.T) {
	for a, b := range map[string]string{"amount": "AMOUNT", "k": "\u212a", "s": "\u017f", "Order_ID": "order_id"} {
		if foldKey(a) != foldKey(b) {
			t.Errorf("%q and %q fold apart", a, b)
		}
	}
	if foldKey("amount") == foldKey("amounts") {
		t.Error("different keys fold together")
	}
}
