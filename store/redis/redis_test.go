package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/paynorm/paynorm/store"
	"github.com/paynorm/paynorm/store/storetest"
)

// addr is the Redis the tests use; .ci/run starts one on the default port.
func addr() string {
	if a := os.Getenv("PAYNORM_TEST_REDIS"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

func TestRedisConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		var b [6]byte
		_, _ = rand.Read(b[:])
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		// A fresh prefix per test keeps runs (and parallel packages) apart;
		// it carries a hash tag as a cluster deployment's would.
		s, err := Open(ctx, Options{Addrs: []string{addr()}, Prefix: "{paynorm-test:" + hex.EncodeToString(b[:]) + "}:"})
		if err != nil {
			t.Skipf("no Redis answers on %s (%v): the redis leg is skipped; .ci/run starts redis-server", addr(), err)
		}
		t.Cleanup(func() {
			keys, _ := s.c.Keys(context.Background(), s.prefix+"*").Result()
			if len(keys) > 0 {
				s.c.Del(context.Background(), keys...)
			}
			s.Close()
		})
		return s
	})
}

func TestHashTag(t *testing.T) {
	for p, want := range map[string]bool{
		"{paynorm}:": true, "app:{x}:": true, "{a}{b}:": true,
		"paynorm:": false, "{}:": false, "{}{x}:": false, "{paynorm:": false, "}{": false,
	} {
		if hasHashTag(p) != want {
			t.Errorf("hasHashTag(%q) = %v, want %v", p, !want, want)
		}
	}
}

// Several addresses may be a cluster, where a prefix without a hash tag
// would spread a payment write over slots: Open refuses it before dialing.
// One address keeps working with any prefix.
func TestOpenRefusesTaglessPrefixForCluster(t *testing.T) {
	ctx := context.Background()
	_, err := Open(ctx, Options{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}, Prefix: "paynorm:"})
	if err == nil || !strings.Contains(err.Error(), "hash tag") {
		t.Fatalf("tagless prefix with several addresses: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "paynorm-test-untagged:" + hex.EncodeToString(b[:]) + ":"
	s, err := Open(ctx, Options{Addrs: []string{addr()}, Prefix: prefix})
	if err != nil {
		t.Skipf("no Redis answers on %s (%v)", addr(), err)
	}
	defer s.Close()
	rec := &store.PaymentRecord{ID: "gmo_T", Status: "pending", CreatedAt: time.Now()}
	defer s.c.Del(context.Background(), s.payKey(rec.ID), s.unresolvedKey())
	if err := s.SwapPayment(ctx, rec); err != nil {
		t.Fatalf("single server with an untagged prefix: %v", err)
	}
	if s.prefix != prefix {
		t.Fatalf("prefix %q", s.prefix)
	}
}

func TestDefaultPrefixHasHashTag(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	s, err := Open(ctx, Options{Addrs: []string{addr()}})
	if err != nil {
		t.Skipf("no Redis answers on %s (%v)", addr(), err)
	}
	defer s.Close()
	if s.prefix != "{paynorm}:" {
		t.Fatalf("default prefix %q", s.prefix)
	}
}

// Two instances opening the same store (prefix) share one fingerprint key,
// so a retry reaching the other instance matches; another prefix has its
// own.
func TestRedisFingerprintKeyIsShared(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "{paynorm-test:" + hex.EncodeToString(b[:]) + "}:"
	a, err := Open(ctx, Options{Addrs: []string{addr()}, Prefix: prefix})
	if err != nil {
		t.Skipf("no Redis answers on %s (%v)", addr(), err)
	}
	defer a.Close()
	defer a.c.Del(context.Background(), prefix+"fingerprint_key")
	c, err := Open(ctx, Options{Addrs: []string{addr()}, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if string(a.FingerprintKey()) != string(c.FingerprintKey()) || len(a.FingerprintKey()) != store.FingerprintKeySize {
		t.Fatal("instances on one store have different fingerprint keys")
	}
	other, err := Open(ctx, Options{Addrs: []string{addr()}, Prefix: prefix + "x:"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	defer other.c.Del(context.Background(), prefix+"x:fingerprint_key")
	if string(other.FingerprintKey()) == string(a.FingerprintKey()) {
		t.Fatal("two stores share a fingerprint key")
	}
}
