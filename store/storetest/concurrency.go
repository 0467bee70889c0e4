package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// appendConcurrently runs f.Appenders goroutines that each append f.PerAppender
// events (one or two per call) to their own stream, and returns every id by position.
func appendConcurrently(t *testing.T, s store.Store, f Features, after func(res store.AppendResult)) map[uint64]string {
	t.Helper()
	var (
		mu    sync.Mutex
		byPos = map[uint64]string{}
		wg    sync.WaitGroup
	)
	for g := range f.Appenders {
		wg.Go(func() {
			stream := fmt.Sprintf("conc/%d", g)
			version := int64(0)
			for i := 0; i < f.PerAppender; {
				evs := []events.Envelope{Event(t, stream, i)}
				if i%3 == 1 && i+1 < f.PerAppender {
					evs = append(evs, Event(t, stream, i+1))
				}
				res, err := s.Append(ctxT(t), stream, version, evs...)
				if err != nil {
					t.Errorf("appender %d: %v", g, err)
					return
				}
				if after != nil {
					after(res)
				}
				mu.Lock()
				for j, p := range res.Positions {
					if old, dup := byPos[p]; dup {
						t.Errorf("position %d given to %s and %s", p, old, evs[j].ID)
					}
					byPos[p] = evs[j].ID
				}
				mu.Unlock()
				version += int64(len(evs))
				i += len(evs)
			}
		})
	}
	wg.Wait()
	return byPos
}

func testConcurrentAppendsGapFree(t *testing.T, open Opener, f Features) {
	// given concurrent appenders on distinct streams
	s := open(t)
	byPos := appendConcurrently(t, s, f, nil)

	// then positions are 1..N without gaps, and each stream's versions are contiguous
	n := f.Appenders * f.PerAppender
	if len(byPos) != n || head(t, s) != uint64(n) {
		t.Fatalf("%d positions, head %d, want %d", len(byPos), head(t, s), n)
	}
	all := readAll(t, s)
	versions := map[string]uint64{}
	for i, e := range all {
		if uint64(e.Sequence) != uint64(i+1) || byPos[uint64(i+1)] != e.ID {
			t.Fatalf("log position %d holds sequence %d id %s, append said %s", i+1, e.Sequence, e.ID, byPos[uint64(i+1)])
		}
		versions[e.Subject]++
		if e.StreamVersion != versions[e.Subject] {
			t.Fatalf("%s: event at version %d, want %d", e.Subject, e.StreamVersion, versions[e.Subject])
		}
	}
	verifyOK(t, s, n)
}

func testConcurrentConflicts(t *testing.T, open Opener, f Features) {
	// given many writers racing to append version 1 of the same stream
	s := open(t)
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	for i := range f.Appenders * 2 {
		wg.Go(func() {
			_, err := s.Append(ctxT(t), "race", store.NoStream, Event(t, "race", i))
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, store.ErrVersionConflict):
				conflicts.Add(1)
			default:
				t.Errorf("racer %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	// then exactly one wins and the others conflict without a trace
	if wins.Load() != 1 || int(conflicts.Load()) != f.Appenders*2-1 {
		t.Fatalf("%d wins, %d conflicts", wins.Load(), conflicts.Load())
	}
	if h := head(t, s); h != 1 {
		t.Fatalf("head %d, want 1", h)
	}
	verifyOK(t, s, 1)
}

func testObserversInOrder(t *testing.T, open Opener, f Features) {
	// given two observers
	s := open(t)
	var mu sync.Mutex
	seen := [2][]uint64{}
	var observed []events.Envelope
	for k := range 2 {
		s.Observe(func(committed []events.Envelope) {
			mu.Lock()
			defer mu.Unlock()
			for _, e := range committed {
				seen[k] = append(seen[k], uint64(e.Sequence))
				if k == 0 {
					observed = append(observed, e)
				}
			}
		})
	}

	// when appenders run concurrently; each checks that its events were observed
	// before its Append returned
	appendConcurrently(t, s, f, func(res store.AppendResult) {
		mu.Lock()
		defer mu.Unlock()
		for k := range 2 {
			got := seen[k]
			for _, p := range res.Positions {
				if len(got) < int(p) {
					t.Errorf("observer %d had seen %d events when the append of %d returned", k, len(got), p)
				}
			}
		}
	})
	// and a duplicate is not observed again
	all := readAll(t, s)
	mustAppend(t, s, all[0].Subject, store.AnyVersion, all[0])

	// then each observer saw every position once, in order, sealed as the log holds it
	n := f.Appenders * f.PerAppender
	for i, e := range observed {
		if i >= len(all) || e.Hash != all[i].Hash || e.PrevHash != all[i].PrevHash || e.ID != all[i].ID ||
			e.StreamVersion != all[i].StreamVersion || string(e.Data) != string(all[i].Data) || !e.Time.Equal(all[i].Time) {
			t.Fatalf("observed event %d differs from the log:\n%+v\n%+v", i, e, all[min(i, len(all)-1)])
		}
	}
	for k := range 2 {
		if len(seen[k]) != n {
			t.Fatalf("observer %d saw %d events, want %d", k, len(seen[k]), n)
		}
		for i, p := range seen[k] {
			if p != uint64(i+1) {
				t.Fatalf("observer %d: event %d has position %d", k, i, p)
			}
		}
	}
}

func testObserverStops(t *testing.T, open Opener, _ Features) {
	// given three observers: one stopped after the first commit, one that stops itself
	// while it receives the second, and one that stays
	s := open(t)
	var mu sync.Mutex
	seen := map[string][]uint64{}
	note := func(name string, committed []events.Envelope) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range committed {
			seen[name] = append(seen[name], uint64(e.Sequence))
		}
	}
	stopLater := s.Observe(func(c []events.Envelope) { note("stopped", c) })
	var stopSelf func()
	stopSelf = s.Observe(func(c []events.Envelope) {
		note("self", c)
		if c[0].Sequence == 2 {
			stopSelf()
		}
	})
	s.Observe(func(c []events.Envelope) { note("stays", c) })

	// when four events are committed one by one, stopping the first observer (twice)
	// after the first
	stream := "server/app/observed"
	for n := 1; n <= 4; n++ {
		mustAppend(t, s, stream, store.AnyVersion, Event(t, stream, n))
		if n == 1 {
			stopLater()
			stopLater()
		}
	}

	// then each observer saw the commits up to its stop, and the last saw all of them
	want := map[string][]uint64{"stopped": {1}, "self": {1, 2}, "stays": {1, 2, 3, 4}}
	mu.Lock()
	defer mu.Unlock()
	for name, w := range want {
		if !slices.Equal(seen[name], w) {
			t.Errorf("observer %q saw %v, want %v", name, seen[name], w)
		}
	}
}

func testCommitOrder(t *testing.T, open Opener, f Features) {
	// given a follower that reads everything after what it has seen, whenever woken
	s := open(t)
	n := uint64(f.Appenders * f.PerAppender)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	followed := make(chan error, 1)
	go func() {
		var seen uint64
		for seen < n {
			h, err := s.Wait(ctx, seen)
			if err != nil {
				followed <- fmt.Errorf("wait after %d: %w", seen, err)
				return
			}
			page, err := s.ReadAll(ctx, seen+1, 0)
			if err != nil {
				followed <- err
				return
			}
			// then whatever head it was woken with, every position up to it is readable
			if uint64(len(page)) < h-seen {
				followed <- fmt.Errorf("woken at head %d after %d but read only %d events", h, seen, len(page))
				return
			}
			for i, e := range page {
				if uint64(e.Sequence) != seen+uint64(i)+1 {
					followed <- fmt.Errorf("read sequence %d at offset %d after %d", e.Sequence, i, seen)
					return
				}
			}
			seen += uint64(len(page))
		}
		followed <- nil
	}()

	// when appenders commit concurrently
	appendConcurrently(t, s, f, nil)
	if err := <-followed; err != nil {
		t.Fatal(err)
	}
}

func testWaitWakes(t *testing.T, open Opener, _ Features) {
	// given a waiter for anything after position 0
	s := open(t)
	woke := make(chan uint64, 1)
	go func() {
		h, err := s.Wait(ctxT(t), 0)
		if err != nil {
			t.Errorf("wait: %v", err)
		}
		woke <- h
	}()
	select {
	case h := <-woke:
		t.Fatalf("Wait returned %d before any commit", h)
	case <-time.After(50 * time.Millisecond):
	}

	// when an event is committed
	mustAppend(t, s, "w", store.NoStream, Event(t, "w", 1))

	// then the waiter wakes with the new head
	select {
	case h := <-woke:
		if h != 1 {
			t.Fatalf("woke with head %d, want 1", h)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not wake on commit")
	}
	// and a Wait for a position already passed returns at once
	if h, err := s.Wait(ctxT(t), 0); err != nil || h != 1 {
		t.Fatalf("Wait(0) with head 1: %d, %v", h, err)
	}
}

func testWaitContext(t *testing.T, open Opener, _ Features) {
	s := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Wait(ctx, 0)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with a deadline: %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Wait returned %v after its deadline", d)
	}
	// and a waiter is released by Close
	done := make(chan error, 1)
	go func() {
		_, err := s.Wait(context.Background(), 0)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, store.ErrClosed) {
			t.Fatalf("Wait released by Close: %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not release a waiter")
	}
}
