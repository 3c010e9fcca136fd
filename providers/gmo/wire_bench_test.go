package gmo

import (
	"testing"

	"golang.org/x/text/encoding/japanese"
)

// The hot path of every provider call: encode the request form, parse the
// answer. Run with: go test ./providers/gmo -run '^$' -bench . -benchmem

var benchExec = []Param{
	{"AccessID", "a1b2c3d4e5f60718293a4b5c6d7e8f90"}, {"AccessPass", "0f9e8d7c6b5a49382716f5e4d3c2b1a0"},
	{"OrderID", "ORD-20261123-000123"}, {"Method", "1"}, {"Token", "tok_visa_7f3a9c"},
	{"ClientField1", "order 123"}, {"ClientFieldFlag", "1"},
}

var benchExecJa = []Param{
	{"AccessID", "a1b2c3d4e5f60718293a4b5c6d7e8f90"}, {"AccessPass", "0f9e8d7c6b5a49382716f5e4d3c2b1a0"},
	{"OrderID", "ORD-20261123-000123"}, {"Method", "1"}, {"Token", "tok_visa_7f3a9c"},
	{"ClientField1", "山田 太郎様 ご注文"}, {"ClientFieldFlag", "1"},
}

func benchAppendForm(b *testing.B, params []Param) {
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendForm(buf[:0], params); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendForm(b *testing.B) {
	b.Run("ascii", func(b *testing.B) { benchAppendForm(b, benchExec) })
	b.Run("japanese", func(b *testing.B) { benchAppendForm(b, benchExecJa) })
}

func BenchmarkParseResponse(b *testing.B) {
	exec := []byte("ACS=0&OrderID=ORD-20261123-000123&Forward=2a99662&Method=1&PayTimes=&Approve=1234567&TranID=2611230123456789012345678901&TranDate=20261123012345&CheckString=0123456789abcdef0123456789abcdef")
	ja, err := japanese.ShiftJIS.NewEncoder().Bytes([]byte("OrderID=ORD-1&Status=CAPTURE&ClientField1=山田 太郎様 ご注文&Amount=1000&Tax=100"))
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		body []byte
	}{{"ascii", exec}, {"japanese", ja}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.body)))
			for b.Loop() {
				v, err := ParseResponse(c.body)
				if err != nil || v.Get("OrderID") == "" {
					b.Fatal(err)
				}
			}
		})
	}
}
