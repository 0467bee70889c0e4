package gateway_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/handlers/gateway"
)

var eras = []struct{ name, pin string }{
	{"2026-07-28", ""},
	{"2025-11-25", mcp.ProtocolVersion20251125},
}

func TestGoClients_ListAndCallThroughGateway(t *testing.T) {
	// given the clock over HTTP as an app server, with a private server of the same
	// kind for alice
	e := newEnv(t)
	clock := startClock(t, "127.0.0.1:0")
	e.put(domain.AppScope, "clock", httpCfg(clock.URL))
	for _, era := range eras {
		t.Run(era.name, func(t *testing.T) {
			c := goClient(t, e.URL(), aliceToken, era.pin)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			// when alice lists the tools
			names := toolNames(t, c)
			// then every clock tool is there, prefixed, with its schema passed through
			for _, want := range []string{"clock__echo", "clock__now", "clock__add", "clock__sleep"} {
				if !has(names, want) {
					t.Fatalf("tools %v lack %s", names, want)
				}
			}
			lt, err := c.ListTools(ctx, mcp.ListToolsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			for _, tl := range lt.Tools {
				if tl.Name == "clock__echo" {
					raw, _ := json.Marshal(tl)
					if !strings.Contains(string(raw), `"text"`) || tl.Description != "Returns its text unchanged." {
						t.Fatalf("echo tool not passed through: %s", raw)
					}
				}
			}
			// and a call answers like the upstream does
			res, err := callTool(ctx, c, "clock__add", map[string]any{"a": 2, "b": 40})
			if err != nil || res.IsError || text(res) != "42" {
				t.Fatalf("add: %+v %v", res, err)
			}
			// and a tool-level error comes back as isError, not a protocol error
			res, err = callTool(ctx, c, "clock__now", map[string]any{"zone": "Nowhere/Atlantis"})
			if err != nil || !res.IsError || !strings.Contains(text(res), "unknown zone") {
				t.Fatalf("tool error: %+v %v", res, err)
			}
			// and prompts and resources are offered with their prefixes
			ps, err := c.ListPrompts(ctx, mcp.ListPromptsRequest{})
			if err != nil || len(ps.Prompts) != 1 || ps.Prompts[0].Name != "clock__time-in" {
				t.Fatalf("prompts: %+v %v", ps, err)
			}
			var gp mcp.GetPromptRequest
			gp.Params.Name, gp.Params.Arguments = "clock__time-in", map[string]string{"city": "Paris"}
			pr, err := c.GetPrompt(ctx, gp)
			if err != nil || len(pr.Messages) != 1 || !strings.Contains(mcp.GetTextFromContent(pr.Messages[0].Content), "Paris") {
				t.Fatalf("get prompt: %+v %v", pr, err)
			}
			rs, err := c.ListResources(ctx, mcp.ListResourcesRequest{})
			if err != nil || len(rs.Resources) != 1 || rs.Resources[0].URI != "mcpes://clock/clock://zones" {
				t.Fatalf("resources: %+v %v", rs, err)
			}
			var rr mcp.ReadResourceRequest
			rr.Params.URI = rs.Resources[0].URI
			rd, err := c.ReadResource(ctx, rr)
			if err != nil || len(rd.Contents) != 1 {
				t.Fatalf("read resource: %+v %v", rd, err)
			}
			tc, ok := rd.Contents[0].(mcp.TextResourceContents)
			if !ok || !strings.Contains(tc.Text, "Europe/Paris") || tc.URI != "mcpes://clock/clock://zones" {
				t.Fatalf("resource contents: %+v", rd.Contents[0])
			}
		})
	}
}

func TestIsolation_PrivateServersAndSharedScopeRules(t *testing.T) {
	// given an app clock, alice's private clock "mine", an app server with startup
	// false and one declaring OAuth
	e := newEnv(t)
	clock := startClock(t, "127.0.0.1:0")
	e.put(domain.AppScope, "clock", httpCfg(clock.URL))
	e.put(domain.UserScope("alice"), "mine", httpCfg(clock.URL))
	lazy := httpCfg(clock.URL)
	lazy.Startup = ptr(false)
	e.put(domain.AppScope, "lazy", lazy)
	oauth := httpCfg(clock.URL)
	oauth.RequiresOAuth = ptr(true)
	e.put(domain.AppScope, "oauthy", oauth)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	alice := toolNames(t, goClient(t, e.URL(), aliceToken, ""))
	bobC := goClient(t, e.URL(), bobToken, "")
	bob := toolNames(t, bobC)
	shared := toolNames(t, goClient(t, e.URL(), adminToken, ""))

	// then alice sees her private server's tools, bob does not
	if !hasPrefix(alice, "mine__") || hasPrefix(bob, "mine__") || hasPrefix(shared, "mine__") {
		t.Fatalf("private tools leak or are missing: alice %v bob %v shared %v", alice, bob, shared)
	}
	// and a call by bob to alice's tool is refused as unknown
	if _, err := callTool(ctx, bobC, "mine__echo", map[string]any{"text": "x"}); err == nil {
		t.Fatal("bob called alice's private tool")
	}
	// and the shared scope never offers startup:false or OAuth servers, owners may
	for _, p := range []string{"lazy__", "oauthy__"} {
		if hasPrefix(shared, p) {
			t.Fatalf("shared scope offers %s: %v", p, shared)
		}
	}
	if hasPrefix(alice, "lazy__") || !hasPrefix(shared, "clock__") {
		t.Fatalf("alice %v shared %v (an on-demand server is offered only once her connect inspected it)", alice, shared)
	}
	// and once alice connected the startup:false server, her /mcp offers its tools
	if _, err := e.mgr.Repo("alice").Get(ctx, "lazy"); err != nil {
		t.Fatalf("alice connect lazy: %v", err)
	}
	waitFor(t, 10*time.Second, "alice's catalogue of lazy", func() bool {
		return hasPrefix(toolNames(t, goClient(t, e.URL(), aliceToken, "")), "lazy__")
	})

	// when the admin acts for alice with ?owner=alice
	asAlice := goClient(t, e.URL()+"?owner=alice", adminToken, "")
	if n := toolNames(t, asAlice); !hasPrefix(n, "mine__") {
		t.Fatalf("admin for alice: %v", n)
	}
	if res, err := callTool(ctx, asAlice, "mine__echo", map[string]any{"text": "by admin"}); err != nil || text(res) != "by admin" {
		t.Fatalf("admin call for alice: %+v %v", res, err)
	}
	// then the connect is alice's repository's, recorded as made by the admin
	evs, err := e.st.ReadStream(ctx, domain.ConnStream("alice", "mine"), 1, 10)
	if err != nil || len(evs) == 0 || evs[0].Type != events.TypeConnectionOpened || evs[0].Actor != "admin" {
		t.Fatalf("alice/mine stream: %+v %v", evs, err)
	}
	// and a malformed ?owner= is a bad request
	res := rawPost(t, e.URL()+"?owner=Not%20An%20Owner", adminToken, `{"jsonrpc":"2.0","id":1,"method":"ping"}`, nil)
	if res.StatusCode != 400 {
		t.Fatalf("bad owner: status %d", res.StatusCode)
	}
}

func TestProgressTimeoutAndCancellation(t *testing.T) {
	// given the clock with a 1.5 s per-request timeout
	e := newEnv(t)
	clock := startClock(t, "127.0.0.1:0")
	cfg := httpCfg(clock.URL)
	cfg.TimeoutMS = 1500
	e.put(domain.AppScope, "clock", cfg)
	for _, era := range eras {
		t.Run(era.name, func(t *testing.T) {
			c := goClient(t, e.URL(), aliceToken, era.pin)
			var progress atomic.Int32
			c.OnNotification(func(n mcp.JSONRPCNotification) {
				if n.Method == string(mcp.MethodNotificationProgress) {
					progress.Add(1)
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			// when a call asks for progress, the upstream's notifications come through
			var req mcp.CallToolRequest
			req.Params.Name, req.Params.Arguments = "clock__sleep", map[string]any{"ms": 200}
			req.Params.Meta = &mcp.Meta{ProgressToken: "p-1"}
			res, err := c.CallTool(ctx, req)
			if err != nil || res.IsError {
				t.Fatalf("sleep: %+v %v", res, err)
			}
			waitFor(t, 5*time.Second, "progress notifications", func() bool { return progress.Load() >= 5 })
			// when a call outlives the server's timeout, it fails after the timeout
			start := time.Now()
			_, err = callTool(ctx, c, "clock__sleep", map[string]any{"ms": 10000})
			if err == nil || time.Since(start) > 5*time.Second || !strings.Contains(err.Error(), "timeout") {
				t.Fatalf("timeout: after %v: %v", time.Since(start), err)
			}
			// when the client cancels, the call ends at once
			cctx, ccancel := context.WithTimeout(ctx, 200*time.Millisecond)
			start = time.Now()
			_, err = callTool(cctx, c, "clock__sleep", map[string]any{"ms": 1000})
			ccancel()
			if err == nil || time.Since(start) > 900*time.Millisecond {
				t.Fatalf("cancel: after %v: %v", time.Since(start), err)
			}
		})
	}
}

func TestAudit_ToolCalledEvents(t *testing.T) {
	for _, level := range []string{gateway.AuditOff, gateway.AuditMetadata, gateway.AuditFull} {
		t.Run(level, func(t *testing.T) {
			// given a gateway auditing tool calls at level
			e := newEnv(t, func(d *gateway.Deps) { d.AuditToolCalls = level })
			clock := startClock(t, "127.0.0.1:0")
			e.put(domain.AppScope, "clock", httpCfg(clock.URL))
			c := goClient(t, e.URL(), aliceToken, "")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			// when alice calls echo (ok) and now with a bad zone (tool error)
			if _, err := callTool(ctx, c, "clock__echo", map[string]any{"text": "secret words"}); err != nil {
				t.Fatal(err)
			}
			if _, err := callTool(ctx, c, "clock__now", map[string]any{"zone": "Bad/Zone"}); err != nil {
				t.Fatal(err)
			}
			// then tool.called events say so, with a digest and arguments only at full
			var got []domain.ToolCalled
			var raw []string
			all, err := e.st.ReadAll(ctx, 1, 100000)
			if err != nil {
				t.Fatal(err)
			}
			for _, env := range all {
				if !strings.Contains(env.Type, "tool.called") {
					continue
				}
				var f domain.ToolCalled
				if err := json.Unmarshal(env.Data, &f); err != nil {
					t.Fatal(err)
				}
				got = append(got, f)
				raw = append(raw, string(env.Data))
			}
			if level == gateway.AuditOff {
				if len(got) != 0 {
					t.Fatalf("audit off recorded %v", raw)
				}
				return
			}
			if len(got) != 2 {
				t.Fatalf("want 2 tool.called, got %v", raw)
			}
			wantDigest, _ := gateway.ArgsDigest(map[string]any{"text": "secret words"})
			if got[0].Owner != "alice" || got[0].Server != "clock" || got[0].Tool != "echo" ||
				got[0].Outcome != gateway.OutcomeOK || got[0].ArgsDigest != wantDigest {
				t.Fatalf("echo event: %+v", got[0])
			}
			if got[1].Outcome != gateway.OutcomeToolError {
				t.Fatalf("now event: %+v", got[1])
			}
			leaked := strings.Contains(raw[0], "secret words")
			if leaked != (level == gateway.AuditFull) {
				t.Fatalf("arguments recorded=%v at level %s: %s", leaked, level, raw[0])
			}
			// and tool.called on the connection stream does not disturb the replay
			checkAuditTrail(t, e, []string{events.TypeConnectionOpened, events.TypeToolCalled})
		})
	}
}

func TestNames_RoundTrip(t *testing.T) {
	s, n, ok := gateway.SplitName(gateway.ToolName("clock", "get__thing"))
	if !ok || s != "clock" || n != "get__thing" {
		t.Fatalf("split: %q %q %v", s, n, ok)
	}
	for _, bad := range []string{"noseparator", "__x", "x__"} {
		if _, _, ok := gateway.SplitName(bad); ok {
			t.Fatalf("%q split", bad)
		}
	}
	s, u, ok := gateway.SplitResourceURI(gateway.ResourceURI("clock", "clock://zones"))
	if !ok || s != "clock" || u != "clock://zones" {
		t.Fatalf("split uri: %q %q %v", s, u, ok)
	}
	got := []string{}
	for _, bad := range []string{"clock://zones", "mcpes://clock", "mcpes:///x"} {
		if _, _, ok := gateway.SplitResourceURI(bad); ok {
			got = append(got, bad)
		}
	}
	if !slices.Equal(got, []string{}) {
		t.Fatalf("split accepted %v", got)
	}
}
