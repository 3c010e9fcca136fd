package e2e

import (
	"context"
	"net/http"
	"testing"

	"github.com/paynorm/paynorm/client/paynormclient"
)

// The Go client generated from openapi.yaml (oapi-codegen) drives the real
// binary: the spec is consumable by tooling, not only by eyes.
func TestGeneratedGoClient(t *testing.T) {
	p, _ := sandboxSetup(t)
	c, err := paynormclient.NewClientWithResponses(p.API, paynormclient.WithHTTPClient(http.DefaultClient))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok, capture, key := "tok_visa", paynormclient.CreatePaymentCaptureManual, "gen-client-1"
	body := paynormclient.CreatePaymentJSONRequestBody{Amount: ptr(2500), Capture: &capture}
	body.PaymentMethod.Token = &tok
	created, err := c.CreatePaymentWithResponse(ctx, &paynormclient.CreatePaymentParams{IdempotencyKey: &key}, body)
	if err != nil || created.JSON200 == nil {
		t.Fatalf("create: %v %d %s", err, created.StatusCode(), created.Body)
	}
	pay := created.JSON200
	if pay.Status != paynormclient.Authorized || pay.Amount != 2500 || pay.Total != 2500 {
		t.Fatalf("created %+v", pay)
	}
	captured, err := c.CapturePaymentWithResponse(ctx, pay.Id, &paynormclient.CapturePaymentParams{}, paynormclient.CapturePaymentJSONRequestBody{})
	if err != nil || captured.JSON200 == nil || captured.JSON200.Status != paynormclient.Captured {
		t.Fatalf("capture: %v %s", err, captured.Body)
	}
	again, err := c.CapturePaymentWithResponse(ctx, pay.Id, &paynormclient.CapturePaymentParams{}, paynormclient.CapturePaymentJSONRequestBody{})
	if err != nil || again.JSON409 == nil || string(again.JSON409.Error.Code) != "already_captured" {
		t.Fatalf("second capture: %v %d %s", err, again.StatusCode(), again.Body)
	}
	got, err := c.GetPaymentWithResponse(ctx, pay.Id)
	if err != nil || got.JSON200 == nil || got.JSON200.Status != paynormclient.Captured || got.JSON200.Id != pay.Id {
		t.Fatalf("get: %v %s", err, got.Body)
	}
	tok = "tok_insufficient_funds"
	declined, err := c.CreatePaymentWithResponse(ctx, &paynormclient.CreatePaymentParams{}, body)
	if err != nil || declined.StatusCode() != 402 || declined.JSONDefault == nil || string(declined.JSONDefault.Error.Code) != "insufficient_funds" {
		t.Fatalf("decline: %v %d %s", err, declined.StatusCode(), declined.Body)
	}
}

func ptr[T any](v T) *T { return &v }
