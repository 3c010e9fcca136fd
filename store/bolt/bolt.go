// Package bolt is the embedded store backend: one bbolt file, written with
// fsync before an answer leaves paynorm, so records survive a crash or a
// kill -9 of the process. Only one process can open the file at a time.
package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/paynorm/paynorm/store"
)

var (
	bucketIdem       = []byte("idempotency")
	bucketPayments   = []byte("payments")
	bucketUnresolved = []byte("unresolved") // id -> empty: the resolver's index
	bucketEvents     = []byte("events")
	bucketDead       = []byte("dead_events") // the webhook dead-letter list
	bucketMeta       = []byte("meta")
	keyEpoch         = []byte("epoch")
	keyFingerprint   = []byte("fingerprint_key")
	keyHealth        = []byte("health")
)

// Store is a store.Store in one bbolt file.
type Store struct {
	db     *bbolt.DB
	writes *committer
	// epoch counts opens of the file: an in-flight idempotency claim from an
	// earlier epoch belongs to a process that died, so it no longer blocks.
	epoch uint64
	// fpKey is the file's fingerprint key (store.Store.FingerprintKey).
	fpKey []byte
	now   func() time.Time
}

var _ store.Store = (*Store)(nil)

// Open opens (or creates) the file at path. It waits at most timeout for
// another process holding the file to let go.
func Open(path string, timeout time.Duration) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: timeout})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("store file %s is locked by another process", path)
		}
		return nil, err
	}
	s := &Store{db: db, now: time.Now}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketIdem, bucketPayments, bucketUnresolved, bucketEvents, bucketDead, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keyEpoch); len(v) == 8 {
			s.epoch = binary.BigEndian.Uint64(v)
		}
		s.epoch++
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], s.epoch)
		if err := meta.Put(keyEpoch, b[:]); err != nil {
			return err
		}
		if k := meta.Get(keyFingerprint); len(k) == store.FingerprintKeySize {
			s.fpKey = append([]byte(nil), k...)
		} else {
			s.fpKey = store.NewFingerprintKey()
			if err := meta.Put(keyFingerprint, s.fpKey); err != nil {
				return err
			}
		}
		return sweep(tx.Bucket(bucketIdem), s.now())
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	s.writes = newCommitter(db)
	return s, nil
}

// sweep drops expired idempotency entries so the file does not grow forever.
func sweep(b *bbolt.Bucket, now time.Time) error {
	var dead [][]byte
	err := b.ForEach(func(k, v []byte) error {
		var e store.IdemEntry
		if json.Unmarshal(v, &e) != nil || !now.Before(e.Expires) {
			dead = append(dead, append([]byte(nil), k...))
		}
		return nil
	})
	for _, k := range dead {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return err
}

func idemKey(scope, key string) []byte { return []byte(scope + "\x00" + key) }

// ClaimIdempotency implements store.Store.
func (s *Store) ClaimIdempotency(_ context.Context, scope, key, fp string, lease, ttl time.Duration) (state store.IdemState, resp *store.Response, err error) {
	k := idemKey(scope, key)
	err = s.writes.write(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketIdem)
		now := s.now()
		if v := b.Get(k); v != nil {
			var e store.IdemEntry
			if json.Unmarshal(v, &e) == nil && now.Before(e.Expires) && (e.Done || e.Epoch == s.epoch) {
				state, resp = e.Decide(fp)
				return nil
			}
		}
		state, resp = store.IdemNew, nil
		return putJSON(b, k, store.IdemEntry{Fingerprint: fp, Expires: now.Add(lease), Epoch: s.epoch})
	})
	return state, resp, err
}

// FinishIdempotency implements store.Store.
func (s *Store) FinishIdempotency(_ context.Context, scope, key string, resp store.Response, ttl time.Duration) error {
	k := idemKey(scope, key)
	return s.writes.write(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketIdem)
		var e store.IdemEntry
		if v := b.Get(k); v != nil {
			_ = json.Unmarshal(v, &e)
		}
		r := resp
		e.Done, e.Response, e.Expires = true, &r, s.now().Add(ttl)
		return putJSON(b, k, e)
	})
}

// ReleaseIdempotency implements store.Store.
func (s *Store) ReleaseIdempotency(_ context.Context, scope, key string) error {
	return s.writes.write(func(tx *bbolt.Tx) error { return tx.Bucket(bucketIdem).Delete(idemKey(scope, key)) })
}

// SwapPayment implements store.Store. The record and events are encoded
// before the write, so the commit loop that every write waits on only
// compares and puts.
func (s *Store) SwapPayment(_ context.Context, rec *store.PaymentRecord, events ...*store.Event) error {
	next := *rec
	next.Version = rec.Version + 1
	b, err := encodeJSON(&next)
	if err != nil {
		return err
	}
	evs := make([][]byte, len(events))
	for i, ev := range events {
		if evs[i], err = encodeJSON(ev); err != nil {
			return err
		}
	}
	id := []byte(rec.ID)
	// A lost race is an answer, not a failed write: fn returns nil so the
	// rest of its group commits, and the conflict is reported after. fn may
	// run again (groupcommit retries), so each run decides afresh.
	var conflict bool
	err = s.writes.write(func(tx *bbolt.Tx) error {
		pays := tx.Bucket(bucketPayments)
		ok, err := versionIs(pays.Get(id), rec.Version)
		if conflict = !ok; err != nil || conflict {
			return err
		}
		if err := pays.Put(id, b); err != nil {
			return err
		}
		u := tx.Bucket(bucketUnresolved)
		if next.Unresolved() {
			err = u.Put(id, nil)
		} else {
			err = u.Delete(id)
		}
		if err != nil {
			return err
		}
		eb := tx.Bucket(bucketEvents)
		for i, ev := range events {
			if err := eb.Put([]byte(ev.ID), evs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if conflict {
		return store.ErrConflict
	}
	// Only now: the caller's copy moves on once the write is on disk.
	rec.Version = next.Version
	return nil
}

// versionIs reports whether the stored record v (nil: none) has version
// want; 0 wants no record at all. An unreadable record is an error, not a
// conflict, so a writer does not retry against it forever.
func versionIs(v []byte, want int64) (bool, error) {
	if v == nil || want == 0 {
		return v == nil && want == 0, nil
	}
	var cur struct {
		Version int64 `json:"version"`
	}
	if err := json.Unmarshal(v, &cur); err != nil {
		return false, fmt.Errorf("stored payment record: %w", err)
	}
	return cur.Version == want, nil
}

// GetPayment implements store.Store.
func (s *Store) GetPayment(_ context.Context, id string) (*store.PaymentRecord, error) {
	var rec store.PaymentRecord
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketPayments).Get([]byte(id))
		if v == nil {
			return store.ErrNotFound
		}
		return json.Unmarshal(v, &rec)
	})
	if err != nil {
		return nil, err
	}
	return &rec, nil
}

// Unresolved implements store.Store, oldest first.
func (s *Store) Unresolved(_ context.Context, limit int) ([]*store.PaymentRecord, error) {
	var out []*store.PaymentRecord
	err := s.db.View(func(tx *bbolt.Tx) error {
		pays := tx.Bucket(bucketPayments)
		return tx.Bucket(bucketUnresolved).ForEach(func(k, _ []byte) error {
			var rec store.PaymentRecord
			if v := pays.Get(k); v != nil && json.Unmarshal(v, &rec) == nil && rec.Unresolved() {
				out = append(out, &rec)
			}
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, err
}

// AddEvent implements store.Store.
func (s *Store) AddEvent(_ context.Context, ev *store.Event) error {
	return s.writes.write(func(tx *bbolt.Tx) error { return putJSON(tx.Bucket(bucketEvents), []byte(ev.ID), ev) })
}

// DueEvents implements store.Store, oldest first.
func (s *Store) DueEvents(_ context.Context, now time.Time, limit int) ([]*store.Event, error) {
	var out []*store.Event
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketEvents).ForEach(func(_, v []byte) error {
			var ev store.Event
			if json.Unmarshal(v, &ev) == nil && !ev.NextTry.After(now) {
				out = append(out, &ev)
			}
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, err
}

// UpdateEvent implements store.Store.
func (s *Store) UpdateEvent(ctx context.Context, ev *store.Event) error { return s.AddEvent(ctx, ev) }

// DeleteEvent implements store.Store.
func (s *Store) DeleteEvent(_ context.Context, id string) error {
	return s.writes.write(func(tx *bbolt.Tx) error { return tx.Bucket(bucketEvents).Delete([]byte(id)) })
}

// BuryEvent implements store.Store.
func (s *Store) BuryEvent(_ context.Context, ev *store.Event) error {
	b, err := encodeJSON(ev)
	if err != nil {
		return err
	}
	return s.writes.write(func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bucketEvents).Delete([]byte(ev.ID)); err != nil {
			return err
		}
		return tx.Bucket(bucketDead).Put([]byte(ev.ID), b)
	})
}

// DeadEvents implements store.Store, oldest first.
func (s *Store) DeadEvents(_ context.Context, limit int) ([]*store.Event, error) {
	var out []*store.Event
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketDead).ForEach(func(_, v []byte) error {
			var ev store.Event
			if json.Unmarshal(v, &ev) == nil {
				out = append(out, &ev)
			}
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].DeadAt.Before(out[j].DeadAt) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, err
}

// FingerprintKey implements store.Store.
func (s *Store) FingerprintKey() []byte { return s.fpKey }

// Probe implements store.Store: a write through the commit loop (fsync
// included, so a full disk fails it) and a read of what was written. It
// gives up when ctx ends; the write then finishes on its own.
func (s *Store) Probe(ctx context.Context) error {
	want := []byte(s.now().UTC().Format(time.RFC3339Nano))
	done := make(chan error, 1)
	go func() {
		err := s.writes.write(func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyHealth, want) })
		if err == nil {
			err = s.db.View(func(tx *bbolt.Tx) error {
				if got := tx.Bucket(bucketMeta).Get(keyHealth); !bytes.Equal(got, want) {
					return errors.New("bolt store: the health key did not read back")
				}
				return nil
			})
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("bolt store: no write within the probe's time: %w", ctx.Err())
	}
}

// Close implements store.Store.
func (s *Store) Close() error {
	s.writes.close()
	return s.db.Close()
}

// Path is the file the store lives in.
func (s *Store) Path() string { return s.db.Path() }

func putJSON(b *bbolt.Bucket, k []byte, v any) error {
	buf, err := encodeJSON(v)
	if err != nil {
		return err
	}
	return b.Put(k, buf)
}

func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSpace(buf.Bytes()), nil
}

// Exclusive implements store.Exclusive: the file is locked by one process.
func (s *Store) Exclusive() bool { return true }
