package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// generous bounds a wait that only a stalled store would exceed.
const generous = 60 * time.Second

func testBlockedObserverDoesNotStallAppends(t *testing.T, open Opener, f Features) {
	// given an observer that blocks in its first call until released, and one that
	// keeps up
	s := open(t)
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	var mu sync.Mutex
	var blocked, kept []uint64
	note := func(dst *[]uint64, committed []events.Envelope) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range committed {
			*dst = append(*dst, uint64(e.Sequence))
		}
	}
	s.Observe(func(c []events.Envelope) {
		<-release
		note(&blocked, c)
	})
	s.Observe(func(c []events.Envelope) { note(&kept, c) })

	// when appenders append one event at a time while the first observer stays blocked
	appenders, each := 4, 30
	n := appenders * each
	finished := make(chan error, appenders)
	for a := range appenders {
		go func() {
			stream := fmt.Sprintf("server/app/blocked-%d", a)
			for i := range each {
				e, err := NewEvent(stream, i)
				if err != nil {
					finished <- err
					return
				}
				res, err := s.Append(context.Background(), stream, store.AnyVersion, e)
				if err != nil {
					finished <- err
					return
				}
				mu.Lock()
				seen := len(kept)
				mu.Unlock()
				if seen < int(res.Positions[0]) {
					finished <- fmt.Errorf("the observer that keeps up had seen %d events when the append of %d returned", seen, res.Positions[0])
					return
				}
			}
			finished <- nil
		}()
	}

	// then every append commits and returns, and the observer that keeps up saw each
	// append's events before it returned
	deadline := time.After(generous)
	for range appenders {
		select {
		case err := <-finished:
			if err != nil {
				t.Fatal(err)
			}
		case <-deadline:
			t.Fatalf("appends stalled behind a blocked observer (head %d of %d)", head(t, s), n)
		}
	}
	if h := head(t, s); h != uint64(n) {
		t.Fatalf("head %d, want %d", h, n)
	}
	// and once released, the blocked observer catches up from the log: every position
	// once, in order
	unblock()
	for end := time.Now().Add(generous); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		got := len(blocked)
		mu.Unlock()
		if got >= n {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the released observer saw %d of %d events", got, n)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for k, seen := range [][]uint64{blocked, kept} {
		if len(seen) != n {
			t.Fatalf("observer %d saw %d events, want %d", k, len(seen), n)
		}
		for i, p := range seen {
			if p != uint64(i+1) {
				t.Fatalf("observer %d: event %d has position %d", k, i, p)
			}
		}
	}
}

func testConflictReturnsAfterObserversSawTheWinner(t *testing.T, open Opener, _ Features) {
	// given an observer that takes its time over each commit, noting when it has seen
	// one, and a first writer whose append it is still seeing
	s := open(t)
	ctx := ctxT(t)
	arrived := make(chan struct{}, 1)
	var seen atomic.Bool
	stop := s.Observe(func(committed []events.Envelope) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		time.Sleep(100 * time.Millisecond)
		seen.Store(true)
	})
	defer stop()
	first := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, "race", store.NoStream, Event(t, "race", 1))
		first <- err
	}()
	<-arrived
	// when a second writer appends at the version the first one moved past
	_, err := s.Append(ctx, "race", store.NoStream, Event(t, "race", 2))
	// then it conflicts, and only once the observer has seen the first write, so a
	// projection it reads next holds the write it lost to
	if !errors.Is(err, store.ErrVersionConflict) {
		t.Fatalf("second append: %v, want a version conflict", err)
	}
	if !seen.Load() {
		t.Fatal("the conflict returned before the observer had seen the write it conflicted with")
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
}
