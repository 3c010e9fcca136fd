package normalize

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding/japanese"
)

// Issue 15 items 2 and 3: metadata follows GMO's 加盟店自由項目 rule on
// every path: 100 Shift_JIS bytes (50 kanji pass, though 150 UTF-8
// bytes), no ^ ` { | } ~ & < > " ', Windows-31J only (no emoji, no U+301C
// WAVE DASH), refused at decoding with the field named.
func TestMetadataFollowsGMOsClientFieldRule(t *testing.T) {
	body := func(v string) []byte {
		b, _ := json.Marshal(map[string]any{"amount": 1000, "payment_method": map[string]string{"token": "t"}, "metadata": map[string]string{"client_field_1": v}})
		return b
	}
	for _, ok := range []string{strings.Repeat("漢", 50), strings.Repeat("a", 100), "～－∥①ｶﾅ", "a=b", "東京都 港区 1-2-3"} {
		if _, err := DecodeCreatePayment(body(ok)); err != nil {
			t.Errorf("%q refused: %+v", ok, err)
		}
	}
	for _, bad := range []string{strings.Repeat("漢", 51), strings.Repeat("a", 101), "予約🎉", "10〜12時", "<VIP>", "it's", "a`b", "x{y}", "a|b", "~", "a&b", "line\nbreak"} {
		_, err := DecodeCreatePayment(body(bad))
		if err == nil || err.HTTPStatus() != 400 || err.Param == nil || *err.Param != "metadata.client_field_1" || err.MessageJa == "" {
			t.Errorf("%q accepted or misnamed: %+v", bad, err)
		}
	}
	_, err := DecodeCreatePayment(body("10〜12時"))
	if !strings.Contains(err.Message, "U+301C") || !strings.Contains(err.Message, "U+FF5E") {
		t.Errorf("WAVE DASH message: %s", err.Message)
	}
}

// MemberName counts Shift_JIS bytes (E01430012 最大バイト数), CardName too.
func TestMemberAndCardNamesCountShiftJISBytes(t *testing.T) {
	if _, err := DecodeCreateCustomer([]byte(`{"name":"` + strings.Repeat("山", 127) + `"}`)); err != nil {
		t.Fatalf("254 bytes: %+v", err)
	}
	for _, bad := range []string{strings.Repeat("山", 128), "山田😀", "a<b>"} {
		if _, err := DecodeCreateCustomer([]byte(`{"name":"` + bad + `"}`)); err == nil || *err.Param != "name" {
			t.Errorf("%q: %+v", bad, err)
		}
	}
	card := `{"token":"t","holder_name":"A B","expiry_month":"01","expiry_year":"30","card_name":"%s"}`
	if _, err := DecodeAddCard([]byte(strings.Replace(card, "%s", "ＶＩＳＡ", 1))); err != nil {
		t.Fatalf("8 bytes: %+v", err)
	}
	if _, err := DecodeAddCard([]byte(strings.Replace(card, "%s", "ＶＩＳＡカード", 1))); err == nil || *err.Param != "card_name" {
		t.Fatalf("14 bytes: %+v", err)
	}
}

// Seed 003: expiry month and year are required, two digits each.
func TestAddCardRequiresExpiry(t *testing.T) {
	_, err := DecodeAddCard([]byte(`{"token":"t","holder_name":"A B"}`))
	if err == nil || len(err.Fields) != 2 || err.Fields[0].Param != "expiry_month" || err.Fields[1].Param != "expiry_year" || err.Fields[0].Code != "parameter_missing" {
		t.Fatalf("%+v", err)
	}
	if _, err := DecodeAddCard([]byte(`{"token":"t","holder_name":"A B","expiry_month":"1","expiry_year":"30"}`)); err == nil || *err.Param != "expiry_month" {
		t.Fatalf("%+v", err)
	}
	// A card kept from a payment has GMO's own expiry.
	if _, err := DecodeAddCard([]byte(`{"payment_id":"gmo_X-1"}`)); err != nil {
		t.Fatalf("%+v", err)
	}
}

// Issue 15 item 9: one timestamp format, RFC 3339 seconds in Japan time,
// whatever clock or zone made the time.
func TestPaymentTimestampsAreSecondsInJST(t *testing.T) {
	ns := time.Date(2026, 11, 23, 1, 2, 3, 999999999, time.UTC)
	p := NewPayment("jp", "1")
	p.CreatedAt, p.UpdatedAt = &ns, &ns
	b, err := json.Marshal(p)
	if err != nil || !strings.Contains(string(b), `"created_at":"2026-11-23T10:02:03+09:00","updated_at":"2026-11-23T10:02:03+09:00"`) {
		t.Fatalf("%s %v", b, err)
	}
	b2, _ := json.Marshal(*p)
	if string(b) != string(b2) {
		t.Fatal("value and pointer marshal differently")
	}
	var back Payment
	if err := json.Unmarshal(b, &back); err != nil || !back.CreatedAt.Equal(ns.Truncate(time.Second)) {
		t.Fatalf("%v %v", back.CreatedAt, err)
	}
}

// bonus_installments (GMO Method 4) takes a count like installments.
func TestBonusInstallmentsNeedACount(t *testing.T) {
	if _, err := DecodeCreatePayment([]byte(`{"amount":1,"payment_method":{"token":"t"},"installments":{"plan":"bonus_installments","count":2}}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeCreatePayment([]byte(`{"amount":1,"payment_method":{"token":"t"},"installments":{"plan":"bonus_installments"}}`)); err == nil || *err.Param != "installments.count" {
		t.Fatal(err)
	}
}

// Whatever the rule accepts GMO can take: Windows-31J, at most 100 bytes,
// none of the refused symbols, no control characters.
func FuzzCheckClientField(f *testing.F) {
	for _, s := range []string{"", "abc", strings.Repeat("漢", 50), "〜", "😀", "<VIP>", "ｶﾅ①", "\x00", "a\u3000b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if !utf8.ValidString(v) {
			return // the request decoder refuses invalid UTF-8 first
		}
		if CheckClientField("metadata.client_field_1", v) != nil {
			return
		}
		b, err := japanese.ShiftJIS.NewEncoder().String(v)
		if err != nil || len(b) > MaxClientFieldBytes || strings.ContainsAny(v, "^`{|}~&<>\"'") || strings.IndexFunc(v, unicode.IsControl) >= 0 {
			t.Fatalf("accepted %q (%d bytes, %v)", v, len(b), err)
		}
	})
}
