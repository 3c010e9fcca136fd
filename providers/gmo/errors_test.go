package gmo

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/paynorm/paynorm/normalize"
)

type refCode struct {
	Code      string `json:"code"`
	ErrorCode string `json:"error_code"`
	Message   string `json:"error_message"`
	Retryable bool   `json:"retryable"`
}

// Every ErrInfo of the reference catalog maps to a known code of the type
// its class demands.
func TestEveryReferenceErrInfoIsMapped(t *testing.T) {
	raw, err := os.ReadFile("testdata/gmo-error-codes.json") // source: testdata/SOURCES.md
	if err != nil {
		t.Fatalf("reference catalog: %v", err)
	}
	var refs []refCode
	if err := json.Unmarshal(raw, &refs); err != nil {
		t.Fatal(err)
	}
	if len(refs) < 300 {
		t.Fatalf("only %d reference codes read", len(refs))
	}
	counts := map[string]int{}
	for _, r := range refs {
		m := MapErrInfo(r.ErrorCode)
		if !normalize.Known(m.Code) {
			t.Errorf("%s maps to unknown code %q", r.ErrorCode, m.Code)
			continue
		}
		typ := normalize.TypeOf(m.Code)
		counts[typ]++
		want := ""
		switch {
		case strings.HasPrefix(r.ErrorCode, "42G"):
			want = normalize.TypeCard // issuer declines
		case strings.HasPrefix(r.ErrorCode, "EX1"):
			want = normalize.TypeCard // token errors
		case strings.HasPrefix(r.ErrorCode, "E92"):
			want = normalize.TypeRateLimited
		case r.ErrorCode == "E91099997":
			want = normalize.TypeProviderError // unknown API: paynorm's bug, not an outage
		case strings.HasPrefix(r.ErrorCode, "E90"), strings.HasPrefix(r.ErrorCode, "E91020001"):
			if typ != normalize.TypeProviderUnavailable && typ != normalize.TypeProviderTimeout {
				t.Errorf("%s: provider fault must be unavailable/timeout, got %s", r.ErrorCode, typ)
			}
			continue
		case strings.HasPrefix(r.ErrorCode, "E91"):
			if typ != normalize.TypeProviderUnavailable && typ != normalize.TypeProviderError {
				t.Errorf("%s: got %s", r.ErrorCode, typ)
			}
			continue
		case r.ErrorCode == "E61010002":
			want = normalize.TypeCard // the card is not usable: the payer uses another one
		case strings.HasPrefix(r.ErrorCode, "E61"), strings.HasPrefix(r.ErrorCode, "E0101"), strings.HasPrefix(r.ErrorCode, "E0102"),
			strings.HasPrefix(r.ErrorCode, "E0103"), strings.HasPrefix(r.ErrorCode, "E0119"), strings.HasPrefix(r.ErrorCode, "E0120"),
			strings.HasPrefix(r.ErrorCode, "E0121"), strings.HasPrefix(r.ErrorCode, "E0165"):
			want = normalize.TypeProviderError // merchant configuration / credentials
		case strings.HasPrefix(r.ErrorCode, "E00"), strings.HasPrefix(r.ErrorCode, "E31"):
			want = normalize.TypeProviderError
		case strings.HasPrefix(r.ErrorCode, "E21"):
			want = normalize.TypeCard // 3-D Secure failures
		case strings.HasPrefix(r.ErrorCode, "E11"):
			if typ != normalize.TypeInvalidRequest && typ != normalize.TypeCard {
				t.Errorf("%s: transaction-state error typed %s", r.ErrorCode, typ)
			}
			continue
		case strings.HasPrefix(r.ErrorCode, "E01"):
			if typ != normalize.TypeInvalidRequest && typ != normalize.TypeCard {
				t.Errorf("%s: input error typed %s", r.ErrorCode, typ)
			}
			continue
		}
		if want != "" && typ != want {
			t.Errorf("%s (%s) maps to %s/%s, want type %s", r.ErrorCode, r.Message, typ, m.Code, want)
		}
		// A code the catalog marks retryable must not become a hard decline.
		if r.Retryable && !normalize.New(m.Code).Retryable {
			t.Errorf("%s is retryable at GMO but %s is not", r.ErrorCode, m.Code)
		}
	}
	t.Logf("%d reference codes mapped: %v", len(refs), counts)
}

func TestSpecificMappings(t *testing.T) {
	cases := map[string]string{
		"42G020000": "insufficient_funds", "42G550000": "exceeds_limit", "42G440000": "incorrect_cvc",
		"42G830000": "expired_card", "42G120000": "card_declined", "42G740000": "invalid_installments",
		"EX1000303": "token_expired", "EX1000301": "token_invalid", "E01040010": "order_id_exists",
		"E11010001": "already_processed", "E92000001": "rate_limited", "E90010001": "processing_in_progress",
		"E01030002": "provider_misconfigured", "E61010001": "provider_misconfigured", "E01060010": "amount_mismatch",
		"42C010000": "issuer_unavailable", "Z99999999": "processing_error", "": "processing_error",
		// issue 15 item 7: codes that pointed the wrong way.
		"E01110010": "invalid_state",           // trade not executed: a state refusal, not a 404
		"E61010002": "card_not_supported",      // use another card, not paynorm's configuration
		"E01080101": "authentication_required", // the contract requires 3-D Secure
		"E11010002": "invalid_state",           // capture/cancel name it in their words
	}
	for info, want := range cases {
		if got := MapErrInfo(info).Code; got != want {
			t.Errorf("%q: got %s want %s", info, got, want)
		}
	}
}

func TestNormalizeErrorsPicksMostTellingAndKeepsRaw(t *testing.T) {
	e := NormalizeErrors("gmo", []ErrPair{{"E01", "E01170003"}, {"E01", "E01180008"}})
	if e.Type != normalize.TypeCard || e.Code != "incorrect_number" || len(e.ProviderCodes) != 2 || e.Provider != "gmo" {
		t.Fatalf("got %+v", e)
	}
	e = NormalizeErrors("gmo", []ErrPair{{"E01", "E01040013"}, {"E01", "E01060005"}})
	if e.Type != normalize.TypeInvalidRequest || len(e.Fields) != 2 || *e.Param != "order_id" {
		t.Fatalf("field errors: %+v", e)
	}
	e = NormalizeErrors("gmo", []ErrPair{{"E99", "E99999999"}})
	if e.Code != "processing_error" || e.ProviderCodes[0].Info != "E99999999" {
		t.Fatalf("unknown code: %+v", e)
	}
}
