package gmo

import (
	"reflect"
	"strings"
	"testing"

	"golang.org/x/text/encoding/japanese"
)

// The request body recorded in t-k/gmo-payment-ruby's VCR cassette for a
// ClientField1 of "～－￠￡￢－∥①ほげほげhogehoge" (wire notes §2a).
func TestAppendFormMatchesRecordedShiftJISRequest(t *testing.T) {
	got, err := AppendForm(nil, []Param{{"ClientField1", "～－￠￡￢－∥①ほげほげhogehoge"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "ClientField1=%81%60%81%7C%81%91%81%92%81%CA%81%7C%81a%87%40%82%D9%82%B0%82%D9%82%B0hogehoge"
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestAppendFormEscapesAndOrders(t *testing.T) {
	got, err := AppendForm(nil, []Param{{"ShopID", "tshop01"}, {"OrderID", "A-1"}, {"X", "a b&c=d"}, {"Kana", "ｶｿｳｼﾃﾝ"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "ShopID=tshop01&OrderID=A-1&X=a+b%26c%3Dd&Kana=%B6%BF%B3%BC%C3%DD"
	if string(got) != want {
		t.Fatalf("got %s want %s", got, want)
	}
	if _, err := AppendForm(nil, []Param{{"X", "emoji 😀"}}); err != ErrNotShiftJIS {
		t.Fatalf("emoji must be rejected, got %v", err)
	}
}

func TestParseResponseRecordedShapes(t *testing.T) {
	sjis := func(s string) []byte {
		b, err := japanese.ShiftJIS.NewEncoder().Bytes([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name string
		body []byte
		want Values
	}{
		{"EntryTran", []byte("AccessID=a1b2c3&AccessPass=d4e5f6"), Values{"AccessID": "a1b2c3", "AccessPass": "d4e5f6"}},
		{"ExecTran with raw SJIS client field", sjis("ACS=0&OrderID=O1&ClientField1=～－ほげhoge&ClientField2=null"),
			Values{"ACS": "0", "OrderID": "O1", "ClientField1": "～－ほげhoge", "ClientField2": "null"}},
		{"3DS2 RedirectUrl keeps its raw &t=", []byte("ACS=2&RedirectUrl=https://pt01.mul-pay.jp/payment/callback?transId=abc&t=xyz9"),
			Values{"ACS": "2", "RedirectUrl": "https://pt01.mul-pay.jp/payment/callback?transId=abc&t=xyz9"}},
		{"error pairs", []byte("ErrCode=E01|E01&ErrInfo=E01050002|E01060006\r\n"), Values{"ErrCode": "E01|E01", "ErrInfo": "E01050002|E01060006"}},
		{"multi-card SearchCard (wire notes §6)", []byte("CardSeq=0|1|2|3|4&DefaultFlag=0|0|0|0|0&CardName=||||&CardNo=*************111|*************111|*************111|*************111|*************111&Expire=1905|1904|1908|1907|1910&HolderName=||||&DeleteFlag=0|0|0|0|0"),
			Values{"CardSeq": "0|1|2|3|4", "DefaultFlag": "0|0|0|0|0", "CardName": "||||", "CardNo": "*************111|*************111|*************111|*************111|*************111",
				"Expire": "1905|1904|1908|1907|1910", "HolderName": "||||", "DeleteFlag": "0|0|0|0|0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseResponse(c.body)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %#v\nwant %#v", got, c.want)
			}
		})
	}
}

func TestValuesListAndErrors(t *testing.T) {
	v, _ := ParseResponse([]byte("CardSeq=0|1|2&Expire=1905|1904|1908"))
	if got := v.List("Expire"); !reflect.DeepEqual(got, []string{"1905", "1904", "1908"}) {
		t.Fatalf("List: %v", got)
	}
	v, _ = ParseResponse([]byte("ErrCode=E01|E01|G02&ErrInfo=E01050002|E01060006"))
	want := []ErrPair{{"E01", "E01050002"}, {"E01", "E01060006"}, {"G02", ""}}
	if got := v.Errors(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Errors: %v", got)
	}
}

func TestParseResponseRejectsGarbage(t *testing.T) {
	for _, body := range [][]byte{nil, []byte("\r\n"), []byte("<html>502</html>"), []byte("foo"), {0x81, 0xff, 0xfe}, []byte("ErrCode=\x81\xff")} {
		if _, err := ParseResponse(body); err == nil {
			t.Errorf("%q: want error", body)
		}
	}
}

// CheckString fixtures from activemerchant's gmo_test.rb (wire notes §5).
func TestCheckStringRecordedFixtures(t *testing.T) {
	cases := []struct{ order, fwd, method, times, approve, tran, date, pass, want string }{
		{"1", "2a99661", "1", "", "0000011", "1905225193602257200976416673", "20140529101010", "password", "eef285352ce3f592c7d13d096949c230"},
	}
	for _, c := range cases {
		if got := CheckString(c.order, c.fwd, c.method, c.times, c.approve, c.tran, c.date, c.pass); got != c.want {
			t.Errorf("got %s want %s", got, c.want)
		}
	}
	p := &Provider{c: &Client{cfg: Config{ShopPass: "password"}}}
	ok := Values{"OrderID": "1", "Forward": "2a99661", "Method": "1", "PayTimes": "", "Approve": "0000011",
		"TranID": "1905225193602257200976416673", "TranDate": "20140529101010", "CheckString": "eef285352ce3f592c7d13d096949c230"}
	if !p.checkStringOK(ok) {
		t.Fatal("recorded answer must verify")
	}
	ok["Approve"] = "0000012"
	if p.checkStringOK(ok) {
		t.Fatal("tampered answer must not verify")
	}
}

func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{"AccessID=a&AccessPass=b", "ErrCode=E01|E01&ErrInfo=E01050002|E01060006",
		"ACS=2&RedirectUrl=https://x/cb?transId=1&t=2", "CardSeq=0|1&CardNo=*1|*2", "", "=", "&&", "a=b", "\x81\x60=\x82\xa0"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		v, err := ParseResponse(body)
		if err != nil {
			if v != nil {
				t.Fatal("values with an error")
			}
			return
		}
		for k := range v {
			if !isGMOKey(k) {
				t.Fatalf("non-GMO key %q accepted", k)
			}
		}
		_ = v.Errors()
		for k := range v {
			_ = v.List(k)
			if strings.ContainsRune(v[k], '\uFFFD') {
				t.Fatalf("replacement char leaked into %q", k)
			}
		}
	})
}
