package gmo_test

import (
	"context"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/paynorm/paynorm/egress"
	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers"
	"github.com/paynorm/paynorm/providers/gmo"
	"github.com/paynorm/paynorm/providers/sandbox"
	"github.com/paynorm/paynorm/resilience"
)

// The provider's hot path over real loopback HTTP against the simulator,
// with the account transport paynorm uses. The simulator runs in the same
// process, so B/op and allocs/op include its share; profile with
//
//	go test ./providers/gmo -run '^$' -bench Provider -benchmem -cpuprofile cpu.out -memprofile mem.out
func BenchmarkProviderCreateAndCapture(b *testing.B) {
	sim := sandbox.NewGMO()
	srv := httptest.NewServer(sim)
	defer srv.Close()
	tr, err := egress.NewTransport(egress.Options{})
	if err != nil {
		b.Fatal(err)
	}
	c := gmo.NewClient(gmo.Config{Account: "gmo", Endpoint: srv.URL, ShopID: "tshop00000001", ShopPass: "shoppass", Timeout: 10 * time.Second},
		tr, resilience.New(resilience.Settings{Name: "gmo"}), nil)
	p := gmo.New(c)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		req := &normalize.CreatePayment{OrderID: "BENCH-" + strconv.Itoa(i), Amount: 1000, Tax: 100, Capture: normalize.CaptureManual,
			PaymentMethod: normalize.PaymentMethod{Token: "tok_visa"}}
		pay, err := p.CreatePayment(ctx, req)
		if err != nil || pay.Status != normalize.StatusAuthorized {
			b.Fatalf("create: %v", err)
		}
		if pay, err = p.Capture(ctx, providers.Target{Key: req.OrderID}, &normalize.CaptureRequest{}); err != nil || pay.Status != normalize.StatusCaptured {
			b.Fatalf("capture: %v", err)
		}
	}
}
