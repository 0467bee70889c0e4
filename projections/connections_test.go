package projections

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/mcpes/mcpes/domain"
)

func TestConnections_OpenedEvictedLost(t *testing.T) {
	// given connections opened by the shared repository and by alice
	st, w := newLog(t)
	c := NewConnections()
	st.Observe(c.Apply)
	pa := w.add(opened("", "a", 1, 1, "c-a"))
	w.add(opened("", "b", 2, 2, "c-b"))
	w.add(opened("alice", "a", 1, 3, "c-alice-a"))

	// when one is evicted, one is lost, and an eviction names an older connection
	w.add(evicted("", "b", "c-b", domain.EvictIdle))
	w.add(domain.ConnectionLost{Owner: "alice", Server: "a", ConnID: "c-alice-a", Error: "EOF"})
	w.add(evicted("", "a", "c-old", domain.EvictStale))

	// then only the shared connection to a is open, with its origin
	shared := c.Open("")
	if len(shared) != 1 || shared[0].Server != "a" || shared[0].ConnID != "c-a" || shared[0].Position != pa ||
		shared[0].ConfigVersion != 1 || !shared[0].Since.Equal(t0.Add(1e9)) {
		t.Fatalf("shared: %+v", shared)
	}
	if got := c.Open("alice"); len(got) != 0 {
		t.Fatalf("alice: %+v", got)
	}
	if all := c.All(); len(all) != 1 {
		t.Fatalf("all: %+v", all)
	}
	if _, ok := c.Get("", "a"); !ok {
		t.Fatal("Get shared/a")
	}
}

func TestConnections_LoadFromSnapshotEqualsReplay(t *testing.T) {
	ctx := context.Background()
	st, w := newLog(t)
	mixedLog(t, w)
	first, err := LoadConnections(ctx, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Snapshot(ctx, st); err != nil {
		t.Fatal(err)
	}
	w.add(opened("bob", "a", 10, 10, "c-bob"))
	w.add(evicted("", "a", "conn-a2", domain.EvictShutdown))

	loaded, err := LoadConnections(ctx, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	full, err := ConnectionsAsOf(ctx, st, ^uint64(0))
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []*Connections{loaded, first} {
		a, _ := json.Marshal(got.All())
		b, _ := json.Marshal(full.All())
		if string(a) != string(b) {
			t.Fatalf("differ:\n%s\n%s", a, b)
		}
	}
	if n := len(full.All()); n != 2 { // b (shared) and bob/a
		t.Fatalf("open: %+v", full.All())
	}
}

func TestLoadAll_SnapshotsAtDifferentPositions(t *testing.T) {
	ctx := context.Background()
	// given a servers snapshot, more events, a connections snapshot, more events
	st, w := newLog(t)
	mixedLog(t, w)
	s, c, err := LoadAll(ctx, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Snapshot(ctx, st); err != nil {
		t.Fatal(err)
	}
	w.add(opened("carol", "b", 4, 20, "c-carol"))
	w.add(registered(domain.UserScope("carol"), "own", "https://own.example.com/mcp"))
	if err := c.Snapshot(ctx, st); err != nil {
		t.Fatal(err)
	}
	w.add(domain.ConnectionLost{Owner: "carol", Server: "b", ConnID: "c-carol"})
	w.add(domain.ServerRemoved{Scope: domain.AppScope, Name: "c"})

	// when loading both in one pass
	ls, lc, err := LoadAll(ctx, st, Options{})
	if err != nil {
		t.Fatal(err)
	}

	// then both equal a rebuild from scratch
	rs, rc, err := Rebuild(ctx, st, 0)
	if err != nil {
		t.Fatal(err)
	}
	assertSameStates(t, ls, rs)
	a, _ := json.Marshal(lc.All())
	b, _ := json.Marshal(rc.All())
	if string(a) != string(b) || ls.Position() != rs.Position() || lc.Position() != rs.Position() {
		t.Fatalf("connections differ or positions (%d, %d, %d):\n%s\n%s", ls.Position(), lc.Position(), rs.Position(), a, b)
	}
}
