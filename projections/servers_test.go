package projections

import (
	"context"
	"encoding/json"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

func TestServers_Effective_AppWinsAndPrivateVisibleToItsOwner(t *testing.T) {
	// given an app server "files", alice's private "files" and "notes"
	st, w := newLog(t)
	p := NewServers()
	st.Observe(p.Apply)
	appPos := w.add(registered(domain.AppScope, "files", "https://files.example.com/mcp"))
	w.add(registered(domain.UserScope("alice"), "files", "https://alice.example.com/mcp"))
	notesPos := w.add(registered(domain.UserScope("alice"), "notes", "https://notes.example.com/mcp"))

	// when alice, bob and the shared repository look them up
	state, view, pos := p.Effective("alice", "files")

	// then the app server wins for alice and the private one is reported shadowed
	if !state.Scope.IsApp() || !view.Found || !view.Shadowed || view.Version != appPos || pos != notesPos {
		t.Fatalf("alice/files: state scope %s, view %+v, pos %d", state.Scope, view, pos)
	}
	if _, v, _ := p.Effective("alice", "notes"); !v.Found || v.Scope != domain.UserScope("alice") || v.Shadowed {
		t.Fatalf("alice/notes: %+v", v)
	}
	if _, v, _ := p.Effective("bob", "notes"); v.Found {
		t.Fatalf("bob sees alice's notes: %+v", v)
	}
	if _, v, _ := p.Effective("", "notes"); v.Found {
		t.Fatalf("shared repository sees a private server: %+v", v)
	}
	if _, v, _ := p.Effective("", "files"); !v.Found || v.Shadowed {
		t.Fatalf("shared/files: %+v", v)
	}
	// and View agrees with Effective everywhere
	for _, q := range [][2]string{{"alice", "files"}, {"alice", "notes"}, {"bob", "notes"}, {"", "files"}, {"", "none"}} {
		_, ev, epos := p.Effective(q[0], q[1])
		if v, vpos := p.View(q[0], q[1]); v != ev || vpos != epos {
			t.Fatalf("%v: View %+v@%d, Effective %+v@%d", q, v, vpos, ev, epos)
		}
	}
}

func TestServers_List_ReportsShadowedAndCounts(t *testing.T) {
	// given an inspected app server, a shadowed private one and a failed private one
	st, w := newLog(t)
	p := NewServers()
	st.Observe(p.Apply)
	v := w.add(registered(domain.AppScope, "files", "https://files.example.com/mcp"))
	w.add(inspected(domain.AppScope, "files", v, "read", "write"))
	w.add(registered(domain.UserScope("alice"), "files", "https://alice.example.com/mcp"))
	nv := w.add(registered(domain.UserScope("alice"), "notes", "https://notes.example.com/mcp"))
	w.add(domain.ServerInspectionFailed{Scope: domain.UserScope("alice"), Name: "notes", ConfigVersion: nv,
		Class: domain.FailureUnreachable, Message: "connection refused"})

	// when listing for alice and for the app level
	got := p.List("alice")
	app := p.List("")

	// then alice sees files (app, 2 tools), files (shadowed), notes (failed)
	if len(got) != 3 {
		t.Fatalf("alice list: %+v", got)
	}
	if got[0].Name != "files" || !got[0].Scope.IsApp() || got[0].ToolCount != 2 || got[0].Shadowed || !got[0].View.Shadowed {
		t.Fatalf("first: %+v", got[0])
	}
	if got[1].Name != "files" || got[1].Scope.IsApp() || !got[1].Shadowed {
		t.Fatalf("second: %+v", got[1])
	}
	if got[2].Name != "notes" || !got[2].InspectionFailed || got[2].FailureClass != domain.FailureUnreachable {
		t.Fatalf("third: %+v", got[2])
	}
	if len(app) != 1 || app[0].Name != "files" {
		t.Fatalf("app list: %+v", app)
	}
	if tools := p.Tools(domain.AppScope, "files"); len(tools) != 2 || tools[0].Name != "read" {
		t.Fatalf("tools: %+v", tools)
	}
	if owners := p.Owners(); !reflect.DeepEqual(owners, []string{"alice"}) {
		t.Fatalf("owners: %v", owners)
	}
}

func TestServers_Removed_DisappearsAndReRegisterStartsFresh(t *testing.T) {
	// given a registered, failed, removed server
	st, w := newLog(t)
	p := NewServers()
	st.Observe(p.Apply)
	v := w.add(registered(domain.AppScope, "x", "https://x.example.com/mcp"))
	w.add(domain.ServerInspectionFailed{Scope: domain.AppScope, Name: "x", ConfigVersion: v, Class: domain.FailureTimeout})
	w.add(domain.ServerRemoved{Scope: domain.AppScope, Name: "x"})

	// then it is gone from the list and from Effective, but its stream state remains
	if l := p.List(""); len(l) != 0 {
		t.Fatalf("list after remove: %+v", l)
	}
	if s, ok := p.State(domain.AppScope, "x"); !ok || s.Exists || s.StreamVersion != 3 {
		t.Fatalf("state after remove: %+v %v", s, ok)
	}

	// when it is registered again
	v2 := w.add(registered(domain.AppScope, "x", "https://x2.example.com/mcp"))

	// then it is visible again, with a new version and not failed
	_, view, _ := p.Effective("", "x")
	if !view.Found || view.Version != v2 || view.InspectionFailed {
		t.Fatalf("view after re-register: %+v", view)
	}
}

func TestServers_OnChange_CalledPerServerEvent(t *testing.T) {
	st, w := newLog(t)
	p := NewServers()
	var mu sync.Mutex
	var got []string
	p.OnChange(func(scope domain.Scope, name string) {
		mu.Lock()
		got = append(got, string(scope)+"/"+name)
		mu.Unlock()
	})
	st.Observe(p.Apply)
	w.add(registered(domain.AppScope, "a", "https://a.example.com/mcp"))
	w.add(opened("", "a", 1, 1, "c1")) // not a server event
	w.add(domain.ServerRemoved{Scope: domain.UserScope("bob"), Name: "b"})
	mu.Lock()
	defer mu.Unlock()
	if !reflect.DeepEqual(got, []string{"app/a", "user:bob/b"}) {
		t.Fatalf("hooks: %v", got)
	}
}

func TestServers_Effective_NoAllocations(t *testing.T) {
	st, w := newLog(t)
	p := NewServers()
	st.Observe(p.Apply)
	w.add(registered(domain.AppScope, "files", "https://files.example.com/mcp"))
	w.add(registered(domain.UserScope("alice"), "notes", "https://notes.example.com/mcp"))
	allocs := testing.AllocsPerRun(1000, func() {
		_, _, _ = p.Effective("alice", "files")
		_, _, _ = p.Effective("alice", "notes")
		_, _, _ = p.Effective("bob", "missing")
	})
	if allocs != 0 {
		t.Fatalf("Effective allocates %.1f times per run", allocs)
	}
}

// mixedLog writes a log that touches every fold path.
func mixedLog(tb testing.TB, w *logWriter) {
	tb.Helper()
	for _, n := range []string{"a", "b", "c"} {
		v := w.add(registered(domain.AppScope, n, "https://"+n+".example.com/mcp"))
		w.add(inspected(domain.AppScope, n, v, "t1", "t2"))
		w.add(opened("", n, v, v+1, "conn-"+n))
	}
	v := w.add(domain.ServerConfigChanged{Scope: domain.AppScope, Name: "a", Changed: []string{"url"},
		Config: domain.ServerConfig{URL: "https://a2.example.com/mcp", Headers: map[string]string{"Authorization": "secret:0123456789abcdef0123456789abcdef"}}})
	w.add(evicted("", "a", "conn-a", domain.EvictStale))
	w.add(opened("", "a", v, v+1, "conn-a2"))
	w.add(domain.ServerInspectionFailed{Scope: domain.AppScope, Name: "b", ConfigVersion: 4, Class: domain.FailureTimeout, Message: "timed out \"quoted\" \u00e9"})
	w.add(domain.ConnectionLost{Owner: "", Server: "c", ConnID: "conn-c", Error: "EOF"})
	w.add(registered(domain.UserScope("alice"), "a", "https://alice.example.com/mcp"))
	w.add(domain.ServerReinspectionRequested{Scope: domain.AppScope, Name: "b"})
	w.add(domain.ServerToolsChanged{Scope: domain.AppScope, Name: "c", Added: []string{"t3"}})
	w.add(domain.ConnectionRefused{Inputs: domain.DecisionInputs{Owner: "bob", Server: "b"}, Rule: domain.RuleInspectionFailed, Count: 3})
}

func TestServers_ReplayEqualsObserved(t *testing.T) {
	// given a projection fed by the observer while the log was written
	st, w := newLog(t)
	live := NewServers()
	st.Observe(live.Apply)
	mixedLog(t, w)

	// when the projection is rebuilt from the stored records
	rebuilt := rebuild(t, st)

	// then both agree on every state and on the position
	if live.Position() != rebuilt.Position() || live.Position() == 0 {
		t.Fatalf("positions: live %d, rebuilt %d", live.Position(), rebuilt.Position())
	}
	assertSameStates(t, live, rebuilt)
}

func assertSameStates(tb testing.TB, a, b *Servers) {
	tb.Helper()
	ja, _ := json.Marshal(a.States())
	jb, _ := json.Marshal(b.States())
	if string(ja) != string(jb) {
		tb.Fatalf("states differ:\n%s\n%s", ja, jb)
	}
}

func TestLoad_SnapshotPlusTailEqualsFullReplay(t *testing.T) {
	ctx := context.Background()
	// given a log with a snapshot in the middle
	st, w := newLog(t)
	mixedLog(t, w)
	first, err := Load(ctx, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Snapshot(ctx, st); err != nil {
		t.Fatal(err)
	}
	w.add(registered(domain.AppScope, "d", "https://d.example.com/mcp"))
	w.add(domain.ServerRemoved{Scope: domain.AppScope, Name: "a"})

	// when it is loaded again (from the snapshot) and rebuilt from scratch
	loaded, err := Load(ctx, st, Options{})
	if err != nil {
		t.Fatal(err)
	}

	// then both agree, and the first projection followed the new events too
	full := rebuild(t, st)
	assertSameStates(t, loaded, full)
	assertSameStates(t, first, full)
	if loaded.Position() != full.Position() {
		t.Fatalf("positions %d vs %d", loaded.Position(), full.Position())
	}

	// and a later write reaches the loaded projection through the observer
	pos := w.add(registered(domain.AppScope, "e", "https://e.example.com/mcp"))
	if _, v, at := loaded.Effective("", "e"); !v.Found || at != pos {
		t.Fatalf("write not observed: %+v at %d", v, at)
	}
}

func TestLoad_SnapshotOfOtherFormatIsDiscarded(t *testing.T) {
	ctx := context.Background()
	st, w := newLog(t)
	mixedLog(t, w)
	head, _, _ := st.Head(ctx)
	// given a snapshot of an unknown format claiming nothing exists
	bad, _ := json.Marshal(serversSnapshot{snapshotHeader: snapshotHeader{Format: 99, Position: head, Hash: "00"}})
	if err := st.SaveSnapshot(ctx, ServersSnapshot, head, bad); err != nil {
		t.Fatal(err)
	}
	// when loading, then the log is replayed from 0 instead
	loaded, err := Load(ctx, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	assertSameStates(t, loaded, rebuild(t, st))
}

func TestLoad_ConcurrentAppendsAreNeitherLostNorDoubled(t *testing.T) {
	ctx := context.Background()
	// given writers appending while the projection loads
	st, w := newLog(t)
	mixedLog(t, w)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				name := string(rune('k'+g)) + "-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
				env, err := events.New(registered(domain.AppScope, name, "https://x.example.com/mcp"), events.Meta{
					ID: "g" + name, Source: "mcpes://t", Actor: "system", Time: t0.Add(time.Hour)})
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := st.Append(ctx, env.Subject, store.AnyVersion, env); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	// when it loads meanwhile
	loaded, err := Load(ctx, st, Options{})
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	// then after the writers stop it equals a rebuild from scratch
	head, _, _ := st.Head(ctx)
	if loaded.Position() != head {
		t.Fatalf("position %d, head %d", loaded.Position(), head)
	}
	assertSameStates(t, loaded, rebuild(t, st))
	if n := len(loaded.List("")); n != 3+200 {
		t.Fatalf("list has %d servers, want 203", n)
	}
}

func TestServers_Apply_GapIsFilledFromTheStore(t *testing.T) {
	ctx := context.Background()
	// given a loaded projection that missed events 1..4 (observer attached late)
	st, w := newLog(t)
	p, err := Load(ctx, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mixedLog(t, w)
	all, err := st.ReadAll(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	stale := NewServers()
	stale.startLoading(st, nil)
	stale.wmu.Lock()
	stale.loading = false
	stale.wmu.Unlock()

	// when it receives only a late event
	stale.Apply(all[len(all)-1:])

	// then it catches up from the store in the background
	deadline := time.Now().Add(5 * time.Second)
	for stale.Position() != p.Position() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	for stale.catching.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if stale.Position() != p.Position() {
		t.Fatalf("position %d, want %d", stale.Position(), p.Position())
	}
	assertSameStates(t, stale, p)
}

func TestAsOf_ReturnsThePastState(t *testing.T) {
	ctx := context.Background()
	st, w := newLog(t)
	v1 := w.add(registered(domain.AppScope, "a", "https://a.example.com/mcp"))
	w.add(domain.ServerConfigChanged{Scope: domain.AppScope, Name: "a", Config: domain.ServerConfig{URL: "https://b.example.com/mcp"}, Changed: []string{"url"}})
	w.add(domain.ServerRemoved{Scope: domain.AppScope, Name: "a"})

	// when asking for the state as of the first event (by position and by time)
	past, err := AsOf(ctx, st, v1)
	if err != nil {
		t.Fatal(err)
	}
	byTime, pos, err := AsOfTime(ctx, st, t0.Add(1500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}

	// then both show the first config, and now shows none
	for _, s := range []*Servers{past, byTime} {
		state, view, at := s.Effective("", "a")
		if !view.Found || view.Version != v1 || state.Config.URL != "https://a.example.com/mcp" || at != v1 {
			t.Fatalf("as of %d: %+v %+v at %d", v1, state.Config, view, at)
		}
	}
	if pos != v1 {
		t.Fatalf("position at time: %d", pos)
	}
	if _, v, _ := rebuild(t, st).Effective("", "a"); v.Found {
		t.Fatalf("removed server found now: %+v", v)
	}
}

func TestReplay_DetectsABrokenChain(t *testing.T) {
	// given two good records, the second with one byte flipped
	e1, c1, h1, _ := events.Seal(envelopeFor(t, registered(domain.AppScope, "a", "https://a.example.com/mcp"), 1), 1, 1, events.ZeroHash)
	_, c2, h2, _ := events.Seal(envelopeFor(t, registered(domain.AppScope, "b", "https://b.example.com/mcp"), 2), 2, 1, h1)
	_ = e1
	r2 := events.EncodeRecord(c2, h2)
	r2[len(r2)-5] ^= 1
	p := NewServers()
	if err := p.applyRecord(1, events.EncodeRecord(c1, h1)); err != nil {
		t.Fatal(err)
	}
	// when applying the tampered one, then it is refused and nothing moves
	if err := p.applyRecord(2, r2); err == nil {
		t.Fatal("tampered record accepted")
	}
	if p.Position() != 1 {
		t.Fatalf("position moved to %d", p.Position())
	}
}

func envelopeFor(tb testing.TB, fact any, n int) events.Envelope {
	tb.Helper()
	w := &logWriter{tb: tb, n: n - 1}
	return w.envelope(fact)
}

func TestLoad_SnapshotOfAnotherLogIsDiscarded(t *testing.T) {
	ctx := context.Background()
	// given a snapshot taken on log A, stored in log B of the same length
	stA, wA := newLog(t)
	mixedLog(t, wA)
	pA, err := Load(ctx, stA, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := pA.Snapshot(ctx, stA); err != nil {
		t.Fatal(err)
	}
	pos, data, err := stA.LoadSnapshot(ctx, ServersSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	stB, wB := newLog(t)
	wB.n = 1000 // other ids and times: other hashes
	for range pos {
		wB.add(registered(domain.AppScope, "other", "https://other.example.com/mcp"))
	}
	if err := stB.SaveSnapshot(ctx, ServersSnapshot, pos, data); err != nil {
		t.Fatal(err)
	}
	// when B is loaded, then A's servers do not leak into it
	pB, err := Load(ctx, stB, Options{})
	if err != nil {
		t.Fatal(err)
	}
	assertSameStates(t, pB, rebuild(t, stB))
	if _, v, _ := pB.Effective("", "a"); v.Found {
		t.Fatal("server from the other log's snapshot is visible")
	}
}

func TestServers_Apply_WithoutStoreFollowsAfterAGap(t *testing.T) {
	st, w := newLog(t)
	mixedLog(t, w)
	all, err := st.ReadAll(context.Background(), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	// given a projection not made by Load, when it is given only the last two events
	p := NewServers()
	p.Apply(all[len(all)-2:])
	// then it follows from there instead of waiting for ever
	if p.Position() != uint64(len(all)) || len(p.pending) != 0 {
		t.Fatalf("position %d, pending %d", p.Position(), len(p.pending))
	}
}
