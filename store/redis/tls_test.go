package redis

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paynorm/paynorm/store"
)

// writePEM writes one PEM block to dir/name.
func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// testPKI makes a CA and a server certificate for "redis.test" and
// 127.0.0.1, and returns the file paths.
func testPKI(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "paynorm test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "redis.test"},
		DNSNames: []string{"redis.test"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER), writePEM(t, dir, "server.pem", "CERTIFICATE", der),
		writePEM(t, dir, "server.key", "EC PRIVATE KEY", keyDER)
}

// tlsRedis starts a redis-server that speaks only TLS, with an ACL user
// "paynorm" (password "s3cret-acl-pass") and the default user disabled.
func tlsRedis(t *testing.T) (addr, caFile string) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("no redis-server on PATH")
	}
	dir := t.TempDir()
	caFile, certFile, keyFile := testPKI(t, dir)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := fmt.Sprintf("port 0\ntls-port %d\nbind 127.0.0.1\ntls-cert-file %s\ntls-key-file %s\ntls-ca-cert-file %s\n"+
		"tls-auth-clients no\nsave \"\"\nappendonly no\ndir %s\n"+
		"user default off\nuser paynorm on >s3cret-acl-pass ~* &* +@all\n", port, certFile, keyFile, caFile, dir)
	cf := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, cf)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(5 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, caFile
		}
		if time.Now().After(deadline) {
			t.Skipf("redis-server with TLS did not start (built without TLS?): %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Redis over TLS with an ACL user: records go through the encrypted
// connection, and the certificate, the server name and the credentials
// are all checked.
func TestRedisTLSAndACLUser(t *testing.T) {
	addr, caFile := tlsRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	good, err := TLSFiles{CAFile: caFile, ServerName: "redis.test"}.Config()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, Options{Addrs: []string{addr}, Username: "paynorm", Password: "s3cret-acl-pass", TLS: good})
	if err != nil {
		t.Fatalf("TLS with the right CA, name and ACL user: %v", err)
	}
	defer s.Close()
	rec := &store.PaymentRecord{ID: "gmo_TLS-1", Status: "pending", CreatedAt: time.Now()}
	if err := s.SwapPayment(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetPayment(ctx, rec.ID); err != nil || got.Status != "pending" {
		t.Fatalf("%+v %v", got, err)
	}
	if err := s.Probe(ctx); err != nil {
		t.Fatal(err)
	}

	short, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	if _, err := Open(short, Options{Addrs: []string{addr}, Username: "paynorm", Password: "s3cret-acl-pass"}); err == nil {
		t.Fatal("plain TCP to a TLS-only server worked")
	}
	wrongName, _ := TLSFiles{CAFile: caFile, ServerName: "other.test"}.Config()
	if _, err := Open(short, Options{Addrs: []string{addr}, Username: "paynorm", Password: "s3cret-acl-pass", TLS: wrongName}); err == nil {
		t.Fatal("a certificate for another name was accepted")
	}
	systemRoots, _ := TLSFiles{ServerName: "redis.test"}.Config()
	if _, err := Open(short, Options{Addrs: []string{addr}, Username: "paynorm", Password: "s3cret-acl-pass", TLS: systemRoots}); err == nil {
		t.Fatal("a certificate from an unknown CA was accepted")
	}
	_, err = Open(short, Options{Addrs: []string{addr}, Username: "paynorm", Password: "wrong", TLS: good})
	if err == nil || strings.Contains(err.Error(), "wrong") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := Open(short, Options{Addrs: []string{addr}, Password: "s3cret-acl-pass", TLS: good}); err == nil {
		t.Fatal("the disabled default user got in")
	}
}

func TestTLSFilesErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	_ = os.WriteFile(bad, []byte("not pem"), 0o600)
	for name, f := range map[string]TLSFiles{
		"missing ca":   {CAFile: filepath.Join(dir, "none.pem")},
		"not pem":      {CAFile: bad},
		"cert, no key": {CertFile: bad},
		"bad key pair": {CertFile: bad, KeyFile: bad},
	} {
		if _, err := f.Config(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
