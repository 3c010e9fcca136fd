//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Sandbox credentials: the simulator accepts any shop unless told otherwise.
const (
	shopID   = "tshop00000001"
	shopPass = "sandboxpass"
)

// post sends body and checks the status and that the answer holds want.
func post(ctx context.Context, c *http.Client, url, contentType string, body []byte, want string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Contains(got, []byte(want)) {
		return fmt.Errorf("POST %s: HTTP %d %.200s", url, resp.StatusCode, got)
	}
	return nil
}

// get fetches url and expects 200: the memory test's connection warm-up.
func get(c *http.Client, url string) op {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
		}
		return nil
	}
}

// searchTrade is the simulator call of scenarios (a) and (b): one GMO
// SearchTrade of an existing order, straight or through a proxy.
func searchTrade(c *http.Client, base, orderID string) op {
	body := []byte("ShopID=" + shopID + "&ShopPass=" + shopPass + "&OrderID=" + orderID)
	url := base + "/payment/SearchTrade.idPass"
	return func(ctx context.Context) error {
		return post(ctx, c, url, "application/x-www-form-urlencoded", body, "Status=AUTH")
	}
}

// orders hands out unique order ids and keeps authorized payments for the
// capture scenario.
type orders struct {
	run  string
	seq  atomic.Int64
	mu   sync.Mutex
	auth []string
}

func (o *orders) next() string { return o.run + strconv.FormatInt(o.seq.Add(1), 10) }

func (o *orders) push(id string) {
	o.mu.Lock()
	o.auth = append(o.auth, id)
	o.mu.Unlock()
}

func (o *orders) pop() (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.auth) == 0 {
		return "", false
	}
	id := o.auth[len(o.auth)-1]
	o.auth = o.auth[:len(o.auth)-1]
	return id, true
}

func (o *orders) ready() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.auth)
}

// createPayment is scenario (c): an authorization through paynorm
// (EntryTran + ExecTran). Each success feeds the capture scenario.
func createPayment(c *http.Client, base string, o *orders) op {
	url := base + "/v1/payments"
	return func(ctx context.Context) error {
		id := o.next()
		body := `{"order_id":"` + id + `","amount":1000,"tax":100,"capture":"manual","payment_method":{"token":"tok_visa"}}`
		if err := post(ctx, c, url, "application/json", []byte(body), `"status":"authorized"`); err != nil {
			return err
		}
		o.push(id)
		return nil
	}
}

// capturePayment is scenario (d): 実売上 of an authorization through paynorm
// (SearchTrade + AlterTran).
func capturePayment(c *http.Client, base string, o *orders) op {
	return func(ctx context.Context) error {
		id, ok := o.pop()
		if !ok {
			return errExhausted
		}
		url := base + "/v1/payments/gmo_" + id + "/capture"
		return post(ctx, c, url, "application/json", nil, `"status":"captured"`)
	}
}

// seedOrder authorizes one order straight at the simulator, for SearchTrade.
func seedOrder(c *http.Client, sim, orderID string) error {
	ctx := context.Background()
	form := "application/x-www-form-urlencoded"
	entry := "ShopID=" + shopID + "&ShopPass=" + shopPass + "&OrderID=" + orderID + "&JobCd=AUTH&Amount=1000&Tax=100"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sim+"/payment/EntryTran.idPass", strings.NewReader(entry))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", form)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	vals := map[string]string{}
	for kv := range strings.SplitSeq(string(raw), "&") {
		k, v, _ := strings.Cut(kv, "=")
		vals[k] = v
	}
	if vals["AccessID"] == "" {
		return fmt.Errorf("EntryTran: %s", raw)
	}
	exec := "AccessID=" + vals["AccessID"] + "&AccessPass=" + vals["AccessPass"] + "&OrderID=" + orderID + "&Method=1&Token=tok_visa"
	return post(ctx, c, sim+"/payment/ExecTran.idPass", form, []byte(exec), "CheckString=")
}
