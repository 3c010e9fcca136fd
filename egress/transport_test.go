package egress_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paynorm/paynorm/egress"
	"github.com/paynorm/paynorm/normalize"
	"github.com/paynorm/paynorm/providers/jpayment"
	"github.com/paynorm/paynorm/providers/sandbox"
	"github.com/paynorm/paynorm/resilience"
)

// remoteAddrServer answers each request with the peer address it saw.
func remoteAddrServer(t *testing.T, tlsOn bool) *httptest.Server {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.RemoteAddr) })
	var s *httptest.Server
	if tlsOn {
		s = httptest.NewTLSServer(h)
	} else {
		s = httptest.NewServer(h)
	}
	t.Cleanup(s.Close)
	return s
}

func get(t *testing.T, tr http.RoundTripper, url string) string {
	t.Helper()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func host(addr string) string {
	h, _, _ := net.SplitHostPort(addr)
	return h
}

func TestSourceAddressIsTheObservedPeer(t *testing.T) {
	srv := remoteAddrServer(t, false)
	tr, err := egress.NewTransport(egress.Options{SourceAddress: "127.0.0.2"})
	if err != nil {
		t.Fatal(err)
	}
	if got := host(get(t, tr, srv.URL)); got != "127.0.0.2" {
		t.Fatalf("server saw %s, want 127.0.0.2", got)
	}
	plain, _ := egress.NewTransport(egress.Options{})
	if got := host(get(t, plain, srv.URL)); got != "127.0.0.1" {
		t.Fatalf("without source_address the server saw %s", got)
	}
}

func TestBadOptions(t *testing.T) {
	for _, o := range []egress.Options{{SourceAddress: "not-an-ip"}, {ProxyURL: "socks5://127.0.0.1:1080"}, {ProxyURL: "http://"}} {
		if _, err := egress.NewTransport(o); err == nil {
			t.Errorf("accepted %+v", o)
		}
	}
}

// connectProxy is a minimal HTTP CONNECT proxy that dials out from
// localIP, like a fixed-IP egress proxy, and records the CONNECT targets.
type connectProxy struct {
	*httptest.Server
	mu      sync.Mutex
	targets []string
}

func newConnectProxy(t *testing.T, localIP string) *connectProxy {
	p := &connectProxy{}
	dialer := &net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		p.mu.Lock()
		p.targets = append(p.targets, r.Host)
		p.mu.Unlock()
		up, err := dialer.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			up.Close()
			return
		}
		_, _ = conn.Write([]byte("HTTP/1.1 200 Connection Established\r\n\r\n"))
		go func() {
			defer up.Close()
			_, _ = io.Copy(up, buf)
		}()
		go func() {
			defer conn.Close()
			_, _ = io.Copy(conn, up)
		}()
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *connectProxy) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.targets...)
}

// trust makes tr accept srv's test certificate.
func trust(tr *http.Transport, srv *httptest.Server) {
	tr.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
}

func TestProxyURLTunnelsWithConnect(t *testing.T) {
	srv := remoteAddrServer(t, true)
	proxy := newConnectProxy(t, "127.0.0.3")
	tr, err := egress.NewTransport(egress.Options{ProxyURL: proxy.URL})
	if err != nil {
		t.Fatal(err)
	}
	trust(tr, srv)
	if got := host(get(t, tr, srv.URL)); got != "127.0.0.3" {
		t.Fatalf("server saw %s, want the proxy's egress 127.0.0.3", got)
	}
	want := strings.TrimPrefix(srv.URL, "https://")
	if s := proxy.seen(); len(s) != 1 || s[0] != want {
		t.Fatalf("proxy saw CONNECT %v, want %s", s, want)
	}
}

func jpaymentClient(t *testing.T, endpoint string, tr http.RoundTripper) *jpayment.Provider {
	c := jpayment.NewClient(jpayment.Config{Account: "jp", Endpoint: endpoint, AID: "123456", Timeout: 5 * time.Second},
		tr, resilience.New(resilience.Settings{Name: "jp"}), nil)
	return jpayment.New(c)
}

func charge(p *jpayment.Provider) (*normalize.Payment, error) {
	r := &normalize.CreatePayment{Amount: 100, PaymentMethod: normalize.PaymentMethod{Token: "tok_visa"}, Customer: &normalize.CustomerInfo{Email: "a@example.jp"}}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return p.CreatePayment(context.Background(), r)
}

// j-payment's source-IP check passes only from the registered address.
func TestJPaymentSourceIPThroughSourceAddress(t *testing.T) {
	sim := sandbox.NewJPayment()
	sim.AllowedIP = "127.0.0.2"
	srv := httptest.NewServer(sim)
	defer srv.Close()

	plain, _ := egress.NewTransport(egress.Options{})
	_, err := charge(jpaymentClient(t, srv.URL, plain))
	if ne, ok := err.(*normalize.Error); !ok || ne.Code != "egress_ip_not_allowed" {
		t.Fatalf("from 127.0.0.1: %v", err)
	}
	fixed, _ := egress.NewTransport(egress.Options{SourceAddress: "127.0.0.2"})
	pay, err := charge(jpaymentClient(t, srv.URL, fixed))
	if err != nil || pay.Status != normalize.StatusCaptured {
		t.Fatalf("from 127.0.0.2: %+v %v", pay, err)
	}
}

func TestJPaymentThroughFixedIPProxy(t *testing.T) {
	sim := sandbox.NewJPayment()
	sim.AllowedIP = "127.0.0.3"
	srv := httptest.NewTLSServer(sim)
	defer srv.Close()
	proxy := newConnectProxy(t, "127.0.0.3")

	tr, _ := egress.NewTransport(egress.Options{ProxyURL: proxy.URL})
	trust(tr, srv)
	pay, err := charge(jpaymentClient(t, srv.URL, tr))
	if err != nil || pay.Status != normalize.StatusCaptured {
		t.Fatalf("through the proxy: %+v %v", pay, err)
	}
	if s := proxy.seen(); len(s) != 1 || s[0] != strings.TrimPrefix(srv.URL, "https://") {
		t.Fatalf("proxy saw %v", s)
	}
	direct, _ := egress.NewTransport(egress.Options{})
	trust(direct, srv)
	if _, err := charge(jpaymentClient(t, srv.URL, direct)); err == nil || err.(*normalize.Error).Code != "egress_ip_not_allowed" {
		t.Fatalf("direct: %v", err)
	}
}
