package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
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
		// A fresh prefix per test keeps runs (and parallel packages) apart.
		s, err := Open(ctx, Options{Addrs: []string{addr()}, Prefix: "paynorm-test:" + hex.EncodeToString(b[:]) + ":"})
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
