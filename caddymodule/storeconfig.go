package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/paynorm/paynorm/ledger"
	"github.com/paynorm/paynorm/store"
	"github.com/paynorm/paynorm/store/bolt"
	"github.com/paynorm/paynorm/store/journal"
	"github.com/paynorm/paynorm/store/redis"
)

// StoreConfig selects where idempotency keys and payment records live.
type StoreConfig struct {
	// Backend is "journal" (the default: one append-only file, survives
	// restarts, one fdatasync per group of writes), "bolt" (one bbolt file:
	// data sets larger than memory, two fsyncs per write), "redis" (shared
	// by several instances) or "memory" (tests only: nothing survives a
	// restart). Without a backend, a bolt file an earlier version left at
	// the default path keeps being used.
	Backend string `json:"backend,omitempty"`
	// Path is the journal or bolt file (default: paynorm/paynorm.journal
	// or paynorm/paynorm.db under Caddy's data directory). Placeholders
	// are replaced.
	Path string `json:"path,omitempty"`
	// Addrs are the Redis server, Sentinel or cluster node addresses.
	Addrs []string `json:"addrs,omitempty"`
	// Username is the Redis ACL user (Redis 6+; empty: the default user).
	// Give paynorm a user of its own, limited to its prefix: ~{paynorm}:*
	// and the commands it uses.
	Username string `json:"username,omitempty"`
	// Password is the Redis password, e.g. {env.REDIS_PASSWORD}. Never logged.
	Password string `json:"password,omitempty"`
	// DB is the Redis database number (not used by a cluster).
	DB int `json:"db,omitempty"`
	// Prefix starts every Redis key (default "{paynorm}:"). With several
	// addresses (a Cluster) it must hold a {hash tag}: every atomic step
	// touches keys of one hash slot.
	Prefix string `json:"prefix,omitempty"`
	// TLS, when set, encrypts the connections to Redis and verifies the
	// server's certificate. Without it records, replayed answers and the
	// password cross the network in clear text: use it for any Redis that
	// is not on this host.
	TLS *RedisTLS `json:"tls,omitempty"`
}

// RedisTLS configures TLS to Redis (Redis 6+ tls-port, or a managed Redis).
type RedisTLS struct {
	// CAFile is a PEM bundle of the CAs that sign the server's certificate
	// (default: the system roots). Placeholders are replaced.
	CAFile string `json:"ca_file,omitempty"`
	// ServerName is the name the server's certificate must carry (default:
	// the host of the address).
	ServerName string `json:"server_name,omitempty"`
	// CertFile is a client certificate (PEM) for a server that requires
	// one (tls-auth-clients yes); it goes with KeyFile.
	CertFile string `json:"cert_file,omitempty"`
	// KeyFile is the client certificate's private key (PEM).
	KeyFile string `json:"key_file,omitempty"`
}

// storeState is one opened store and its resolver, shared by every config
// that names the same backend: a bolt file is opened once per path even
// while an old and a new config overlap during a reload.
type storeState struct {
	store    store.Store
	resolver *resolver
	backend  string
	// locks serialize operations on one payment across configs.
	locks *ledger.Locks
	// key, path and addrs describe the store to the admin API.
	key   string
	path  string
	addrs []string
}

// Destruct stops the resolver and closes the store once no config uses it.
func (s *storeState) Destruct() error {
	openStores.Delete(s.key)
	s.resolver.stop()
	return s.store.Close()
}

// openStores are the stores open in this process (pool key -> *storeState),
// for the admin API.
var openStores sync.Map

// allLoopback reports whether every address is on this host.
func allLoopback(addrs []string) bool {
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			host = a
		}
		if !loopbackHost(host) {
			return false
		}
	}
	return true
}

// resolved expands placeholders and applies defaults.
func (c StoreConfig) resolved(repl *caddy.Replacer) (StoreConfig, error) {
	if c.Backend == "" {
		c.Backend = defaultBackend()
	}
	c.Path = repl.ReplaceAll(c.Path, "")
	c.Username = repl.ReplaceAll(c.Username, "")
	c.Password = repl.ReplaceAll(c.Password, "")
	c.Prefix = repl.ReplaceAll(c.Prefix, "")
	if c.TLS != nil {
		t := *c.TLS
		for _, p := range []*string{&t.CAFile, &t.ServerName, &t.CertFile, &t.KeyFile} {
			*p = repl.ReplaceAll(*p, "")
		}
		c.TLS = &t
	}
	addrs := make([]string, len(c.Addrs))
	for i, a := range c.Addrs {
		addrs[i] = repl.ReplaceAll(a, "")
	}
	c.Addrs = addrs
	switch c.Backend {
	case "journal", "bolt":
		if c.Path == "" {
			c.Path = defaultStorePath(c.Backend)
		}
		abs, err := filepath.Abs(c.Path)
		if err != nil {
			return c, err
		}
		c.Path = abs
	case "redis":
		if len(c.Addrs) == 0 {
			return c, fmt.Errorf("store redis: at least one address is required")
		}
	case "memory":
	default:
		return c, fmt.Errorf("store: unknown backend %q (known: journal, bolt, redis, memory)", c.Backend)
	}
	return c, nil
}

// defaultStorePath is where an embedded backend lives by default.
func defaultStorePath(backend string) string {
	name := "paynorm.journal"
	if backend == "bolt" {
		name = "paynorm.db"
	}
	return filepath.Join(caddy.AppDataDir(), "paynorm", name)
}

// defaultBackend is the journal, unless an earlier version's default bolt
// file is there and no journal is: switching would leave its records
// behind, so it stays in use (`store journal` after a migration).
func defaultBackend() string {
	if _, err := os.Stat(defaultStorePath("journal")); err == nil {
		return "journal"
	}
	if _, err := os.Stat(defaultStorePath("bolt")); err == nil {
		return "bolt"
	}
	return "journal"
}

// poolKey identifies the backend; the password only enters through a hash.
func (c StoreConfig) poolKey() string {
	switch c.Backend {
	case "journal", "bolt":
		return "paynorm/store/" + c.Backend + "/" + c.Path
	case "redis":
		b, _ := json.Marshal([]any{c.Addrs, c.Username, c.Password, c.DB, c.Prefix, c.TLS})
		sum := sha256.Sum256(b)
		return "paynorm/store/redis/" + hex.EncodeToString(sum[:8])
	}
	return "paynorm/store/memory"
}

// loadStore opens the configured store, or shares the one already open.
func loadStore(c StoreConfig, log *zap.Logger) (*storeState, string, error) {
	key := c.poolKey()
	v, _, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
		var s store.Store
		switch c.Backend {
		case "journal":
			j, err := journal.Open(c.Path, journal.Options{Timeout: 5 * time.Second})
			if err != nil {
				return nil, err
			}
			if j.Recovered > 0 {
				log.Warn("the journal ended in a write a crash cut short (never acknowledged); it was cut off and saved",
					zap.String("path", c.Path), zap.Int64("bytes", j.Recovered), zap.String("saved_to", j.TornCopy))
			}
			s = j
		case "bolt":
			b, err := bolt.Open(c.Path, 5*time.Second)
			if err != nil {
				return nil, err
			}
			s = b
		case "redis":
			o := redis.Options{Addrs: c.Addrs, Username: c.Username, Password: c.Password, DB: c.DB, Prefix: c.Prefix}
			if c.TLS != nil {
				t, err := redis.TLSFiles{CAFile: c.TLS.CAFile, ServerName: c.TLS.ServerName, CertFile: c.TLS.CertFile, KeyFile: c.TLS.KeyFile}.Config()
				if err != nil {
					return nil, fmt.Errorf("store redis: %v", err)
				}
				o.TLS = t
			} else if !allLoopback(c.Addrs) {
				log.Warn("the Redis store is reached without TLS: records, replayed answers and the password cross the network in clear text (store redis ... { tls })",
					zap.Strings("addrs", c.Addrs))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			r, err := redis.Open(ctx, o)
			if err != nil {
				return nil, fmt.Errorf("store redis %v: %v", c.Addrs, err)
			}
			s = r
		default:
			s = store.NewMemory()
		}
		log.Info("paynorm store opened", zap.String("backend", c.Backend), zap.String("path", c.Path), zap.Strings("addrs", c.Addrs),
			zap.Bool("tls", c.TLS != nil))
		st := &storeState{store: s, resolver: newResolver(s, log), backend: c.Backend, locks: ledger.NewLocks(),
			key: key, path: c.Path, addrs: c.Addrs}
		openStores.Store(key, st)
		return st, nil
	})
	if err != nil {
		return nil, "", err
	}
	return v.(*storeState), key, nil
}

// parseStore reads `store journal [PATH]`, `store bolt [PATH]`, `store memory` or
// `store redis ADDR... [{ username U; password P; db N; prefix P; tls [{ ca_file F; server_name N; cert_file C; key_file K }] }]`.
func parseStore(d *caddyfile.Dispenser) (*StoreConfig, error) {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return nil, d.ArgErr()
	}
	c := &StoreConfig{Backend: args[0]}
	switch c.Backend {
	case "journal", "bolt":
		if len(args) > 2 {
			return nil, d.ArgErr()
		}
		if len(args) == 2 {
			c.Path = args[1]
		}
	case "memory":
		if len(args) != 1 {
			return nil, d.ArgErr()
		}
	case "redis":
		c.Addrs = args[1:]
		if len(c.Addrs) == 0 {
			return nil, d.Err("store redis needs at least one address")
		}
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			opt := d.Val()
			if opt == "tls" {
				t, err := parseRedisTLS(d)
				if err != nil {
					return nil, err
				}
				c.TLS = t
				continue
			}
			var v string
			if !d.Args(&v) {
				return nil, d.ArgErr()
			}
			switch opt {
			case "username":
				c.Username = v
			case "password":
				c.Password = v
			case "prefix":
				c.Prefix = v
			case "db":
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 {
					return nil, d.Errf("store redis db: %q is not a database number", v)
				}
				c.DB = n
			default:
				return nil, d.Errf("unrecognized store redis option %q", opt)
			}
		}
	default:
		return nil, d.Errf("store: unknown backend %q (known: journal, bolt, redis, memory)", c.Backend)
	}
	return c, nil
}

// parseRedisTLS reads `tls [{ ca_file F; server_name N; cert_file C; key_file K }]`.
func parseRedisTLS(d *caddyfile.Dispenser) (*RedisTLS, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	t := &RedisTLS{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		var v string
		if !d.Args(&v) {
			return nil, d.ArgErr()
		}
		switch opt {
		case "ca_file":
			t.CAFile = v
		case "server_name":
			t.ServerName = v
		case "cert_file":
			t.CertFile = v
		case "key_file":
			t.KeyFile = v
		default:
			return nil, d.Errf("unrecognized store redis tls option %q", opt)
		}
	}
	return t, nil
}

// provisionStore opens (or shares) the configured store and hands this
// config's accounts to the store's resolver. A store set before Provision
// (tests) is used as it is.
func (h *Handler) provisionStore(repl *caddy.Replacer) error {
	if h.store != nil {
		h.ledger = ledger.New(h.store, nil, h.webhooks.notifyURL != "")
		return nil
	}
	var cfg StoreConfig
	if h.Store != nil {
		cfg = *h.Store
	}
	cfg, err := cfg.resolved(repl)
	if err != nil {
		return err
	}
	st, key, err := loadStore(cfg, h.logger)
	if err != nil {
		return err
	}
	h.poolKeys = append(h.poolKeys, key)
	h.store, h.stores = st.store, st
	h.ledger = ledger.New(h.store, st.locks, h.webhooks.notifyURL != "")
	after, failAfter := h.resolveGrace()
	expiry := map[string]time.Duration{}
	for i := range h.Accounts {
		expiry[h.Accounts[i].Name] = h.Accounts[i].actionExpiry()
	}
	st.resolver.register(h.providers, h.ledger, after, failAfter, expiry)
	return nil
}

// resolveGrace returns the resolver's first-look delay (resolve_after,
// default 1m) and how old a record must be before an order the provider
// never executed may be settled as failed: at least twice the longest
// provider timeout, since that order may still be executing.
func (h *Handler) resolveGrace() (after, failAfter time.Duration) {
	after = time.Duration(h.ResolveAfter)
	if after <= 0 {
		after = defaultResolveAfter
	}
	var longest time.Duration
	for _, a := range h.Accounts {
		t := time.Duration(a.Timeout)
		if t <= 0 {
			t = 30 * time.Second
		}
		longest = max(longest, t)
	}
	return after, max(after, 2*longest)
}
