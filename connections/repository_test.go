package connections

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpes/mcpes/domain"
)

func wantKinds(tb testing.TB, e *env, owner, server string, want ...string) {
	tb.Helper()
	got := kinds(e.facts(owner, server))
	if !slices.Equal(got, want) {
		tb.Fatalf("events of %q/%q = %v, want %v", owner, server, got, want)
	}
}

func echo(tb testing.TB, c *Connection, text string) {
	tb.Helper()
	res, err := c.Upstream().CallTool(ctxT(tb), "echo", map[string]any{"text": text}, nil)
	if err != nil {
		tb.Fatalf("call echo: %v", err)
	}
	if got := mcp.GetTextFromContent(res.Content[0]); !strings.Contains(got, text) {
		tb.Fatalf("echo returned %q", got)
	}
}

func TestRepository_Get_ConnectsOnceThenReuses(t *testing.T) {
	// given an app server
	srv := newMCPServer(t)
	e := newEnv(t, nil)
	version := e.put(domain.AppScope, "clock", httpConfig(srv.URL))
	repo := e.m.Repo("")

	// when the shared repository gets it twice
	c1, err := repo.Get(ctxT(t), "clock")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	c2, err := repo.Get(ctxT(t), "clock")
	if err != nil {
		t.Fatalf("second get: %v", err)
	}

	// then one connection was opened, recorded with its inputs, and reused
	if c1 != c2 || e.dials.Load() != 1 {
		t.Fatalf("want one reused connection, got %p %p after %d dials", c1, c2, e.dials.Load())
	}
	echo(t, c2, "hello")
	wantKinds(t, e, "", "clock", "opened")
	op := e.facts("", "clock")[0].(domain.ConnectionOpened)
	if op.Inputs.Config.Version != version || op.Inputs.ExistingState != domain.ConnNone || op.ConnID != c1.ConnID {
		t.Fatalf("opened inputs = %+v", op)
	}
	if c1.ConfigVersion != version || c1.ConfigScope != domain.AppScope || c1.Owner != "" || c1.Server != "clock" {
		t.Fatalf("connection = %+v", c1)
	}
	if e.m.Stats().Reuses != 1 || repo.Count() != 1 {
		t.Fatalf("reuses %d, count %d", e.m.Stats().Reuses, repo.Count())
	}
}

func TestRepository_Get_StaleConfigReconnects(t *testing.T) {
	// given a live connection
	srv := newMCPServer(t)
	e := newEnv(t, nil)
	e.put(domain.AppScope, "clock", httpConfig(srv.URL))
	repo := e.m.Repo("")
	old, err := repo.Get(ctxT(t), "clock")
	if err != nil {
		t.Fatal(err)
	}

	// when another server is registered (the log moves), then it is still reused
	e.put(domain.AppScope, "unrelated", httpConfig(srv.URL))
	if again, err := repo.Get(ctxT(t), "clock"); err != nil || again != old {
		t.Fatalf("after an unrelated event: %v, same %v", err, again == old)
	}

	// when its config changes and the server is asked for again
	cfg := httpConfig(srv.URL)
	cfg.TimeoutMS = 1234
	v2 := e.put(domain.AppScope, "clock", cfg)
	fresh, err := repo.Get(ctxT(t), "clock")
	if err != nil {
		t.Fatal(err)
	}

	// then the stale one was evicted and closed, and a new one built from v2
	if fresh == old || fresh.ConfigVersion != v2 {
		t.Fatalf("want a new connection at version %d, got %+v", v2, fresh)
	}
	select {
	case <-old.Session().Done():
	default:
		t.Fatal("stale connection not closed")
	}
	wantKinds(t, e, "", "clock", "opened", "evicted/stale", "opened")
	facts := e.facts("", "clock")
	if ev := facts[1].(domain.ConnectionEvicted); ev.ConnID != old.ConnID || ev.Inputs.ExistingVersion != old.ConfigVersion {
		t.Fatalf("evicted = %+v", ev)
	}
	if op := facts[2].(domain.ConnectionOpened); op.Replaced != domain.EvictStale {
		t.Fatalf("opened.replaced = %q", op.Replaced)
	}
	echo(t, fresh, "after change")
}

func TestRepository_LostConnectionIsRecordedAndReplaced(t *testing.T) {
	// given a stdio connection to the clock example server
	bin := clockBinary(t)
	e := newEnv(t, nil)
	e.put(domain.AppScope, "clock", domain.ServerConfig{Command: bin, InitTimeoutMS: 10000})
	repo := e.m.Repo("")
	c, err := repo.Get(ctxT(t), "clock")
	if err != nil {
		t.Fatal(err)
	}
	echo(t, c, "before")

	// when the upstream process is killed
	if err := syscall.Kill(c.Upstream().Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}

	// then the loss is recorded without any request
	eventually(t, "connection.lost", func() bool { return len(e.facts("", "clock")) == 2 })
	wantKinds(t, e, "", "clock", "opened", "lost")
	if repo.Count() != 0 || len(repo.GetLoaded()) != 0 {
		t.Fatal("a dead connection is still counted")
	}
	// and the next Get evicts the dead one and reconnects
	c2, err := repo.Get(ctxT(t), "clock")
	if err != nil {
		t.Fatal(err)
	}
	echo(t, c2, "after")
	wantKinds(t, e, "", "clock", "opened", "lost", "evicted/dead", "opened")
	if op := e.facts("", "clock")[3].(domain.ConnectionOpened); op.Replaced != domain.EvictDead || op.Inputs.ExistingState != domain.ConnDead {
		t.Fatalf("opened = %+v", op)
	}
}

func TestRepository_SharedScopeRules_RefuseWhileUserIsAllowed(t *testing.T) {
	srv := newMCPServer(t)
	no := false
	yes := true
	cases := []struct {
		name string
		cfg  func(domain.ServerConfig) domain.ServerConfig
		rule domain.Rule
	}{
		{"startup-false", func(c domain.ServerConfig) domain.ServerConfig { c.Startup = &no; return c }, domain.RuleStartupDisabled},
		{"requires-oauth", func(c domain.ServerConfig) domain.ServerConfig { c.RequiresOAuth = &yes; return c }, domain.RuleRequiresOAuth},
		{"custom-vars", func(c domain.ServerConfig) domain.ServerConfig {
			c.CustomUserVars = map[string]domain.CustomUserVar{"API_KEY": {Title: "key"}}
			return c
		}, domain.RuleCustomUserVars},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// given an app server the shared repository may not connect
			e := newEnv(t, nil)
			e.put(domain.AppScope, "s", tc.cfg(httpConfig(srv.URL)))

			// when the shared repository and a user repository get it
			_, err := e.m.Repo("").Get(ctxT(t), "s")
			c, uerr := e.m.Repo("alice").Get(ctxT(t), "s")

			// then the shared one is refused with the rule, the user one connects
			var re *RefusedError
			if !errors.As(err, &re) || re.Rule != tc.rule || !errors.Is(err, ErrRefused) || errors.Is(err, ErrNotFound) {
				t.Fatalf("shared get: %v, want rule %s", err, tc.rule)
			}
			if uerr != nil {
				t.Fatalf("user get: %v", uerr)
			}
			echo(t, c, "user")
			if e.m.Repo("").Has(ctxT(t), "s") || !e.m.Repo("alice").Has(ctxT(t), "s") {
				t.Fatal("Has disagrees with Get")
			}
			wantKinds(t, e, "", "s", "refused/"+string(tc.rule))
			wantKinds(t, e, "alice", "s", "opened")
		})
	}
	t.Run("oauth-detected-at-inspection", func(t *testing.T) {
		e := newEnv(t, nil)
		e.put(domain.AppScope, "s", httpConfig(srv.URL))
		st, _ := e.servers.State(domain.AppScope, "s")
		e.append(domain.ServerInspectionFailed{Scope: domain.AppScope, Name: "s", ConfigVersion: st.Version,
			Class: domain.FailureAuth, Message: "401", RequiresOAuth: true})
		if _, err := e.m.Repo("").Get(ctxT(t), "s"); !errors.Is(err, ErrRefused) {
			t.Fatalf("shared get: %v", err)
		}
		if _, err := e.m.Repo("bob").Get(ctxT(t), "s"); err != nil {
			t.Fatalf("user get: %v", err)
		}
	})
}

func TestRepository_FailedInspectionStub_IsNeverConnected(t *testing.T) {
	// given an app server and a private server whose inspections failed
	srv := newMCPServer(t)
	e := newEnv(t, nil)
	e.put(domain.AppScope, "stub", httpConfig(srv.URL))
	e.failInspection(domain.AppScope, "stub")
	e.put(domain.UserScope("alice"), "mine", httpConfig(srv.URL))
	e.failInspection(domain.UserScope("alice"), "mine")

	// when everybody asks for them
	for _, owner := range []string{"", "alice", "bob"} {
		for _, name := range []string{"stub", "mine"} {
			_, err := e.m.Repo(owner).Get(ctxT(t), name)
			// then each is refused: inspection_failed where visible, not found elsewhere
			var re *RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("%q/%s: %v", owner, name, err)
			}
			want := domain.RuleInspectionFailed
			if name == "mine" && owner != "alice" {
				want = domain.RuleNoConfig
			}
			if re.Rule != want {
				t.Fatalf("%q/%s: rule %s, want %s", owner, name, re.Rule, want)
			}
		}
	}
	// and nothing was ever dialled
	if n := e.dials.Load(); n != 0 {
		t.Fatalf("%d dials to failed stubs", n)
	}
	if _, err := e.m.Repo("bob").Get(ctxT(t), "mine"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another owner's server: %v, want ErrNotFound", err)
	}
}

func TestRepository_RemovedServer_EvictsAndRefuses(t *testing.T) {
	// given a live user connection to a private server
	srv := newMCPServer(t)
	e := newEnv(t, nil)
	e.put(domain.UserScope("alice"), "mine", httpConfig(srv.URL))
	repo := e.m.Repo("alice")
	c, err := repo.Get(ctxT(t), "mine")
	if err != nil {
		t.Fatal(err)
	}

	// when the server is removed and asked for again
	e.remove(domain.UserScope("alice"), "mine")
	_, err = repo.Get(ctxT(t), "mine")

	// then the connection was evicted (removed) and closed, and Get says not found
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after removal: %v", err)
	}
	select {
	case <-c.Session().Done():
	default:
		t.Fatal("connection of a removed server still open")
	}
	wantKinds(t, e, "alice", "mine", "opened", "evicted/removed", "refused/no_config")
}

func TestRepository_Has_EvictsDisallowedAndNeverConnects(t *testing.T) {
	// given a shared connection
	srv := newMCPServer(t)
	e := newEnv(t, nil)
	e.put(domain.AppScope, "s", httpConfig(srv.URL))
	e.put(domain.AppScope, "other", httpConfig(srv.URL))
	repo := e.m.Repo("")
	if _, err := repo.Get(ctxT(t), "s"); err != nil {
		t.Fatal(err)
	}
	if !repo.Has(ctxT(t), "other") || repo.Has(ctxT(t), "missing") {
		t.Fatal("Has answers wrong")
	}

	// when its config turns startup off and Has is asked
	no := false
	cfg := httpConfig(srv.URL)
	cfg.Startup = &no
	e.put(domain.AppScope, "s", cfg)
	has := repo.Has(ctxT(t), "s")

	// then it says no and the leftover connection was evicted (disallowed)
	if has || repo.Count() != 0 {
		t.Fatalf("has = %v, count = %d", has, repo.Count())
	}
	wantKinds(t, e, "", "s", "opened", "evicted/disallowed")
	if e.dialsOf("other") != 0 {
		t.Fatal("Has connected")
	}
}

func TestRepository_GetLoaded_OpensNothing(t *testing.T) {
	srv := newMCPServer(t)
	e := newEnv(t, nil)
	e.put(domain.AppScope, "a", httpConfig(srv.URL))
	e.put(domain.AppScope, "b", httpConfig(srv.URL))
	repo := e.m.Repo("")
	if got := repo.GetLoaded(); len(got) != 0 || e.dials.Load() != 0 {
		t.Fatalf("GetLoaded on a cold repository: %d connections, %d dials", len(got), e.dials.Load())
	}
	if _, err := repo.Get(ctxT(t), "b"); err != nil {
		t.Fatal(err)
	}
	got := repo.GetLoaded()
	if len(got) != 1 || got[0].Server != "b" || e.dials.Load() != 1 {
		t.Fatalf("GetLoaded = %v after %d dials", got, e.dials.Load())
	}
}

func TestRepository_GetMany_PartialResultsAndBoundedConnects(t *testing.T) {
	// given four good servers, a dead one and an unknown name, two connects at once
	srv := newMCPServer(t)
	srv.delay.Store(int64(30 * time.Millisecond))
	var inflight, peak atomic.Int64
	e := newEnv(t, func(o *Options) {
		o.MaxConcurrentConnects = 2
		base := UpstreamDial(o.Upstream)
		o.Dial = func(ctx context.Context, req DialRequest) (Session, error) {
			n := inflight.Add(1)
			defer inflight.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			return base(ctx, req)
		}
	})
	for _, n := range []string{"a", "b", "c", "d"} {
		e.put(domain.UserScope("alice"), n, httpConfig(srv.URL))
	}
	e.put(domain.AppScope, "dead", httpConfig(deadURL(t)))

	// when alice gets them all at once
	conns, errs := e.m.Repo("alice").GetMany(ctxT(t), []string{"a", "b", "c", "d", "dead", "nope", "a"})

	// then the good ones connected and the others report their own errors
	if len(conns) != 4 || len(errs) != 2 {
		t.Fatalf("conns %v, errs %v", conns, errs)
	}
	var ce *ConnectError
	if !errors.As(errs["dead"], &ce) || !errors.Is(errs["dead"], ErrUnavailable) || ce.Class != domain.FailureUnreachable {
		t.Fatalf("dead: %v", errs["dead"])
	}
	if !errors.Is(errs["nope"], ErrNotFound) {
		t.Fatalf("nope: %v", errs["nope"])
	}
	if p := peak.Load(); p > 2 {
		t.Fatalf("%d connects in flight at once, want at most 2", p)
	}
	// and GetAll covers every visible server
	all, allErrs := e.m.Repo("alice").GetAll(ctxT(t))
	if len(all) != 4 || len(allErrs) != 1 {
		t.Fatalf("GetAll: %d conns, errs %v", len(all), allErrs)
	}
}

func TestRepository_ColdStartStorm_OneUpstreamConnect(t *testing.T) {
	// given a cold server that takes a while to answer the handshake
	srv := newMCPServer(t)
	srv.delay.Store(int64(100 * time.Millisecond))
	e := newEnv(t, nil)
	e.put(domain.AppScope, "clock", httpConfig(srv.URL))

	// when 1,000 Gets arrive at once
	const n = 1000
	var wg sync.WaitGroup
	start := make(chan struct{})
	conns := make([]*Connection, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			conns[i], errs[i] = e.m.Repo("").Get(ctxT(t), "clock")
		}()
	}
	close(start)
	wg.Wait()

	// then they share one connection and the server saw one handshake
	for i := range n {
		if errs[i] != nil || conns[i] != conns[0] {
			t.Fatalf("get %d: %v (%p vs %p)", i, errs[i], conns[i], conns[0])
		}
	}
	if d := e.dials.Load(); d != 1 {
		t.Fatalf("%d dials, want 1", d)
	}
	if h := srv.handshakes.Load(); h != 1 {
		t.Fatalf("server saw %d handshakes, want 1", h)
	}
	wantKinds(t, e, "", "clock", "opened")
}

func TestRepository_CallerGivesUp_ConnectCompletesForOthers(t *testing.T) {
	// given a slow server
	srv := newMCPServer(t)
	srv.delay.Store(int64(300 * time.Millisecond))
	e := newEnv(t, nil)
	e.put(domain.AppScope, "slow", httpConfig(srv.URL))
	repo := e.m.Repo("")

	// when the first caller's context ends during the connect
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := repo.Get(ctx, "slow")

	// then it returns early, and the connect still completes and is kept
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("get: %v", err)
	}
	eventually(t, "the connect to finish", func() bool { return repo.Count() == 1 })
	if _, err := repo.Get(ctxT(t), "slow"); err != nil || e.dials.Load() != 1 {
		t.Fatalf("get after: %v with %d dials", err, e.dials.Load())
	}
	wantKinds(t, e, "", "slow", "opened")
}

func TestNewManager_PanicsOnNilDependencies(t *testing.T) {
	e := newEnv(t, nil)
	for name, f := range map[string]func(){
		"store":      func() { NewManager(nil, e.servers, Options{}) },
		"projection": func() { NewManager(e.st, nil, Options{}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("nil %s: no panic", name)
				}
			}()
			f()
		}()
	}
}
