package store

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpes/mcpes/events"
)

// Reader reads committed events from position from on, at most limit of them
// (Store.ReadAll): the log an observer that fell behind catches up from.
type Reader func(ctx context.Context, from uint64, limit int) ([]events.Envelope, error)

// Defaults of Observers.
const (
	// DefaultObserverStall is how long after a commit its Appends wait for an observer
	// that has not seen it yet, before they stop waiting for that observer.
	DefaultObserverStall = time.Second
	// DefaultObserverQueue is how many committed events may wait for one observer
	// before it is left to catch up from the log.
	DefaultObserverQueue = 1 << 16
	// catchUpPage is how many events an observer reads from the log at a time.
	catchUpPage = 1024
)

// Observers is the observer list of a Store and the dispatcher that delivers commits
// to it, safe for concurrent use. The zero value is an empty list with the default
// stall and queue bounds.
//
// Each observer has its own goroutine and bounded queue. Publish only queues a
// commit, so a store's writer commits the next batch while observers of the earlier
// ones run. A commit's done func runs once every observer that took it has seen it:
// a store releases its Append callers there, so read-your-writes holds. An observer
// that blocks for longer than Stall in one delivery, or whose queue overflows, is
// no longer waited for: the commits it holds are released, later ones are not
// queued for it, and once its call returns it reads what it missed from the log,
// then is waited for again. Stall and Queue thus bound how long an observer can hold
// an Append, and how much memory it can hold. It thus sees every position once, in order, but an
// Append may return before it saw that Append's events.
type Observers struct {
	// Stall is how long after a commit its Appends wait for an observer that has not
	// seen it (default DefaultObserverStall). Set before the first Add.
	Stall time.Duration
	// Queue bounds the events queued for one observer (default DefaultObserverQueue).
	Queue int

	mu     sync.Mutex
	subs   []*sub
	closed bool
}

// Commit is one published commit on its way to the observers.
type Commit struct {
	first, last uint64
	at          time.Time // published
	envs        func() []events.Envelope
	holds       atomic.Int64
	done        func()
}

func (c *Commit) release() {
	if c.holds.Add(-1) == 0 && c.done != nil {
		c.done()
	}
}

type sub struct {
	o    *Observers
	fn   Observer
	read Reader
	wake chan struct{} // buffered 1: queue changed, missed or stopped

	mu       sync.Mutex
	queue    []*Commit
	queued   int     // events in queue
	current  *Commit // the commit being delivered, when it is held
	busy     uint64  // deliveries started; the stall timer checks it did not move
	detached bool    // not waited for until it caught up
	missed   bool    // commits were not queued: read the log
	stopped  atomic.Bool

	last uint64 // last position delivered; goroutine only
}

func (o *Observers) stall() time.Duration {
	if o.Stall > 0 {
		return o.Stall
	}
	return DefaultObserverStall
}

func (o *Observers) queueLimit() int {
	if o.Queue > 0 {
		return o.Queue
	}
	return DefaultObserverQueue
}

// Add registers fn, which sees every commit published from now on, and read, the log
// it catches up from. It returns the func that stops fn: stop may be called more
// than once and from inside fn; once it returns, fn is not called again, except by a
// delivery already running. After Close, fn is never called.
func (o *Observers) Add(fn Observer, read Reader) (stop func()) {
	if fn == nil || read == nil {
		panic("store: nil observer or reader")
	}
	s := &sub{o: o, fn: fn, read: read, wake: make(chan struct{}, 1)}
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return func() {}
	}
	o.subs = append(slices.Clip(o.subs), s)
	o.mu.Unlock()
	go s.run()
	return s.stop
}

// Publish hands the observers one commit of the positions first..last, whose
// envelopes committed returns (called once per observer, so a store may hand each
// its own copy). It never blocks. done runs once every observer that took the
// commit has seen it (at once when none did), on whichever goroutine is last.
// Stores publish commits in position order.
func (o *Observers) Publish(first, last uint64, committed func() []events.Envelope, done func()) {
	c := &Commit{first: first, last: last, at: time.Now(), envs: committed, done: done}
	c.holds.Store(1) // Publish's own, so that done cannot run before every sub is offered c
	o.mu.Lock()
	subs := o.subs
	o.mu.Unlock()
	n := int(last - first + 1)
	for _, s := range subs {
		s.offer(c, n)
	}
	c.release()
}

// Barrier runs done once every observer has seen every commit published before it,
// up to position at (the head): a store releases there the callers of a batch that
// committed nothing (conflicts, retries), so that one who reads after a conflict sees
// the write it conflicted with. It never blocks.
func (o *Observers) Barrier(at uint64, done func()) {
	o.Publish(at+1, at, func() []events.Envelope { return nil }, done)
}

// Close stops every observer and releases the commits they hold. Later Publish calls
// run done at once.
func (o *Observers) Close() {
	o.mu.Lock()
	subs := o.subs
	o.subs, o.closed = nil, true
	o.mu.Unlock()
	for _, s := range subs {
		s.stop()
	}
}

func (s *sub) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *sub) offer(c *Commit, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.stopped.Load():
	case s.detached:
		s.missed = true
	case s.queued+n > s.o.queueLimit() && len(s.queue) > 0:
		s.detachLocked() // it cannot keep up: read the log later instead
		s.missed = true
	default:
		c.holds.Add(1)
		s.queue = append(s.queue, c)
		s.queued += n
	}
	s.signal()
}

// detachLocked releases every commit s holds; s.mu is held.
func (s *sub) detachLocked() {
	s.detached = true
	for _, c := range s.queue {
		c.release()
	}
	s.queue, s.queued = nil, 0
	if s.current != nil {
		s.current.release()
		s.current = nil
	}
}

func (s *sub) stop() {
	if s.stopped.Swap(true) {
		return
	}
	s.o.mu.Lock()
	s.o.subs = slices.DeleteFunc(slices.Clone(s.o.subs), func(x *sub) bool { return x == s })
	s.o.mu.Unlock()
	s.mu.Lock()
	s.detachLocked()
	s.mu.Unlock()
	s.signal()
}

func (s *sub) run() {
	for range s.wake {
		for {
			s.mu.Lock()
			if s.stopped.Load() {
				s.mu.Unlock()
				return
			}
			if len(s.queue) == 0 {
				missed := s.missed
				s.missed = false
				if !missed {
					s.detached = false // caught up: waited for again
				}
				s.mu.Unlock()
				if !missed {
					break
				}
				if !s.catchUp(0) {
					return
				}
				continue
			}
			c := s.queue[0]
			s.queue[0] = nil
			s.queue = s.queue[1:]
			s.queued -= int(c.last - c.first + 1)
			s.current = c
			s.busy++
			busy := s.busy
			s.mu.Unlock()

			t := time.AfterFunc(s.o.stall()-time.Since(c.at), func() { s.stalled(busy) })
			ok := s.deliver(c)
			t.Stop()
			s.mu.Lock()
			if s.current == c {
				s.current = nil
				c.release()
			}
			s.mu.Unlock()
			if !ok {
				return
			}
		}
	}
}

// stalled detaches s when the delivery numbered busy is still running.
func (s *sub) stalled(busy uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy == busy && s.current != nil {
		s.detachLocked()
		s.missed = true
	}
}

// deliver hands c's events to fn, after what the log holds between the last
// position delivered and c. Returns false when s must end.
func (s *sub) deliver(c *Commit) bool {
	if s.last == 0 {
		s.last = c.first - 1 // the first commit since Add
	}
	if c.last <= s.last {
		return true // read from the log already
	}
	if c.first > s.last+1 && !s.catchUp(c.first-1) {
		return false
	}
	evs := c.envs()
	skip := 0
	for skip < len(evs) && uint64(evs[skip].Sequence) <= s.last {
		skip++
	}
	if skip == len(evs) || s.stopped.Load() {
		return !s.stopped.Load()
	}
	s.fn(evs[skip:])
	s.last = uint64(evs[len(evs)-1].Sequence)
	return true
}

// catchUp delivers the log's events after the last delivered one, up to upTo (0: up
// to the end of the log). Returns false when s must end (stopped, or the log cannot
// be read: the store is closed).
func (s *sub) catchUp(upTo uint64) bool {
	for upTo == 0 || s.last < upTo {
		limit := catchUpPage
		if upTo != 0 {
			limit = int(min(upTo-s.last, catchUpPage))
		}
		evs, err := s.read(context.Background(), s.last+1, limit)
		if err != nil || s.stopped.Load() {
			s.stop()
			return false
		}
		if len(evs) == 0 {
			if upTo == 0 {
				return true
			}
			s.stop() // the log does not hold a published commit: the store is closing
			return false
		}
		s.fn(evs)
		s.last = uint64(evs[len(evs)-1].Sequence)
	}
	return true
}
