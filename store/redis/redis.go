// Package redis is the shared store backend: several paynorm instances (for
// example behind one fixed egress IP) see the same idempotency keys and
// payment records. Addresses of a Redis Cluster are accepted too: a payment
// write updates the record, the resolver's index and the outbox in one
// script, and a script's keys must share a hash slot, so every key starts
// with the prefix and the prefix carries a hash tag ("{paynorm}:"). A custom
// prefix used with a cluster must keep one, e.g. "{shop1}:".
package redis

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/paynorm/paynorm/store"
)

// Options configures the client.
type Options struct {
	// Addrs are host:port of one server, of Sentinel, or of cluster nodes.
	Addrs []string
	// Username is the ACL user (Redis 6+); empty is the default user.
	Username string
	Password string
	DB       int
	// TLS, when set, encrypts every connection (records, replayed answers
	// and the password would otherwise cross the network in clear text).
	TLS *tls.Config
	// Prefix starts every key (default "{paynorm}:"). With a Redis Cluster
	// it must contain a {hash tag} so all keys share the slot a payment
	// write needs; Open refuses one without a tag when several addresses
	// are given.
	Prefix string
}

// TLSFiles names the files of a TLS connection to Redis.
type TLSFiles struct {
	// CAFile is a PEM bundle of the CAs that sign the server's certificate
	// (empty: the system roots).
	CAFile string
	// ServerName is the name the server's certificate must carry (empty:
	// the host of the address).
	ServerName string
	// CertFile and KeyFile are a client certificate, for servers that
	// require one (tls-auth-clients yes).
	CertFile, KeyFile string
}

// Config builds the tls.Config: TLS 1.2 or newer, the server's certificate
// always verified.
func (f TLSFiles) Config() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("redis tls ca_file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis tls ca_file %s holds no PEM certificate", f.CAFile)
		}
	}
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, errors.New("redis tls: cert_file and key_file go together")
	}
	if f.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("redis tls client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// Store is a store.Store in Redis.
type Store struct {
	c      goredis.UniversalClient
	prefix string
	now    func() time.Time
	fpKey  []byte
	// instance names this client's health key, so instances sharing the
	// server never read each other's probe.
	instance string
}

var _ store.Store = (*Store)(nil)

// Open connects and checks the server answers.
func Open(ctx context.Context, o Options) (*Store, error) {
	if len(o.Addrs) == 0 {
		return nil, errors.New("redis store: at least one address is required")
	}
	if o.Prefix == "" {
		o.Prefix = "{paynorm}:"
	}
	// One address is a single server, where slots do not matter; several
	// may be a cluster, where a tagless prefix fails at the first write.
	if len(o.Addrs) > 1 && !hasHashTag(o.Prefix) {
		return nil, fmt.Errorf("redis store: prefix %q has no {hash tag}; with several addresses (Redis Cluster) use one such as \"{paynorm}:\"", o.Prefix)
	}
	c := goredis.NewUniversalClient(&goredis.UniversalOptions{
		Addrs: o.Addrs, Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: o.TLS,
		DialTimeout: 3 * time.Second, ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second,
	})
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, err
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	s := &Store{c: c, prefix: o.Prefix, now: time.Now, instance: hex.EncodeToString(id[:])}
	// The first instance to open the store creates the fingerprint key;
	// every later one reads the same key (SET NX, then GET).
	if err := c.SetNX(ctx, s.prefix+"fingerprint_key", store.NewFingerprintKey(), 0).Err(); err != nil {
		c.Close()
		return nil, err
	}
	k, err := c.Get(ctx, s.prefix+"fingerprint_key").Bytes()
	if err != nil || len(k) != store.FingerprintKeySize {
		c.Close()
		return nil, fmt.Errorf("redis store: reading the fingerprint key: %v", err)
	}
	s.fpKey = k
	return s, nil
}

// hasHashTag reports whether keys starting with p hash by a tag inside p:
// Redis hashes the text between the first "{" and the next "}" if that is
// not empty.
func hasHashTag(p string) bool {
	i := strings.IndexByte(p, '{')
	return i >= 0 && strings.IndexByte(p[i+1:], '}') > 0
}

func (s *Store) idemKey(scope, key string) string {
	return s.prefix + "idem:" + strconv.Itoa(len(scope)) + ":" + scope + ":" + key
}
func (s *Store) payKey(id string) string   { return s.prefix + "pay:" + id }
func (s *Store) unresolvedKey() string     { return s.prefix + "unresolved" }
func (s *Store) eventKey(id string) string { return s.prefix + "ev:" + id }
func (s *Store) eventsKey() string         { return s.prefix + "events" }
func (s *Store) deadKey(id string) string  { return s.prefix + "dead:" + id }
func (s *Store) deadListKey() string       { return s.prefix + "dead_events" }

// claimScript sets the key when absent (the claim) and otherwise returns
// what it holds; SET NX inside one script so "absent" cannot change between
// the check and the read.
var claimScript = goredis.NewScript(`
local ok = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
if ok then return false end
return redis.call('GET', KEYS[1])
`)

// finishScript keeps the claim's fingerprint and stores the answer.
var finishScript = goredis.NewScript(`
local cur = redis.call('GET', KEYS[1])
local fp = ''
if cur then fp = cjson.decode(cur)['fp'] or '' end
local e = cjson.decode(ARGV[1])
e['fp'] = fp
redis.call('SET', KEYS[1], cjson.encode(e), 'PX', ARGV[2])
return 1
`)

// ClaimIdempotency implements store.Store.
func (s *Store) ClaimIdempotency(ctx context.Context, scope, key, fp string, lease, ttl time.Duration) (store.IdemState, *store.Response, error) {
	claim, _ := json.Marshal(store.IdemEntry{Fingerprint: fp, Expires: s.now().Add(lease)})
	v, err := claimScript.Run(ctx, s.c, []string{s.idemKey(scope, key)}, claim, lease.Milliseconds()).Result()
	if errors.Is(err, goredis.Nil) {
		return store.IdemNew, nil, nil
	}
	if err != nil {
		return 0, nil, err
	}
	str, _ := v.(string)
	var e store.IdemEntry
	if err := json.Unmarshal([]byte(str), &e); err != nil {
		return 0, nil, err
	}
	st, resp := e.Decide(fp)
	return st, resp, nil
}

// FinishIdempotency implements store.Store.
func (s *Store) FinishIdempotency(ctx context.Context, scope, key string, resp store.Response, ttl time.Duration) error {
	// The body travels base64 inside JSON ([]byte), which cjson keeps as is.
	e, _ := json.Marshal(store.IdemEntry{Done: true, Response: &resp, Expires: s.now().Add(ttl)})
	return finishScript.Run(ctx, s.c, []string{s.idemKey(scope, key)}, e, ttl.Milliseconds()).Err()
}

// ReleaseIdempotency implements store.Store.
func (s *Store) ReleaseIdempotency(ctx context.Context, scope, key string) error {
	return s.c.Del(ctx, s.idemKey(scope, key)).Err()
}

// swapScript compares the stored record's version with ARGV[1] (0: no record
// may exist) and only then writes the record (ARGV[2], already carrying the
// new version), its place in the unresolved index (ARGV[3] "1" to add at
// score ARGV[4], member ARGV[5]) and the events: KEYS[3] is the outbox
// index, KEYS[4..] the event keys, and ARGV holds json, score and id for
// each. One script, so a reader sees all of it or none.
var swapScript = goredis.NewScript(`
local want = tonumber(ARGV[1])
local cur = redis.call('GET', KEYS[1])
if cur then
  if want == 0 or (cjson.decode(cur)['version'] or 0) ~= want then return 0 end
elseif want ~= 0 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[3] == '1' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
else
  redis.call('ZREM', KEYS[2], ARGV[5])
end
for i = 4, #KEYS do
  local a = 6 + (i - 4) * 3
  redis.call('SET', KEYS[i], ARGV[a])
  redis.call('ZADD', KEYS[3], ARGV[a + 1], ARGV[a + 2])
end
return 1
`)

// SwapPayment implements store.Store.
func (s *Store) SwapPayment(ctx context.Context, rec *store.PaymentRecord, events ...*store.Event) error {
	next := *rec
	next.Version = rec.Version + 1
	b, err := json.Marshal(&next)
	if err != nil {
		return err
	}
	unresolved := "0"
	if next.Unresolved() {
		unresolved = "1"
	}
	keys := []string{s.payKey(rec.ID), s.unresolvedKey(), s.eventsKey()}
	args := []any{rec.Version, b, unresolved, rec.CreatedAt.UnixMilli(), rec.ID}
	for _, ev := range events {
		eb, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		keys = append(keys, s.eventKey(ev.ID))
		args = append(args, eb, ev.NextTry.UnixMilli(), ev.ID)
	}
	n, err := swapScript.Run(ctx, s.c, keys, args...).Int()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrConflict
	}
	rec.Version = next.Version
	return nil
}

// GetPayment implements store.Store.
func (s *Store) GetPayment(ctx context.Context, id string) (*store.PaymentRecord, error) {
	b, err := s.c.Get(ctx, s.payKey(id)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var rec store.PaymentRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// trimScript drops a stale index entry only if the record is still the one
// read (ARGV[2] its version, -1 for none): a swap in between may have made
// it unresolved again, and a plain ZREM would then hide it from the
// resolver.
var trimScript = goredis.NewScript(`
local cur = redis.call('GET', KEYS[1])
local v = -1
if cur then v = cjson.decode(cur)['version'] or 0 end
if v ~= tonumber(ARGV[2]) then return 0 end
return redis.call('ZREM', KEYS[2], ARGV[1])
`)

// Unresolved implements store.Store, oldest first.
func (s *Store) Unresolved(ctx context.Context, limit int) ([]*store.PaymentRecord, error) {
	stop := int64(-1)
	if limit > 0 {
		stop = int64(limit) - 1
	}
	ids, err := s.c.ZRange(ctx, s.unresolvedKey(), 0, stop).Result()
	if err != nil {
		return nil, err
	}
	out := make([]*store.PaymentRecord, 0, len(ids))
	for _, id := range ids {
		rec, err := s.GetPayment(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			trimScript.Run(ctx, s.c, []string{s.payKey(id), s.unresolvedKey()}, id, -1)
			continue
		}
		if err == nil && !rec.Unresolved() {
			trimScript.Run(ctx, s.c, []string{s.payKey(id), s.unresolvedKey()}, id, rec.Version)
			continue
		}
		if err != nil {
			return out, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// AddEvent implements store.Store.
func (s *Store) AddEvent(ctx context.Context, ev *store.Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if err := s.c.Set(ctx, s.eventKey(ev.ID), b, 0).Err(); err != nil {
		return err
	}
	return s.c.ZAdd(ctx, s.eventsKey(), goredis.Z{Score: float64(ev.NextTry.UnixMilli()), Member: ev.ID}).Err()
}

// DueEvents implements store.Store, soonest first.
func (s *Store) DueEvents(ctx context.Context, now time.Time, limit int) ([]*store.Event, error) {
	by := &goredis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10)}
	if limit > 0 {
		by.Count = int64(limit)
	}
	ids, err := s.c.ZRangeByScore(ctx, s.eventsKey(), by).Result()
	if err != nil {
		return nil, err
	}
	return s.loadEvents(ctx, ids, s.eventKey, func(id string) { s.c.ZRem(ctx, s.eventsKey(), id) })
}

// loadEvents reads the events of ids from their keys (keyOf); gone is
// told of an id whose key is missing (a stale index entry).
func (s *Store) loadEvents(ctx context.Context, ids []string, keyOf func(string) string, gone func(id string)) ([]*store.Event, error) {
	out := make([]*store.Event, 0, len(ids))
	for _, id := range ids {
		b, err := s.c.Get(ctx, keyOf(id)).Bytes()
		if errors.Is(err, goredis.Nil) {
			if gone != nil {
				gone(id)
			}
			continue
		}
		if err != nil {
			return out, err
		}
		var ev store.Event
		if err := json.Unmarshal(b, &ev); err != nil {
			return out, err
		}
		out = append(out, &ev)
	}
	return out, nil
}

// UpdateEvent implements store.Store.
func (s *Store) UpdateEvent(ctx context.Context, ev *store.Event) error { return s.AddEvent(ctx, ev) }

// DeleteEvent implements store.Store.
func (s *Store) DeleteEvent(ctx context.Context, id string) error {
	if err := s.c.ZRem(ctx, s.eventsKey(), id).Err(); err != nil {
		return err
	}
	return s.c.Del(ctx, s.eventKey(id)).Err()
}

// buryScript moves an event from the outbox (KEYS[1] its key, KEYS[2] the
// outbox index) to the dead-letter list (KEYS[3] its key, KEYS[4] the
// list), ARGV[1] its JSON, ARGV[2] the score, ARGV[3] the id.
var buryScript = goredis.NewScript(`
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('SET', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[3])
return 1
`)

// BuryEvent implements store.Store.
func (s *Store) BuryEvent(ctx context.Context, ev *store.Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	return buryScript.Run(ctx, s.c, []string{s.eventKey(ev.ID), s.eventsKey(), s.deadKey(ev.ID), s.deadListKey()},
		b, ev.DeadAt.UnixMilli(), ev.ID).Err()
}

// DeadEvents implements store.Store, oldest first.
func (s *Store) DeadEvents(ctx context.Context, limit int) ([]*store.Event, error) {
	stop := int64(-1)
	if limit > 0 {
		stop = int64(limit) - 1
	}
	ids, err := s.c.ZRange(ctx, s.deadListKey(), 0, stop).Result()
	if err != nil {
		return nil, err
	}
	return s.loadEvents(ctx, ids, s.deadKey, nil)
}

// FingerprintKey implements store.Store.
func (s *Store) FingerprintKey() []byte { return s.fpKey }

// Probe implements store.Store: SET and GET of this instance's health key.
func (s *Store) Probe(ctx context.Context) error {
	key := s.prefix + "health:" + s.instance
	want := []byte(s.now().UTC().Format(time.RFC3339Nano))
	if err := s.c.Set(ctx, key, want, time.Minute).Err(); err != nil {
		return err
	}
	got, err := s.c.Get(ctx, key).Bytes()
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return errors.New("redis store: the health key did not read back")
	}
	return nil
}

// Close implements store.Store.
func (s *Store) Close() error { return s.c.Close() }
