package sandbox

import (
	"sort"
	"strconv"
	"strings"
)

type storedCard struct {
	seq            int
	number, expire string
	holder, name   string
	pass           string // カードパスワード, asked for when the card pays
	deflt, deleted bool
}

type member struct {
	id, name string
	cards    []*storedCard
	deleted  bool
}

func (g *GMO) siteOK(f map[string]string) []kv {
	switch {
	case f["SiteID"] == "":
		return errs("E01190001")
	case f["SitePass"] == "":
		return errs("E01200001")
	}
	return nil
}

// storedCard finds the card an ExecTran with MemberID/CardSeq charges.
// Callers hold g.mu.
func (g *GMO) storedCard(f map[string]string) (Card, []kv) {
	if e := g.siteOK(f); e != nil {
		return Card{}, e
	}
	m := g.members[f["SiteID"]+"/"+f["MemberID"]]
	if m == nil || m.deleted {
		return Card{}, errs("E01390002")
	}
	seq, err := strconv.Atoi(f["CardSeq"])
	if err != nil {
		return Card{}, errs("E01230006")
	}
	for _, c := range m.cards {
		if c.seq == seq && !c.deleted {
			if c.pass != "" && f["CardPass"] != c.pass {
				return Card{}, errs("E01250010") // カードパスワードが一致しません
			}
			return Card{Number: c.number, Expire: c.expire}, nil
		}
	}
	return Card{}, errs("E01240002")
}

// attributes are the card attribute columns of SaveCard/SearchCard, sent
// only to a shop with that option (GMO.CardAttributes).
func attributes(c *storedCard) []kv {
	return []kv{{"Brand", brandOf(c.number)}, {"DomesticFlag", "1"}, {"IssuerCode", ""}, {"DebitPrepaidFlag", "0"},
		{"DebitPrepaidIssuerName", ""}, {"ForwardFinal", "2a99662"}}
}

func (g *GMO) memberAPI(api string, f map[string]string) []kv {
	if e := g.siteOK(f); e != nil {
		return e
	}
	id := f["MemberID"]
	if id == "" {
		return errs("E01220001")
	}
	if len(id) > 60 {
		return errs("E01220005")
	}
	key := f["SiteID"] + "/" + id
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.members[key]
	live := m != nil && !m.deleted
	switch api {
	case "SaveMember":
		if live {
			return errs("E01390010")
		}
		if n, ok := sjisLen(f["MemberName"]); !ok || n > 255 {
			return errs("E01430012") // 最大バイト数: Shift_JIS bytes
		}
		g.members[key] = &member{id: id, name: f["MemberName"]}
		return []kv{{"MemberID", id}}
	case "UpdateMember":
		if !live {
			return errs("E01390002")
		}
		m.name = f["MemberName"]
		return []kv{{"MemberID", id}}
	case "SearchMember":
		if !live {
			return errs("E01390002")
		}
		return []kv{{"MemberID", id}, {"MemberName", m.name}, {"DeleteFlag", "0"}}
	case "DeleteMember":
		if !live {
			return errs("E01390002")
		}
		m.deleted = true
		return []kv{{"MemberID", id}}
	}
	if !live {
		return errs("E01390002")
	}
	switch api {
	case "SaveCard":
		return g.saveCard(m, f)
	case "SearchCard":
		return g.searchCard(m, f)
	case "TradedCard":
		return g.tradedCard(m, f)
	case "DeleteCard":
		seq, err := strconv.Atoi(f["CardSeq"])
		if err != nil {
			return errs("E01230006")
		}
		for _, c := range m.cards {
			if c.seq == seq && !c.deleted {
				c.deleted = true
				return []kv{{"CardSeq", strconv.Itoa(seq)}}
			}
		}
		return errs("E01240002")
	}
	return errs("E91099997")
}

func (g *GMO) saveCard(m *member, f map[string]string) []kv {
	var card Card
	if tok := f["Token"]; tok != "" {
		mg := magic(tok)
		if info, ok := Declines[mg]; ok && strings.HasPrefix(info, "EX1") {
			return errs(info)
		}
		c, ok := TestCards[mg]
		if !ok {
			return errs("EX1000301")
		}
		card = c
	} else if f["CardNo"] != "" || f["UpdateType"] == "2" && f["CardSeq"] != "" {
		card = Card{Number: f["CardNo"], Expire: f["Expire"]}
	} else {
		return errs("E01170001")
	}
	if e := holderOK(f["HolderName"]); e != nil {
		return e
	}
	if f["DefaultFlag"] == "1" {
		for _, c := range m.cards {
			c.deflt = false
		}
	}
	sc := &storedCard{seq: len(m.cards), number: card.Number, expire: card.Expire, holder: f["HolderName"],
		name: f["CardName"], pass: f["CardPass"], deflt: f["DefaultFlag"] == "1"}
	if s := f["CardSeq"]; s != "" {
		seq, err := strconv.Atoi(s)
		if err != nil {
			return errs("E01230006")
		}
		for _, c := range m.cards {
			if c.seq == seq && !c.deleted {
				// 更新区分 2: everything but the card number, unless a token
				// came (the token wins; seed 001 updateType).
				if f["UpdateType"] != "2" || f["Token"] != "" {
					c.number = card.Number
				}
				if card.Expire != "" {
					c.expire = card.Expire
				}
				c.holder, c.name, c.pass, c.deflt = sc.holder, sc.name, sc.pass, sc.deflt
				return g.savedCard(c)
			}
		}
		return errs("E01240002")
	}
	m.cards = append(m.cards, sc)
	return g.savedCard(sc)
}

// savedCard is SaveCard's answer: CardSeq CardNo Forward (recorded order),
// the number masked to its last three digits.
func (g *GMO) savedCard(c *storedCard) []kv {
	out := []kv{{"CardSeq", strconv.Itoa(c.seq)}, {"CardNo", maskKeep3(c.number)}, {"Forward", "2a99662"}}
	if g.CardAttributes {
		out = append(out, attributes(c)...)
	}
	return out
}

// holderOK is 名義人: at most 50 characters (E01480011 最大文字数) of
// letters, digits, space and , - . / (seed 001 item 23).
func holderOK(h string) []kv {
	if len([]rune(h)) > 50 {
		return errs("E01480011")
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(" ,-./", c)) {
			return errs("E01480008")
		}
	}
	return nil
}

func (g *GMO) searchCard(m *member, f map[string]string) []kv {
	cards := make([]*storedCard, 0, len(m.cards))
	for _, c := range m.cards {
		if !c.deleted && (f["CardSeq"] == "" || f["CardSeq"] == strconv.Itoa(c.seq)) {
			cards = append(cards, c)
		}
	}
	if len(cards) == 0 {
		return errs("E01240002")
	}
	sort.Slice(cards, func(i, j int) bool { return cards[i].seq < cards[j].seq })
	// One key per column, values '|'-joined in card order (INDEX.md §10).
	col := func(get func(*storedCard) string) string {
		parts := make([]string, len(cards))
		for i, c := range cards {
			parts[i] = get(c)
		}
		return strings.Join(parts, "|")
	}
	flag := func(b bool) string {
		if b {
			return "1"
		}
		return "0"
	}
	out := []kv{
		{"CardSeq", col(func(c *storedCard) string { return strconv.Itoa(c.seq) })},
		{"DefaultFlag", col(func(c *storedCard) string { return flag(c.deflt) })},
		{"CardName", col(func(c *storedCard) string { return c.name })},
		{"CardNo", col(func(c *storedCard) string { return maskKeep3(c.number) })},
		{"Expire", col(func(c *storedCard) string { return c.expire })},
		{"HolderName", col(func(c *storedCard) string { return c.holder })},
		{"DeleteFlag", col(func(c *storedCard) string { return "0" })},
	}
	if g.CardAttributes {
		for i, a := range attributes(cards[0]) {
			i := i
			out = append(out, kv{a.k, col(func(c *storedCard) string { return attributes(c)[i].v })})
		}
	}
	return out
}

// tradedCard stores the card an executed order was paid with (決済後カード登録).
// Callers hold g.mu.
func (g *GMO) tradedCard(m *member, f map[string]string) []kv {
	if e := g.shopOK(f); e != nil {
		return e
	}
	if f["OrderID"] == "" {
		return errs("E01040001")
	}
	t := g.trades[f["ShopID"]+"/"+f["OrderID"]]
	if t == nil {
		return errs("E01110002")
	}
	if t.number == "" {
		// never executed, or paid with a stored card: nothing to keep
		return errs("E11010002")
	}
	if e := holderOK(f["HolderName"]); e != nil {
		return e
	}
	if f["DefaultFlag"] == "1" {
		for _, c := range m.cards {
			c.deflt = false
		}
	}
	sc := &storedCard{seq: len(m.cards), number: t.number, expire: t.expire, holder: f["HolderName"],
		name: f["CardName"], deflt: f["DefaultFlag"] == "1"}
	m.cards = append(m.cards, sc)
	// TradedCard masks like SearchTrade: the last four digits (recorded).
	return []kv{{"CardSeq", strconv.Itoa(sc.seq)}, {"CardNo", maskKeep4(t.number)}, {"Forward", t.forward}}
}
