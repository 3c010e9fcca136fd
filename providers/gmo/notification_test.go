package gmo

import (
	"strings"
	"testing"

	"golang.org/x/text/encoding/japanese"
)

func TestParseNotification(t *testing.T) {
	sjis, _ := japanese.ShiftJIS.NewEncoder().String("ShopID=tshop00000001&ShopPass=**********&AccessID=a1b2&AccessPass=********&OrderID=ORD-1&Status=CAPTURE&JobCd=CAPTURE&Amount=1000&Tax=100&ErrCode=&ErrInfo=&ClientField1=%E3%81%82")
	n, err := ParseNotification([]byte(sjis))
	if err != nil || n.ShopID != "tshop00000001" || n.OrderID != "ORD-1" || n.Status != "CAPTURE" || n.Amount != "1000" {
		t.Fatalf("%+v %v", n, err)
	}
	for name, body := range map[string]string{
		"no order":       "ShopID=tshop1&Status=CAPTURE",
		"bad order":      "ShopID=tshop1&OrderID=A%26B",
		"long order":     "ShopID=tshop1&OrderID=" + strings.Repeat("A", 28),
		"no shop":        "OrderID=ORD-1",
		"amount letters": "ShopID=tshop1&OrderID=ORD-1&Amount=12a",
		"control chars":  "ShopID=tshop1&OrderID=ORD-1&ErrInfo=A%0DX",
		"not a form":     "ShopID=tshop1&OrderID=ORD-1&%zz",
		"huge":           strings.Repeat("A", maxNotification+1),
	} {
		if _, err := ParseNotification([]byte(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParseNotification(f *testing.F) {
	f.Add([]byte("ShopID=tshop1&OrderID=ORD-1&Status=CAPTURE&Amount=1000"))
	f.Add([]byte("ShopID=\x82\xa0&OrderID=ORD-1"))
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := ParseNotification(body)
		if err != nil {
			return
		}
		// What is kept is safe to log and to look up: no control bytes,
		// an order id of GMO's alphabet.
		if !orderIDChars(n.OrderID) || !printableASCII(n.ShopID+n.Status+n.JobCd+n.ErrCode+n.ErrInfo+n.AccessID) || !digitsOrEmpty(n.Amount+n.Tax) {
			t.Fatalf("kept unsafe values: %+v", n)
		}
	})
}
