package connections

import (
	"syscall"
	"testing"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/projections"
)

func TestManager_RemovedServer_EveryOwnersConnectionEvictedAtOnce(t *testing.T) {
	// given the shared repository, alice and bob each connected to one stdio app server
	bin := clockBinary(t)
	e := newEnv(t, nil)
	e.put(domain.AppScope, "clock", domain.ServerConfig{Command: bin, InitTimeoutMS: 10000})
	owners := []string{"", "alice", "bob"}
	pids := map[string]int{}
	for _, o := range owners {
		c, err := e.m.Repo(o).Get(ctxT(t), "clock")
		if err != nil {
			t.Fatal(err)
		}
		pids[o] = c.Upstream().Pid()
	}

	// when the server is removed, and nobody asks for it again
	e.remove(domain.AppScope, "clock")

	// then each owner's connection is evicted (removed) and recorded, and its
	// process is gone
	for _, o := range owners {
		eventually(t, "eviction of "+domain.OwnerWord(o), func() bool { return len(e.facts(o, "clock")) == 2 })
		wantKinds(t, e, o, "clock", "opened", "evicted/removed")
		// (the event is appended before the connection is dropped from the count)
		eventually(t, "count of "+domain.OwnerWord(o), func() bool { return e.m.Repo(o).Count() == 0 })
		eventually(t, "exit of the process of "+domain.OwnerWord(o), func() bool {
			return syscall.Kill(pids[o], 0) != nil
		})
	}
}

func TestManager_Sweep_DisallowedEvictedAllowedKept(t *testing.T) {
	// given shared and user connections to a server
	srv := newMCPServer(t)
	e := newEnv(t, nil)
	e.put(domain.AppScope, "s", httpConfig(srv.URL))
	for _, o := range []string{"", "alice"} {
		if _, err := e.m.Repo(o).Get(ctxT(t), "s"); err != nil {
			t.Fatal(err)
		}
	}

	// when its config turns startup off (the shared repository may no longer
	// connect it; owners still may) and Sweep runs
	no := false
	cfg := httpConfig(srv.URL)
	cfg.Startup = &no
	e.put(domain.AppScope, "s", cfg)
	if err := e.m.Sweep(ctxT(t), "s"); err != nil {
		t.Fatal(err)
	}

	// then the shared connection is evicted (disallowed) and alice's is kept
	wantKinds(t, e, "", "s", "opened", "evicted/disallowed")
	if e.m.Repo("").Count() != 0 || e.m.Repo("alice").Count() != 1 {
		t.Fatalf("counts: shared %d, alice %d", e.m.Repo("").Count(), e.m.Repo("alice").Count())
	}
}

func TestManager_RecoverRestart_RecordsOpenConnectionsLost(t *testing.T) {
	// given a log in which two connections were opened and never closed (the
	// process that held them was killed)
	srv := newMCPServer(t)
	first := newEnv(t, nil)
	first.put(domain.AppScope, "s", httpConfig(srv.URL))
	for _, o := range []string{"", "alice"} {
		if _, err := first.m.Repo(o).Get(ctxT(t), "s"); err != nil {
			t.Fatal(err)
		}
	}
	conns, err := projections.LoadConnections(ctxT(t), first.st, projections.Options{NoSnapshot: true})
	if err != nil {
		t.Fatal(err)
	}
	open := conns.All()
	if len(open) != 2 {
		t.Fatalf("open before restart = %d", len(open))
	}

	// when a new manager starts on that log and recovers
	n, err := first.m.RecoverRestart(ctxT(t), open)

	// then each is recorded lost with reason restart, and the log shows none open
	if err != nil || n != 2 {
		t.Fatalf("recover = %d, %v", n, err)
	}
	for _, o := range []string{"", "alice"} {
		f := first.facts(o, "s")
		lost, ok := f[len(f)-1].(domain.ConnectionLost)
		if !ok || lost.Reason != domain.LostRestart || lost.ConnID == "" {
			t.Fatalf("%q: last fact %+v, want connection.lost (restart)", o, f[len(f)-1])
		}
	}
	if left := conns.All(); len(left) != 0 {
		t.Fatalf("still open in the log: %+v", left)
	}
	// and replaying the log up to here finds every decision as recorded: after a
	// restart's lost, the next connect saw no existing connection
	rep, err := ReplayDecisions(ctxT(t), first.st, 0, nil)
	if err != nil || len(rep.Mismatches) != 0 {
		t.Fatalf("replay: %v %v", rep.Mismatches, err)
	}
	// (the test's "killed" manager lives on and would record shutdown evictions of
	// connections a real restart no longer has: the cleanup replay is skipped)
	first.forged = true
}
