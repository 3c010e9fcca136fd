package gmo

import (
	"net/url"
	"testing"

	"golang.org/x/text/encoding/japanese"
)

// AppendForm's pooled, in-place Shift_JIS path must match a plain
// transcode-then-escape for any text, and reject exactly what the encoder
// rejects.
func FuzzAppendForm(f *testing.F) {
	for _, s := range []string{"", "hogehoge", "山田 太郎", "～－￠￡￢－∥①", "ｶｿｳｼﾃﾝ", "emoji 😀", "a&b=c+d", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, err := AppendForm([]byte("prefix&"), []Param{{"K", v}, {"Z", "1"}})
		enc, encErr := japanese.ShiftJIS.NewEncoder().String(v)
		if (err != nil) != (encErr != nil) {
			t.Fatalf("%q: AppendForm error %v, encoder error %v", v, err, encErr)
		}
		if err != nil {
			return
		}
		want := "prefix&K=" + url.QueryEscape(enc) + "&Z=1"
		if string(got) != want {
			t.Fatalf("%q:\ngot  %s\nwant %s", v, got, want)
		}
	})
}
