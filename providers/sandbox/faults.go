package sandbox

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Fault kinds a test (or a curious user) can queue for the next calls of an
// API through POST /sandbox/faults.
const (
	FaultDelay       = "delay"        // wait Delay, then process normally
	Fault5xx         = "5xx"          // answer 503 without processing
	FaultMaintenance = "maintenance"  // answer E91099996 without processing
	FaultReset       = "reset"        // drop the connection without processing
	FaultCommitHang  = "commit_hang"  // process (money moves), then answer after Delay
	FaultCommitReset = "commit_reset" // process, then drop the connection mid-body
	FaultTruncate    = "truncate"     // process, then send half of the body
	FaultGarbage     = "garbage"      // process, then send bytes that are not k=v
	FaultBadSJIS     = "bad_sjis"     // process, then send invalid Shift_JIS
)

// Fault is one queued misbehaviour.
type Fault struct {
	API   string        `json:"api"`
	Kind  string        `json:"kind"`
	Count int           `json:"count"`
	Delay time.Duration `json:"-"`
	// DelayMS is Delay in the JSON control API.
	DelayMS int `json:"delay_ms"`
}

type faultQueue struct {
	mu     sync.Mutex
	faults []*Fault
}

// Inject queues f for its API's next Count calls ("*" matches every API).
func (q *faultQueue) Inject(f Fault) {
	if f.Count <= 0 {
		f.Count = 1
	}
	if f.Delay == 0 {
		f.Delay = time.Duration(f.DelayMS) * time.Millisecond
	}
	q.mu.Lock()
	q.faults = append(q.faults, &f)
	q.mu.Unlock()
}

// Clear drops every queued fault.
func (q *faultQueue) Clear() {
	q.mu.Lock()
	q.faults = nil
	q.mu.Unlock()
}

func isAfter(kind string) bool {
	switch kind {
	case FaultCommitHang, FaultCommitReset, FaultTruncate, FaultGarbage, FaultBadSJIS:
		return true
	}
	return false
}

func (q *faultQueue) pop(api string, after bool) (*Fault, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, f := range q.faults {
		if (f.API == api || f.API == "*") && isAfter(f.Kind) == after {
			f.Count--
			if f.Count <= 0 {
				q.faults = append(q.faults[:i], q.faults[i+1:]...)
			}
			c := *f
			return &c, true
		}
	}
	return nil, false
}

func (q *faultQueue) take(api string) (*Fault, bool)      { return q.pop(api, false) }
func (q *faultQueue) takeAfter(api string) (*Fault, bool) { return q.pop(api, true) }

// before applies a fault that stops the call before processing; it reports
// whether the answer was written.
func (f *Fault) before(w http.ResponseWriter) bool {
	switch f.Kind {
	case FaultDelay:
		time.Sleep(f.Delay)
		return false
	case Fault5xx:
		http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
	case FaultMaintenance:
		w.Header().Set("Content-Type", "text/plain;charset=Shift_JIS")
		_, _ = w.Write([]byte("ErrCode=E91&ErrInfo=E91099996"))
	case FaultReset:
		hijackClose(w)
	default:
		return false
	}
	return true
}

// after writes a damaged answer for a call that was processed.
func (f *Fault) after(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "text/plain;charset=Shift_JIS")
	switch f.Kind {
	case FaultCommitHang:
		time.Sleep(f.Delay)
		_, _ = w.Write(body)
	case FaultCommitReset:
		if c, ok := hijack(w); ok {
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 500\r\n\r\n" + string(body[:len(body)/2])))
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			c.Close()
		}
	case FaultTruncate:
		_, _ = w.Write(body[:len(body)/2])
	case FaultGarbage:
		_, _ = w.Write([]byte("<html><body>502 Bad Gateway</body></html>"))
	case FaultBadSJIS:
		_, _ = w.Write(append([]byte("ErrCode="), 0x81, 0xff, 0xfe))
	}
}

func hijack(w http.ResponseWriter) (net.Conn, bool) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, false
	}
	c, _, err := hj.Hijack()
	return c, err == nil
}

func hijackClose(w http.ResponseWriter) {
	if c, ok := hijack(w); ok {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.Close()
	}
}

// control serves the simulator's own endpoints under /sandbox/.
func (g *GMO) control(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/sandbox/faults" && r.Method == http.MethodPost:
		var f Fault
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&f); err != nil || f.API == "" || f.Kind == "" {
			http.Error(w, `{"error":"body must be {\"api\",\"kind\",\"count\",\"delay_ms\"}"}`, http.StatusBadRequest)
			return
		}
		g.faults.Inject(f)
		w.WriteHeader(http.StatusNoContent)
	case r.URL.Path == "/sandbox/faults" && r.Method == http.MethodDelete:
		g.faults.Clear()
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(r.URL.Path, "/sandbox/ledger"):
		g.mu.Lock()
		type row struct {
			OrderID string `json:"order_id"`
			Status  string `json:"status"`
			Amount  int64  `json:"amount"`
			Charges int    `json:"charges"`
		}
		rows := make([]row, 0, len(g.trades))
		for _, t := range g.trades {
			rows = append(rows, row{t.orderID, t.status, t.amount, t.execs})
		}
		g.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(rows)
	case r.URL.Path == "/sandbox/notifications" && r.Method == http.MethodGet:
		type row struct {
			OrderID   string `json:"order_id"`
			Status    string `json:"status"`
			Attempts  int    `json:"attempts"`
			Delivered bool   `json:"delivered"`
			Answer    string `json:"answer"`
		}
		ns := g.Notices()
		rows := make([]row, 0, len(ns))
		for _, n := range ns {
			rows = append(rows, row{n.OrderID, n.Status, n.Attempts, n.Delivered, n.Answer})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(rows)
	default:
		http.NotFound(w, r)
	}
}

// InjectFault queues a fault from Go tests.
func (g *GMO) InjectFault(f Fault) { g.faults.Inject(f) }

// ClearFaults drops queued faults.
func (g *GMO) ClearFaults() { g.faults.Clear() }
