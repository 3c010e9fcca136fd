package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const notifySecret = "e2e-notify-secret-0123456789"

// webhookReceiver checks each delivery with the README's recipe, written
// out here independently of paynorm's own code.
type webhookReceiver struct {
	t    *testing.T
	up   atomic.Bool
	hits atomic.Int64
	mu   sync.Mutex
	evs  []map[string]any
}

func (rc *webhookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.hits.Add(1)
	if !rc.up.Load() {
		http.Error(w, "down", http.StatusBadGateway)
		return
	}
	body, _ := io.ReadAll(r.Body)
	ts := r.Header.Get("Paynorm-Timestamp")
	m := hmac.New(sha256.New, []byte(notifySecret))
	m.Write([]byte(ts + "." + string(body)))
	if want := "v1=" + hex.EncodeToString(m.Sum(nil)); !hmac.Equal([]byte(want), []byte(r.Header.Get("Paynorm-Signature"))) {
		rc.t.Errorf("bad signature on %s", body)
	}
	var ev map[string]any
	if err := json.Unmarshal(body, &ev); err != nil || ev["id"] != r.Header.Get("Paynorm-Event-Id") || ev["object"] != "event" {
		rc.t.Errorf("event %s (%v)", body, err)
	}
	rc.mu.Lock()
	rc.evs = append(rc.evs, ev)
	rc.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (rc *webhookReceiver) find(typ string, withKickback bool) map[string]any {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, ev := range rc.evs {
		data, _ := ev["data"].(map[string]any)
		if ev["type"] == typ && (data["kickback"] != nil) == withKickback {
			return ev
		}
	}
	return nil
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kickbackToken is the secret kickback path segment of the e2e configs.
const kickbackToken = "e2e-kickback-token-0123456789"

func TestJPaymentThroughThePaynormBinary(t *testing.T) {
	rc := &webhookReceiver{t: t}
	recv := httptest.NewServer(rc)
	defer recv.Close()
	api, sim := freePort(t), freePort(t)
	t.Setenv("PAYNORM_E2E_NOTIFY_SECRET", notifySecret)
	t.Setenv("PAYNORM_E2E_KICKBACK_TOKEN", kickbackToken)
	cf := fmt.Sprintf(`{
	admin {ADMIN}
	auto_https off
}
:%[1]d {
	paynorm {
		default_provider gmo
		notify_url %[3]s
		notify_secret {env.PAYNORM_E2E_NOTIFY_SECRET}
		kickback_token {env.PAYNORM_E2E_KICKBACK_TOKEN}
		kickback_allow 127.0.0.0/8
		account gmo {
			type gmo
			three_d_secure off
			endpoint http://127.0.0.1:%[2]d
			shop_id tshop00000001
			shop_pass e2ePass
		}
		account jp {
			type jpayment
			endpoint http://127.0.0.1:%[2]d
			aid 123456
			source_address 127.0.0.2
		}
		account jp-unregistered {
			type jpayment
			endpoint http://127.0.0.1:%[2]d
			aid 123456
		}
	}
}
:%[2]d {
	paynorm_sandbox e2e-jp {
		jpayment_kickback http://127.0.0.1:%[1]d/v1/webhooks/jpayment/`+kickbackToken+`?account=jp
		jpayment_allowed_ip 127.0.0.2
	}
}
`, api, sim, recv.URL)
	p := start(t, cf, fmt.Sprintf("http://127.0.0.1:%d", api))

	a := do(t, "POST", p.API+"/v1/payments", `{"provider":"jp","order_id":"E2E-J1","amount":1000,"tax":80,"capture":"manual","payment_method":{"token":"tok_visa"},"customer":{"email":"a@example.jp"}}`)
	if a.Status != 200 || a.str("status") != "authorized" || !strings.HasPrefix(a.str("id"), "jp_") {
		t.Fatalf("create: %d %s", a.Status, a.Body)
	}
	id := a.str("id")
	gid := strings.TrimPrefix(id, "jp_")

	// Same decline, same answer, from either provider.
	jd := do(t, "POST", p.API+"/v1/payments", `{"provider":"jp","amount":1000,"payment_method":{"token":"tok_insufficient_funds"},"customer":{"phone":"0312345678"}}`)
	gd := do(t, "POST", p.API+"/v1/payments", `{"provider":"gmo","amount":1000,"payment_method":{"token":"tok_insufficient_funds"}}`)
	if jd.Status != 402 || jd.Status != gd.Status || jd.err()["type"] != gd.err()["type"] || jd.err()["code"] != "insufficient_funds" || gd.err()["code"] != "insufficient_funds" {
		t.Fatalf("declines differ:\njp:  %s\ngmo: %s", jd.Body, gd.Body)
	}

	// Without the registered source address j-payment answers ER003.
	u := do(t, "POST", p.API+"/v1/payments", `{"provider":"jp-unregistered","amount":1000,"payment_method":{"token":"tok_visa"},"customer":{"phone":"0312345678"}}`)
	if u.Status != 502 || u.err()["code"] != "egress_ip_not_allowed" {
		t.Fatalf("unregistered egress: %d %s", u.Status, u.Body)
	}

	// The simulator's kickback reaches paynorm (on the secret path) while
	// the receiver is down; it agrees with the record, so it is
	// acknowledged and adds nothing. The create's own event waits in the
	// outbox and arrives once the receiver is back.
	resp, err := http.PostForm(fmt.Sprintf("http://127.0.0.1:%d/gateway/sandbox/kickback", sim), url.Values{"gid": {gid}})
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("kickback: %v %v\n%s", resp, err, p.logs.String())
	}
	resp.Body.Close()
	eventually(t, "a failed delivery", func() bool { return rc.hits.Load() > 0 })
	rc.up.Store(true)
	eventually(t, "the create's event", func() bool { return rc.find("payment.authorized", false) != nil })
	ev := rc.find("payment.authorized", false)
	data := ev["data"].(map[string]any)
	if data["payment"].(map[string]any)["id"] != id || ev["provider"] != "jp" || ev["verified"] != true {
		t.Fatalf("event %v", ev)
	}
	if rc.find("payment.authorized", true) != nil {
		t.Fatal("an agreeing kickback was announced again")
	}

	c := do(t, "POST", p.API+"/v1/payments/"+id+"/capture", "")
	if c.Status != 200 || c.str("status") != "captured" {
		t.Fatalf("capture: %d %s", c.Status, c.Body)
	}
	eventually(t, "payment.captured", func() bool { return rc.find("payment.captured", false) != nil })
	if g := do(t, "GET", p.API+"/v1/payments/"+id, ""); g.Status != 200 || g.str("status") != "captured" {
		t.Fatalf("get: %d %s", g.Status, g.Body)
	}
	for _, secret := range []string{notifySecret, "tok_visa", "tok_insufficient_funds"} {
		if strings.Contains(p.logs.String(), secret) {
			t.Errorf("logs contain %q", secret)
		}
	}
}

// A kickback whose event could not be delivered survives a paynorm restart
// (bolt store) and is delivered by the next process.
func TestKickbackEventSurvivesRestart(t *testing.T) {
	rc := &webhookReceiver{t: t}
	recv := httptest.NewServer(rc)
	defer recv.Close()
	api := freePort(t)
	t.Setenv("PAYNORM_E2E_NOTIFY_SECRET", notifySecret)
	cf := fmt.Sprintf(`{
	admin {ADMIN}
	auto_https off
}
:%[1]d {
	paynorm {
		store bolt %[2]s
		notify_url %[3]s
		notify_secret {env.PAYNORM_E2E_NOTIFY_SECRET}
		kickback_token `+kickbackToken+`
		account jp {
			type jpayment
			endpoint http://127.0.0.1:1
			aid 123456
		}
	}
}
`, api, t.TempDir()+"/paynorm.db", recv.URL)
	apiURL := fmt.Sprintf("http://127.0.0.1:%d", api)
	first := start(t, cf, apiURL)
	// A recurring charge's failure notice: paynorm did not start it, so it
	// becomes an unverified subscription event and no payment record.
	resp, err := http.Get(apiURL + "/v1/webhooks/jpayment/" + kickbackToken + "?gid=7001&rst=2&ec=G5542G550000&cod=LINK-9&acid=4242&am=3000&tx=0&sf=0&ta=3000")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("kickback: %v %v", resp, err)
	}
	resp.Body.Close()
	eventually(t, "a failed delivery", func() bool { return rc.hits.Load() > 0 })
	first.stop()

	rc.up.Store(true)
	second := start(t, cf, apiURL)
	eventually(t, "delivery by the restarted paynorm", func() bool { return rc.find("subscription.payment_failed", true) != nil })
	ev := rc.find("subscription.payment_failed", true)
	if pay := ev["data"].(map[string]any)["payment"].(map[string]any); pay["id"] != "jp_7001" || pay["order_id"] != "LINK-9" || ev["verified"] != false {
		t.Fatalf("event %v", ev)
	}
	// A claim creates no payment record.
	if g := do(t, "GET", second.API+"/v1/payments/jp_7001", ""); g.Status != 404 {
		t.Fatalf("get after restart: %d %s", g.Status, g.Body)
	}
}
