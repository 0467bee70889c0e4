package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// logOf is a log of n committed events, read as Store.ReadAll reads.
func logOf(n int) ([]events.Envelope, store.Reader) {
	log := make([]events.Envelope, n)
	for i := range log {
		log[i] = events.Envelope{Sequence: events.Sequence(i + 1)}
	}
	return log, func(_ context.Context, from uint64, limit int) ([]events.Envelope, error) {
		if from > uint64(len(log)) {
			return nil, nil
		}
		return log[from-1 : min(uint64(len(log)), from-1+uint64(limit))], nil
	}
}

func TestObservers_QueueOverflowIsNotWaitedForAndCatchesUpFromTheLog(t *testing.T) {
	// given an observer with a queue of 2 events, blocked in its first call, and a
	// stall bound no test run reaches
	o := &store.Observers{Queue: 2, Stall: time.Hour}
	defer o.Close()
	log, read := logOf(10)
	release := make(chan struct{})
	var mu sync.Mutex
	var seen []uint64
	o.Add(func(c []events.Envelope) {
		<-release
		mu.Lock()
		defer mu.Unlock()
		for _, e := range c {
			seen = append(seen, uint64(e.Sequence))
		}
	}, read)

	// when ten commits of one event are published
	done := make([]chan struct{}, len(log))
	for i := range log {
		done[i] = make(chan struct{})
		o.Publish(uint64(i+1), uint64(i+1), func() []events.Envelope { return log[i : i+1] }, func() { close(done[i]) })
	}

	// then the commit it is blocked on, and the ones queued when the queue
	// overflowed, are no longer waited for, nor are the later ones
	for i := range done {
		select {
		case <-done[i]:
		case <-time.After(time.Minute):
			t.Fatalf("commit %d still waits for the blocked observer", i+1)
		}
	}
	// and once released, it reads what it missed from the log: every position once,
	// in order
	close(release)
	for end := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n >= len(log) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("saw %d of %d events", n, len(log))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i, p := range seen {
		if p != uint64(i+1) || len(seen) != len(log) {
			t.Fatalf("saw positions %v", seen)
		}
	}
}

func TestObservers_AnObserverThatKeepsUpIsWaitedFor(t *testing.T) {
	// given an observer that takes a while with each commit
	o := &store.Observers{}
	defer o.Close()
	log, read := logOf(3)
	var mu sync.Mutex
	var seen []uint64
	o.Add(func(c []events.Envelope) {
		time.Sleep(10 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		for _, e := range c {
			seen = append(seen, uint64(e.Sequence))
		}
	}, read)

	// when commits are published one after the other
	for i := range log {
		done := make(chan struct{})
		o.Publish(uint64(i+1), uint64(i+1), func() []events.Envelope { return log[i : i+1] }, func() { close(done) })
		<-done

		// then each is done only once the observer has seen it
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n != i+1 {
			t.Fatalf("commit %d done when the observer had seen %d events", i+1, n)
		}
	}
}
