package gmo

import (
	"context"
	"strconv"
	"strings"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers"
)

// Customers are GMO members (site API: SaveMember, SearchMember,
// DeleteMember) and their cards (SaveCard, SearchCard, DeleteCard,
// TradedCard). They need the account's site_id and site_pass.
var _ providers.Customers = (*Provider)(nil)

// CardRecord is one row of a SearchCard answer, whose fields GMO sends as
// '|'-joined columns (wire notes §2b, §6).
type CardRecord struct {
	Seq                              int
	Default, Deleted                 bool
	CardName, CardNo, Expire, Holder string
	Brand                            string
}

// ParseCards turns SearchCard's '|'-joined columns into rows. A column
// shorter than CardSeq reads as empty, so a malformed answer loses values,
// never shifts them onto the wrong card.
func ParseCards(v Values) ([]CardRecord, error) {
	seqs := v.List("CardSeq")
	if len(seqs) == 0 || len(seqs) == 1 && seqs[0] == "" {
		return nil, nil
	}
	col := func(key string) func(i int) string {
		vals := v.List(key)
		return func(i int) string {
			if i < len(vals) {
				return strings.TrimSpace(vals[i])
			}
			return ""
		}
	}
	deflt, name, no, exp, holder, del, brand := col("DefaultFlag"), col("CardName"), col("CardNo"), col("Expire"), col("HolderName"), col("DeleteFlag"), col("Brand")
	out := make([]CardRecord, 0, len(seqs))
	for i, s := range seqs {
		seq, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || seq < 0 {
			return nil, ErrMalformed
		}
		out = append(out, CardRecord{Seq: seq, Default: deflt(i) == "1", Deleted: del(i) == "1",
			CardName: name(i), CardNo: no(i), Expire: exp(i), Holder: holder(i), Brand: brand(i)})
	}
	return out, nil
}

// MemberRecord is a SearchMember answer.
type MemberRecord struct {
	ID, Name string
	Deleted  bool
}

// ParseMember reads a SearchMember answer.
func ParseMember(v Values) MemberRecord {
	return MemberRecord{ID: v.Get("MemberID"), Name: v.Get("MemberName"), Deleted: v.Get("DeleteFlag") == "1"}
}

// SavedCard is a SaveCard or TradedCard answer.
type SavedCard struct {
	Seq           int
	CardNo, Brand string
	Forward       string
}

// ParseSavedCard reads a SaveCard or TradedCard answer.
func ParseSavedCard(v Values) (SavedCard, error) {
	seq, err := strconv.Atoi(v.Get("CardSeq"))
	if err != nil || seq < 0 {
		return SavedCard{}, ErrMalformed
	}
	return SavedCard{Seq: seq, CardNo: v.Get("CardNo"), Brand: v.Get("Brand"), Forward: v.Get("Forward")}, nil
}

func (p *Provider) site() ([]Param, *normalize.Error) {
	if p.c.cfg.SiteID == "" || p.c.cfg.SitePass == "" {
		e := providers.Unsupported(p.Account(), "customers and stored cards without site_id and site_pass")
		e.MessageJa = "サイトID・サイトパスワードが設定されていないため、会員・カード登録は利用できません。"
		return nil, e
	}
	return []Param{{"SiteID", p.c.cfg.SiteID}, {"SitePass", p.c.cfg.SitePass}}, nil
}

// memberError names the customer in a member-not-found answer.
func (p *Provider) memberError(err *normalize.Error, id string) *normalize.Error {
	if err.Code == "resource_missing" && err.Type == normalize.TypeInvalidRequest {
		ne := normalize.Newf("resource_missing", "No customer %q exists at this GMO site.", id)
		ne.Provider, ne.ProviderCodes = p.Account(), err.ProviderCodes
		return ne.WithParam("id")
	}
	return err
}

// CreateCustomer runs SaveMember. A lost answer is settled by SearchMember:
// registering a member moves no money, and the id is the caller's.
func (p *Provider) CreateCustomer(ctx context.Context, req *normalize.CreateCustomer) (*normalize.Customer, error) {
	site, serr := p.site()
	if serr != nil {
		return nil, serr
	}
	id := req.ID
	if id == "" {
		id = normalize.NewCustomerID()
	}
	params := append(site, Param{"MemberID", id}, Param{"MemberName", req.Name})
	_, err := p.c.call(ctx, "SaveMember", params, write)
	if err != nil {
		if err.Uncertain {
			if c, gerr := p.searchMember(ctx, id); gerr == nil {
				return c, nil
			}
		}
		if err.Code == "customer_exists" {
			err.WithParam("id")
		}
		return nil, err
	}
	return &normalize.Customer{ID: id, Object: "customer", Provider: p.Account(), Name: req.Name}, nil
}

func (p *Provider) searchMember(ctx context.Context, id string) (*normalize.Customer, *normalize.Error) {
	site, serr := p.site()
	if serr != nil {
		return nil, serr
	}
	v, err := p.c.call(ctx, "SearchMember", append(site, Param{"MemberID", id}), read)
	if err != nil {
		return nil, p.memberError(err, id)
	}
	m := ParseMember(v)
	if m.Deleted {
		e := normalize.Newf("resource_missing", "Customer %q was deleted.", id)
		e.Provider = p.Account()
		return nil, e.WithParam("id")
	}
	return &normalize.Customer{ID: id, Object: "customer", Provider: p.Account(), Name: m.Name}, nil
}

// GetCustomer runs SearchMember and SearchCard.
func (p *Provider) GetCustomer(ctx context.Context, id string) (*normalize.Customer, error) {
	c, err := p.searchMember(ctx, id)
	if err != nil {
		return nil, err
	}
	cards, cerr := p.ListCards(ctx, id)
	if cerr != nil {
		return nil, cerr
	}
	c.Cards = cards
	return c, nil
}

// DeleteCustomer runs DeleteMember.
func (p *Provider) DeleteCustomer(ctx context.Context, id string) (*normalize.Customer, error) {
	site, serr := p.site()
	if serr != nil {
		return nil, serr
	}
	if _, err := p.c.call(ctx, "DeleteMember", append(site, Param{"MemberID", id}), write); err != nil {
		return nil, p.memberError(err, id)
	}
	return &normalize.Customer{ID: id, Object: "customer", Provider: p.Account(), Deleted: true}, nil
}

// ListCards runs SearchCard in logical mode. GMO answers E01240002 when the
// member has no card: that is an empty list, not an error.
func (p *Provider) ListCards(ctx context.Context, customerID string) ([]normalize.StoredCard, error) {
	recs, err := p.searchCards(ctx, customerID, "")
	if err != nil {
		return nil, err
	}
	out := make([]normalize.StoredCard, 0, len(recs))
	for _, r := range recs {
		if !r.Deleted {
			out = append(out, p.storedCard(customerID, r))
		}
	}
	return out, nil
}

func (p *Provider) searchCards(ctx context.Context, customerID, seq string) ([]CardRecord, *normalize.Error) {
	site, serr := p.site()
	if serr != nil {
		return nil, serr
	}
	params := append(site, Param{"MemberID", customerID}, Param{"SeqMode", "0"})
	if seq != "" {
		params = append(params, Param{"CardSeq", seq})
	}
	v, err := p.c.call(ctx, "SearchCard", params, read)
	if err != nil {
		if len(err.ProviderCodes) == 1 && err.ProviderCodes[0].Info == "E01240002" && seq == "" {
			return nil, nil
		}
		return nil, p.memberError(err, customerID)
	}
	recs, perr := ParseCards(v)
	if perr != nil {
		e := normalize.Newf("invalid_response", "GMO's SearchCard answer has a malformed CardSeq column.")
		e.Provider = p.Account()
		return nil, e
	}
	return recs, nil
}

func (p *Provider) storedCard(customerID string, r CardRecord) normalize.StoredCard {
	month, year := normalize.SplitExpiry(r.Expire)
	brand := r.Brand
	if brand == "" {
		brand = normalize.BrandFromNumber(r.CardNo)
	}
	return normalize.StoredCard{Object: "card", CustomerID: customerID, Provider: p.Account(), Seq: r.Seq,
		MaskedNumber: r.CardNo, Brand: brand, ExpiryMonth: month, ExpiryYear: year, HolderName: r.Holder,
		CardName: r.CardName, Default: r.Default}
}

// AddCard stores a card: SaveCard with the token, or TradedCard with the
// card of an earlier payment (決済後カード登録). Neither is repeated once sent; a lost answer
// tells the caller to list the cards rather than guess.
func (p *Provider) AddCard(ctx context.Context, customerID string, req *normalize.AddCard) (*normalize.StoredCard, error) {
	site, serr := p.site()
	if serr != nil {
		return nil, serr
	}
	deflt := "0"
	if req.Default {
		deflt = "1"
	}
	params := append(site, Param{"MemberID", customerID}, Param{"SeqMode", "0"}, Param{"DefaultFlag", deflt})
	if req.CardName != "" {
		params = append(params, Param{"CardName", req.CardName})
	}
	api := "SaveCard"
	if req.PaymentID != "" {
		account, orderID, _ := normalize.SplitPaymentID(req.PaymentID)
		if account != p.Account() {
			e := normalize.Newf("parameter_invalid", "payment %q belongs to account %q, not %q.", req.PaymentID, account, p.Account())
			e.MessageJa = "決済IDのアカウントが会員のアカウントと一致しません。"
			return nil, e.WithParam("payment_id")
		}
		api = "TradedCard"
		params = append(p.shop(), append(append([]Param{{"OrderID", orderID}}, params...), Param{"HolderName", req.HolderName})...)
	} else {
		params = append(params, Param{"Token", req.Token}, Param{"HolderName", req.HolderName})
	}
	v, err := p.c.call(ctx, api, params, write)
	if err != nil {
		if err.Uncertain {
			err.Message += " The card may have been stored: list the customer's cards before trying again."
		}
		return nil, p.memberError(err, customerID)
	}
	saved, perr := ParseSavedCard(v)
	if perr != nil {
		e := normalize.Newf("invalid_response", "GMO's %s answer has no card sequence number; list the customer's cards.", api)
		e.Provider = p.Account()
		return nil, e
	}
	card := normalize.StoredCard{Object: "card", CustomerID: customerID, Provider: p.Account(), Seq: saved.Seq,
		MaskedNumber: saved.CardNo, Brand: saved.Brand, ExpiryMonth: req.ExpiryMonth, ExpiryYear: req.ExpiryYear,
		HolderName: req.HolderName, CardName: req.CardName, Default: req.Default}
	// SaveCard answers no expiry: read the stored card back. A failed read
	// still leaves a saved card, so it only costs the extra fields.
	if recs, rerr := p.searchCards(ctx, customerID, strconv.Itoa(saved.Seq)); rerr == nil && len(recs) == 1 {
		full := p.storedCard(customerID, recs[0])
		if full.Brand == "" {
			full.Brand = card.Brand
		}
		card = full
	}
	if card.Brand == "" {
		card.Brand = normalize.BrandFromNumber(card.MaskedNumber)
	}
	if card.Brand == "" {
		card.Brand = normalize.BrandFromNumber(req.MaskedNumber)
	}
	return &card, nil
}

// DeleteCard runs DeleteCard.
func (p *Provider) DeleteCard(ctx context.Context, customerID string, seq int) (*normalize.StoredCard, error) {
	site, serr := p.site()
	if serr != nil {
		return nil, serr
	}
	params := append(site, Param{"MemberID", customerID}, Param{"SeqMode", "0"}, Param{"CardSeq", strconv.Itoa(seq)})
	if _, err := p.c.call(ctx, "DeleteCard", params, write); err != nil {
		if err.Code == "resource_missing" && len(err.ProviderCodes) > 0 && err.ProviderCodes[0].Info == "E01240002" {
			ne := normalize.Newf("resource_missing", "Customer %q has no card %d.", customerID, seq)
			ne.Provider, ne.ProviderCodes = p.Account(), err.ProviderCodes
			return nil, ne.WithParam("seq")
		}
		return nil, p.memberError(err, customerID)
	}
	return &normalize.StoredCard{Object: "card", CustomerID: customerID, Provider: p.Account(), Seq: seq, Deleted: true}, nil
}
