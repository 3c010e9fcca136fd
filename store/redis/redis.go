// Package redis is the shared store backend: several paynorm instances (for
// example behind one fixed egress IP) see the same idempotency keys and
// payment records. Addresses of a Redis Cluster are accepted too: every
// atomic step touches one key, so no step spans hash slots.
package redis

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/paynorm/paynorm/store"
)

// Options configures the client.
type Options struct {
	// Addrs are host:port of one server, of Sentinel, or of cluster nodes.
	Addrs    []string
	Username string
	Password string
	DB       int
	// Prefix starts every key (default "paynorm:").
	Prefix string
}

// Store is a store.Store in Redis.
type Store struct {
	c      goredis.UniversalClient
	prefix string
	now    func() time.Time
}

var _ store.Store = (*Store)(nil)

// Open connects and checks the server answers.
func Open(ctx context.Context, o Options) (*Store, error) {
	if len(o.Addrs) == 0 {
		return nil, errors.New("redis store: at least one address is required")
	}
	if o.Prefix == "" {
		o.Prefix = "paynorm:"
	}
	c := goredis.NewUniversalClient(&goredis.UniversalOptions{
		Addrs: o.Addrs, Username: o.Username, Password: o.Password, DB: o.DB,
		DialTimeout: 3 * time.Second, ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second,
	})
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, err
	}
	return &Store{c: c, prefix: o.Prefix, now: time.Now}, nil
}

func (s *Store) idemKey(scope, key string) string {
	return s.prefix + "idem:" + strconv.Itoa(len(scope)) + ":" + scope + ":" + key
}
func (s *Store) payKey(id string) string   { return s.prefix + "pay:" + id }
func (s *Store) unresolvedKey() string     { return s.prefix + "unresolved" }
func (s *Store) eventKey(id string) string { return s.prefix + "ev:" + id }
func (s *Store) eventsKey() string         { return s.prefix + "events" }

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

// PutPayment implements store.Store. The unresolved index is added to
// before the record and trimmed after it, so a crash in between leaves a
// stale index entry (skipped on read), never a hidden unresolved record.
func (s *Store) PutPayment(ctx context.Context, rec *store.PaymentRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if rec.Unresolved() {
		if err := s.c.ZAdd(ctx, s.unresolvedKey(), goredis.Z{Score: float64(rec.CreatedAt.UnixMilli()), Member: rec.ID}).Err(); err != nil {
			return err
		}
	}
	if err := s.c.Set(ctx, s.payKey(rec.ID), b, 0).Err(); err != nil {
		return err
	}
	if !rec.Unresolved() {
		return s.c.ZRem(ctx, s.unresolvedKey(), rec.ID).Err()
	}
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
		if errors.Is(err, store.ErrNotFound) || err == nil && !rec.Unresolved() {
			s.c.ZRem(ctx, s.unresolvedKey(), id)
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
	out := make([]*store.Event, 0, len(ids))
	for _, id := range ids {
		b, err := s.c.Get(ctx, s.eventKey(id)).Bytes()
		if errors.Is(err, goredis.Nil) {
			s.c.ZRem(ctx, s.eventsKey(), id)
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

// Close implements store.Store.
func (s *Store) Close() error { return s.c.Close() }
