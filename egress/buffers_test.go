package egress

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The account transport uses small per-connection buffers; a request body,
// an answer and a header line larger than them must still pass intact.
func TestTransportCarriesMessagesLargerThanItsBuffers(t *testing.T) {
	long := strings.Repeat("x", 6<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Long", long)
		_, _ = w.Write(bytes.Repeat(body, 3))
	}))
	defer srv.Close()
	tr, err := NewTransport(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	req := bytes.Repeat([]byte("ShopID=tshop00000001&"), 500) // ~10 KiB
	// Three times over the same keep-alive connection.
	for range 3 {
		resp, err := c.Post(srv.URL, "application/x-www-form-urlencoded", bytes.NewReader(req))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, bytes.Repeat(req, 3)) || resp.Header.Get("X-Long") != long {
			t.Fatalf("message damaged: %d bytes back, header %d bytes", len(got), len(resp.Header.Get("X-Long")))
		}
	}
}

func TestNewTransportRejectsBadEgressSettings(t *testing.T) {
	if _, err := NewTransport(Options{SourceAddress: "not-an-ip"}); err == nil {
		t.Error("source_address must be an IP")
	}
	if _, err := NewTransport(Options{ProxyURL: "socks5://proxy:1080"}); err == nil {
		t.Error("proxy_url must be http or https")
	}
	tr, err := NewTransport(Options{SourceAddress: "127.0.0.1", ProxyURL: "http://127.0.0.1:3128"})
	if err != nil || tr.Proxy == nil {
		t.Fatalf("valid egress settings refused: %v", err)
	}
}
