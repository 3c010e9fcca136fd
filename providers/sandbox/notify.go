package sandbox

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/text/encoding/japanese"
)

// GMO's result notification (結果通知プログラム), as the wire facts
// describe it: after a payment changes, GMO POSTs a Shift_JIS form to the
// URL the shop registered, with the passwords masked, and expects the body
// "0"; anything else is sent again (GMO: about hourly, up to 5 times; here
// every NotifyRetry). It carries no signature. The simulator sends one
// after ExecTran and SecureTran2 charge, after a failed SecureTran2, and
// after AlterTran.

// notifyAttempts is the first sending plus GMO's 5 resends.
const notifyAttempts = 6

// Notice is one result notification the simulator sent (or is sending).
type Notice struct {
	OrderID, Status string
	// Body is the form as sent (Shift_JIS, percent-encoded).
	Body string
	// Attempts counts the POSTs so far; Delivered is set once one was
	// answered "0"; Answer is the last answer's body.
	Attempts  int
	Delivered bool
	Answer    string
}

type notifier struct {
	mu   sync.Mutex
	url  string
	sent []*Notice
}

// SetNotifyURL sets where result notifications go ("" sends none).
func (g *GMO) SetNotifyURL(u string) {
	g.notify.mu.Lock()
	g.notify.url = u
	g.notify.mu.Unlock()
}

// Notices lists the result notifications sent so far, oldest first.
func (g *GMO) Notices() []Notice {
	g.notify.mu.Lock()
	defer g.notify.mu.Unlock()
	out := make([]Notice, len(g.notify.sent))
	for i, n := range g.notify.sent {
		out[i] = *n
	}
	return out
}

// notifyTrade notifies a trade's new state (the caller holds g.mu).
func (g *GMO) notifyTrade(t *trade, job string) { g.notifyForm(t, job, "", "") }

// notifyError notifies a refused call on a trade (the caller holds g.mu).
func (g *GMO) notifyError(t *trade, info string) {
	g.notifyForm(t, t.job, info[:3], info)
}

func (g *GMO) notifyForm(t *trade, job, errCode, errInfo string) {
	g.notify.mu.Lock()
	target := g.notify.url
	g.notify.mu.Unlock()
	if target == "" {
		return
	}
	tranDate := ""
	if !t.executed.IsZero() {
		tranDate = t.processed.In(jst).Format("20060102150405")
	}
	pairs := []kv{{"ShopID", t.shopID}, {"ShopPass", "**********"}, {"AccessID", t.accessID},
		{"AccessPass", strings.Repeat("*", len(t.access))}, {"OrderID", t.orderID}, {"Status", t.status},
		{"JobCd", job}, {"Amount", strconv.FormatInt(t.amount, 10)}, {"Tax", strconv.FormatInt(t.tax, 10)},
		{"Currency", "JPN"}, {"Forward", t.forward}, {"Method", t.method}, {"PayTimes", t.payTimes},
		{"TranID", t.tranID}, {"Approve", t.approve}, {"TranDate", tranDate}, {"ErrCode", errCode},
		{"ErrInfo", errInfo}, {"PayType", "0"}}
	n := &Notice{OrderID: t.orderID, Status: t.status, Body: string(sjisForm(pairs))}
	g.notify.mu.Lock()
	g.notify.sent = append(g.notify.sent, n)
	g.notify.mu.Unlock()
	retry := g.NotifyRetry
	go g.deliver(target, n, retry)
}

var notifyClient = &http.Client{Timeout: 10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// deliver POSTs one notification until it is answered "0".
func (g *GMO) deliver(target string, n *Notice, retry time.Duration) {
	for attempt := 1; attempt <= notifyAttempts; attempt++ {
		answer, ok := postNotice(target, n.Body)
		g.notify.mu.Lock()
		n.Attempts, n.Answer, n.Delivered = attempt, answer, ok
		g.notify.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(retry)
	}
}

func postNotice(target, body string) (string, bool) {
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		return err.Error(), false
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=Windows-31J")
	resp, err := notifyClient.Do(req)
	if err != nil {
		return err.Error(), false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	answer := strings.TrimSpace(string(b))
	return answer, resp.StatusCode/100 == 2 && answer == "0"
}

// sjisForm form-encodes pairs in order, values in Shift_JIS.
func sjisForm(pairs []kv) []byte {
	var b bytes.Buffer
	enc := japanese.ShiftJIS.NewEncoder()
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		v, err := enc.String(p.v)
		if err != nil {
			v = p.v
		}
		for j := 0; j < len(v); j++ {
			c := v[j]
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == '*':
				b.WriteByte(c)
			case c == ' ':
				b.WriteByte('+')
			default:
				b.WriteString("%" + strings.ToUpper(strconv.FormatUint(uint64(c)>>4, 16)+strconv.FormatUint(uint64(c)&15, 16)))
			}
		}
	}
	return b.Bytes()
}
