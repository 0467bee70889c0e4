// Command bigserver is an MCP server (mcp-go) whose answers can be as large as a
// test asks, for the upstream message-limit tests.
//
//	bigserver                      # stdio
//	bigserver -http 127.0.0.1:0    # streamable HTTP on /mcp
//	bigserver -sse 127.0.0.1:0     # legacy SSE on /sse and /message
//	bigserver -tooldesc N          # also a tool whose description is N bytes
//
// Tool "big" {bytes, notify} answers with a text of that many bytes; with notify
// it first sends a log notification, which makes streamable HTTP answer as an
// event stream. In the HTTP modes it prints "listening on URL" once it accepts
// connections.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

func main() {
	httpAddr := flag.String("http", "", "serve streamable HTTP on this address")
	sseAddr := flag.String("sse", "", "serve legacy SSE on this address")
	toolDesc := flag.Int("tooldesc", 0, "add a tool whose description is this many bytes")
	flag.Parse()
	s := server.NewMCPServer("bigserver", "0", server.WithToolCapabilities(false), server.WithLogging())
	s.AddTool(mcp.NewTool("big", mcp.WithNumber("bytes", mcp.Required()), mcp.WithBoolean("notify")),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			n := req.GetInt("bytes", 0)
			if req.GetBool("notify", false) {
				_ = server.ServerFromContext(ctx).SendNotificationToClient(ctx, "notifications/message",
					map[string]any{"level": "info", "data": "here it comes"})
			}
			return mcp.NewToolResultText(strings.Repeat("x", n)), nil
		})
	if *toolDesc > 0 {
		s.AddTool(mcp.NewTool("described", mcp.WithDescription(strings.Repeat("d", *toolDesc))),
			func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return mcp.NewToolResultText("ok"), nil
			})
	}
	var err error
	switch {
	case *httpAddr != "":
		mux := http.NewServeMux()
		mux.Handle("/mcp", server.NewStreamableHTTPServer(s))
		err = serve(*httpAddr, "/mcp", mux)
	case *sseAddr != "":
		err = serve(*sseAddr, "/sse", server.NewSSEServer(s))
	default:
		err = server.NewStdioServer(s).Listen(context.Background(), os.Stdin, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bigserver:", err)
		os.Exit(1)
	}
}

func serve(addr, path string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Printf("listening on http://%s%s\n", ln.Addr(), path)
	return (&http.Server{Handler: h}).Serve(ln)
}
