package sandbox

import (
	"sort"
	"strconv"
	"strings"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers/gmo"
)

type storedCard struct {
	seq            int
	number, expire string
	holder, name   string
	deflt, deleted bool
}

type member struct {
	id, name string
	cards    []*storedCard
	deleted  bool
}

func (g *GMO) siteOK(f map[string]string) []gmo.Param {
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
func (g *GMO) storedCard(f map[string]string) (Card, []gmo.Param) {
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
			return Card{Number: c.number, Expire: c.expire}, nil
		}
	}
	return Card{}, errs("E01240002")
}

func (g *GMO) memberAPI(api string, f map[string]string) []gmo.Param {
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
		if len(f["MemberName"]) > 255 {
			return errs("E01430012")
		}
		g.members[key] = &member{id: id, name: f["MemberName"]}
		return []gmo.Param{{Key: "MemberID", Value: id}}
	case "UpdateMember":
		if !live {
			return errs("E01390002")
		}
		m.name = f["MemberName"]
		return []gmo.Param{{Key: "MemberID", Value: id}}
	case "SearchMember":
		if !live {
			return errs("E01390002")
		}
		return []gmo.Param{{Key: "MemberID", Value: id}, {Key: "MemberName", Value: m.name}, {Key: "DeleteFlag", Value: "0"}}
	case "DeleteMember":
		if !live {
			return errs("E01390002")
		}
		m.deleted = true
		return []gmo.Param{{Key: "MemberID", Value: id}}
	}
	if !live {
		return errs("E01390002")
	}
	switch api {
	case "SaveCard":
		return g.saveCard(m, f)
	case "SearchCard":
		return searchCard(m, f)
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
				return []gmo.Param{{Key: "CardSeq", Value: strconv.Itoa(seq)}}
			}
		}
		return errs("E01240002")
	}
	return errs("E91099997")
}

func (g *GMO) saveCard(m *member, f map[string]string) []gmo.Param {
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
	} else if f["CardNo"] != "" {
		card = Card{Number: f["CardNo"], Expire: f["Expire"]}
	} else {
		return errs("E01170001")
	}
	if len(f["HolderName"]) > 50 {
		return errs("E01480008")
	}
	if f["DefaultFlag"] == "1" {
		for _, c := range m.cards {
			c.deflt = false
		}
	}
	sc := &storedCard{seq: len(m.cards), number: card.Number, expire: card.Expire, holder: f["HolderName"],
		name: f["CardName"], deflt: f["DefaultFlag"] == "1"}
	if s := f["CardSeq"]; s != "" {
		seq, err := strconv.Atoi(s)
		if err != nil {
			return errs("E01230006")
		}
		for _, c := range m.cards {
			if c.seq == seq && !c.deleted {
				c.number, c.expire, c.holder, c.name = card.Number, card.Expire, sc.holder, sc.name
				return []gmo.Param{{Key: "CardSeq", Value: s}, {Key: "CardNo", Value: normalize.MaskNumber(card.Number)}, {Key: "Forward", Value: "2a99662"}}
			}
		}
		return errs("E01240002")
	}
	m.cards = append(m.cards, sc)
	return []gmo.Param{{Key: "CardSeq", Value: strconv.Itoa(sc.seq)}, {Key: "CardNo", Value: normalize.MaskNumber(card.Number)},
		{Key: "Forward", Value: "2a99662"}, {Key: "Brand", Value: normalize.BrandFromNumber(card.Number)}}
}

func searchCard(m *member, f map[string]string) []gmo.Param {
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
	return []gmo.Param{
		{Key: "CardSeq", Value: col(func(c *storedCard) string { return strconv.Itoa(c.seq) })},
		{Key: "DefaultFlag", Value: col(func(c *storedCard) string { return flag(c.deflt) })},
		{Key: "CardName", Value: col(func(c *storedCard) string { return c.name })},
		{Key: "CardNo", Value: col(func(c *storedCard) string { return normalize.MaskNumber(c.number) })},
		{Key: "Expire", Value: col(func(c *storedCard) string { return c.expire })},
		{Key: "HolderName", Value: col(func(c *storedCard) string { return c.holder })},
		{Key: "DeleteFlag", Value: col(func(c *storedCard) string { return "0" })},
		{Key: "Brand", Value: col(func(c *storedCard) string { return normalize.BrandFromNumber(c.number) })},
	}
}

// tradedCard stores the card an executed order was paid with (決済後カード登録).
// Callers hold g.mu.
func (g *GMO) tradedCard(m *member, f map[string]string) []gmo.Param {
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
	if len(f["HolderName"]) > 50 {
		return errs("E01480008")
	}
	if f["DefaultFlag"] == "1" {
		for _, c := range m.cards {
			c.deflt = false
		}
	}
	sc := &storedCard{seq: len(m.cards), number: t.number, expire: t.expire, holder: f["HolderName"],
		name: f["CardName"], deflt: f["DefaultFlag"] == "1"}
	m.cards = append(m.cards, sc)
	return []gmo.Param{{Key: "CardSeq", Value: strconv.Itoa(sc.seq)}, {Key: "CardNo", Value: normalize.MaskNumber(t.number)}, {Key: "Forward", Value: t.forward}}
}
