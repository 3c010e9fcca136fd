package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds a Chromium (or Chrome) to drive. Without one the browser
// test is skipped, except in CI (CI set, as .ci/run does), where it must
// run: .ci/run installs the Debian package chromium.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("PAYNORM_CHROMIUM"), "chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no Chromium found (.ci/run installs the Debian package chromium; PAYNORM_CHROMIUM names another binary)")
	}
	t.Skip("no Chromium found: the real-browser checkout test is skipped (apt-get install chromium, or set PAYNORM_CHROMIUM)")
	return ""
}

// A person paying on the sandbox's demo checkout in a real browser
// (headless Chromium): the card form posts to the sandbox, which acts as
// the merchant's backend and creates the payment in the real paynorm
// binary with three_d_secure and a return_url; the browser is sent to the
// issuer's challenge page, answers it, comes back, and the backend
// completes the payment. Challenge passed: captured (or authorized for a
// manual capture); challenge failed: authentication_failed, nothing
// charged; frictionless: captured with no challenge page.
func TestCheckoutInABrowser(t *testing.T) {
	chrome := chromium(t)
	api, sim := freePort(t), freePort(t)
	cf := fmt.Sprintf(`{
	admin {ADMIN}
	auto_https off
}
:%[1]d {
	bind 127.0.0.1
	paynorm {
		account gmo {
			type gmo
			endpoint http://127.0.0.1:%[2]d
			shop_id tshop00000001
			shop_pass e2eShopPass3DS
			three_d_secure required
			tenant_name "paynorm e2e"
		}
	}
}
:%[2]d {
	bind 127.0.0.1
	paynorm_sandbox e2e-browser {
		checkout_api http://127.0.0.1:%[1]d
	}
}
`, api, sim)
	p := start(t, cf, fmt.Sprintf("http://127.0.0.1:%d", api))
	shop := fmt.Sprintf("http://127.0.0.1:%d/sandbox/checkout", sim)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("headless", true), chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("starting %s: %v", chrome, err)
	}

	// result is what the checkout's pages showed.
	type result struct{ status, code, payment, shop, amount string }
	// pay fills the form and presses Pay, then, when button is set, that
	// button of the challenge page; it reads the result page.
	pay := func(t *testing.T, card, capture, button string) result {
		t.Helper()
		tab, cancel := chromedp.NewContext(browser)
		defer cancel()
		if err := chromedp.Do(tab); err != nil {
			t.Fatal(err)
		}
		ctx, cancelT := context.WithTimeout(tab, 60*time.Second)
		defer cancelT()
		var r result
		text := func(id string, into *string) chromedp.Action[chromedp.Void] {
			return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				v, err := chromedp.Text(chromedp.ID(id))(ctx, tg)
				*into = strings.TrimSpace(v)
				return err
			})
		}
		steps := []chromedp.Action[chromedp.Void]{
			chromedp.Navigate(shop),
			chromedp.WaitVisible(chromedp.ID("pay")),
			chromedp.Click(chromedp.ID("card-" + card)),
			chromedp.SetValue(chromedp.ID("amount"), "2500"),
			chromedp.SetValue(chromedp.ID("capture"), capture),
			chromedp.Click(chromedp.ID("pay")),
		}
		if button != "" {
			steps = append(steps, chromedp.WaitVisible(chromedp.ID(button)), text("shop", &r.shop), text("amount", &r.amount),
				chromedp.Click(chromedp.ID(button)))
		}
		steps = append(steps, chromedp.WaitVisible(chromedp.ID("status")), text("status", &r.status), text("payment", &r.payment),
			chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				v, err := chromedp.Evaluate[string](`(document.querySelector("#code")||{}).textContent||""`)(ctx, tg)
				r.code = strings.TrimSpace(v)
				return err
			}))
		if err := chromedp.Do(ctx, steps...); err != nil {
			loc, _ := chromedp.Run(tab, chromedp.Location())
			body, _ := chromedp.Run(tab, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			t.Fatalf("browser: %v\nat %s:\n%s\npaynorm log:\n%s", err, loc, body, p.logs.String())
		}
		return r
	}
	// record reads the payment back from paynorm's API.
	record := func(t *testing.T, id string) *answer {
		t.Helper()
		return do(t, "GET", p.API+"/v1/payments/"+id, "")
	}

	t.Run("challenge passed", func(t *testing.T) {
		r := pay(t, "tok_3ds_challenge", "automatic", "authenticate")
		if r.status != "captured" || r.code != "" || !strings.HasPrefix(r.payment, "gmo_") {
			t.Fatalf("result: %+v", r)
		}
		if r.shop != "paynorm e2e" || r.amount != "¥2,500" {
			t.Errorf("the challenge page showed shop %q, amount %q", r.shop, r.amount)
		}
		if a := record(t, r.payment); a.Status != 200 || a.str("status") != "captured" || a.JSON["total"] != 2500.0 || a.JSON["next_action"] != nil {
			t.Fatalf("paynorm: %d %s", a.Status, a.Body)
		}
	})
	t.Run("challenge passed, manual capture", func(t *testing.T) {
		if r := pay(t, "tok_3ds_challenge", "manual", "authenticate"); r.status != "authorized" || r.code != "" {
			t.Fatalf("result: %+v", r)
		}
	})
	t.Run("challenge failed", func(t *testing.T) {
		r := pay(t, "tok_3ds_challenge", "automatic", "fail")
		if r.status != "failed" || r.code != "authentication_failed" {
			t.Fatalf("result: %+v", r)
		}
		if a := record(t, r.payment); a.Status != 200 || a.str("status") != "failed" || a.str("approval_code") != "" {
			t.Fatalf("paynorm: %d %s", a.Status, a.Body)
		}
	})
	t.Run("failing card", func(t *testing.T) {
		if r := pay(t, "tok_3ds_fail", "automatic", "authenticate"); r.status != "failed" || r.code != "authentication_failed" {
			t.Fatalf("result: %+v", r)
		}
	})
	t.Run("frictionless", func(t *testing.T) {
		r := pay(t, "tok_3ds_frictionless", "automatic", "")
		if r.status != "captured" || r.code != "" {
			t.Fatalf("result: %+v", r)
		}
		if a := record(t, r.payment); a.str("status") != "captured" {
			t.Fatalf("paynorm: %d %s", a.Status, a.Body)
		}
	})
	t.Run("not enrolled, required", func(t *testing.T) {
		if r := pay(t, "tok_visa", "automatic", ""); r.status != "failed" || r.code != "card_not_enrolled" {
			t.Fatalf("result: %+v", r)
		}
	})
}
