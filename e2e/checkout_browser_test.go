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
	if err := chromedp.Run(browser); err != nil {
		t.Fatalf("starting %s: %v", chrome, err)
	}

	// pay fills the form and presses Pay; then, when button is set, the
	// challenge page's button; it returns the result page's fields.
	pay := func(t *testing.T, card, capture, button string) (status, code, paymentID, shopShown, amountShown string) {
		t.Helper()
		ctx, cancel := chromedp.NewContext(browser)
		defer cancel()
		ctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
		defer cancelT()
		steps := chromedp.Tasks{
			chromedp.Navigate(shop),
			chromedp.WaitVisible("#pay", chromedp.ByQuery),
			chromedp.Click("#card-"+card, chromedp.ByQuery),
			chromedp.SetValue("#amount", "2500", chromedp.ByQuery),
			chromedp.SetValue("#capture", capture, chromedp.ByQuery),
			chromedp.Click("#pay", chromedp.ByQuery),
		}
		if button != "" {
			steps = append(steps,
				chromedp.WaitVisible("#"+button, chromedp.ByQuery),
				chromedp.Text("#shop", &shopShown, chromedp.ByQuery),
				chromedp.Text("#amount", &amountShown, chromedp.ByQuery),
				chromedp.Click("#"+button, chromedp.ByQuery))
		}
		steps = append(steps,
			chromedp.WaitVisible("#status", chromedp.ByQuery),
			chromedp.Text("#status", &status, chromedp.ByQuery),
			chromedp.Text("#payment", &paymentID, chromedp.ByQuery),
			chromedp.Evaluate(`(document.querySelector("#code")||{}).textContent||""`, &code))
		if err := chromedp.Run(ctx, steps); err != nil {
			var loc, body string
			_ = chromedp.Run(ctx, chromedp.Location(&loc), chromedp.Evaluate(`document.body ? document.body.innerText : ""`, &body))
			t.Fatalf("browser: %v\nat %s:\n%s\npaynorm log:\n%s", err, loc, body, p.logs.String())
		}
		return strings.TrimSpace(status), strings.TrimSpace(code), strings.TrimSpace(paymentID), strings.TrimSpace(shopShown), strings.TrimSpace(amountShown)
	}
	// record reads the payment back from paynorm's API.
	record := func(t *testing.T, id string) *answer {
		t.Helper()
		return do(t, "GET", p.API+"/v1/payments/"+id, "")
	}

	t.Run("challenge passed", func(t *testing.T) {
		status, code, id, shopShown, amountShown := pay(t, "tok_3ds_challenge", "automatic", "authenticate")
		if status != "captured" || code != "" || !strings.HasPrefix(id, "gmo_") {
			t.Fatalf("result: status %q code %q payment %q", status, code, id)
		}
		if shopShown != "paynorm e2e" || amountShown != "¥2,500" {
			t.Errorf("the challenge page showed shop %q, amount %q", shopShown, amountShown)
		}
		if a := record(t, id); a.Status != 200 || a.str("status") != "captured" || a.JSON["total"] != 2500.0 || a.JSON["next_action"] != nil {
			t.Fatalf("paynorm: %d %s", a.Status, a.Body)
		}
	})
	t.Run("challenge passed, manual capture", func(t *testing.T) {
		if status, code, id, _, _ := pay(t, "tok_3ds_challenge", "manual", "authenticate"); status != "authorized" || code != "" {
			t.Fatalf("result: status %q code %q payment %q", status, code, id)
		}
	})
	t.Run("challenge failed", func(t *testing.T) {
		status, code, id, _, _ := pay(t, "tok_3ds_challenge", "automatic", "fail")
		if status != "failed" || code != "authentication_failed" {
			t.Fatalf("result: status %q code %q payment %q", status, code, id)
		}
		if a := record(t, id); a.Status != 200 || a.str("status") != "failed" || a.str("approval_code") != "" {
			t.Fatalf("paynorm: %d %s", a.Status, a.Body)
		}
	})
	t.Run("failing card", func(t *testing.T) {
		if status, code, _, _, _ := pay(t, "tok_3ds_fail", "automatic", "authenticate"); status != "failed" || code != "authentication_failed" {
			t.Fatalf("result: status %q code %q", status, code)
		}
	})
	t.Run("frictionless", func(t *testing.T) {
		status, code, id, _, _ := pay(t, "tok_3ds_frictionless", "automatic", "")
		if status != "captured" || code != "" {
			t.Fatalf("result: status %q code %q payment %q", status, code, id)
		}
		if a := record(t, id); a.str("status") != "captured" {
			t.Fatalf("paynorm: %d %s", a.Status, a.Body)
		}
	})
	t.Run("not enrolled, required", func(t *testing.T) {
		if status, code, _, _, _ := pay(t, "tok_visa", "automatic", ""); status != "failed" || code != "card_not_enrolled" {
			t.Fatalf("result: status %q code %q", status, code)
		}
	})
}
