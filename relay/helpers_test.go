package relay_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/internal/testevents"
	"github.com/mcpes/mcpes/relay"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/bolt"
	"github.com/mcpes/mcpes/store/memory"
)

// newMemoryStore returns the reference store, closed at cleanup.
func newMemoryStore(tb testing.TB) store.Store {
	tb.Helper()
	s := memory.New()
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// newBoltStore opens a real bbolt store in a temporary directory, closed at cleanup.
func newBoltStore(tb testing.TB, opts bolt.Options) store.Store {
	tb.Helper()
	s, err := bolt.Open(filepath.Join(tb.TempDir(), "events.db"), opts)
	if err != nil {
		tb.Fatalf("open bolt store: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// batchEvents builds n events of one stream, starting at index i: even batches are
// server events, odd ones connection events, so both area topics get traffic.
func batchEvents(tb testing.TB, batch, i, n int) (string, []events.Envelope) {
	tb.Helper()
	evs := make([]events.Envelope, 0, n)
	var stream string
	for k := range n {
		var fact any
		name := fmt.Sprintf("srv%d", batch%50)
		if batch%2 == 0 {
			fact = domain.ServerReinspectionRequested{Scope: domain.AppScope, Name: name}
		} else {
			fact = domain.ConnectionLost{Owner: "alice", Server: name, ConnID: fmt.Sprintf("c%d", i+k), Error: "eof"}
		}
		id, err := uuid.NewV7()
		if err != nil {
			tb.Fatal(err)
		}
		e, err := events.New(fact, events.Meta{ID: id.String(), Source: "mcpes://test", Time: time.Now(),
			Actor: "system", CorrelationID: fmt.Sprintf("corr-%d", i+k)})
		if err != nil {
			tb.Fatal(err)
		}
		stream = e.Subject
		evs = append(evs, e)
	}
	return stream, evs
}

// appendEvents appends n events in Append calls of up to per events and returns
// their ids in log order.
func appendEvents(tb testing.TB, st store.Store, n, per int) []string {
	tb.Helper()
	ids := make([]string, 0, n)
	for i, batch := 0, 0; i < n; batch++ {
		k := min(per, n-i)
		stream, evs := batchEvents(tb, batch, i, k)
		if _, err := st.Append(context.Background(), stream, store.AnyVersion, evs...); err != nil {
			tb.Fatalf("append: %v", err)
		}
		for _, e := range evs {
			ids = append(ids, e.ID)
		}
		i += k
	}
	return ids
}

// appendFact appends one event carrying fact and returns it as stored.
func appendFact(tb testing.TB, st store.Store, fact any) events.Envelope {
	tb.Helper()
	got, err := st.ReadAll(context.Background(), testevents.Append(tb, st, "admin", fact), 1)
	if err != nil || len(got) != 1 {
		tb.Fatalf("read back: %v", err)
	}
	return got[0]
}

// runRelay starts r in the background; the returned stop cancels it and waits.
func runRelay(tb testing.TB, r *relay.Relay) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					tb.Errorf("relay run: %v", err)
				}
			case <-time.After(30 * time.Second):
				tb.Error("relay did not stop")
			}
		})
	}
	tb.Cleanup(stop)
	return stop
}

// collector records the events a subscriber got.
type collector struct {
	mu     sync.Mutex
	ids    []string
	seqs   []uint64
	signal chan struct{}
}

func newCollector() *collector { return &collector{signal: make(chan struct{}, 1)} }

func (c *collector) add(e events.Envelope) error {
	c.mu.Lock()
	c.ids = append(c.ids, e.ID)
	c.seqs = append(c.seqs, uint64(e.Sequence))
	c.mu.Unlock()
	select {
	case c.signal <- struct{}{}:
	default:
	}
	return nil
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids)
}

func (c *collector) snapshot() ([]string, []uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.ids), slices.Clone(c.seqs)
}

// waitFor waits until the collector holds at least n events.
func (c *collector) waitFor(tb testing.TB, n int, timeout time.Duration) {
	tb.Helper()
	deadline := time.After(timeout)
	for c.len() < n {
		select {
		case <-c.signal:
		case <-deadline:
			tb.Fatalf("got %d events, want %d within %s", c.len(), n, timeout)
		}
	}
}

// waitForSeq waits until the collector holds the event at position seq.
func (c *collector) waitForSeq(tb testing.TB, seq uint64, timeout time.Duration) {
	tb.Helper()
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		done := len(c.seqs) > 0 && c.seqs[len(c.seqs)-1] >= seq
		c.mu.Unlock()
		if done {
			return
		}
		select {
		case <-c.signal:
		case <-deadline:
			tb.Fatalf("position %d not received within %s", seq, timeout)
		}
	}
}

// sameIDs fails unless got equals want exactly (every id, in order, once).
func sameIDs(tb testing.TB, got, want []string) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("got %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			tb.Fatalf("event %d: got id %s, want %s", i, got[i], want[i])
		}
	}
}

// follow runs FollowNATS into c in the background; stop cancels it and returns its
// error.
func follow(tb testing.TB, url, durable string, f relay.Filter, c *collector) (stop func() error) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- relay.FollowNATS(ctx, url, durable, f, c.add) }()
	var once sync.Once
	var result error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case result = <-done:
			case <-time.After(30 * time.Second):
				result = fmt.Errorf("follower did not stop")
			}
		})
		return result
	}
	tb.Cleanup(func() { _ = stop() })
	return stop
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }
