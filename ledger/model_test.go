package ledger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"pgregory.net/rapid"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers"
	"github.com/paynorm/paynorm/store"
	"github.com/paynorm/paynorm/store/bolt"
	"github.com/paynorm/paynorm/store/journal"
	"github.com/paynorm/paynorm/store/redis"
)

// TestLedgerModel runs random interleavings of j-payment-like operations
// against the ledger and a reference gateway that, like j-payment, cannot
// be asked, on the memory, bolt, journal and redis stores (two ledger instances
// over one store, a fake clock, BusyWait 1 ms).
//
// Actions: begin a create (order record "jp_order.<order>") or a follow-up
// (capture, cancel, reauthorize on "jp_<gid>"); send a begun request to the
// gateway without answering yet; finish one (answer, timeout after or
// before the gateway acted, never sent) and Settle it; crash one (its lease
// runs out, the resolver abandons it now or later); restart an instance;
// a true kickback (as caddymodule's applyKickback builds the claim); a
// forged one (wrong amounts, or a gid the gateway lacks for an order that
// is not open); a kickback sent again after paynorm failed to record it;
// a store write that fails; the resolver's pass; the clock moving on.
//
// After every action: (1) one operation per record, holding its lease;
// (2) an unleased, confirmed "jp_<gid>" record says what the gateway did
// (status and amounts; a canceled payment reads voided, or refunded when
// it was sold, unless a move on it went unconfirmed); (3) records make
// only legal moves and a canceled one stays canceled; (4) the gateway
// never holds two charges for one order, and a failed order record has
// none; (5) an order record's link leads to a payment of that order
// (unless the write of that payment failed and a kickback will complete
// it); (6) a forged kickback changes no record and adds no event.
//
// Deeper runs: go test ./ledger -run TestLedgerModel/memory
// -rapid.checks=5000 -rapid.steps=60.

const (
	mAccount = "jp"
	mLease   = time.Minute
	// Gateway statuses (j-payment's job names).
	gAuth    = "AUTH"
	gCapture = "CAPTURE"
	gSales   = "SALES"
	gCancel  = "CANCEL"
	gFailed  = "FAILED"
)

// mOrders are the order ids the model uses; they look like gids on
// purpose (an order id equal to a gid must not mix the records up).
var mOrders = []string{"1", "2", "3"}

func orderRecID(order string) string { return normalize.PaymentID(mAccount, "order."+order) }
func gidRecID(gid string) string     { return normalize.PaymentID(mAccount, gid) }

// gwPay is one payment as the gateway knows it.
type gwPay struct {
	gid, order  string
	status      string
	am, tx, sf  int64
	ap, god     string
	wasCaptured bool // sold before it was canceled
	createOK    bool // the create (or re-authorization) succeeded: kickback rst=1
	fromCreate  bool // made by a create, not by a re-authorization
	// tainted: an operation on it ended without a definite answer (a
	// timeout or a crash), so paynorm may have lost track of one move.
	tainted bool
}

func (g *gwPay) live() bool { return g.status == gAuth || g.status == gCapture || g.status == gSales }

// mTicket is an operation between Begin and Settle.
type mTicket struct {
	t     *Ticket
	inst  int
	name  string
	id    string
	order string // create
	gid   string // follow-up
	seed  *normalize.Payment
	// re-authorization amounts
	am, tx int64
	until  time.Time
	// sent: the gateway has processed the request; refused: the provider
	// refused it before sending anything. pay/perr is the answer.
	sent, refused bool
	pay           *normalize.Payment
	perr          error
}

type model struct {
	ctx context.Context
	// l is instance 0; ls are two instances over one store: two configs
	// of one process sharing the lock table on an exclusive store (memory,
	// bolt), two processes with their own on a shared one (redis).
	l         *Ledger
	ls        [2]*Ledger
	st        *faultStore
	exclusive bool
	clock     time.Time
	gw        map[string]*gwPay
	gids      []string // in creation order
	seq       int
	inflight  []*mTicket
	last      map[string]*store.PaymentRecord // last seen record per id
	fakes     []string                        // gids only forged kickbacks named
	// redeliver holds kickbacks paynorm answered with a failure: j-payment
	// sends them again.
	redeliver []kick
	// dangling: payments whose create was answered but whose record a
	// failed write left unwritten behind its order's link.
	dangling map[string]bool
	decoded  map[string]*Entry
}

func newModel(st store.Store) *model {
	m := &model{
		ctx:      context.Background(),
		clock:    time.Date(2025, 6, 10, 12, 0, 0, 0, time.UTC),
		gw:       map[string]*gwPay{},
		last:     map[string]*store.PaymentRecord{},
		st:       &faultStore{Store: st},
		dangling: map[string]bool{},
		decoded:  map[string]*Entry{},
	}
	m.exclusive = m.st.Exclusive()
	locks := NewLocks()
	for i := range m.ls {
		lk := locks
		if !m.exclusive {
			lk = NewLocks()
		}
		var ls store.Store = m.st
		if _, ok := st.(store.Pipelined); ok {
			ls = pipelinedFaultStore{m.st}
		}
		l := New(ls, lk, true)
		l.now = func() time.Time { return m.clock }
		l.BusyWait = time.Millisecond
		m.ls[i] = l
	}
	m.l = m.ls[0]
	return m
}

func (m *model) logf(t *rapid.T, format string, args ...any) {
	t.Log(fmt.Sprintf(format, args...))
}

// errInjected is a store write that failed (the store was unreachable,
// or the process died in the middle of an operation's writes).
var errInjected = errors.New("injected store failure")

// faultStore fails the n-th payment write from when it is armed.
type faultStore struct {
	store.Store
	armed int
}

func (f *faultStore) SwapPayment(ctx context.Context, rec *store.PaymentRecord, evs ...*store.Event) error {
	if f.armed > 0 {
		if f.armed--; f.armed == 0 {
			return errInjected
		}
	}
	return f.Store.SwapPayment(ctx, rec, evs...)
}

// pipelinedFaultStore is a faultStore over a store.Pipelined backend (the
// journal): the ledger's operations then overlap their write-ahead record.
type pipelinedFaultStore struct{ *faultStore }

func (f pipelinedFaultStore) SwapPaymentPipelined(ctx context.Context, rec *store.PaymentRecord, evs ...*store.Event) (func() error, error) {
	if f.armed > 0 {
		if f.armed--; f.armed == 0 {
			return nil, errInjected
		}
	}
	return f.Store.(store.Pipelined).SwapPaymentPipelined(ctx, rec, evs...)
}

func (f *faultStore) Exclusive() bool {
	x, ok := f.Store.(store.Exclusive)
	return ok && x.Exclusive()
}

func (m *model) inst(t *rapid.T) (int, *Ledger) {
	i := rapid.IntRange(0, len(m.ls)-1).Draw(t, "instance")
	return i, m.ls[i]
}

// ids lists every record id the model may have caused.
func (m *model) ids() []string {
	var out []string
	for _, o := range mOrders {
		out = append(out, orderRecID(o))
	}
	for _, g := range m.gids {
		out = append(out, gidRecID(g))
	}
	for _, g := range m.fakes {
		out = append(out, gidRecID(g))
	}
	return out
}

// get reads a record (nil when there is none). Decoded entries are kept
// per version: every write moves the version, and the checks read every
// record after every step.
func (m *model) get(t *rapid.T, id string) *Entry {
	rec, err := m.st.GetPayment(m.ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	if e := m.decoded[id]; e != nil && e.Rec.Version == rec.Version {
		return e
	}
	e := (&Entry{Rec: rec}).clone()
	m.decoded[id] = e
	return e
}

func (m *model) holder(id string) *mTicket {
	for _, tk := range m.inflight {
		if tk.id == id {
			return tk
		}
	}
	return nil
}

func (m *model) drop(tk *mTicket) {
	m.inflight = slices.DeleteFunc(m.inflight, func(x *mTicket) bool { return x == tk })
}

func (m *model) newGID() string {
	m.seq++
	return strconv.Itoa(m.seq)
}

func (m *model) addGW(g *gwPay) {
	m.gw[g.gid] = g
	m.gids = append(m.gids, g.gid)
}

// --- the provider, as providers/jpayment does it, over the model gateway ---

// known is the recorded payment a follow-up acts on (caddymodule
// recordedPayment, then jpayment's copy).
func known(e *Entry) *normalize.Payment {
	pay := *e.Pay
	pay.ProviderData = map[string]any{}
	for k, v := range e.Pay.ProviderData {
		pay.ProviderData[k] = v
	}
	switch {
	case e.Rec.Status == StatusRequiresAction:
		pay.Status = normalize.StatusPending
	case e.Rec.Status != "":
		pay.Status = e.Rec.Status
	}
	if e.Rec.Unconfirmed != "" {
		pay.ProviderData["unconfirmed_operation"] = e.Rec.Unconfirmed
	}
	return &pay
}

func jobFor(capture string) string {
	if capture == normalize.CaptureManual {
		return gAuth
	}
	return gCapture
}

func statusOf(gwStatus string) string {
	switch gwStatus {
	case gAuth:
		return normalize.StatusAuthorized
	case gCapture, gSales:
		return normalize.StatusCaptured
	case gFailed:
		return normalize.StatusFailed
	}
	return "" // CANCEL: voided or refunded
}

func providerErr(code string, pay *normalize.Payment) *normalize.Error {
	e := normalize.New("card_declined")
	e.Provider = mAccount
	e.ProviderCodes = []normalize.ProviderCode{{Code: code}}
	e.Payment = pay
	return e
}

func stateErr(code string, pay *normalize.Payment) *normalize.Error {
	e := normalize.New(code)
	e.Provider, e.Payment = mAccount, pay
	return e
}

// process sends tk's request to the gateway (or refuses it before sending,
// as the provider does on the known copy) and keeps the answer.
func (m *model) process(t *rapid.T, tk *mTicket) {
	// Money moves only once the write-ahead record is durable.
	if err := providers.AwaitWriteAhead(tk.t.Context(m.ctx)); err != nil {
		t.Fatalf("write-ahead record of %s %s: %v", tk.name, tk.id, err)
	}
	now := m.clock.In(normalize.JST)
	if tk.name == OpCreate {
		seed := tk.seed
		pay := normalize.NewPayment(mAccount, "")
		pay.ID, pay.OrderID = "", tk.order
		pay.SetAmounts(seed.Amount, seed.Tax, seed.Shipping)
		pay.Capture, pay.Metadata = seed.Capture, seed.Metadata
		pay.CreatedAt, pay.UpdatedAt = &now, &now
		switch rapid.SampledFrom([]string{"ok", "ok", "declineG", "declineER"}).Draw(t, "gatewayCreate") {
		case "ok":
			g := &gwPay{gid: m.newGID(), order: tk.order, status: jobFor(seed.Capture), am: seed.Amount, tx: seed.Tax, sf: seed.Shipping, createOK: true, fromCreate: true}
			g.ap, g.god = "ap"+g.gid, "god"+g.gid
			m.addGW(g)
			pay.ID = gidRecID(g.gid)
			pay.ApprovalCode, pay.TransactionID = g.ap, g.god
			pay.ProviderData["gid"] = g.gid
			pay.Status = statusOf(g.status)
			tk.pay = pay
		case "declineG": // the card company refused: a failed gid, in the answer
			g := &gwPay{gid: m.newGID(), order: tk.order, status: gFailed, am: seed.Amount, tx: seed.Tax, sf: seed.Shipping, fromCreate: true}
			m.addGW(g)
			pay.ID = gidRecID(g.gid)
			pay.ProviderData["gid"] = g.gid
			pay.Status = normalize.StatusFailed
			tk.perr = providerErr("G12", pay)
		default: // refused before the card company: no gid
			pay.Status = normalize.StatusFailed
			tk.perr = providerErr("ER013", pay)
		}
		m.logf(t, "  gateway create order %s: %v %v", tk.order, payStr(tk.pay), tk.perr)
		tk.sent = true
		return
	}
	kn := known(tk.t.Start)
	knownStatus := kn.Status
	g := m.gw[tk.gid]
	switch tk.name {
	case OpCapture:
		if kn.Status != normalize.StatusAuthorized {
			code := "invalid_state"
			if kn.Status == normalize.StatusCaptured {
				code = "already_captured"
			}
			tk.perr, tk.refused = stateErr(code, kn), true
			break
		}
		if g.status != gAuth {
			tk.perr = providerErr("ER032", kn)
			break
		}
		g.status, g.wasCaptured = gSales, true
		kn.Status = normalize.StatusCaptured
		kn.ProviderData["jpayment_job"] = "SALES"
		kn.UpdatedAt = &now
		tk.pay = kn
	case OpCancel:
		want := normalize.StatusVoided
		switch kn.Status {
		case normalize.StatusAuthorized:
		case normalize.StatusCaptured:
			want = normalize.StatusRefunded
		default:
			tk.perr, tk.refused = stateErr("not_cancelable", kn), true
		}
		if tk.refused {
			break
		}
		if !g.live() {
			tk.perr = providerErr("ER033", kn)
			break
		}
		g.wasCaptured = g.wasCaptured || g.status != gAuth
		g.status = gCancel
		kn.Status = want
		kn.ProviderData["jpayment_job"] = "CANCEL"
		kn.UpdatedAt = &now
		tk.pay = kn
	case OpReauthorize:
		if kn.Status != normalize.StatusAuthorized && kn.Status != normalize.StatusCaptured {
			tk.perr, tk.refused = stateErr("invalid_state", kn), true
			break
		}
		if !g.live() {
			tk.perr = providerErr("ER030", kn)
			break
		}
		if rapid.Bool().Draw(t, "reauthDeclined") {
			m.addGW(&gwPay{gid: m.newGID(), order: g.order, status: gFailed, am: tk.am, tx: tk.tx})
			tk.perr = providerErr("G55", kn)
			break
		}
		// The new payment inherits what paynorm may not know of the old.
		next := &gwPay{gid: m.newGID(), order: g.order, status: g.status, am: tk.am, tx: tk.tx, createOK: true, tainted: g.tainted}
		if next.status == gSales {
			next.status = gCapture
		}
		next.ap, next.god = "ap"+next.gid, "god"+next.gid
		g.wasCaptured = g.wasCaptured || g.status != gAuth
		g.status = gCancel
		m.addGW(next)
		pay := normalize.NewPayment(mAccount, next.gid)
		pay.OrderID = kn.OrderID
		pay.SetAmounts(tk.am, tk.tx, 0)
		pay.Status, pay.Capture, pay.Metadata = kn.Status, kn.Capture, kn.Metadata
		pay.CreatedAt, pay.UpdatedAt = &now, &now
		pay.ApprovalCode, pay.TransactionID = next.ap, next.god
		pay.ProviderData["gid"] = next.gid
		pay.ProviderData["replaces"] = kn.ID
		tk.pay = pay
	}
	m.logf(t, "  gateway %s gid %s (known %s): now %s; answer %v %v refused=%v", tk.name, tk.gid, knownStatus, g.status, payStr(tk.pay), tk.perr, tk.refused)
	tk.sent = !tk.refused
}

func payStr(p *normalize.Payment) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprintf("{%s %s %d}", p.ID, p.Status, p.Amount)
}

// uncertain is the answer of a request sent without an answer back.
func (m *model) uncertain(tk *mTicket) error {
	e := normalize.New("provider_timeout")
	e.Provider, e.Uncertain = mAccount, true
	if tk.name == OpCreate {
		now := m.clock.In(normalize.JST)
		pay := normalize.NewPayment(mAccount, "")
		pay.ID, pay.OrderID = "", tk.order
		pay.SetAmounts(tk.seed.Amount, tk.seed.Tax, tk.seed.Shipping)
		pay.Capture, pay.CreatedAt, pay.UpdatedAt = tk.seed.Capture, &now, &now
		pay.Status = normalize.StatusUnknown
		e.Payment = pay
		return e
	}
	out := known(tk.t.Start)
	out.Status = normalize.StatusUnknown
	e.Payment = out
	return e
}

func (m *model) taint(tk *mTicket) {
	if g := m.gw[tk.gid]; g != nil && tk.name != OpCreate {
		g.tainted = true
	}
}

// --- actions ---

func (m *model) beginCreate(t *rapid.T) {
	order := rapid.SampledFrom(mOrders).Draw(t, "order")
	am := rapid.SampledFrom([]int64{1000, 2000}).Draw(t, "amount")
	tx := rapid.SampledFrom([]int64{0, 100}).Draw(t, "tax")
	capture := rapid.SampledFrom([]string{normalize.CaptureManual, normalize.CaptureAutomatic}).Draw(t, "capture")
	now := m.clock.In(normalize.JST)
	seed := normalize.NewPayment(mAccount, order)
	seed.SetAmounts(am, tx, 0)
	seed.Capture, seed.CreatedAt = capture, &now
	id := orderRecID(order)
	before := m.get(t, id)
	inst, l := m.inst(t)
	// Rebuildable: the outcome is deferred on the journal (it goes to the
	// disk with the next write somebody waits for).
	rebuildable := rapid.Bool().Draw(t, "rebuildable")
	tk, e, err := l.Begin(m.ctx, Op{Name: OpCreate, ID: id, Account: mAccount, Key: "order." + order, Seed: seed, Lease: mLease, Overlap: true, Rebuildable: rebuildable})
	m.logf(t, "beginCreate@%d order %s %d+%d %s: err=%v", inst, order, am, tx, capture, err)
	switch {
	case errors.Is(err, errInjected):
		return
	case errors.Is(err, ErrBusy):
		// A failed order whose payment a failed kickback write left
		// unwritten waits for the kickback again.
		waits := before != nil && before.Rec.Status == normalize.StatusFailed && before.Rec.LinkedID != "" && m.get(t, before.Rec.LinkedID) == nil
		if m.holder(id) == nil && (before == nil || !m.l.Live(before.Rec.Lease)) && !waits {
			t.Fatalf("Begin(create %s) answered busy but nothing holds it (record %+v)", id, recOf(before))
		}
		return
	case errors.Is(err, ErrExists):
		if before == nil || before.Rec.Status == normalize.StatusFailed {
			t.Fatalf("Begin(create %s) answered exists on %+v", id, recOf(before))
		}
		if e == nil || e.Rec == nil {
			t.Fatalf("Begin(create %s) answered exists without the entry", id)
		}
		return
	case err != nil:
		t.Fatalf("Begin(create %s): %v", id, err)
	}
	if h := m.holder(id); h != nil {
		t.Fatalf("Begin(create %s) succeeded while ticket %s/%s holds it", id, h.name, h.id)
	}
	if before != nil && before.Rec.Status != normalize.StatusFailed {
		t.Fatalf("Begin(create %s) took an order that already has a payment: %+v", id, recOf(before))
	}
	m.inflight = append(m.inflight, &mTicket{t: tk, inst: inst, name: OpCreate, id: id, order: order, seed: seed, until: m.clock.Add(mLease)})
}

func (m *model) beginFollowUp(t *rapid.T) {
	if len(m.gids) == 0 {
		t.Skip("no gid yet")
	}
	// Recent gids are the interesting ones.
	gid := m.gids[len(m.gids)-1-rapid.IntRange(0, min(len(m.gids)-1, 3)).Draw(t, "gidBack")]
	name := rapid.SampledFrom([]string{OpCapture, OpCancel, OpReauthorize}).Draw(t, "op")
	id := gidRecID(gid)
	before := m.get(t, id)
	inst, l := m.inst(t)
	rebuildable := rapid.Bool().Draw(t, "rebuildable")
	tk, _, err := l.Begin(m.ctx, Op{Name: name, ID: id, Account: mAccount, Key: gid, Lease: mLease, Overlap: true, Rebuildable: rebuildable})
	m.logf(t, "begin@%d %s on %s: err=%v", inst, name, id, err)
	switch {
	case errors.Is(err, errInjected):
		return
	case errors.Is(err, ErrBusy):
		if m.holder(id) == nil && (before == nil || !m.l.Live(before.Rec.Lease)) {
			t.Fatalf("Begin(%s %s) answered busy but nothing holds it (record %+v)", name, id, recOf(before))
		}
		return
	case errors.Is(err, store.ErrNotFound):
		if before != nil {
			t.Fatalf("Begin(%s %s) answered not found on %+v", name, id, recOf(before))
		}
		return
	case err != nil:
		t.Fatalf("Begin(%s %s): %v", name, id, err)
	}
	if h := m.holder(id); h != nil {
		t.Fatalf("Begin(%s %s) succeeded while ticket %s holds it", name, id, h.name)
	}
	mt := &mTicket{t: tk, inst: inst, name: name, id: id, gid: gid, until: m.clock.Add(mLease)}
	if name == OpReauthorize {
		if g := m.gw[gid]; rapid.Bool().Draw(t, "reauthSameAmounts") {
			mt.am, mt.tx = g.am, g.tx // to renew an authorization
		} else {
			mt.am = rapid.SampledFrom([]int64{500, 1000, 3000}).Draw(t, "reauthAmount")
			mt.tx = rapid.SampledFrom([]int64{0, 100}).Draw(t, "reauthTax")
		}
	}
	m.inflight = append(m.inflight, mt)
}

func (m *model) pickTicket(t *rapid.T) *mTicket {
	if len(m.inflight) == 0 {
		t.Skip("nothing in flight")
	}
	return m.inflight[rapid.IntRange(0, len(m.inflight)-1).Draw(t, "ticket")]
}

// send lets the gateway process a request whose answer has not come back
// yet: kickbacks and other operations may come in between.
func (m *model) send(t *rapid.T) {
	tk := m.pickTicket(t)
	if tk.sent || tk.refused {
		t.Skip("already sent")
	}
	m.logf(t, "send %s %s", tk.name, tk.id)
	m.process(t, tk)
}

func (m *model) finish(t *rapid.T) {
	tk := m.pickTicket(t)
	outcome := rapid.SampledFrom([]string{"answer", "answer", "timeoutAfter", "timeoutBefore", "notSent"}).Draw(t, "outcome")
	if tk.refused {
		outcome = "answer"
	}
	if tk.sent && (outcome == "timeoutBefore" || outcome == "notSent") {
		outcome = "timeoutAfter"
	}
	m.logf(t, "finish %s %s: %s", tk.name, tk.id, outcome)
	var pay *normalize.Payment
	var perr error
	switch outcome {
	case "answer":
		if !tk.sent && !tk.refused {
			m.process(t, tk)
		}
		pay, perr = tk.pay, tk.perr
	case "timeoutAfter":
		if !tk.sent {
			m.process(t, tk)
		}
		perr = m.uncertain(tk)
		m.taint(tk)
	case "timeoutBefore":
		perr = m.uncertain(tk)
		m.taint(tk)
	case "notSent": // never reached the gateway (limiter, breaker, dial)
		e := normalize.New("provider_unavailable")
		e.Provider = mAccount
		if tk.name != OpCreate && rapid.Bool().Draw(t, "withKnownCopy") {
			e.Payment = known(tk.t.Start) // jpayment's job attaches it
		}
		perr = e
	}
	m.drop(tk)
	out, err := m.ls[tk.inst].Settle(m.ctx, tk.t, pay, perr)
	if errors.Is(err, errInjected) {
		// The outcome is lost: the record keeps the lease (the resolver
		// abandons it once it runs out) or is marked unconfirmed.
		m.logf(t, "  settle failed: %v", err)
		m.taint(tk)
		if tk.name == OpCreate && pay != nil {
			m.dangling[pay.ID] = true
		}
		return
	}
	if err != nil {
		t.Fatalf("Settle(%s %s, %v, %v): %v", tk.name, tk.id, payStr(pay), perr, err)
	}
	m.logf(t, "  settled: %+v", recOf(out))
	if e := m.get(t, tk.id); e != nil && tk.t.holds(e) {
		t.Fatalf("Settle(%s %s) left the ticket's lease in the record: %+v", tk.name, tk.id, recOf(e))
	}
}

// crash drops an operation without settling it (the process died), lets
// its lease run out and, now or later, lets the resolver abandon it.
func (m *model) crash(t *rapid.T) {
	tk := m.pickTicket(t)
	m.logf(t, "crash %s %s", tk.name, tk.id)
	m.crashTicket(t, tk)
	if tk.until.After(m.clock) {
		m.clock = tk.until.Add(time.Second)
	}
	m.expire(t)
	if rapid.Bool().Draw(t, "abandonNow") {
		m.resolverPass(t)
	}
}

func (m *model) crashTicket(t *rapid.T, tk *mTicket) {
	if !tk.sent && !tk.refused && rapid.Bool().Draw(t, "sentBeforeCrash") {
		m.process(t, tk)
	}
	m.taint(tk)
	m.drop(tk)
	tk.t.unlock() // the process's own lock table went with it
}

// expire crashes every operation whose lease the clock passed: an
// operation must finish within its lease, so one that did not is dead.
func (m *model) expire(t *rapid.T) {
	for _, tk := range slices.Clone(m.inflight) {
		if !m.clock.Before(tk.until) {
			m.logf(t, "  lease of %s %s ran out", tk.name, tk.id)
			m.crashTicket(t, tk)
		}
	}
}

// resolverPass abandons every record whose lease ran out (the resolver on
// a provider that cannot be asked).
func (m *model) resolverPass(t *rapid.T) {
	for _, id := range m.ids() {
		e := m.get(t, id)
		if e == nil || e.Rec.Lease == nil || m.l.Live(e.Rec.Lease) {
			continue
		}
		out, err := m.l.Abandon(m.ctx, id, e.Rec.Version)
		if errors.Is(err, errInjected) {
			continue
		}
		if err != nil {
			t.Fatalf("Abandon(%s): %v", id, err)
		}
		m.logf(t, "  abandoned %s: %+v", id, recOf(out))
	}
}

func (m *model) advanceClock(t *rapid.T) {
	d := time.Duration(rapid.IntRange(1, 90).Draw(t, "seconds")) * time.Second
	m.clock = m.clock.Add(d)
	m.logf(t, "advance clock %v", d)
	m.expire(t)
}

// kick is a kickback as caddymodule reads it.
type kick struct {
	gid, cod, ap, god string
	success           bool
	am, tx, sf        int64
}

// applyKickback replicates caddymodule's: a kickback about a payment
// paynorm has changes nothing; otherwise it may claim its open order.
func (m *model) applyKickback(t *rapid.T, k kick) (bool, error) {
	_, l := m.inst(t)
	gidID := gidRecID(k.gid)
	if _, err := l.Get(m.ctx, gidID); err == nil {
		return false, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	now := m.clock.In(normalize.JST)
	pay := normalize.NewPayment(mAccount, k.gid)
	pay.OrderID = k.cod
	pay.SetAmounts(k.am, k.tx, k.sf)
	pay.ApprovalCode, pay.TransactionID = k.ap, k.god
	pay.CreatedAt, pay.UpdatedAt = &now, &now
	pay.ProviderData["gid"] = k.gid
	pay.ProviderData["settled_by"] = "kickback"
	pay.Status = normalize.StatusFailed
	rst := "2"
	if k.success {
		pay.Status, rst = normalize.StatusAuthorized, "1"
	}
	ev := &Event{Provider: mAccount, Data: EventData{Payment: pay, Kickback: map[string]string{"gid": k.gid, "rst": rst}}}
	ev.Type = "payment." + Verb(pay.Status)
	ev.ID = StableEventID(mAccount, ev.Type, k.gid, rst)
	agree := func(seed *normalize.Payment) bool {
		if seed == nil || seed.Amount != k.am || seed.Tax != k.tx || seed.Shipping != k.sf {
			return false
		}
		pay.Capture, pay.Metadata, pay.CreatedAt = seed.Capture, seed.Metadata, seed.CreatedAt
		if pay.Status != normalize.StatusFailed {
			pay.Status = statusOf(jobFor(seed.Capture))
		}
		ev.Type = "payment." + Verb(pay.Status)
		ev.ID = StableEventID(mAccount, ev.Type, k.gid, rst)
		return true
	}
	return l.ClaimOrder(m.ctx, orderRecID(k.cod), pay, agree, ev)
}

// kickbackTrue is j-payment's notification of a payment it made.
func (m *model) kickbackTrue(t *rapid.T) {
	if len(m.gids) == 0 {
		t.Skip("no gid yet")
	}
	g := m.gw[m.gids[len(m.gids)-1-rapid.IntRange(0, min(len(m.gids)-1, 3)).Draw(t, "gidBack")]]
	m.deliver(t, kick{gid: g.gid, cod: g.order, ap: g.ap, god: g.god, success: g.createOK, am: g.am, tx: g.tx, sf: g.sf})
}

func (m *model) deliver(t *rapid.T, k kick) {
	ok, err := m.applyKickback(t, k)
	m.logf(t, "kickback gid %s order %s ok=%v %d+%d: accepted=%v err=%v", k.gid, k.cod, k.success, k.am, k.tx, ok, err)
	if errors.Is(err, errInjected) {
		m.redeliver = append(m.redeliver, k) // answered with a failure: sent again
		return
	}
	if err != nil {
		t.Fatalf("true kickback for gid %s: %v", k.gid, err)
	}
	// A kickback completes a payment its order links but a failed write
	// left unwritten.
	if o := m.get(t, orderRecID(k.cod)); o != nil && o.Rec.LinkedID == gidRecID(k.gid) && m.get(t, o.Rec.LinkedID) == nil {
		t.Fatalf("kickback for gid %s left %s linking a missing payment: %+v", k.gid, o.Rec.ID, recOf(o))
	}
}

// redeliverKickback is j-payment sending a kickback again that paynorm
// could not record.
func (m *model) redeliverKickback(t *rapid.T) {
	if len(m.redeliver) == 0 {
		t.Skip("nothing to send again")
	}
	k := m.redeliver[0]
	m.redeliver = m.redeliver[1:]
	m.logf(t, "kickback sent again:")
	m.deliver(t, k)
}

// storeFault makes one of the next payment writes fail.
func (m *model) storeFault(t *rapid.T) {
	if m.st.armed > 0 {
		t.Skip("a fault is armed")
	}
	m.st.armed = rapid.IntRange(1, 3).Draw(t, "failWrite")
	m.logf(t, "store fault armed: write %d fails", m.st.armed)
}

// restart ends a process: its operations die with it and its lock table
// goes. On an exclusive store that is every operation, and the leases
// they left no longer hold; on a shared store they hold until they run out.
func (m *model) restart(t *rapid.T) {
	inst := rapid.IntRange(0, len(m.ls)-1).Draw(t, "instance")
	m.logf(t, "restart instance %d (exclusive store: %v)", inst, m.exclusive)
	for _, tk := range slices.Clone(m.inflight) {
		if m.exclusive || tk.inst == inst {
			m.crashTicket(t, tk)
		}
	}
	incarnation = newID()
	if m.exclusive {
		locks := NewLocks()
		for _, l := range m.ls {
			l.locks = locks
		}
	} else {
		m.ls[inst].locks = NewLocks()
	}
}

// kickbackForged is a notification j-payment never sent: wrong amounts
// (naming a real gid or not), or a gid j-payment does not have for an
// order that is not open. It must change nothing.
func (m *model) kickbackForged(t *rapid.T) {
	order := rapid.SampledFrom(mOrders).Draw(t, "order")
	k := kick{cod: order, success: rapid.Bool().Draw(t, "rstSuccess"), ap: "forged", god: "forged"}
	if len(m.gids) > 0 && rapid.Bool().Draw(t, "realGID") {
		g := m.gw[rapid.SampledFrom(m.gids).Draw(t, "gid")]
		k.gid = g.gid
	} else {
		k.gid = "9" + strconv.Itoa(rapid.IntRange(0, 9).Draw(t, "fake"))
		if !slices.Contains(m.fakes, k.gid) {
			m.fakes = append(m.fakes, k.gid)
		}
	}
	cur := m.get(t, orderRecID(order))
	seedAm, seedTx := int64(1000), int64(0)
	if cur != nil && cur.Pay != nil {
		seedAm, seedTx = cur.Pay.Amount, cur.Pay.Tax
	}
	rightAmounts := m.gw[k.gid] == nil && cur != nil && !Open(cur.Rec.Status) && rapid.Bool().Draw(t, "rightAmounts")
	if rightAmounts {
		k.am, k.tx = seedAm, seedTx
	} else {
		k.am, k.tx = seedAm+int64(rapid.IntRange(1, 500).Draw(t, "delta")), seedTx
	}
	before, evBefore := m.snapshot(t), m.events(t)
	ok, err := m.applyKickback(t, k)
	m.logf(t, "forged kickback gid %s order %s %d+%d success=%v: accepted=%v err=%v", k.gid, order, k.am, k.tx, k.success, ok, err)
	if err != nil {
		t.Fatalf("forged kickback: %v", err)
	}
	if ok {
		t.Fatalf("forged kickback %+v was accepted", k)
	}
	after := m.snapshot(t)
	for id, b := range before {
		if a := after[id]; fmt.Sprint(recOf(a)) != fmt.Sprint(recOf(b)) || (a == nil) != (b == nil) || (a != nil && a.Rec.Version != b.Rec.Version) {
			t.Fatalf("forged kickback %+v changed %s: %+v -> %+v", k, id, recOf(b), recOf(a))
		}
	}
	if evAfter := m.events(t); evAfter != evBefore {
		t.Fatalf("forged kickback %+v added events: %d -> %d", k, evBefore, evAfter)
	}
}

// events counts the outbox.
func (m *model) events(t *rapid.T) int {
	evs, err := m.st.DueEvents(m.ctx, m.clock.AddDate(10, 0, 0), 100000)
	if err != nil {
		t.Fatalf("outbox: %v", err)
	}
	return len(evs)
}

func (m *model) snapshot(t *rapid.T) map[string]*Entry {
	out := map[string]*Entry{}
	for _, id := range m.ids() {
		out[id] = m.get(t, id)
	}
	return out
}

type recView struct {
	ID, Status, Op, Unconfirmed, LinkedID string
	Lease                                 string
	Version                               int64
	Pay                                   string
}

func recOf(e *Entry) *recView {
	if e == nil || e.Rec == nil {
		return nil
	}
	v := &recView{ID: e.Rec.ID, Status: e.Rec.Status, Op: e.Rec.Op, Unconfirmed: e.Rec.Unconfirmed, LinkedID: e.Rec.LinkedID, Version: e.Rec.Version, Pay: payStr(e.Pay)}
	if e.Rec.Lease != nil {
		v.Lease = e.Rec.Lease.Op + "@" + e.Rec.Lease.Until.Format(time.TimeOnly)
	}
	return v
}

// --- invariants ---

func (m *model) check(t *rapid.T) {
	// 1. Begin serializes: one operation per record, holding its lease.
	held := map[string]*mTicket{}
	for _, tk := range m.inflight {
		if h := held[tk.id]; h != nil {
			t.Fatalf("two operations hold %s: %s and %s", tk.id, h.name, tk.name)
		}
		held[tk.id] = tk
		e := m.get(t, tk.id)
		if e == nil || !tk.t.holds(e) {
			t.Fatalf("operation %s in flight on %s lost its lease: %+v", tk.name, tk.id, recOf(e))
		}
	}
	now := m.snapshot(t)
	// 2. An unleased, confirmed payment record says what the gateway did.
	for _, gid := range append(slices.Clone(m.gids), m.fakes...) {
		e := now[gidRecID(gid)]
		if e == nil {
			continue
		}
		g := m.gw[gid]
		if g == nil {
			t.Fatalf("record %s names a payment the gateway never made: %+v", gidRecID(gid), recOf(e))
		}
		if e.Rec.Lease != nil || e.Rec.Unconfirmed != "" {
			continue
		}
		st := e.Rec.Status
		want := statusOf(g.status)
		switch {
		case g.status == gCancel && g.tainted:
			if st != normalize.StatusVoided && st != normalize.StatusRefunded {
				t.Fatalf("record %s is %s, the gateway canceled it: %+v", e.Rec.ID, st, recOf(e))
			}
		case g.status == gCancel:
			want = normalize.StatusVoided
			if g.wasCaptured {
				want = normalize.StatusRefunded
			}
			fallthrough
		default:
			if st != want {
				t.Fatalf("record %s is %s, the gateway says %s (captured before: %v, tainted: %v): %+v", e.Rec.ID, st, g.status, g.wasCaptured, g.tainted, recOf(e))
			}
		}
		if e.Pay == nil || e.Pay.Amount != g.am || e.Pay.Tax != g.tx || e.Pay.Shipping != g.sf {
			t.Fatalf("record %s amounts %v differ from the gateway's %d+%d+%d", e.Rec.ID, payStr(e.Pay), g.am, g.tx, g.sf)
		}
	}
	// 3. Only legal moves; a canceled payment stays canceled.
	for id, e := range now {
		prev := m.last[id]
		switch {
		case e == nil && prev != nil:
			t.Fatalf("record %s disappeared", id)
		case e == nil:
			continue
		}
		from := ""
		if prev != nil {
			from = prev.Status
		}
		if to := e.Rec.Status; from != to {
			if !Legal(from, to, FromProvider) {
				t.Fatalf("record %s moved %q -> %q, not a legal move", id, from, to)
			}
			if from == normalize.StatusVoided || from == normalize.StatusRefunded {
				t.Fatalf("record %s moved from %s to %s", id, from, to)
			}
		}
		m.last[id] = e.Rec
	}
	// 4. Never two charges for one order.
	liveBy, createdBy := map[string][]string{}, map[string][]string{}
	for _, gid := range m.gids {
		g := m.gw[gid]
		if g.live() {
			liveBy[g.order] = append(liveBy[g.order], gid)
		}
		if g.fromCreate && g.status != gFailed {
			createdBy[g.order] = append(createdBy[g.order], gid)
		}
	}
	for _, o := range mOrders {
		if len(liveBy[o]) > 1 || len(createdBy[o]) > 1 {
			t.Fatalf("order %s charged twice: live gids %v, created gids %v", o, liveBy[o], createdBy[o])
		}
	}
	for _, o := range mOrders {
		e := now[orderRecID(o)]
		if e == nil {
			continue
		}
		// 5. An order record's link leads to its payment.
		if e.Rec.LinkedID != "" {
			p := now[e.Rec.LinkedID]
			if p == nil && !m.dangling[e.Rec.LinkedID] && !slices.ContainsFunc(m.redeliver, func(k kick) bool { return gidRecID(k.gid) == e.Rec.LinkedID }) {
				t.Fatalf("order record %s links %s, which is missing", e.Rec.ID, e.Rec.LinkedID)
			}
			if p != nil && (p.Pay == nil || p.Pay.OrderID != o) {
				t.Fatalf("order record %s links %s of another order: %+v", e.Rec.ID, e.Rec.LinkedID, recOf(p))
			}
		}
		// A failed order may be tried again: the gateway must hold no
		// charge for it.
		if e.Rec.Status == normalize.StatusFailed && len(createdBy[o]) > 0 {
			t.Fatalf("order record %s is failed, but the gateway charged gid %v", e.Rec.ID, createdBy[o])
		}
	}
}

// --- stores and the test ---

type storeLeg struct {
	name string
	open func(t *rapid.T) store.Store
}

func redisAddr() string { return "127.0.0.1:6379" }

func modelLegs(tt *testing.T) []storeLeg {
	dir := tt.TempDir()
	var n atomic.Int64
	legs := []storeLeg{
		{"memory", func(*rapid.T) store.Store { return store.NewMemory() }},
		{"bolt", func(t *rapid.T) store.Store {
			s, err := bolt.Open(filepath.Join(dir, fmt.Sprintf("m%d.db", n.Add(1))), time.Second)
			if err != nil {
				t.Fatalf("bolt: %v", err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}},
		{"journal", func(t *rapid.T) store.Store {
			// Compacting every few KiB, so snapshots happen mid-run, and
			// keeping 3 records decoded, so most reads go to the file.
			s, err := journal.Open(filepath.Join(dir, fmt.Sprintf("m%d.journal", n.Add(1))), journal.Options{Timeout: time.Second, CompactAt: 8 << 10, Hot: 3})
			if err != nil {
				t.Fatalf("journal: %v", err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	probe := goredis.NewClient(&goredis.Options{Addr: redisAddr()})
	if err := probe.Ping(ctx).Err(); err != nil {
		probe.Close()
		tt.Logf("no Redis answers on %s (%v): the redis leg is skipped", redisAddr(), err)
		return legs
	}
	tt.Cleanup(func() { probe.Close() })
	return append(legs, storeLeg{"redis", func(t *rapid.T) store.Store {
		var b [6]byte
		_, _ = rand.Read(b[:])
		prefix := "{pn-model-" + hex.EncodeToString(b[:]) + "}:"
		s, err := redis.Open(context.Background(), redis.Options{Addrs: []string{redisAddr()}, Prefix: prefix})
		if err != nil {
			t.Fatalf("redis: %v", err)
		}
		t.Cleanup(func() {
			bg := context.Background()
			if keys, _ := probe.Keys(bg, prefix+"*").Result(); len(keys) > 0 {
				probe.Del(bg, keys...)
			}
			s.Close()
		})
		return s
	}})
}

func TestLedgerModel(t *testing.T) {
	was := incarnation
	t.Cleanup(func() { incarnation = was })
	for _, leg := range modelLegs(t) {
		// The memory store is cheap: it runs longer sequences (Repeat
		// again on the same state), which the interleavings with a crash
		// between two writes need, and more rounds of rapid's checks.
		rounds, repeats := 1, 1
		if leg.name == "memory" {
			rounds, repeats = 2, 3
		}
		prop := func(rt *rapid.T) {
			m := newModel(leg.open(rt))
			rt.Cleanup(func() {
				for _, tk := range m.inflight {
					tk.t.unlock()
				}
			})
			actions := map[string]func(*rapid.T){
				"beginCreate":    m.beginCreate,
				"beginFollowUp":  m.beginFollowUp,
				"send":           m.send,
				"finish":         m.finish,
				"crash":          m.crash,
				"resolverPass":   func(t *rapid.T) { m.logf(t, "resolver pass"); m.resolverPass(t) },
				"kickbackTrue":   m.kickbackTrue,
				"kickbackForged": m.kickbackForged,
				"advanceClock":   m.advanceClock,
				"redeliver":      m.redeliverKickback,
				"storeFault":     m.storeFault,
				"restart":        m.restart,
				"":               m.check,
			}
			for range repeats {
				rt.Repeat(actions)
			}
		}
		t.Run(leg.name, func(t *testing.T) {
			for range rounds {
				rapid.Check(t, prop) // stops the test at the first failure
			}
		})
	}
}

// TestLegalMoves spot-checks the state machine's data.
func TestLegalMoves(t *testing.T) {
	for _, c := range []struct {
		from, to string
		src      Source
		want     bool
	}{
		{normalize.StatusCaptured, normalize.StatusAuthorized, FromOperation, false},
		{normalize.StatusCaptured, normalize.StatusAuthorized, FromClaim, false},
		{normalize.StatusVoided, normalize.StatusCaptured, FromClaim, false},
		{"", normalize.StatusAuthorized, FromClaim, false},
		{normalize.StatusPending, normalize.StatusUnknown, FromOperation, true},
		{normalize.StatusAuthorized, normalize.StatusRefunded, FromOperation, true},
		{normalize.StatusAuthorized, normalize.StatusRefunded, FromClaim, false},
		{normalize.StatusUnknown, normalize.StatusCaptured, FromClaim, true},
		{normalize.StatusFailed, normalize.StatusPending, FromOperation, true},
		{normalize.StatusVoided, normalize.StatusPending, FromProvider, false},
		{normalize.StatusCaptured, normalize.StatusCaptured, fromClaimedOrder, true},
		{normalize.StatusPending, normalize.StatusCaptured, fromClaimedOrder, false},
	} {
		if got := Legal(c.from, c.to, c.src); got != c.want {
			t.Errorf("Legal(%q, %q, %s) = %v, want %v", c.from, c.to, c.src, got, c.want)
		}
	}
}
