package jpayment

import (
	"net/url"
	"strings"
	"testing"
)

// The recorded samples of the wire notes (§2.1 and §5) are fixtures.
func TestParseAnswerRecordedSamples(t *testing.T) {
	a, err := ParseAnswer([]byte("1095729,1,TestMod,,205685,,1000,2,4,1006,,,\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := a.Result
	if r.GID != "1095729" || r.Rst != "1" || r.Ap != "TestMod" || r.Ec != "" || r.God != "205685" || r.Cod != "" || r.Ta != "1006" {
		t.Fatalf("%+v", r)
	}
	if am, tx, sf := r.Amounts(); am != 1000 || tx != 2 || sf != 4 {
		t.Fatal(am, tx, sf)
	}
	a, err = ParseAnswer([]byte("0,2,,ER900,,,0,0,0,0,,,0,"))
	if err != nil || a.Result.Rst != "2" || a.Result.Ec != "ER900" || a.Result.Extra != "0," {
		t.Fatalf("%+v %v", a, err)
	}
	a, err = ParseAnswer([]byte("181418,1,0001112,,181357,7c3cb103256544999fed1d6b8f17ea20,0,0,0,0,,,memo=goods-code-01"))
	if err != nil || a.Result.Cod != "7c3cb103256544999fed1d6b8f17ea20" || a.Result.Extra != "memo=goods-code-01" {
		t.Fatalf("%+v %v", a, err)
	}
	for _, body := range []string{"ER:ER024", "ER:ER003\r\n", "\r\nER:ER999\r\n"} {
		a, err := ParseAnswer([]byte(body))
		if err != nil || !strings.HasPrefix(a.ErrCode, "ER0") && a.ErrCode != "ER999" {
			t.Errorf("%q: %+v %v", body, a, err)
		}
	}
}

// Issue 15 item 5: the free data j-payment echoes in the 13th field may hold
// any character the merchant sent. A charged answer echoing "<VIP>" was
// refused as malformed (502, status unknown) although the gateway charged.
func TestParseAnswerKeepsAnyFreeData(t *testing.T) {
	for _, extra := range []string{"client_field_1=<VIP>", "client_field_1=%3CVIP%3E", "memo=a,b,c", "client_field_1=会員<特別>"} {
		a, err := ParseAnswer([]byte("1095729,1,TestMod,,205685,ORD-1,1000,2,4,1006,,," + extra + "\r\n"))
		if err != nil || a.Result.Rst != "1" || a.Result.GID != "1095729" || a.Result.Extra != extra {
			t.Errorf("%q: %+v %v", extra, a, err)
		}
	}
}

func TestParseAnswerRejects(t *testing.T) {
	for _, body := range []string{"", "\r\n", "OK", "ER:", "ER:<script>", "<html><body>Runtime Error</body></html>",
		"1,1,a,,b", "x,1,,,,,1,0,0,1,,,", "1,9,,,,,1,0,0,1,,,", "1,1,,,,,1x,0,0,1,,,", "1,1,,,,,1,0,0,1\n2,1,,,,,1,0,0,1"} {
		if a, err := ParseAnswer([]byte(body)); err == nil {
			t.Errorf("%q accepted: %+v", body, a)
		}
	}
}

// encodeResult renders a result line by position, for round trips.
func encodeResult(r *Result) []byte {
	return []byte(strings.Join([]string{r.GID, r.Rst, r.Ap, r.Ec, r.God, r.Cod, r.Am, r.Tx, r.Sf, r.Ta, r.ID, r.PS, r.Extra}, ","))
}

func TestEncodeResultRoundTrip(t *testing.T) {
	in := &Result{GID: "12", Rst: "1", Ap: "123456", God: "34", Cod: "ORD-1", Am: "1000", Tx: "80", Sf: "500", Ta: "1580", Extra: "client_field_1=a&b=c,d"}
	a, err := ParseAnswer(encodeResult(in))
	if err != nil || *a.Result != *in {
		t.Fatalf("%+v %v", a, err)
	}
}

func TestParseKickback(t *testing.T) {
	// The connection spec's sample (with its stray space after cod).
	v, _ := url.ParseQuery("gid=10000001&rst=1&ap=0001112&ec=&god=10000002&cod=test+&am=1000&tx=80&sf=500&ta=1580")
	k, err := ParseKickback(v)
	if err != nil || k.GID != "10000001" || k.Cod != "test" || k.Ta != 1580 || !k.HasAmounts {
		t.Fatalf("%+v %v", k, err)
	}
	v, _ = url.ParseQuery("gid=10000001&rst=4&cod=test&acid=10000001&ec=")
	if k, err := ParseKickback(v); err != nil || k.Acid != "10000001" || k.HasAmounts {
		t.Fatalf("stop notice: %+v %v", k, err)
	}
	// Issue 15 item 11: convenience-store and bank kickbacks carry result
	// words in ap (wire notes §1.10: CPL paid, CVS_CAN cancelled, BAN_SAL).
	for _, ap := range []string{"CPL", "CVS_CAN", "BAN_SAL", "TestMod", "0001112"} {
		v, _ := url.ParseQuery("gid=10000001&rst=1&ap=" + ap + "&ec=&god=10000002&cod=test&am=1000&tx=80&sf=500&ta=1580")
		if k, err := ParseKickback(v); err != nil || k.Ap != ap {
			t.Errorf("ap=%s: %+v %v", ap, k, err)
		}
	}
	for _, ap := range []string{"CVS-CAN", "<x>", "ABCDEFGHIJKLM"} {
		v := url.Values{"gid": {"1"}, "rst": {"1"}, "ap": {ap}}
		if _, err := ParseKickback(v); err == nil {
			t.Errorf("ap=%q accepted", ap)
		}
	}
	bad := map[string]string{
		"gid":  "rst=1",
		"rst":  "gid=1&rst=9",
		"ta":   "gid=1&rst=1&am=100&tx=0&sf=0&ta=99",
		"am":   "gid=1&rst=1&am=-5",
		"acid": "gid=1&rst=3",
		"ec":   "gid=1&rst=2&ec=%3Cx%3E",
		"cod":  "gid=1&rst=1&cod=" + strings.Repeat("a", 51),
	}
	for param, q := range bad {
		v, _ := url.ParseQuery(q)
		_, err := ParseKickback(v)
		ke, ok := err.(*ErrKickback)
		if !ok || ke.Param != param {
			t.Errorf("%s: got %v, want an error about %s", q, err, param)
		}
	}
}

func FuzzParseAnswer(f *testing.F) {
	for _, s := range []string{"1095729,1,TestMod,,205685,,1000,2,4,1006,,,", "0,2,,ER900,,,0,0,0,0,,,0,", "ER:ER003\r\n", "", "ER:", ",,,,,,,,,,,,,,,",
		"1095729,1,TestMod,,205685,ORD-1,1000,2,4,1006,,,client_field_1=<VIP>", "<html><body>Runtime Error</body></html>"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAnswer(b)
		if err != nil {
			return
		}
		if (a.ErrCode == "") == (a.Result == nil) {
			t.Fatalf("answer is both or neither: %+v", a)
		}
		if r := a.Result; r != nil {
			if r.Rst != "1" && r.Rst != "2" || r.GID == "" {
				t.Fatalf("accepted %+v", r)
			}
			again, err := ParseAnswer(encodeResult(r))
			if err != nil || *again.Result != *r {
				t.Fatalf("round trip: %+v -> %+v %v", r, again, err)
			}
		}
	})
}

func FuzzParseKickback(f *testing.F) {
	for _, s := range []string{"gid=10000001&rst=1&ap=0001112&ec=&god=10000002&cod=test&am=1000&tx=80&sf=500&ta=1580",
		"gid=1&rst=4&acid=9", "gid=1&rst=2&ec=G0442G040000", "gid=%00&rst=1", "rst=5&acid=1&gid=00", "gid=2&rst=1&ap=CVS_CAN&am=500&ta=500"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		v, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		k, err := ParseKickback(v)
		if err != nil {
			if _, ok := err.(*ErrKickback); !ok {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		if k.GID == "" || len(k.Rst) != 1 || k.Rst > RstFailure && k.Acid == "" || k.Am < 0 || k.Ta < 0 || len(k.Cod) > 50 {
			t.Fatalf("accepted %+v from %q", k, q)
		}
	})
}
