package sandbox

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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

// jpResult is one rt=1 answer line: the connection spec's 13 positional
// fields (p.9), the last one the free data echoed.
type jpResult struct {
	gid, rst, ap, ec, god, cod, am, tx, sf, ta, id, ps, extra string
}

// line renders the answer: one comma-separated line, no keys.
func (r *jpResult) line() string {
	return strings.Join([]string{r.gid, r.rst, r.ap, r.ec, r.god, r.cod, r.am, r.tx, r.sf, r.ta, r.id, r.ps, r.extra}, ",")
}

// param is one request parameter in the order it was sent.
type param struct{ k, v string }

// form is a request's parameters: by name, and in order for the echo of
// free data.
type form struct {
	url.Values
	order []param
}

// readForm reads a GET query or a POST form body, keeping the order.
func readForm(r *http.Request) (*form, error) {
	raw := r.URL.RawQuery
	if r.Method == http.MethodPost {
		b, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			return nil, err
		}
		if raw != "" && len(b) > 0 {
			raw += "&"
		}
		raw += string(b)
	}
	f := &form{Values: url.Values{}}
	for _, piece := range strings.Split(raw, "&") {
		if piece == "" {
			continue
		}
		k, v, _ := strings.Cut(piece, "=")
		ku, err1 := url.QueryUnescape(k)
		vu, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			return nil, err1
		}
		f.Add(ku, vu)
		f.order = append(f.order, param{ku, vu})
	}
	return f, nil
}

// freeData is the echo of every parameter the endpoint does not know, as
// key=value in request order (billing-robo's CHECK sample echoes
// memo=goods-code-01 in the 13th field).
func (f *form) freeData(known ...string) string {
	var out []string
	for _, p := range f.order {
		isKnown := false
		for _, k := range known {
			if p.k == k {
				isKnown = true
				break
			}
		}
		if !isKnown {
			out = append(out, p.k+"="+p.v)
		}
	}
	return strings.Join(out, "&")
}

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
	f, err := readForm(r)
	if err != nil {
		j.write(w, "ER:ER001")
		return
	}
	if aid := f.Get("aid"); aid == "" || !digits(aid, 1, 10) {
		j.write(w, "ER:ER050")
		return
	}
	rt := f.Get("rt")
	if rt != "0" && rt != "1" {
		j.write(w, "ER:ER052")
		return
	}
	var res *jpResult
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
		body = res.line()
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

// amounts reads am/tx/sf; bad ones give their ER code.
func amounts(f *form) (am, tx, sf int64, code string) {
	for _, a := range []struct {
		key, code string
		dst       *int64
	}{{"am", "ER061", &am}, {"tx", "ER062", &tx}, {"sf", "ER063", &sf}} {
		n, err := strconv.ParseInt(f.Get(a.key), 10, 64)
		if err != nil || n < 0 || n > 9999999 {
			return 0, 0, 0, a.code
		}
		*a.dst = n
	}
	return am, tx, sf, ""
}

// contactOK checks em/pn: one of them on gateway_token, either optional
// on re_auth.
func contactOK(f *form, required bool) string {
	switch {
	case required && f.Get("em") == "" && f.Get("pn") == "":
		return "ER059"
	case len(f.Get("em")) > 254 || f.Get("em") != "" && !strings.Contains(f.Get("em"), "@"):
		return "ER059"
	case f.Get("pn") != "" && !digits(f.Get("pn"), 1, 15):
		return "ER060"
	}
	return ""
}

func (j *JPayment) nextGID() string { return strconv.FormatInt(j.seq.Add(1), 10) }

func (j *JPayment) result(p *jpay, rst, ec string) *jpResult {
	return &jpResult{gid: p.gid, rst: rst, ap: p.ap, ec: ec, god: p.god, cod: p.cod, am: itoa(p.am), tx: itoa(p.tx), sf: itoa(p.sf), ta: itoa(p.am + p.tx + p.sf)}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// Parameters gateway_token knows; anything else is free data.
var tokenParams = []string{"aid", "jb", "rt", "cod", "tkn", "em", "pn", "am", "tx", "sf", "iid"}

// checkParams are what its CHECK takes (token spec p.8: no am, tx, sf).
var checkParams = []string{"aid", "jb", "rt", "cod", "tkn", "em", "pn"}

func (j *JPayment) token(f *form) (*jpResult, string, func()) {
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
	case len(f.Get("cod")) > 50:
		return nil, "ER054", nil
	}
	if code := contactOK(f, true); code != "" {
		return nil, code, nil
	}
	var am, tx, sf int64
	known := tokenParams
	if job == "CHECK" {
		// A 0 yen check: am, tx and sf are not CHECK parameters, so they
		// would be echoed as free data, and the answer's amounts are 0.
		known = checkParams
	} else {
		var code string
		if am, tx, sf, code = amounts(f); code != "" {
			return nil, code, nil
		}
		if am < 1 {
			return nil, "ER061", nil
		}
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
		res := j.result(p, "2", jc)
		res.extra = f.freeData(known...)
		return res, "", nil
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
	p := j.charge(f.Get("cod"), job, job, am, tx, sf)
	res := j.result(p, "1", "")
	res.extra = f.freeData(known...)
	return res, "", after
}

// charge books a successful payment. In test mode the approval number is
// "TestMod" (the spec's sample answer and recorded test-mode kickbacks).
func (j *JPayment) charge(cod, job, status string, am, tx, sf int64) *jpay {
	p := &jpay{gid: j.nextGID(), cod: cod, job: job, status: status, am: am, tx: tx, sf: sf, created: j.Now(), ap: "TestMod"}
	p.god = strconv.FormatInt(200000+j.seq.Load(), 10)
	j.mu.Lock()
	j.payments[p.gid] = p
	j.mu.Unlock()
	return p
}

// gateway runs the follow-up jobs: SALES only on an AUTH, CANCEL once.
func (j *JPayment) gateway(f *form) (*jpResult, string) {
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
	res := j.result(p, "1", "")
	res.extra = f.freeData("aid", "jb", "rt", "tid")
	return res, ""
}

// reauthWindowOK: re-authorization takes payments of this or the previous
// month, in Japan time (seed 002: 前月または当月分の決済情報).
func reauthWindowOK(created, now time.Time) bool {
	m := monthsBetween(created, now)
	return m == 0 || m == 1
}

// reauth cancels the payment and authorizes the new amount under a new gid
// (seed 002: 対象の決済の取消を行い、金額を訂正して決済をする). The new
// authorization can fail although the original succeeded; the original is
// canceled by then. It declines over ReauthLimit.
func (j *JPayment) reauth(f *form) (*jpResult, string) {
	am, tx, sf, code := amounts(f)
	if code != "" {
		return nil, code
	}
	if am < 1 {
		return nil, "ER061"
	}
	if code := contactOK(f, false); code != "" {
		return nil, code
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
	if !reauthWindowOK(old.created, j.Now()) {
		return nil, "ER030"
	}
	known := []string{"aid", "rt", "tid", "am", "tx", "sf", "em", "pn"}
	status := old.status // the new authorization keeps the capture state
	if status == "SALES" {
		status = "CAPTURE"
	}
	old.status = "CANCEL" // canceled first, then authorized again
	if am+tx+sf > j.ReauthLimit {
		failed := &jpay{gid: j.nextGID(), cod: old.cod, job: old.job, status: "FAILED", am: am, tx: tx, sf: sf, created: j.Now()}
		j.payments[failed.gid] = failed
		res := j.result(failed, "2", "G5542G550000")
		res.extra = f.freeData(known...)
		return res, ""
	}
	next := &jpay{gid: j.nextGID(), cod: old.cod, job: old.job, status: status, am: am, tx: tx, sf: sf, created: j.Now(), ap: "TestMod"}
	next.god = strconv.FormatInt(200000+j.seq.Load(), 10)
	j.payments[next.gid] = next
	res := j.result(next, "1", "")
	res.extra = f.freeData(known...)
	return res, ""
}

// kickbackValues is the rt=0 notification of an answer, in the spec's
// order (gid rst ap ec god cod am tx sf ta), empty values as "ec=".
func kickbackValues(r *jpResult) []param {
	out := []param{{"gid", r.gid}, {"rst", r.rst}, {"ap", r.ap}, {"ec", r.ec}, {"god", r.god}, {"cod", r.cod},
		{"am", r.am}, {"tx", r.tx}, {"sf", r.sf}, {"ta", r.ta}}
	if r.extra != "" {
		for _, kv := range strings.Split(r.extra, "&") {
			k, v, _ := strings.Cut(kv, "=")
			out = append(out, param{k, v})
		}
	}
	return out
}

func encodeQuery(ps []param) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = url.QueryEscape(p.k) + "=" + url.QueryEscape(p.v)
	}
	return strings.Join(parts, "&")
}

// SendKickback sends one rt=0 notification to KickbackURL as a GET with
// URL parameters in the spec's order, retrying a few times while the
// receiver answers an empty body: j-payment judges delivery by a non-empty
// answer, whatever the status (seed 002: ContentLengthが0以上が出力される
// よう). It reports whether it was taken.
func (j *JPayment) SendKickback(ctx context.Context, ps []param) bool {
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
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.KickbackURL+sep+encodeQuery(ps), nil)
		if err != nil {
			return false
		}
		resp, err := j.Client.Do(req)
		if err != nil {
			continue
		}
		var buf [1]byte
		n, _ := io.ReadFull(resp.Body, buf[:])
		resp.Body.Close()
		if n > 0 {
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
	var ps []param
	j.mu.Lock()
	if p := j.payments[r.Form.Get("gid")]; p != nil {
		rst := "1"
		if p.status == "FAILED" {
			rst = "2"
		}
		ps = kickbackValues(j.result(p, rst, ""))
	}
	j.mu.Unlock()
	for k, vals := range r.Form {
		replaced := false
		for i := range ps {
			if ps[i].k == k {
				ps[i].v, replaced = vals[0], true
			}
		}
		if !replaced {
			ps = append(ps, param{k, vals[0]})
		}
	}
	get := func(k string) string {
		for _, p := range ps {
			if p.k == k {
				return p.v
			}
		}
		return ""
	}
	if get("gid") == "" || get("rst") == "" {
		http.Error(w, "unknown gid: give gid and rst", http.StatusBadRequest)
		return
	}
	if !j.SendKickback(r.Context(), ps) {
		http.Error(w, "the kickback receiver did not acknowledge", http.StatusBadGateway)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
