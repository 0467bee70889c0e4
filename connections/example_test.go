package connections_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpes/mcpes/connections"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/examples/servers/clock/clockserver"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/registry"
	"github.com/mcpes/mcpes/store/bolt"
	"github.com/mcpes/mcpes/upstream"
)

// The packages work without the HTTP service: open a store, build the projection,
// register a server, make an owner's repository, Get a connection and call a tool.
// Every step is recorded in the log.
func Example() {
	ctx := context.Background()
	// An MCP server to talk to: the example clock server over streamable HTTP.
	upstreamServer := httptest.NewServer(server.NewStreamableHTTPServer(clockserver.New()))
	defer upstreamServer.Close()

	dir, _ := os.MkdirTemp("", "mcpes-example")
	defer os.RemoveAll(dir)
	st, err := bolt.Open(filepath.Join(dir, "mcpes.db"), bolt.Options{})
	if err != nil {
		panic(err)
	}
	defer st.Close()
	servers, err := projections.Load(ctx, st, projections.Options{})
	if err != nil {
		panic(err)
	}

	// Register the server in the app scope; it is inspected before Put returns.
	reg, err := registry.New(st, servers, &upstream.Guard{}, registry.Options{InspectOnPut: registry.InspectSync})
	if err != nil {
		panic(err)
	}
	defer reg.Close()
	cfg := domain.ServerConfig{Type: domain.TransportStreamableHTTP, URL: upstreamServer.URL + "/mcp"}
	if _, err := reg.Put(ctx, "admin", domain.AppScope, "clock", cfg); err != nil {
		panic(err)
	}

	// alice's repository connects it (the decision is appended first) and calls a tool.
	manager := connections.NewManager(st, servers, connections.Options{})
	defer manager.Close(ctx)
	conn, err := manager.Repo("alice").Get(ctx, "clock")
	if err != nil {
		panic(err)
	}
	res, err := conn.Upstream().CallTool(ctx, "echo", map[string]any{"text": "hello"}, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(mcp.GetTextFromContent(res.Content[0]))
	state, _ := servers.State(domain.AppScope, "clock")
	fmt.Println("tools:", len(state.LastSuccess.Tools))
	// Output:
	// hello
	// tools: 4
}
