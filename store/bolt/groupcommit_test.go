package bolt

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

var bucketTest = []byte("test")

func openCommitter(t *testing.T) (*bbolt.DB, *committer) {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "g.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket(bucketTest); return err }); err != nil {
		t.Fatal(err)
	}
	c := newCommitter(db)
	t.Cleanup(func() { c.close(); db.Close() })
	return db, c
}

func put(k string) func(*bbolt.Tx) error {
	return func(tx *bbolt.Tx) error { return tx.Bucket(bucketTest).Put([]byte(k), []byte("v")) }
}

// While one transaction is open, the writes that arrive go into the next
// one together; a write that fails there fails alone.
func TestGroupCommitGroupsWaitingWritesAndIsolatesFailures(t *testing.T) {
	db, c := openCommitter(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		err := c.write(func(tx *bbolt.Tx) error {
			close(entered)
			<-release
			return put("first")(tx)
		})
		if err != nil {
			t.Error(err)
		}
	})
	<-entered
	const n = 50
	errs := make([]error, n)
	bad := errors.New("refused")
	for i := range n {
		wg.Go(func() {
			fn := put(fmt.Sprint("k", i))
			if i == 7 {
				fn = func(tx *bbolt.Tx) error { _ = put("never")(tx); return bad }
			}
			errs[i] = c.write(fn)
		})
	}
	// Wait until all n are queued behind the open transaction.
	for {
		c.mu.Lock()
		queued := len(c.queue)
		c.mu.Unlock()
		if queued == n {
			break
		}
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	for i, err := range errs {
		if i == 7 && !errors.Is(err, bad) {
			t.Errorf("the failing write returned %v", err)
		}
		if i != 7 && err != nil {
			t.Errorf("write %d failed with its group: %v", i, err)
		}
	}
	err := db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketTest)
		for i := range n {
			if got := b.Get([]byte(fmt.Sprint("k", i))); (got != nil) != (i != 7) {
				t.Errorf("k%d stored = %v", i, got != nil)
			}
		}
		if b.Get([]byte("never")) != nil || b.Get([]byte("first")) == nil {
			t.Error("the failed write's effects were kept, or the first write lost")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The first write committed alone; the queued group held the failure,
	// so it was retried write by write and counts as no group commit.
	if g := c.groups.Load(); g != 1 {
		t.Errorf("%d successful group commits, want 1", g)
	}
}

func TestGroupCommitOneTransactionForQueuedWrites(t *testing.T) {
	_, c := openCommitter(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = c.write(func(tx *bbolt.Tx) error { close(entered); <-release; return nil })
	})
	<-entered
	for i := range 20 {
		wg.Go(func() {
			if err := c.write(put(fmt.Sprint("q", i))); err != nil {
				t.Error(err)
			}
		})
	}
	for {
		c.mu.Lock()
		queued := len(c.queue)
		c.mu.Unlock()
		if queued == 20 {
			break
		}
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if g := c.groups.Load(); g != 2 {
		t.Errorf("%d group commits for 1 + 20 queued writes, want 2", g)
	}
}

func TestGroupCommitRefusesWritesAfterClose(t *testing.T) {
	_, c := openCommitter(t)
	if err := c.write(put("a")); err != nil {
		t.Fatal(err)
	}
	c.close()
	if err := c.write(put("b")); !errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		t.Fatalf("write after close = %v", err)
	}
}

func TestGroupCommitPanickingWriteFailsAlone(t *testing.T) {
	_, c := openCommitter(t)
	err := c.write(func(*bbolt.Tx) error { panic("boom") })
	if err == nil {
		t.Fatal("a panicking write reported success")
	}
	if err := c.write(put("after")); err != nil {
		t.Fatalf("the store stopped writing after a panic: %v", err)
	}
}
