package sandbox

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/paynorm/paynorm/providers/jpayment"
)

// JPaymentDeclines maps each GMO decline of Declines to the j-payment code
// of the same meaning, so a magic token declines alike on both simulators.
// GMO's 42G02 (残高不足) corresponds to j-payment's G04 (残高不足) code.
var JPaymentDeclines = map[string]string{
	"42G020000": "G0442G040000",
	"42G550000": "G5542G550000",
	"42G120000": "G1242G120000",
	"42G830000": "G8342G830000",
	"42G440000": "G4442G440000",
	"EX1000303": "ER585", // token expired
}

// code503 makes the simulator answer HTTP 503 without processing.
const code503 = "503"

type jpay struct {
	gid, god, ap, cod, job, status string
	am, tx, sf                     int64
	created                        time.Time
}

// JPayment simulates ROBOT PAYMENT's gateway on /gateway/gateway_token.aspx,
// /gateway/gateway.aspx and /gateway/re_auth.aspx, with the GMO simulator's
// magic tokens. Control: POST /gateway/sandbox/kickback sends a kickback.
type JPayment struct {
	// KickbackURL receives rt=0 notifications (GET with URL parameters).
	KickbackURL string
	// AllowedIP, when set, is the only source address accepted; any other
	// gets ER:ER003 like an unregistered merchant server.
	AllowedIP string
	// ReauthLimit is the card limit re-authorizations are checked against:
	// a larger total declines with G55 (default 1,000,000 yen).
	ReauthLimit int64
	// SlowDelay is how long TokSlow answers take (default 3s).
	SlowDelay time.Duration
	// Now is the simulator clock.
	Now func() time.Time
	// Client sends kickbacks.
	Client *http.Client

	mu        sync.Mutex
	payments  map[string]*jpay
	seq       atomic.Int64
	faults    faultQueue
	kickbacks atomic.Int64
	calls     sync.Map
}

// NewJPayment builds an empty simulator.
func NewJPayment() *JPayment {
	j := &JPayment{payments: map[string]*jpay{}, ReauthLimit: 1_000_000, SlowDelay: 3 * time.Second, Now: time.Now,
		Client: &http.Client{Timeout: 10 * time.Second}}
	j.seq.Store(1095728)
	return j
}

// Status is the ledger status of a gid ("" when unknown).
func (j *JPayment) Status(gid string) (status string, total int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if p := j.payments[gid]; p != nil {
		return p.status, p.am + p.tx + p.sf
	}
	return "", 0
}

// Calls reports how many requests api received ("gateway_token", "gateway", "re_auth").
func (j *JPayment) Calls(api string) int64 {
	v, ok := j.calls.Load(api)
	if !ok {
		return 0
	}
	return v.(*atomic.Int64).Load()
}

// Kickbacks counts kickbacks the receiver acknowledged.
func (j *JPayment) Kickbacks() int64 { return j.kickbacks.Load() }

// InjectFault queues a fault for "gateway_token", "gateway" or "re_auth".
func (j *JPayment) InjectFault(f Fault) { j.faults.Inject(f) }

// ServeHTTP answers one gateway request (GET or POST, like the real one).
func (j *JPayment) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	api := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/gateway/"), ".aspx")
	if r.URL.Path == "/gateway/sandbox/kickback" {
		j.controlKickback(w, r)
		return
	}
	v, _ := j.calls.LoadOrStore(api, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
	if f, ok := j.faults.take(api); ok {
		if f.Kind == FaultMaintenance {
			j.write(w, "ER:ER999")
			return
		}
		if f.before(w) {
			return
		}
	}
	if j.AllowedIP != "" {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		if host != j.AllowedIP {
			j.write(w, "ER:ER003")
			return
		}
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		j.write(w, "ER:ER107")
		return
	}
	if err := r.ParseForm(); err != nil {
		j.write(w, "ER:ER001")
		return
	}
	f := r.Form
	if aid := f.Get("aid"); aid == "" || !allDigits(aid) || len(aid) > 10 {
		j.write(w, "ER:ER050")
		return
	}
	rt := f.Get("rt")
	if rt != "0" && rt != "1" {
		j.write(w, "ER:ER052")
		return
	}
	var res *jpayment.Result
	var code string
	var after func()
	switch api {
	case "gateway_token":
		res, code, after = j.token(f)
	case "gateway":
		res, code = j.gateway(f)
	case "re_auth":
		res, code = j.reauth(f)
	default:
		http.NotFound(w, r)
		return
	}
	if after != nil {
		after()
	}
	var body string
	switch {
	case code == code503:
		http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
		return
	case code == "" && api == "gateway_token" && magic(f.Get("tkn")) == TokBadCheck:
		body = "<html><body>Runtime Error</body></html>" // charged, garbled answer
	case code != "":
		body = "ER:" + code
	default:
		body = string(jpayment.EncodeResult(res))
	}
	if rt == "0" && api == "gateway_token" && res != nil {
		go j.SendKickback(context.Background(), kickbackValues(res))
	}
	if fl, ok := j.faults.takeAfter(api); ok {
		fl.after(w, []byte(body+"\r\n"))
		return
	}
	j.write(w, body)
}

func (j *JPayment) write(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "text/html; charset=Shift_JIS")
	_, _ = w.Write([]byte(body + "\r\n")) // the gateway ends lines with CRLF
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// amounts reads am/tx/sf; bad ones give their ER code.
func amounts(f url.Values, check bool) (am, tx, sf int64, code string) {
	for _, a := range []struct {
		key, code string
		dst       *int64
	}{{"am", "ER061", &am}, {"tx", "ER062", &tx}, {"sf", "ER063", &sf}} {
		s := f.Get(a.key)
		if s == "" && !check {
			continue
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 || n > 9999999 {
			return 0, 0, 0, a.code
		}
		*a.dst = n
	}
	return am, tx, sf, ""
}

func (j *JPayment) nextGID() string { return strconv.FormatInt(j.seq.Add(1), 10) }

func (j *JPayment) result(p *jpay, rst, ec string) *jpayment.Result {
	return &jpayment.Result{GID: p.gid, Rst: rst, Ap: p.ap, Ec: ec, God: p.god, Cod: p.cod, Am: itoa(p.am), Tx: itoa(p.tx), Sf: itoa(p.sf), Ta: itoa(p.am + p.tx + p.sf)}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func (j *JPayment) token(f url.Values) (*jpayment.Result, string, func()) {
	job := f.Get("jb")
	switch job {
	case "AUTH", "CAPTURE", "CHECK":
	default:
		return nil, "ER051", nil
	}
	switch {
	case f.Get("cn") != "":
		return nil, "ER586", nil
	case f.Get("tkn") == "":
		return nil, "ER583", nil
	case f.Get("em") == "" && f.Get("pn") == "":
		return nil, "ER059", nil
	case len(f.Get("cod")) > 50:
		return nil, "ER054", nil
	case f.Get("pn") != "" && (!allDigits(f.Get("pn")) || len(f.Get("pn")) > 15):
		return nil, "ER060", nil
	}
	am, tx, sf, code := amounts(f, true)
	if code != "" {
		return nil, code, nil
	}
	if job == "CHECK" && am+tx+sf != 0 || job != "CHECK" && am < 1 {
		return nil, "ER061", nil
	}
	var after func()
	m := magic(f.Get("tkn"))
	if info, ok := Declines[m]; ok {
		jc := JPaymentDeclines[info]
		if strings.HasPrefix(jc, "ER") {
			return nil, jc, nil
		}
		p := &jpay{gid: j.nextGID(), cod: f.Get("cod"), job: job, status: "FAILED", am: am, tx: tx, sf: sf, created: j.Now()}
		j.mu.Lock()
		j.payments[p.gid] = p
		j.mu.Unlock()
		return j.result(p, "2", jc), "", nil
	}
	switch m {
	case TokE90:
		return nil, "ER010", nil
	case TokE91:
		return nil, "ER000", nil
	case TokMaintenance:
		return nil, "ER999", nil
	case Tok5xx:
		return nil, code503, nil
	case TokSlow:
		d := j.SlowDelay
		after = func() { time.Sleep(d) }
	default:
		if _, ok := TestCards[m]; !ok && m != TokBadCheck {
			return nil, "ER584", nil
		}
	}
	now := j.Now()
	p := &jpay{gid: j.nextGID(), cod: f.Get("cod"), job: job, status: job, am: am, tx: tx, sf: sf, created: now}
	p.god = strconv.FormatInt(200000+j.seq.Load(), 10)
	p.ap = strconv.Itoa(1000000 + int(j.seq.Load()%9000000))
	j.mu.Lock()
	j.payments[p.gid] = p
	j.mu.Unlock()
	res := j.result(p, "1", "")
	var extra []string
	for _, k := range []string{"client_field_1", "client_field_2", "client_field_3"} {
		if v := f.Get(k); v != "" {
			extra = append(extra, k+"="+v)
		}
	}
	res.Extra = strings.Join(extra, "&")
	return res, "", after
}

// gateway runs the follow-up jobs: SALES only on an AUTH, CANCEL once.
func (j *JPayment) gateway(f url.Values) (*jpayment.Result, string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	p := j.payments[f.Get("tid")]
	switch jb := f.Get("jb"); {
	case jb != "SALES" && jb != "CANCEL":
		return nil, "ER051"
	case f.Get("tid") == "" || p == nil:
		return nil, "ER053"
	case jb == "SALES":
		if p.status != "AUTH" {
			return nil, "ER032"
		}
		p.status = "SALES"
	default:
		switch p.status {
		case "AUTH", "CAPTURE", "SALES":
			p.status = "CANCEL"
		default:
			return nil, "ER033"
		}
	}
	return j.result(p, "1", ""), ""
}

// reauth cancels the payment and authorizes the new amount under a new
// gid; it declines over ReauthLimit and leaves the original untouched.
func (j *JPayment) reauth(f url.Values) (*jpayment.Result, string) {
	am, tx, sf, code := amounts(f, true)
	if code != "" {
		return nil, code
	}
	if am < 1 {
		return nil, "ER061"
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	old := j.payments[f.Get("tid")]
	if old == nil {
		return nil, "ER053"
	}
	switch old.status {
	case "AUTH", "CAPTURE", "SALES":
	default:
		return nil, "ER030"
	}
	if !jpayment.ReauthWindowOK(old.created, j.Now()) {
		return nil, "ER030"
	}
	if am+tx+sf > j.ReauthLimit {
		failed := &jpay{gid: j.nextGID(), cod: old.cod, job: old.job, status: "FAILED", am: am, tx: tx, sf: sf, created: j.Now()}
		j.payments[failed.gid] = failed
		return j.result(failed, "2", "G5542G550000"), ""
	}
	next := &jpay{gid: j.nextGID(), cod: old.cod, job: old.job, status: old.status, am: am, tx: tx, sf: sf, created: j.Now()}
	if next.status == "SALES" {
		next.status = "CAPTURE"
	}
	next.god = strconv.FormatInt(200000+j.seq.Load(), 10)
	next.ap = strconv.Itoa(1000000 + int(j.seq.Load()%9000000))
	old.status = "CANCEL"
	j.payments[next.gid] = next
	return j.result(next, "1", ""), ""
}

func kickbackValues(r *jpayment.Result) url.Values {
	v := url.Values{}
	for _, kv := range [][2]string{{"gid", r.GID}, {"rst", r.Rst}, {"ap", r.Ap}, {"ec", r.Ec}, {"god", r.God}, {"cod", r.Cod}, {"am", r.Am}, {"tx", r.Tx}, {"sf", r.Sf}, {"ta", r.Ta}} {
		v.Set(kv[0], kv[1])
	}
	return v
}

// SendKickback sends one rt=0 notification to KickbackURL, retrying a few
// times while the receiver answers an error or an empty body (j-payment
// judges success by a non-empty answer). It reports whether it was taken.
func (j *JPayment) SendKickback(ctx context.Context, v url.Values) bool {
	if j.KickbackURL == "" {
		return false
	}
	sep := "?"
	if strings.Contains(j.KickbackURL, "?") {
		sep = "&"
	}
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			case <-ctx.Done():
				return false
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.KickbackURL+sep+v.Encode(), nil)
		if err != nil {
			return false
		}
		resp, err := j.Client.Do(req)
		if err != nil {
			continue
		}
		var buf [1]byte
		n, _ := resp.Body.Read(buf[:])
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && n > 0 {
			j.kickbacks.Add(1)
			return true
		}
	}
	return false
}

// controlKickback sends a kickback for a known gid, or any parameters given
// (recurring notices: rst 3/4/5 with acid), so tests and users can drive
// the receiver. Form: gid, and optionally rst and other kickback fields.
func (j *JPayment) controlKickback(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		http.Error(w, "POST a form with gid and optional rst, acid, ec", http.StatusBadRequest)
		return
	}
	v := url.Values{}
	j.mu.Lock()
	if p := j.payments[r.Form.Get("gid")]; p != nil {
		rst := "1"
		if p.status == "FAILED" {
			rst = "2"
		}
		v = kickbackValues(j.result(p, rst, ""))
	}
	j.mu.Unlock()
	for k, vals := range r.Form {
		v[k] = vals
	}
	if v.Get("gid") == "" || v.Get("rst") == "" {
		http.Error(w, "unknown gid: give gid and rst", http.StatusBadRequest)
		return
	}
	if !j.SendKickback(r.Context(), v) {
		http.Error(w, "the kickback receiver did not acknowledge", http.StatusBadGateway)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
