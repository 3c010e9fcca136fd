package gmo

import (
	"testing"
)

// The multi-card SearchCard fixture of the wire notes (§6).
func TestParseCardsFixture(t *testing.T) {
	v, err := ParseResponse([]byte("CardSeq=0|1|2|3|4&DefaultFlag=0|0|0|0|0&CardName=||||&CardNo=*************111|*************111|*************111|*************111|*************111&Expire=1905|1904|1908|1907|1910&HolderName=||||&DeleteFlag=0|0|0|0|0"))
	if err != nil {
		t.Fatal(err)
	}
	cards, err := ParseCards(v)
	if err != nil || len(cards) != 5 {
		t.Fatalf("%v %d", err, len(cards))
	}
	wantExp := []string{"1905", "1904", "1908", "1907", "1910"}
	for i, c := range cards {
		if c.Seq != i || c.Default || c.Deleted || c.CardNo != "*************111" || c.Expire != wantExp[i] || c.Holder != "" || c.CardName != "" {
			t.Fatalf("card %d: %+v", i, c)
		}
	}
	p := &Provider{c: &Client{cfg: Config{Account: "gmo"}}}
	sc := p.storedCard("m1", cards[2])
	if sc.ExpiryMonth != "08" || sc.ExpiryYear != "19" || sc.MaskedNumber != "*************111" || sc.Brand != "" || sc.CustomerID != "m1" {
		t.Fatalf("%+v", sc)
	}
}

func TestParseCardsShortColumns(t *testing.T) {
	v, _ := ParseResponse([]byte("CardSeq=3|7&DefaultFlag=1&CardNo=411111******1111|*1&Expire=3012&HolderName=TARO|HANAKO&DeleteFlag=0|1&Brand=VISA|"))
	cards, err := ParseCards(v)
	if err != nil || len(cards) != 2 {
		t.Fatal(err, cards)
	}
	if c := cards[0]; c.Seq != 3 || !c.Default || c.Holder != "TARO" || c.Brand != "VISA" || c.Deleted {
		t.Fatalf("%+v", c)
	}
	if c := cards[1]; c.Seq != 7 || c.Default || c.Expire != "" || !c.Deleted || c.Holder != "HANAKO" {
		t.Fatalf("%+v", c)
	}
	p := &Provider{c: &Client{cfg: Config{Account: "gmo"}}}
	if b := p.storedCard("m", CardRecord{CardNo: "411111******1111"}).Brand; b != "VISA" {
		t.Fatalf("brand from a number masked in the middle: %q", b)
	}
	if _, err := ParseCards(Values{"CardSeq": "1|x"}); err == nil {
		t.Fatal("non-numeric CardSeq accepted")
	}
	if c, err := ParseCards(Values{"CardSeq": ""}); err != nil || c != nil {
		t.Fatal(c, err)
	}
}

func TestParseMemberAndTradedCard(t *testing.T) {
	v, err := ParseResponse([]byte("MemberID=Member00&MemberName=\x8eR\x93c\x91\xbe\x98Y&DeleteFlag=0"))
	if err != nil {
		t.Fatal(err)
	}
	if m := ParseMember(v); m.ID != "Member00" || m.Name != "山田太郎" || m.Deleted {
		t.Fatalf("%+v", m)
	}
	if m := ParseMember(Values{"MemberID": "x", "DeleteFlag": "1"}); !m.Deleted {
		t.Fatal("deleted member read as live")
	}
	v, _ = ParseResponse([]byte("CardSeq=2&CardNo=*************111&Forward=2a99662"))
	if s, err := ParseSavedCard(v); err != nil || s.Seq != 2 || s.CardNo != "*************111" || s.Forward != "2a99662" {
		t.Fatalf("%+v %v", s, err)
	}
	if _, err := ParseSavedCard(Values{"CardNo": "*1"}); err == nil {
		t.Fatal("answer without CardSeq accepted")
	}
}

func FuzzParseCards(f *testing.F) {
	f.Add([]byte("CardSeq=0|1|2|3|4&DefaultFlag=0|0|0|0|0&CardName=||||&CardNo=*************111|*************111|*************111|*************111|*************111&Expire=1905|1904|1908|1907|1910&HolderName=||||&DeleteFlag=0|0|0|0|0"))
	f.Add([]byte("CardSeq=1|&Brand=VISA"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseResponse(b)
		if err != nil {
			return
		}
		cards, err := ParseCards(v)
		if err == nil && len(cards) > 0 && len(cards) != len(v.List("CardSeq")) {
			t.Fatalf("%d cards from %d seqs", len(cards), len(v.List("CardSeq")))
		}
	})
}
