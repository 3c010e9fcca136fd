package jpayment

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers/gmo"
)

// referenceCodes reads every code of the reference table, including the
// rows that list two codes ("ER117 <br> ER119").
func referenceCodes(t *testing.T) (er, g []string) {
	raw, err := os.ReadFile("testdata/jpayment-error-codes.md")
	if err != nil {
		t.Fatal(err)
	}
	code := regexp.MustCompile(`\b(ER\d{3}|G\d{2}42G\d{6})\b`)
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			continue
		}
		for _, c := range code.FindAllString(cells[1], -1) {
			if strings.HasPrefix(c, "ER") {
				er = append(er, c)
			} else {
				g = append(g, c)
			}
		}
	}
	return er, g
}

func TestEveryReferenceCodeMaps(t *testing.T) {
	er, g := referenceCodes(t)
	if len(er) != 85 || len(g) != 21 {
		t.Fatalf("read %d ER and %d G codes from the table; the parser is broken", len(er), len(g))
	}
	for _, c := range er {
		m, ok := erCodes[c]
		if !ok {
			t.Errorf("%s has no explicit mapping", c)
			continue
		}
		if !normalize.Known(m.Code) {
			t.Errorf("%s maps to unknown catalog code %q", c, m.Code)
		}
		// ER codes are raised before the card company is contacted, so an
		// answered ER code is never an unknown outcome.
		if normalize.TypeOf(m.Code) == normalize.TypeProviderTimeout {
			t.Errorf("%s maps to a timeout", c)
		}
	}
	for _, c := range g {
		m := MapCode(c)
		if normalize.TypeOf(m.Code) != normalize.TypeCard {
			t.Errorf("%s -> %s is not a card_error", c, m.Code)
		}
		// Same decline, same code: the GMO ErrInfo embedded in the code maps
		// to the same catalog code through GMO's own table.
		if want := gmo.MapErrInfo(c[3:]).Code; want != m.Code && c[:3] != "G04" {
			t.Errorf("%s -> %s, but GMO maps %s to %s", c, m.Code, c[3:], want)
		}
	}
}

func TestSpecificMappings(t *testing.T) {
	want := map[string]struct{ code, typ string }{
		"ER003": {"egress_ip_not_allowed", normalize.TypeProviderError},
		"ER999": {"provider_maintenance", normalize.TypeProviderUnavailable},
		"ER000": {"provider_unavailable", normalize.TypeProviderUnavailable},
		"ER010": {"provider_unavailable", normalize.TypeProviderUnavailable},
		"ER042": {"provider_unavailable", normalize.TypeProviderUnavailable},
		"ER584": {"token_invalid", normalize.TypeCard},
		"ER585": {"token_expired", normalize.TypeCard},
		// Issue 15 item 7: ER032 is a generic 実売上失敗 (not "already
		// captured"), ER016 the shop's own ceiling (not the card's limit).
		"ER032":        {"not_capturable", normalize.TypeInvalidRequest},
		"ER016":        {"invalid_amount", normalize.TypeInvalidRequest},
		"ER033":        {"not_cancelable", normalize.TypeInvalidRequest},
		"G0442G040000": {"insufficient_funds", normalize.TypeCard},
		"G5542G550000": {"exceeds_limit", normalize.TypeCard},
		"ER777":        {"processing_error", normalize.TypeProviderError},
		"G0142G010000": {"card_declined", normalize.TypeCard},
		"":             {"processing_error", normalize.TypeProviderError},
	}
	for code, w := range want {
		e := NormalizeCode("jp", code)
		if e.Code != w.code || e.Type != w.typ {
			t.Errorf("%q -> %s/%s, want %s/%s", code, e.Type, e.Code, w.typ, w.code)
		}
	}
	// Faults count against the breaker; a decline never does.
	if !NormalizeCode("jp", "ER999").Fault || !NormalizeCode("jp", "ER010").Fault || NormalizeCode("jp", "G0442G040000").Fault {
		t.Error("fault flags wrong")
	}
	// The same insufficient-funds code as GMO's 42G02.
	if gmo.MapErrInfo("42G020000").Code != MapCode("G0442G040000").Code {
		t.Error("insufficient funds differs between providers")
	}
	msg := NormalizeCode("jp", "ER003").Message
	if !strings.Contains(msg, "register") || !strings.Contains(msg, "IP") {
		t.Errorf("ER003 message does not tell the operator what to do: %s", msg)
	}
}
