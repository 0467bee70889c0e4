package connections

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/bolt"
)

// busyWorkload runs several owners' repositories concurrently while configs change,
// servers are removed and re-registered, inspections fail and recover, and one
// upstream goes away. It returns when every owner is done.
func busyWorkload(tb testing.TB, e *env, seed uint64) {
	tb.Helper()
	good := newMCPServer(tb)
	flaky := newMCPServer(tb)
	dead := deadURL(tb)
	no := false
	e.put(domain.AppScope, "a", httpConfig(good.URL))
	e.put(domain.AppScope, "b", httpConfig(good.URL))
	e.put(domain.AppScope, "dead", httpConfig(dead))
	e.put(domain.AppScope, "flaky", httpConfig(flaky.URL))
	e.put(domain.AppScope, "stub", httpConfig(good.URL))
	e.failInspection(domain.AppScope, "stub")
	e.put(domain.UserScope("alice"), "a", httpConfig(good.URL)) // shadowed by the app "a"
	e.put(domain.UserScope("alice"), "p", httpConfig(good.URL))
	e.put(domain.UserScope("bob"), "p", httpConfig(good.URL))
	nostart := httpConfig(good.URL)
	nostart.Startup = &no
	e.put(domain.AppScope, "nostart", nostart)

	names := []string{"a", "b", "dead", "flaky", "stub", "p", "nostart", "missing"}
	owners := []string{"", "alice", "bob", "carol"}
	ctx := context.Background()
	var wg sync.WaitGroup
	iters := make([]int, len(owners))
	defer func() { tb.Logf("iterations per owner: %v", iters) }()
	stop := make(chan struct{})
	for i, owner := range owners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			repo := e.m.Repo(owner)
			for {
				select {
				case <-stop:
					return
				default:
				}
				switch rng.IntN(6) {
				case 0, 1:
					_, _ = repo.Get(ctx, names[rng.IntN(len(names))])
				case 2:
					_, _ = repo.GetMany(ctx, names)
				case 3:
					repo.Has(ctx, names[rng.IntN(len(names))])
				case 4:
					_ = repo.Disconnect(ctx, names[rng.IntN(len(names))])
				case 5:
					repo.GetLoaded()
				}
				iters[i]++
				time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
			}
		}()
	}
	step := func() { time.Sleep(150 * time.Millisecond) }
	// around each change one owner asks too, so each kind of decision is certain
	around := func(owner, name string, change func()) {
		_, _ = e.m.Repo(owner).Get(ctx, name)
		change()
		_, _ = e.m.Repo(owner).Get(ctx, name)
		step()
	}
	step()
	changed := httpConfig(good.URL)
	changed.TimeoutMS = 777
	around("carol", "a", func() { e.put(domain.AppScope, "a", changed) }) // stale for everyone connected
	around("", "b", func() { e.put(domain.AppScope, "b", nostart) })      // disallowed for the shared repository
	around("bob", "p", func() { e.remove(domain.UserScope("bob"), "p") }) // removed while connected
	flaky.ts.CloseClientConnections()                                     // the upstream goes away
	flaky.ts.Close()
	step()
	e.put(domain.UserScope("bob"), "p", httpConfig(good.URL)) // back again
	st, _ := e.servers.State(domain.AppScope, "stub")
	e.append(domain.ServerInspected{Scope: domain.AppScope, Name: "stub", ConfigVersion: st.Version,
		Tools: []domain.Tool{}, Digest: domain.CatalogueDigest(nil), Recovered: true}) // the stub recovers
	step()
	e.failInspection(domain.AppScope, "b") // fails while connected by users
	step()
	close(stop)
	wg.Wait()
}

func TestReplayDecisions_BusyMixedWorkload_NoMismatch(t *testing.T) {
	// given a busy mixed workload on a durable bbolt log, closed
	st, err := bolt.Open(filepath.Join(t.TempDir(), "log.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvOn(t, st, func(o *Options) {
		o.BackoffBase = 30 * time.Millisecond
		o.BackoffMax = 100 * time.Millisecond
		o.RefusalWindow = 10 * time.Millisecond
		o.Upstream.ProbeInterval = 20 * time.Millisecond
	})
	busyWorkload(t, e, 1)
	if err := e.m.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}

	// when every decision is replayed
	var last, total uint64
	rep, err := ReplayDecisions(ctxT(t), e.st, 0, func(done, all uint64) { last, total = done, all })
	if err != nil {
		t.Fatal(err)
	}

	// then none differs, and the workload made every kind of decision
	for _, m := range rep.Mismatches {
		t.Errorf("mismatch: %s", m)
	}
	stats := e.m.Stats().Decisions
	t.Logf("%d events, %d decisions: %v", rep.Events, rep.Decisions, stats)
	for _, k := range []string{"opened", "open_failed", "evicted/stale", "evicted/removed", "evicted/disallowed",
		"evicted/explicit", "evicted/shutdown", "refused/no_config", "refused/inspection_failed",
		"refused/startup_false", "refused/breaker_open"} {
		if stats[k] == 0 {
			t.Errorf("the workload made no %s decision", k)
		}
	}
	if last != total || total == 0 {
		t.Errorf("progress ended at %d of %d", last, total)
	}
}

func TestReplayDecisions_ForgedDecisionIsFound(t *testing.T) {
	// given a clean log of a small workload
	srv := newMCPServer(t)
	e := newEnv(t, nil)
	e.forged = true
	e.put(domain.AppScope, "a", httpConfig(srv.URL))
	if _, err := e.m.Repo("alice").Get(ctxT(t), "a"); err != nil {
		t.Fatal(err)
	}
	clean, err := ReplayDecisions(ctxT(t), e.st, 0, nil)
	if err != nil || len(clean.Mismatches) != 0 {
		t.Fatalf("clean log: %v %v", err, clean.Mismatches)
	}
	real := e.facts("alice", "a")[0].(domain.ConnectionOpened)

	// when decisions whose recorded inputs disagree with the log are appended
	wrongVersion := real
	wrongVersion.ConnID = "forged-1"
	wrongVersion.Inputs.Config.Version += 1000
	wrongVersion.Inputs.ExistingState = domain.ConnNone
	posVersion := appendFact(t, e.st, wrongVersion)
	wrongRule := domain.ConnectionRefused{Inputs: real.Inputs, Rule: domain.RuleNoConfig, Count: 1}
	posRule := appendFact(t, e.st, wrongRule)
	ghost := domain.ConnectionEvicted{Inputs: real.Inputs, Reason: domain.EvictIdle, ConnID: "never-opened"}
	posGhost := appendFact(t, e.st, ghost)

	// then replay names each one at its position
	rep, err := ReplayDecisions(ctxT(t), e.st, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	found := map[uint64]string{}
	for _, m := range rep.Mismatches {
		found[m.Position] = m.String()
	}
	for _, pos := range []uint64{posVersion, posRule, posGhost} {
		if found[pos] == "" {
			t.Errorf("forged decision at %d not reported; mismatches: %v", pos, rep.Mismatches)
		}
	}
	if len(found) != 3 {
		t.Errorf("mismatches at %d positions, want 3: %v", len(found), rep.Mismatches)
	}
	t.Logf("%v", rep.Mismatches)
	// and replay up to before the forgeries is clean
	if rep, _ := ReplayDecisions(ctxT(t), e.st, posVersion-1, nil); len(rep.Mismatches) != 0 {
		t.Errorf("replay up to %d: %v", posVersion-1, rep.Mismatches)
	}
}

func appendFact(tb testing.TB, st store.Store, fact any) uint64 {
	tb.Helper()
	env, err := events.New(fact, events.Meta{ID: newTestID(), Source: "mcpes://forger", Time: time.Now(), Actor: "system"})
	if err != nil {
		tb.Fatal(err)
	}
	res, err := st.Append(context.Background(), env.Subject, store.AnyVersion, env)
	if err != nil {
		tb.Fatal(fmt.Errorf("append forged: %w", err))
	}
	return res.Positions[0]
}

func TestReplayDecisions_ViewReadFurtherBackThanTheWindow(t *testing.T) {
	// given a decision, then a config change, then copies of the decision recorded
	// long after it (beyond the window the projection trails by): one with the view
	// it read, one with a view the log never held
	srv := newMCPServer(t)
	e := newEnv(t, nil)
	e.forged = true
	e.put(domain.AppScope, "a", httpConfig(srv.URL))
	if _, err := e.m.Repo("alice").Get(ctxT(t), "a"); err != nil {
		t.Fatal(err)
	}
	real := e.facts("alice", "a")[0].(domain.ConnectionOpened)
	changed := httpConfig(srv.URL)
	changed.TimeoutMS = 7000
	e.put(domain.AppScope, "a", changed)
	defer func(w uint64) { window = w }(window)
	window = 2
	for i := range 4 { // events replay reads, each moving the projection on
		e.put(domain.AppScope, fmt.Sprintf("filler%d", i), httpConfig(srv.URL))
	}
	honest := domain.ConnectionRefused{Inputs: real.Inputs, Rule: domain.RuleAllowed, Count: 1}
	posHonest := appendFact(t, e.st, honest)
	wrong := honest
	wrong.Inputs.Config.Version += 1000
	posWrong := appendFact(t, e.st, wrong)

	// when every decision is replayed
	rep, err := ReplayDecisions(ctxT(t), e.st, 0, nil)
	if err != nil {
		t.Fatal(err)
	}

	// then the view of each is compared as of the position it read: the wrong one is
	// named, the honest one is not (its other inputs may differ)
	config := map[uint64]bool{}
	for _, m := range rep.Mismatches {
		if strings.HasPrefix(m.Recorded, "config ") {
			config[m.Position] = true
		}
	}
	if !config[posWrong] || config[posHonest] || len(config) != 1 {
		t.Fatalf("config mismatches at %v, want only %d: %v", config, posWrong, rep.Mismatches)
	}
}
