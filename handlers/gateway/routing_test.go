package gateway_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/handlers/gateway"
)

// probeServer is an upstream whose tools report what the gateway did: "block" waits
// until its context ends and says so on cancelled; "fail" answers a protocol error.
type probeServer struct {
	URL       string
	started   chan struct{}
	cancelled chan struct{}
}

func newProbe(tb testing.TB) *probeServer {
	tb.Helper()
	p := &probeServer{started: make(chan struct{}, 8), cancelled: make(chan struct{}, 8)}
	s := server.NewMCPServer("probe", "1", server.WithToolCapabilities(true))
	s.AddTool(mcp.NewTool("block", mcp.WithDescription("blocks until cancelled")),
		func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			p.started <- struct{}{}
			select {
			case <-ctx.Done():
				p.cancelled <- struct{}{}
				return nil, ctx.Err()
			case <-time.After(30 * time.Second):
				return mcp.NewToolResultText("not cancelled"), nil
			}
		})
	s.AddTool(mcp.NewTool("fail", mcp.WithDescription("protocol error")),
		func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return nil, errors.New("probe exploded on purpose")
		})
	ts := httptest.NewServer(server.NewStreamableHTTPServer(s))
	tb.Cleanup(func() {
		ts.CloseClientConnections()
		ts.Close()
	})
	p.URL = ts.URL + "/mcp"
	return p
}

func TestCancellationAndProtocolErrorsPassThrough(t *testing.T) {
	// given the probe upstream as an app server
	e := newEnv(t)
	probe := newProbe(t)
	e.put(domain.AppScope, "probe", httpCfg(probe.URL))
	for _, era := range eras {
		t.Run(era.name, func(t *testing.T) {
			c := goClient(t, e.URL(), aliceToken, era.pin)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			// when the upstream answers a protocol error, the client gets an error
			// carrying its message (not a result)
			res, err := callTool(ctx, c, "probe__fail", nil)
			if err == nil || !strings.Contains(err.Error(), "probe exploded on purpose") {
				t.Fatalf("protocol error: %+v %v", res, err)
			}
			// when the client gives up on a call the upstream is working on
			cctx, ccancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() {
				_, err := callTool(cctx, c, "probe__block", nil)
				done <- err
			}()
			select {
			case <-probe.started:
			case <-time.After(10 * time.Second):
				t.Fatal("upstream never got the call")
			}
			ccancel()
			// then the upstream's request context is cancelled too
			select {
			case <-probe.cancelled:
			case <-time.After(10 * time.Second):
				t.Fatal("the upstream call was not cancelled")
			}
			if err := <-done; err == nil {
				t.Fatal("cancelled call returned no error")
			}
		})
	}
}

func TestSharedScope_NeverOffersFailedOrUserVarServers(t *testing.T) {
	// given an app server on a dead port (its inspection fails) and one needing
	// per-user variables, next to a working clock
	e := newEnv(t)
	clock := startClock(t, "127.0.0.1:0")
	e.put(domain.AppScope, "clock", httpCfg(clock.URL))
	dead := httpCfg("http://127.0.0.1:1/mcp")
	dead.InitTimeoutMS = 1000
	e.put(domain.AppScope, "dead", dead)
	vars := httpCfg(clock.URL)
	vars.CustomUserVars = map[string]domain.CustomUserVar{"KEY": {Title: "key"}}
	e.put(domain.AppScope, "uservars", vars)

	// when the shared scope (admin) and an owner list tools
	shared := toolNames(t, goClient(t, e.URL(), adminToken, ""))
	alice := toolNames(t, goClient(t, e.URL(), aliceToken, ""))

	// then nobody gets the failed server; nobody gets the user-vars one before an
	// owner's own connect inspected it (it is on demand), the shared scope never
	if hasPrefix(shared, "dead__") || hasPrefix(alice, "dead__") || hasPrefix(shared, "uservars__") || hasPrefix(alice, "uservars__") {
		t.Fatalf("shared %v alice %v", shared, alice)
	}
	if !hasPrefix(shared, "clock__") || !hasPrefix(alice, "clock__") {
		t.Fatalf("shared %v alice %v", shared, alice)
	}

	// when alice sets her value and connects (her connect inspects it with her value)
	if r := e.api(t, "PUT", "/v1/servers/uservars/vars", aliceToken, `{"KEY":"k-alice"}`); r != 200 {
		t.Fatalf("set vars: %d", r)
	}
	if _, err := e.mgr.Repo("alice").Get(context.Background(), "uservars"); err != nil {
		t.Fatalf("alice connect: %v", err)
	}
	// then her /mcp offers its tools, and still nobody else's
	waitFor(t, 10*time.Second, "alice's catalogue of uservars", func() bool {
		return hasPrefix(toolNames(t, goClient(t, e.URL(), aliceToken, "")), "uservars__")
	})
	if bob := toolNames(t, goClient(t, e.URL(), bobToken, "")); hasPrefix(bob, "uservars__") {
		t.Fatalf("bob %v", bob)
	}
}

func TestProtections_OriginHostBodyAndToken(t *testing.T) {
	// given the gateway behind the API's request-origin policy (its allow-lists are
	// tested with the API's), with a small body limit
	e := newEnv(t, func(d *gateway.Deps) { d.MaxBodyBytes = 4096 })
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",` +
		`"capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}`
	cases := []struct {
		name   string
		token  string
		body   string
		hdr    map[string]string
		status int
	}{
		{"no token", "", init, nil, http.StatusUnauthorized},
		{"plain", aliceToken, init, nil, http.StatusOK},
		{"another loopback origin", aliceToken, init, map[string]string{"Origin": "http://localhost:5173"}, http.StatusForbidden},
		{"foreign origin", aliceToken, init, map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"rebinding host", aliceToken, init, map[string]string{"Host": "evil.example"}, http.StatusForbidden},
		{"body too large", aliceToken, strings.Repeat(" ", 5000) + init, nil, http.StatusRequestEntityTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// when the request is sent
			res := rawPost(t, e.URL(), tc.token, tc.body, tc.hdr)
			// then it gets the expected status
			if res.StatusCode != tc.status {
				b, _ := io.ReadAll(res.Body)
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.status, b)
			}
		})
	}
}

func TestClosedGatewayAnswers503(t *testing.T) {
	// given a closed gateway
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.gw.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// when a client posts, then it gets 503
	res := rawPost(t, e.URL(), aliceToken, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, nil)
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d", res.StatusCode)
	}
}

func TestAggregate_NamesLibreChatAcceptsGetValidToolNames(t *testing.T) {
	// given an app server whose name has a space (LibreChat accepts it; an MCP tool
	// name may not contain one)
	e := newEnv(t)
	clock := startClock(t, "127.0.0.1:0")
	e.put(domain.AppScope, "my clock", httpCfg(clock.URL))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// when the shared scope lists and calls its tools
	c := goClient(t, e.URL(), adminToken, "")
	name := gateway.ToolName("my clock", "echo")
	names := toolNames(t, c)

	// then the tool is offered under the server's mapped prefix, and the call reaches it
	if !has(names, name) || !strings.HasPrefix(name, domain.ToolPrefix("my clock")+"__") || strings.Contains(name, " ") {
		t.Fatalf("offered %v, want %s", names, name)
	}
	res, err := callTool(ctx, c, name, map[string]any{"text": "hi"})
	if err != nil || !strings.Contains(text(res), "hi") {
		t.Fatalf("call %s: %v %v", name, text(res), err)
	}
}
