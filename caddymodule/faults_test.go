package caddymodule

import (
	"fmt"
	"testing"
	"time"

	"github.com/paynorm/paynorm/providers/sandbox"
)

// ledgerStatus maps the sandbox ledger onto the status paynorm must end on.
func ledgerStatus(gmoStatus string) string {
	switch gmoStatus {
	case "CAPTURE", "SALES":
		return "captured"
	case "AUTH":
		return "authorized"
	case "VOID":
		return "voided"
	case "", "UNPROCESSED":
		return "failed" // never executed: no money moved
	}
	return gmoStatus
}

// Every fault kind on the money-moving ExecTran: the first answer is a
// normalized one, never "failed" for a charge that happened; ExecTran is
// sent exactly once; the resolver ends on the ledger's state.
func TestFaultsOnCreate(t *testing.T) {
	cases := []struct {
		name  string
		fault *sandbox.Fault
		token string
		// want is the first answer: HTTP status and, for errors, code.
		wantStatus int
		wantCode   string
		charged    bool
	}{
		{"delay", &sandbox.Fault{Kind: sandbox.FaultDelay, Delay: 100 * time.Millisecond}, "tok_visa", 200, "", true},
		{"5xx", &sandbox.Fault{Kind: sandbox.Fault5xx}, "tok_visa", 503, "provider_unavailable", false},
		{"maintenance", &sandbox.Fault{Kind: sandbox.FaultMaintenance}, "tok_visa", 503, "", false},
		{"reset", &sandbox.Fault{Kind: sandbox.FaultReset}, "tok_visa", 503, "provider_unavailable", false},
		{"commit_hang", &sandbox.Fault{Kind: sandbox.FaultCommitHang, Delay: 1500 * time.Millisecond}, "tok_visa", 200, "", true},
		{"commit_reset", &sandbox.Fault{Kind: sandbox.FaultCommitReset}, "tok_visa", 200, "", true},
		{"truncate", &sandbox.Fault{Kind: sandbox.FaultTruncate}, "tok_visa", 0, "", true},
		{"garbage", &sandbox.Fault{Kind: sandbox.FaultGarbage}, "tok_visa", 200, "", true},
		{"bad_sjis", &sandbox.Fault{Kind: sandbox.FaultBadSJIS}, "tok_visa", 200, "", true},
		{"forged_checkstring", nil, sandbox.TokBadCheck, 502, "invalid_response", true},
		{"slow_token", nil, sandbox.TokSlow, 200, "", true},
		{"e90", nil, sandbox.TokE90, 0, "", false},
		{"e91", nil, sandbox.TokE91, 503, "", false},
		{"5xx_token", nil, sandbox.Tok5xx, 503, "", false},
	}
	gmo := sandbox.NewGMO()
	gmo.SlowDelay = 1500 * time.Millisecond
	e := newEnv(t, gmo, nil)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.fault != nil {
				f := *c.fault
				f.API = "ExecTran"
				gmo.InjectFault(f)
			}
			order := "F-" + c.name
			order = order[:min(len(order), 27)]
			execBefore, chargesBefore := gmo.Calls("ExecTran"), gmo.Charges()
			r := e.do("POST", "/v1/payments", createBody(sanitize(order), c.token, 1000), "")
			id := "gmo_" + sanitize(order)
			execs, charges := gmo.Calls("ExecTran")-execBefore, gmo.Charges()-chargesBefore
			ledger, _ := gmo.TradeStatus("tshop1", sanitize(order))
			want := ledgerStatus(ledger)
			got := e.waitStatus(id, want, 5*time.Second)
			answered := r.str("status")
			if r.Status != 200 {
				answered = r.str("error", "payment", "status")
			}
			t.Logf("%-18s first answer %d %-20s payment %-8s | ExecTran sent %d, charges %d, ledger %-11s | settled %s (record %s)",
				c.name, r.Status, r.str("error", "code"), answered, execs, charges, ledger, got.str("status"), e.record(id).Status)
			if execs != 1 {
				t.Fatalf("ExecTran sent %d times", execs)
			}
			if (charges == 1) != c.charged || charges > 1 {
				t.Fatalf("charges %d", charges)
			}
			if c.wantStatus != 0 && r.Status != c.wantStatus || c.wantCode != "" && r.str("error", "code") != c.wantCode {
				t.Fatalf("first answer %d %s", r.Status, r.Body)
			}
			if r.Status >= 500 && r.Header.Get("Content-Type") == "" || r.Status != 200 && r.str("error", "type") == "" {
				t.Fatalf("not a normalized error: %d %s", r.Status, r.Body)
			}
			if c.charged && answered == "failed" {
				t.Fatalf("a charged payment was answered as failed: %s", r.Body)
			}
			if r.Status == 200 && answered != want {
				t.Fatalf("answered %s, ledger says %s", answered, want)
			}
			if got.str("status") != want {
				t.Fatalf("settled on %s, ledger says %s (%s)", got.str("status"), want, got.Body)
			}
		})
	}
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			b[i] = '-'
		}
	}
	return string(b)
}

// Faults on AlterTran (capture, cancel): sent once, settled on the ledger.
func TestFaultsOnCaptureAndCancel(t *testing.T) {
	e := newEnv(t, nil, nil)
	kinds := []string{sandbox.Fault5xx, sandbox.FaultReset, sandbox.FaultCommitReset, sandbox.FaultCommitHang, sandbox.FaultGarbage, sandbox.FaultTruncate, sandbox.FaultBadSJIS, sandbox.FaultMaintenance}
	for i, kind := range kinds {
		order := fmt.Sprintf("ALT-%d", i)
		if r := e.do("POST", "/v1/payments", `{"order_id":"`+order+`","amount":900,"capture":"manual","payment_method":{"token":"tok_visa"}}`, ""); r.Status != 200 {
			t.Fatalf("create %s", r.Body)
		}
		for _, op := range []string{"capture", "cancel"} {
			e.gmo.InjectFault(sandbox.Fault{API: "AlterTran", Kind: kind, Delay: time.Second})
			before := e.gmo.Calls("AlterTran")
			r := e.do("POST", "/v1/payments/gmo_"+order+"/"+op, "", "")
			sent := e.gmo.Calls("AlterTran") - before
			ledger, _ := e.gmo.TradeStatus("tshop1", order)
			want := ledgerStatus(ledger)
			got := e.waitStatus("gmo_"+order, want, 5*time.Second)
			t.Logf("%-12s %-7s answer %d %-20s | AlterTran sent %d, ledger %-5s | settled %s", kind, op, r.Status, r.str("error", "code"), sent, ledger, got.str("status"))
			if sent != 1 {
				t.Fatalf("AlterTran sent %d times", sent)
			}
			if got.str("status") != want {
				t.Fatalf("settled %s, ledger %s", got.str("status"), want)
			}
			if r.Status != 200 && r.str("error", "type") == "" {
				t.Fatalf("not normalized: %s", r.Body)
			}
		}
	}
}

// A read may be repeated: a reset SearchTrade is retried and GET answers.
func TestFaultOnSearchIsRetried(t *testing.T) {
	e := newEnv(t, nil, nil)
	if r := e.do("POST", "/v1/payments", createBody("READ-1", "tok_visa", 100), ""); r.Status != 200 {
		t.Fatal(string(r.Body))
	}
	before := e.gmo.Calls("SearchTrade")
	e.gmo.InjectFault(sandbox.Fault{API: "SearchTrade", Kind: sandbox.FaultReset})
	r := e.do("GET", "/v1/payments/gmo_READ-1", "", "")
	if r.Status != 200 || r.str("status") != "captured" || e.gmo.Calls("SearchTrade")-before != 2 {
		t.Fatalf("GET %d %s after %d SearchTrade calls", r.Status, r.Body, e.gmo.Calls("SearchTrade")-before)
	}
}
