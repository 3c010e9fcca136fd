package bolt

import (
	"fmt"
	"sync"
	"sync/atomic"

	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// maxGroup bounds one group commit, so a huge backlog is written in
// transactions of reasonable size.
const maxGroup = 1000

// committer writes in group commits: while one transaction is being
// written and fsync'd, the writes that arrive wait, and all of them go into
// the next transaction together. An idle store commits a write at once (no
// gathering delay), and under load the groups grow with the backlog, so the
// fsyncs per second stay bounded. bbolt's own Batch instead closes a group
// after a fixed delay: with a delay shorter than a commit its groups stay
// small and queue up behind each other, with a longer one every write pays
// the delay.
type committer struct {
	db     *bbolt.DB
	mu     sync.Mutex
	queue  []*pendingWrite
	closed bool
	wake   chan struct{} // capacity 1: "the queue may have work"
	done   chan struct{} // closed when the loop has ended
	groups atomic.Int64  // transactions committed, for tests
}

type pendingWrite struct {
	fn  func(*bbolt.Tx) error
	err chan error // capacity 1
}

func newCommitter(db *bbolt.DB) *committer {
	c := &committer{db: db, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go c.loop()
	return c
}

// write runs fn in a read-write transaction and returns once that
// transaction is committed and fsync'd. fn may run more than once (when
// another write of its group fails) and must not depend on having run before.
func (c *committer) write(fn func(*bbolt.Tx) error) error {
	w := &pendingWrite{fn: fn, err: make(chan error, 1)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return bolterrors.ErrDatabaseNotOpen
	}
	c.queue = append(c.queue, w)
	c.mu.Unlock()
	c.signal()
	return <-w.err
}

func (c *committer) signal() {
	select {
	case c.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

func (c *committer) loop() {
	defer close(c.done)
	for range c.wake {
		for {
			c.mu.Lock()
			n := min(len(c.queue), maxGroup)
			group := c.queue[:n:n]
			c.queue = c.queue[n:]
			closed := c.closed
			c.mu.Unlock()
			if n == 0 {
				if closed {
					return
				}
				break
			}
			c.commit(group)
		}
	}
}

// commit writes group in one transaction. When any write fails, or the
// commit does, each write is retried in a transaction of its own, so one
// bad write cannot fail the others.
func (c *committer) commit(group []*pendingWrite) {
	err := c.db.Update(func(tx *bbolt.Tx) error {
		for _, w := range group {
			if err := w.run(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		c.groups.Add(1)
		for _, w := range group {
			w.err <- nil
		}
		return
	}
	if len(group) == 1 {
		group[0].err <- err
		return
	}
	for _, w := range group {
		w.err <- c.db.Update(w.run)
	}
}

// run calls fn; a panic becomes that write's error instead of ending the
// loop that every other write waits on.
func (w *pendingWrite) run(tx *bbolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("store write panicked: %v", p)
		}
	}()
	return w.fn(tx)
}

// close lets the queued writes finish, refuses new ones and ends the loop.
func (c *committer) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.signal()
	<-c.done
}
