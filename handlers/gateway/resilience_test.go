package gateway_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpes/mcpes/audit"
	"github.com/mcpes/mcpes/connections"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/handlers/gateway"
)

func TestKillUpstream_ToolsDropOutAndComeBack(t *testing.T) {
	// given two clocks in their own processes, "flaky" and "steady", as app servers
	e := newEnv(t)
	flaky := startClock(t, "127.0.0.1:0")
	steady := startClock(t, "127.0.0.1:0")
	e.put(domain.AppScope, "flaky", httpCfg(flaky.URL))
	e.put(domain.AppScope, "steady", httpCfg(steady.URL))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// and a modern client listening for list_changed and a 2025-11-25 client with its
	// GET stream, both for alice
	modern := goClient(t, e.URL(), aliceToken, "")
	legacy := goClient(t, e.URL(), aliceToken, mcp.ProtocolVersion20251125)
	var modernChanged, legacyChanged atomic.Int32
	modern.OnNotification(func(n mcp.JSONRPCNotification) {
		if n.Method == string(mcp.MethodNotificationToolsListChanged) {
			modernChanged.Add(1)
		}
	})
	legacy.OnNotification(func(n mcp.JSONRPCNotification) {
		if n.Method == string(mcp.MethodNotificationToolsListChanged) {
			legacyChanged.Add(1)
		}
	})
	stop, err := modern.ListenAsync(ctx, mcp.SubscriptionFilter{ToolsListChanged: true}, func(error) {})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer stop()
	for _, c := range []*clientT{{modern, "modern"}, {legacy, "legacy"}} {
		if res, err := callTool(ctx, c.c, "flaky__echo", map[string]any{"text": "before"}); err != nil || text(res) != "before" {
			t.Fatalf("%s flaky before: %+v %v", c.name, res, err)
		}
	}
	time.Sleep(100 * time.Millisecond) // let the listen stream settle
	m0, l0 := modernChanged.Load(), legacyChanged.Load()

	// when flaky's process is killed mid-session
	flaky.kill()

	// then its tools drop out of the list, and both clients are told
	waitFor(t, 15*time.Second, "flaky's tools to drop out", func() bool {
		return !hasPrefix(toolNames(t, modern), "flaky__")
	})
	if hasPrefix(toolNames(t, legacy), "flaky__") || !hasPrefix(toolNames(t, legacy), "steady__") {
		t.Fatalf("legacy client sees %v", toolNames(t, legacy))
	}
	waitFor(t, 5*time.Second, "list_changed on both clients", func() bool {
		return modernChanged.Load() > m0 && legacyChanged.Load() > l0
	})
	// and calls to the other server keep working
	for _, c := range []*clientT{{modern, "modern"}, {legacy, "legacy"}} {
		if res, err := callTool(ctx, c.c, "steady__echo", map[string]any{"text": "still"}); err != nil || text(res) != "still" {
			t.Fatalf("%s steady during outage: %+v %v", c.name, res, err)
		}
	}
	// and a call to the withdrawn tool is an error, not a hang
	if _, err := callTool(ctx, modern, "flaky__echo", map[string]any{"text": "x"}); err == nil {
		t.Fatal("call to a withdrawn tool succeeded")
	}

	// when flaky comes back on its address and is reinspected
	m1, l1 := modernChanged.Load(), legacyChanged.Load()
	startClock(t, flaky.hostPort())
	res, err := e.reg.Reinspect(ctx, "admin", domain.AppScope, "flaky")
	if err != nil || !res.OK {
		t.Fatalf("reinspect: %+v %v", res, err)
	}
	// then its tools are back, the clients are told, and calls work again
	waitFor(t, 10*time.Second, "flaky's tools to come back", func() bool {
		return hasPrefix(toolNames(t, modern), "flaky__")
	})
	defer func() {
		t.Logf("changed: modern %d (m1 %d) legacy %d (l1 %d)", modernChanged.Load(), m1, legacyChanged.Load(), l1)
	}()
	waitFor(t, 5*time.Second, "list_changed after reinspect", func() bool {
		return modernChanged.Load() > m1 && legacyChanged.Load() > l1
	})
	for _, c := range []*clientT{{modern, "modern"}, {legacy, "legacy"}} {
		if res, err := callTool(ctx, c.c, "flaky__echo", map[string]any{"text": "after"}); err != nil || text(res) != "after" {
			t.Fatalf("%s flaky after: %+v %v", c.name, res, err)
		}
	}

	// and the audit trail explains every connect and eviction that happened
	checkAuditTrail(t, e, []string{events.TypeConnectionOpened, events.TypeConnectionLost})
	// and explain names alice as the one whose calls connected flaky, and the loss
	ex, err := audit.Explain(context.Background(), e.st, "alice", "flaky", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var opened, lost bool
	for _, d := range ex.Decisions {
		opened = opened || d.Type == events.TypeConnectionOpened && d.Actor == "owner:alice"
		lost = lost || d.Type == events.TypeConnectionLost
	}
	if !ex.MayConnect || !opened || !lost {
		t.Fatalf("explanation: mayConnect=%v opened=%v lost=%v %+v", ex.MayConnect, opened, lost, ex.Decisions)
	}
}

type clientT struct {
	c    *client.Client
	name string
}

// checkAuditTrail replays every recorded decision (zero mismatches), checks that
// each decision event carries its inputs and each loss its connection, and that the
// types in want were recorded at least once.
func checkAuditTrail(tb testing.TB, e *env, want []string) {
	tb.Helper()
	ctx := context.Background()
	rep, err := connections.ReplayDecisions(ctx, e.st, 0, nil)
	if err != nil {
		tb.Fatalf("replay decisions: %v", err)
	}
	if len(rep.Mismatches) != 0 {
		tb.Fatalf("replay mismatches: %v", rep.Mismatches)
	}
	all, err := e.st.ReadAll(ctx, 1, 1<<20)
	if err != nil {
		tb.Fatal(err)
	}
	seen := map[string]int{}
	for _, env := range all {
		if !strings.HasPrefix(env.Subject, "conn/") {
			continue
		}
		seen[env.Type]++
		fact, err := events.Decode(env)
		if err != nil {
			tb.Fatalf("decode %s: %v", env.Type, err)
		}
		var in *domain.DecisionInputs
		switch f := fact.(type) {
		case domain.ConnectionOpened:
			in = &f.Inputs
		case domain.ConnectionOpenFailed:
			in = &f.Inputs
		case domain.ConnectionRefused:
			in = &f.Inputs
		case domain.ConnectionEvicted:
			in = &f.Inputs
		case domain.ConnectionLost:
			if f.ConnID == "" || f.Server == "" {
				tb.Fatalf("loss without its connection at %d: %+v", env.Sequence, f)
			}
		}
		if in != nil && (in.Server == "" || in.Position == 0 || (!in.Config.Found && in.ExistingState == "")) {
			tb.Fatalf("%s at %d lacks its inputs: %+v", env.Type, env.Sequence, *in)
		}
	}
	if rep.Decisions == 0 {
		tb.Fatal("no decision was replayed")
	}
	for _, w := range want {
		if seen[w] == 0 {
			tb.Fatalf("no %s recorded; seen %v", w, seen)
		}
	}
}

func TestUpstreamListChanged_OfferFollowsCatalogue(t *testing.T) {
	// given an in-process upstream that can grow a tool, registered and called once
	// (so the gateway holds a connection that hears its notifications)
	e := newEnv(t)
	s := server.NewMCPServer("grow", "1", server.WithToolCapabilities(true))
	s.AddTool(mcp.NewTool("one"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("1"), nil
	})
	ts := httptest.NewServer(server.NewStreamableHTTPServer(s))
	t.Cleanup(func() {
		ts.CloseClientConnections()
		ts.Close()
	})
	e.put(domain.AppScope, "grow", httpCfg(ts.URL+"/mcp"))
	c := goClient(t, e.URL(), aliceToken, mcp.ProtocolVersion20251125)
	var changed atomic.Int32
	c.OnNotification(func(n mcp.JSONRPCNotification) {
		if n.Method == string(mcp.MethodNotificationToolsListChanged) {
			changed.Add(1)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	if res, err := callTool(ctx, c, "grow__one", nil); err != nil || text(res) != "1" {
		t.Fatalf("one: %+v %v", res, err)
	}
	if has(toolNames(t, c), "grow__two") {
		t.Fatal("two before it exists")
	}
	// when the upstream adds a tool (and announces tools/list_changed; announced
	// again now and then, as the gateway's listening stream may open after the first)
	addTwo := func() {
		s.AddTool(mcp.NewTool("two"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText("2"), nil
		})
	}
	addTwo()
	// then the gateway re-inspects it, offers the new tool and tells its client
	polls := 0
	waitFor(t, 20*time.Second, "grow__two in the offer", func() bool {
		if polls++; polls%50 == 0 {
			addTwo()
		}
		return has(toolNames(t, c), "grow__two")
	})
	waitFor(t, 5*time.Second, "list_changed", func() bool { return changed.Load() > 0 })
	if res, err := callTool(ctx, c, "grow__two", nil); err != nil || text(res) != "2" {
		t.Fatalf("two: %+v %v", res, err)
	}
}

func TestSlowUpstream_NeverBlocksTheList(t *testing.T) {
	// given a working clock and an upstream that accepts connections but never
	// answers, being registered (its inspection hangs until its 2 s initTimeout)
	e := newEnv(t)
	clock := startClock(t, "127.0.0.1:0")
	e.put(domain.AppScope, "clock", httpCfg(clock.URL))
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	}))
	t.Cleanup(func() {
		hang.CloseClientConnections()
		hang.Close()
	})
	c := goClient(t, e.URL(), aliceToken, "")
	cfg := httpCfg(hang.URL + "/mcp")
	cfg.InitTimeoutMS = 2000
	putDone := make(chan struct{})
	go func() {
		defer close(putDone)
		_, _ = e.reg.Put(context.Background(), "admin", domain.AppScope, "hang", cfg)
	}()
	time.Sleep(100 * time.Millisecond)
	// when the client lists and calls while the inspection hangs
	start := time.Now()
	names := toolNames(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := callTool(ctx, c, "clock__echo", map[string]any{"text": "fast"})
	// then both answer at once, with the clock's tools and without the hanging server
	if time.Since(start) > 1500*time.Millisecond || !hasPrefix(names, "clock__") || hasPrefix(names, "hang__") {
		t.Fatalf("list took %v: %v", time.Since(start), names)
	}
	if err != nil || text(res) != "fast" {
		t.Fatalf("echo: %+v %v", res, err)
	}
	// and after its inspection timed out it is still left out
	<-putDone
	if n := toolNames(t, c); hasPrefix(n, "hang__") || !hasPrefix(n, "clock__") {
		t.Fatalf("after timeout: %v", n)
	}
}

func TestServerAddedAndRemoved_ClientsAreTold(t *testing.T) {
	// given a client of alice listening for list_changed (modern subscription)
	e := newEnv(t)
	clock := startClock(t, "127.0.0.1:0")
	c := goClient(t, e.URL(), aliceToken, "")
	var changed atomic.Int32
	c.OnNotification(func(n mcp.JSONRPCNotification) {
		if n.Method == string(mcp.MethodNotificationToolsListChanged) {
			changed.Add(1)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stop, err := c.ListenAsync(ctx, mcp.SubscriptionFilter{ToolsListChanged: true}, func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	time.Sleep(100 * time.Millisecond)

	// when alice registers a private server, then its tools appear and she is told
	if _, err := e.reg.Put(ctx, "owner:alice", domain.UserScope("alice"), "mine", httpCfg(clock.URL)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "list_changed after add", func() bool { return changed.Load() > 0 })
	if !hasPrefix(toolNames(t, c), "mine__") {
		t.Fatalf("after add: %v", toolNames(t, c))
	}
	// when she removes it, then its tools go and she is told again
	n := changed.Load()
	if err := e.reg.Remove(ctx, "owner:alice", domain.UserScope("alice"), "mine"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "list_changed after remove", func() bool { return changed.Load() > n })
	if hasPrefix(toolNames(t, c), "mine__") {
		t.Fatalf("after remove: %v", toolNames(t, c))
	}
}

func TestDeadBeforeFirstUse_FailedConnectWithdrawsTools(t *testing.T) {
	// given a gateway re-inspecting after unreachable connects, and a clock
	// registered (inspected) and then killed before anyone connected
	e := newEnv(t, func(d *gateway.Deps) { d.ReinspectOnUnreachable = true })
	gone := startClock(t, "127.0.0.1:0")
	e.put(domain.AppScope, "gone", httpCfg(gone.URL))
	c := goClient(t, e.URL(), aliceToken, "")
	if !hasPrefix(toolNames(t, c), "gone__") {
		t.Fatal("gone's tools not offered while it was up")
	}
	gone.kill()
	// when alice calls one of its tools
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := callTool(ctx, c, "gone__echo", map[string]any{"text": "x"}); err == nil {
		t.Fatal("call to a dead upstream succeeded")
	}
	// then the failed connect is recorded, the server re-inspected, its tools withdrawn
	waitFor(t, 10*time.Second, "gone's tools to drop out", func() bool { return !hasPrefix(toolNames(t, c), "gone__") })
	checkAuditTrail(t, e, []string{events.TypeConnectionOpenFailed})
}
