package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/paynorm/paynorm/providers/gmo"
	"github.com/paynorm/paynorm/providers/sandbox"
)

// passErrors decodes the seed 000 error array.
func passErrors(t *testing.T, r *reply) []passErr {
	t.Helper()
	var out []passErr
	if err := json.Unmarshal(r.Body, &out); err != nil || len(out) == 0 {
		t.Fatalf("not an error array: %d %s", r.Status, r.Body)
	}
	return out
}

func TestPassthroughPayment(t *testing.T) {
	e := newIVREnv(t)
	e.gmo.Shops = map[string]string{"tshop1": testShopPass}
	// Credentials the app sends are ignored; paynorm's are used.
	entry := e.do("POST", "/v1/gmo/EntryTran", `{"shopID":"tshop1","shopPass":"stolen","orderID":"PT-1","jobCd":"AUTH","amount":1200,"tax":"0"}`, "")
	if entry.Status != 200 || len(entry.str("accessID")) != 32 || len(entry.str("accessPass")) != 32 {
		t.Fatalf("entry: %d %s", entry.Status, entry.Body)
	}
	exec := e.do("POST", "/v1/gmo/ExecTran", `{"accessID":"`+entry.str("accessID")+`","accessPass":"`+entry.str("accessPass")+`","orderID":"PT-1","method":"1","token":"tok_visa","clientField1":"項目1","clientFieldFlag":"1"}`, "")
	if exec.Status != 200 || exec.str("acs") != "0" || exec.str("orderID") != "PT-1" || exec.str("approve") == "" || exec.str("clientField1") != "項目1" {
		t.Fatalf("exec: %d %s", exec.Status, exec.Body)
	}
	want := gmo.CheckString("PT-1", exec.str("forward"), exec.str("method"), exec.str("payTimes"), exec.str("approve"), exec.str("tranID"), exec.str("tranDate"), testShopPass)
	if exec.str("checkString") != want {
		t.Fatalf("checkString %s, want %s", exec.str("checkString"), want)
	}
	if st, amount := e.gmo.TradeStatus("tshop1", "PT-1"); st != "AUTH" || amount != 1200 {
		t.Fatalf("ledger %s %d", st, amount)
	}
	// The unified API sees the same payment.
	if r := e.do("GET", "/v1/payments/gmo_PT-1", "", ""); r.str("status") != "authorized" {
		t.Fatalf("%s", r.Body)
	}
	if r := e.do("POST", "/v1/gmo/SearchTrade", `{"orderID":"PT-1"}`, ""); r.Status != 200 || r.str("status") != "AUTH" || r.str("amount") != "1200" {
		t.Fatalf("search: %d %s", r.Status, r.Body)
	}
}

func TestPassthroughErrors(t *testing.T) {
	e := newIVREnv(t)
	entry := e.do("POST", "/v1/gmo/EntryTran", `{"orderID":"PT-2","jobCd":"CAPTURE","amount":"500"}`, "")
	cases := []struct {
		name, api, body, query string
		status                 int
		header                 string
		first                  passErr
	}{
		{"decline", "ExecTran", `{"accessID":"` + entry.str("accessID") + `","accessPass":"` + entry.str("accessPass") + `","orderID":"PT-2","method":1,"token":"tok_insufficient_funds"}`, "",
			402, "card_error/insufficient_funds", passErr{ErrCode: "G02", ErrInfo: "42G020000"}},
		{"gmo validation", "EntryTran", `{"jobCd":"AUTH","amount":1}`, "", 400, "invalid_request_error/invalid_order_id", passErr{ErrCode: "E01", ErrInfo: "E01040001"}},
		{"unknown access", "ExecTran", `{"accessID":"x","accessPass":"y","orderID":"PT-2","token":"tok_visa"}`, "", 404, "invalid_request_error/resource_missing", passErr{ErrCode: "E01", ErrInfo: "E01110002"}},
		{"not allowed", "AlterTran", `{"accessID":"x","accessPass":"y","jobCd":"VOID"}`, "", 403, "invalid_request_error/unsupported", passErr{ErrCode: "paynorm", ErrInfo: "unsupported"}},
		{"bad api name", "exec-tran", `{}`, "", 404, "invalid_request_error/route_not_found", passErr{ErrCode: "paynorm", ErrInfo: "route_not_found"}},
		{"nested value", "EntryTran", `{"orderID":{"a":1}}`, "", 400, "invalid_request_error/parameter_invalid", passErr{ErrCode: "paynorm", ErrInfo: "parameter_invalid"}},
		{"not json", "EntryTran", `orderID=1`, "", 400, "invalid_request_error/invalid_json", passErr{ErrCode: "paynorm", ErrInfo: "invalid_json"}},
		{"bad key", "EntryTran", `{"order-id":"x"}`, "", 400, "invalid_request_error/parameter_unknown", passErr{ErrCode: "paynorm", ErrInfo: "parameter_unknown"}},
		{"ivr account", "EntryTran", `{"orderID":"x"}`, "?provider=ivr", 422, "invalid_request_error/unsupported", passErr{ErrCode: "paynorm", ErrInfo: "unsupported"}},
		{"unknown account", "EntryTran", `{"orderID":"x"}`, "?provider=nope", 400, "invalid_request_error/unknown_provider", passErr{ErrCode: "paynorm", ErrInfo: "unknown_provider"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do("POST", "/v1/gmo/"+c.api+c.query, c.body, "")
			errs := passErrors(t, r)
			if r.Status != c.status || r.Header.Get(PassthroughErrorHeader) != c.header || errs[0].ErrCode != c.first.ErrCode || errs[0].ErrInfo != c.first.ErrInfo {
				t.Fatalf("%d %s %s", r.Status, r.Header.Get(PassthroughErrorHeader), r.Body)
			}
			if c.first.ErrCode == "paynorm" && errs[0].MessageJa == "" {
				t.Fatalf("no message: %s", r.Body)
			}
		})
	}
	// ExecTran that reached GMO and got no answer is not repeated.
	entry = e.do("POST", "/v1/gmo/EntryTran", `{"orderID":"PT-3","jobCd":"CAPTURE","amount":"500"}`, "")
	e.gmo.InjectFault(sandbox.Fault{API: "ExecTran", Kind: sandbox.FaultCommitHang, Delay: 800 * time.Millisecond})
	before := e.gmo.Calls("ExecTran")
	r := e.do("POST", "/v1/gmo/ExecTran", `{"accessID":"`+entry.str("accessID")+`","accessPass":"`+entry.str("accessPass")+`","orderID":"PT-3","method":"1","token":"tok_visa"}`, "")
	if r.Status != 504 || r.Header.Get(PassthroughErrorHeader) != "provider_timeout/provider_timeout" || e.gmo.Calls("ExecTran")-before != 1 {
		t.Fatalf("%d %s (ExecTran sent %d)", r.Status, r.Body, e.gmo.Calls("ExecTran")-before)
	}
	if strings.Contains(string(r.Body), entry.str("accessPass")) {
		t.Fatal("AccessPass in an error")
	}
}

func TestPassthroughSiteAndAllowList(t *testing.T) {
	e := newEnv(t, nil, func(h *Handler) {
		h.Accounts[0].SiteID, h.Accounts[0].SitePass = "tsite1", "sitePassX"
		h.Accounts[0].PassthroughAPIs = []string{"SaveMember", "SearchMember", "EntryTran"}
	})
	if r := e.do("POST", "/v1/gmo/SaveMember", `{"siteID":"other","memberID":"m-1","memberName":"花子"}`, ""); r.Status != 200 || r.str("memberID") != "m-1" {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	if r := e.do("POST", "/v1/gmo/SearchMember", `{"memberID":"m-1"}`, ""); r.Status != 200 || r.str("memberName") != "花子" || r.str("deleteFlag") != "0" {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	// ExecTran is in the default set but not in this account's list.
	if r := e.do("POST", "/v1/gmo/ExecTran", `{}`, ""); r.Status != 403 {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
}

func TestKeyCase(t *testing.T) {
	for wire, json := range map[string]string{"OrderID": "orderID", "ACS": "acs", "ACSUrl": "acsUrl", "ClientField1": "clientField1",
		"CheckString": "checkString", "TranID": "tranID", "MD": "md", "PaReq": "paReq", "Tds2Type": "tds2Type"} {
		if got := gmo.LowerCamel(wire); got != json {
			t.Errorf("LowerCamel(%s) = %s, want %s", wire, got, json)
		}
	}
	for json, wire := range map[string]string{"orderID": "OrderID", "accessPass": "AccessPass", "shopID": "ShopID", "tds2Type": "Tds2Type", "retUrl": "RetUrl"} {
		if got := gmo.UpperCamel(json); got != wire {
			t.Errorf("UpperCamel(%s) = %s, want %s", json, got, wire)
		}
	}
}
