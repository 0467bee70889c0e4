package connections

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
)

func TestRepository_ReconnectStorm_BreakerBoundsAttempts(t *testing.T) {
	// given a dead server
	dur := 10 * time.Second
	if testing.Short() {
		dur = 3 * time.Second
	}
	e := newEnv(t, nil)
	e.put(domain.AppScope, "dead", httpConfig(deadURL(t)))
	repo := e.m.Repo("")

	// when it is asked for 1,000 times a second (4 callers x 250/s)
	var refused, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				at := start.Add(time.Duration(i)*4*time.Millisecond + time.Duration(g)*time.Millisecond)
				if at.Sub(start) >= dur {
					return
				}
				time.Sleep(time.Until(at))
				_, err := repo.Get(context.Background(), "dead")
				var re *RefusedError
				var ce *ConnectError
				switch {
				case errors.As(err, &re) && re.Rule == domain.RuleBreakerOpen && errors.Is(err, ErrUnavailable):
					refused.Add(1)
				case errors.As(err, &ce):
					failed.Add(1)
				default:
					t.Errorf("get: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()

	// then at most 10 connects were attempted, each recorded, and the refusals were
	// coalesced into few events whose counts add up
	attempts := e.dials.Load()
	t.Logf("%s: %d gets, %d connect attempts, %d refused by the breaker", dur, refused.Load()+failed.Load(), attempts, refused.Load())
	if attempts > 10 || attempts < 2 {
		t.Fatalf("%d connect attempts in %s", attempts, dur)
	}
	var openFailed, refusedEvents, refusedCount int64
	for _, f := range e.facts("", "dead") {
		switch f := f.(type) {
		case domain.ConnectionOpenFailed:
			openFailed++
			if f.Class != domain.FailureUnreachable {
				t.Fatalf("class %s", f.Class)
			}
		case domain.ConnectionRefused:
			refusedEvents++
			refusedCount += int64(f.Count)
		}
	}
	e.m.Repo("").flushAll(context.Background())
	refusedCount = 0
	for _, f := range e.facts("", "dead") {
		if r, ok := f.(domain.ConnectionRefused); ok {
			refusedCount += int64(r.Count)
		}
	}
	if openFailed != attempts || refusedCount != refused.Load() {
		t.Fatalf("%d open_failed events for %d attempts; refusal counts %d for %d refusals", openFailed, attempts, refusedCount, refused.Load())
	}
	if refusedEvents > 4*attempts+int64(dur/time.Second)+4 {
		t.Fatalf("%d refusal events: not coalesced", refusedEvents)
	}
}

func TestRepository_FailingUserDoesNotBlockAnother(t *testing.T) {
	// given bob's private server "x" hangs in the handshake, alice's "x" works, and an
	// app server "y" is dead
	hang := newMCPServer(t)
	hang.gate = make(chan struct{})
	good := newMCPServer(t)
	e := newEnv(t, func(o *Options) { o.BackoffBase = time.Minute }) // the breaker stays open however slow the machine
	e.put(domain.UserScope("bob"), "x", httpConfig(hang.URL))
	e.put(domain.UserScope("alice"), "x", httpConfig(good.URL))
	e.put(domain.AppScope, "y", httpConfig(deadURL(t)))

	// when bob's connect is stuck and bob's breaker for "y" is open
	bobDone := make(chan struct{})
	go func() {
		defer close(bobDone)
		_, _ = e.m.Repo("bob").Get(context.Background(), "x")
	}()
	eventually(t, "bob's handshake", func() bool { return hang.handshakes.Load() > 0 })
	if _, err := e.m.Repo("bob").Get(ctxT(t), "y"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("bob y: %v", err)
	}
	if _, err := e.m.Repo("bob").Get(ctxT(t), "y"); !errors.Is(err, ErrRefused) {
		t.Fatalf("bob y again: %v, want the breaker", err)
	}

	// then alice's Gets go through while bob's is still pending
	for range 50 {
		if _, err := e.m.Repo("alice").Get(ctxT(t), "x"); err != nil {
			t.Fatalf("alice x: %v", err)
		}
	}
	_, err := e.m.Repo("alice").Get(ctxT(t), "y")
	var ce *ConnectError
	if !errors.As(err, &ce) {
		t.Fatalf("alice y: %v, want her own connect attempt, not bob's breaker", err)
	}
	select {
	case <-bobDone:
		t.Fatal("bob's connect finished first: the test proved nothing")
	default:
	}
	if e.dialsOf("y") != 2 {
		t.Fatalf("%d dials of y, want one per owner", e.dialsOf("y"))
	}
	close(hang.gate)
	<-bobDone
}

func TestRepository_IdleConnectionsEvictedOneByOne(t *testing.T) {
	// given a user repository with a short idle timeout on an injected clock, and two
	// connections
	srv := newMCPServer(t)
	var nowNanos atomic.Int64
	nowNanos.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	advance := func(d time.Duration) { nowNanos.Add(int64(d)) }
	e := newEnv(t, func(o *Options) {
		o.IdleTimeout = 400 * time.Millisecond
		o.IdleCheck = 5 * time.Millisecond
		o.Clock = func() time.Time { return time.Unix(0, nowNanos.Load()) }
	})
	for _, n := range []string{"used", "idle"} {
		e.put(domain.AppScope, n, httpConfig(srv.URL))
	}
	alice, shared := e.m.Repo("alice"), e.m.Repo("")
	for _, n := range []string{"used", "idle"} {
		if _, err := alice.Get(ctxT(t), n); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := shared.Get(ctxT(t), "idle"); err != nil {
		t.Fatal(err)
	}

	// when only one is used while 1.2 s pass on the clock, 100 ms at a time (each use
	// after a manager tick, as a reuse reads the clock once per tick)
	for range 12 {
		advance(100 * time.Millisecond)
		tick := e.m.tick.Load()
		eventually(t, "a manager tick", func() bool { return e.m.tick.Load() != tick })
		if _, err := alice.Get(ctxT(t), "used"); err != nil {
			t.Fatal(err)
		}
	}

	// then the idle one is evicted (idle), the used one and the shared one stay
	eventually(t, "the idle eviction", func() bool { return alice.Count() == 1 })
	wantKinds(t, e, "alice", "idle", "opened", "evicted/idle")
	wantKinds(t, e, "alice", "used", "opened")
	wantKinds(t, e, "", "idle", "opened")
	if alice.Count() != 1 || shared.Count() != 1 {
		t.Fatalf("counts: alice %d, shared %d", alice.Count(), shared.Count())
	}
}

func TestRepository_RepeatedRefusalsAreCoalesced(t *testing.T) {
	// given a server the shared repository may not connect
	srv := newMCPServer(t)
	e := newEnv(t, func(o *Options) { o.RefusalWindow = 200 * time.Millisecond })
	no := false
	cfg := httpConfig(srv.URL)
	cfg.Startup = &no
	e.put(domain.AppScope, "s", cfg)
	repo := e.m.Repo("")

	// when it is asked for in a tight loop, then under a different rule
	const n = 500
	for range n {
		if _, err := repo.Get(ctxT(t), "s"); !errors.Is(err, ErrRefused) {
			t.Fatal(err)
		}
	}
	yes := true
	cfg.Startup, cfg.RequiresOAuth = nil, &yes
	e.put(domain.AppScope, "s", cfg)
	for range 3 {
		if _, err := repo.Get(ctxT(t), "s"); !errors.Is(err, ErrRefused) {
			t.Fatal(err)
		}
	}
	repo.flushAll(context.Background())

	// then each rule's refusals are in few events whose counts add up
	counts := map[domain.Rule]int{}
	events := 0
	for _, f := range e.facts("", "s") {
		r := f.(domain.ConnectionRefused)
		counts[r.Rule] += r.Count
		events++
	}
	if counts[domain.RuleStartupDisabled] != n || counts[domain.RuleRequiresOAuth] != 3 {
		t.Fatalf("counts %v", counts)
	}
	if events > 6 {
		t.Fatalf("%d refusal events for %d refusals", events, n+3)
	}
	first := e.facts("", "s")[0].(domain.ConnectionRefused)
	if first.Count != 1 {
		t.Fatalf("the first refusal must be appended at once, alone; got count %d", first.Count)
	}
}

func TestRepository_DisconnectAndClose(t *testing.T) {
	srv := newMCPServer(t)
	e := newEnv(t, nil)
	for _, n := range []string{"a", "b", "c"} {
		e.put(domain.AppScope, n, httpConfig(srv.URL))
	}
	repo := e.m.Repo("alice")
	for _, n := range []string{"a", "b", "c"} {
		if _, err := repo.Get(ctxT(t), n); err != nil {
			t.Fatal(err)
		}
	}

	// when one is disconnected, then all
	if err := repo.Disconnect(ctxT(t), "a"); err != nil {
		t.Fatal(err)
	}
	if err := repo.Disconnect(ctxT(t), "never-connected"); err != nil {
		t.Fatalf("disconnecting nothing: %v", err)
	}
	if repo.Count() != 2 {
		t.Fatalf("count %d", repo.Count())
	}
	if err := repo.DisconnectAll(ctxT(t), domain.EvictExplicit); err != nil {
		t.Fatal(err)
	}
	if repo.Count() != 0 {
		t.Fatalf("count %d", repo.Count())
	}
	wantKinds(t, e, "alice", "a", "opened", "evicted/explicit")
	wantKinds(t, e, "alice", "c", "opened", "evicted/explicit")

	// and the manager closes what is left with evicted: shutdown
	c, err := repo.Get(ctxT(t), "b")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.m.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	wantKinds(t, e, "alice", "b", "opened", "evicted/explicit", "opened", "evicted/shutdown")
	select {
	case <-c.Session().Done():
	default:
		t.Fatal("connection open after Close")
	}
	if _, err := repo.Get(ctxT(t), "b"); !errors.Is(err, ErrClosed) {
		t.Fatalf("get after close: %v", err)
	}
}
