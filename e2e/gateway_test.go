package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

func TestGateway_OwnerSeesPrefixedToolsAndCallsThrough(t *testing.T) {
	t.Parallel()
	// given the app clock and alice's private clock over HTTP
	clockURL, _ := startClockHTTP(t)
	svc := startService(t, serveOpts{config: writeConfig(t, baseConfig())})
	svc.waitReady()
	svc.mustCall(201, "PUT", "/v1/servers/mine", aliceToken, []byte(`{"type":"streamable-http","url":"`+clockURL+`"}`))
	waitInspected(t, svc, "mine", aliceToken)

	// when alice uses /mcp with her token
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _ := mcpClient(ctx, t, svc.url+"/mcp", aliceToken, "")
	// then she sees both servers' tools, prefixed, and a call goes through her repository
	var names []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		tools, err := c.ListTools(ctx, mcp.ListToolsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		names = names[:0]
		for _, tl := range tools.Tools {
			names = append(names, tl.Name)
		}
		if slices.Contains(names, "clock__echo") && slices.Contains(names, "mine__echo") || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !slices.Contains(names, "clock__echo") || !slices.Contains(names, "mine__echo") {
		t.Fatalf("tools = %v", names)
	}
	var call mcp.CallToolRequest
	call.Params.Name, call.Params.Arguments = "mine__echo", map[string]any{"text": "hello through mcpes"}
	res, err := c.CallTool(ctx, call)
	if err != nil {
		t.Fatal(err)
	}
	if res.IsError || len(res.Content) == 0 || !strings.Contains(mcp.GetTextFromContent(res.Content[0]), "hello through mcpes") {
		t.Fatalf("call result = %+v", res)
	}
	if b := svc.mustCall(200, "GET", "/v1/events?limit=10000", aliceToken, nil); !strings.Contains(string(b), `"subject":"conn/alice/mine"`) ||
		!strings.Contains(string(b), "mcpes.connection.opened.v1") {
		t.Errorf("the gateway's connect was not recorded in alice's stream")
	}
	// and the metrics count it
	status, metrics := svc.call("GET", "/metrics", adminToken, nil)
	for _, want := range []string{`mcpes_decisions_total{kind="opened",rule=""}`, `mcpes_connections{state="alive"}`,
		"mcpes_store_append_seconds_count", "mcpes_store_events_per_commit", "mcpes_relay_lag_events",
		`mcpes_inspections_total{class="",result="ok"}`, "mcpes_connection_reuses_total"} {
		if status != 200 || !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics (%d) lacks %s", status, want)
		}
	}
	// and bob does not see alice's server
	cb, _ := mcpClient(ctx, t, svc.url+"/mcp", bobToken, "")
	tools, err := cb.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range tools.Tools {
		if strings.HasPrefix(tl.Name, "mine__") {
			t.Errorf("bob sees %s", tl.Name)
		}
	}
}

func TestGateway_PerServerEndpointMirrorsTheUpstream(t *testing.T) {
	t.Parallel()
	// given alice's private clock over HTTP
	clockURL, _ := startClockHTTP(t)
	svc := startService(t, serveOpts{config: writeConfig(t, baseConfig())})
	svc.waitReady()
	svc.mustCall(201, "PUT", "/v1/servers/mine", aliceToken, []byte(`{"type":"streamable-http","url":"`+clockURL+`"}`))
	waitInspected(t, svc, "mine", aliceToken)

	// when alice uses /mcp/mine as a 2025-11-25 client
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, init := mcpClient(ctx, t, svc.url+"/mcp/mine", aliceToken, mcp.LATEST_LEGACY_PROTOCOL_VERSION)
	// then it is the clock as if direct: its own server info, instructions and
	// unprefixed tool names, and a call goes through her repository
	if init.ServerInfo.Name != "clock" || init.Instructions == "" {
		t.Errorf("initialize = %+v, want the clock's own server info and instructions", init)
	}
	tools, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	if !slices.Contains(names, "echo") {
		t.Fatalf("tools = %v", names)
	}
	var call mcp.CallToolRequest
	call.Params.Name, call.Params.Arguments = "echo", map[string]any{"text": "hello direct"}
	res, err := c.CallTool(ctx, call)
	if err != nil || res.IsError || mcp.GetTextFromContent(res.Content[0]) != "hello direct" {
		t.Fatalf("call = %+v, %v", res, err)
	}
	// and the connect decision names the MCP session and request it was made for
	sid := c.GetSessionId()
	if b := svc.mustCall(200, "GET", "/v1/events?limit=10000", aliceToken, nil); sid == "" ||
		!strings.Contains(string(b), `"correlationid":"`+sid+`/`) {
		t.Errorf("no event of alice's carries the session %q as its correlation id", sid)
	}
}

// mcpClient connects an mcp-go client to url with token's bearer and initializes it
// (at protocol when not empty); it is closed when the test ends.
func mcpClient(ctx context.Context, tb testing.TB, url, token, protocol string) (*client.Client, *mcp.InitializeResult) {
	tb.Helper()
	c, err := client.NewStreamableHttpClient(url, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token}))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	if err := c.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	var in mcp.InitializeRequest
	in.Params.ClientInfo = mcp.Implementation{Name: "e2e", Version: "0"}
	in.Params.ProtocolVersion = protocol
	init, err := c.Initialize(ctx, in)
	if err != nil {
		tb.Fatal(err)
	}
	return c, init
}
