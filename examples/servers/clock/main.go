// Command clock is a small example MCP server that needs no network: tools now, echo,
// add and sleep, the prompt time-in and the resource clock://zones.
//
//	clock                         # stdio (stdout carries only the protocol)
//	clock -http 127.0.0.1:8080    # streamable HTTP on /mcp
//	clock -sse 127.0.0.1:8081     # legacy SSE on /sse and /message
//	clock -ws 127.0.0.1:8082      # WebSocket (subprotocol mcp) on /ws
//
// In the HTTP modes it prints "listening on URL" on stdout once it accepts
// connections; port 0 picks a free port.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpes/mcpes/examples/servers/clock/clockserver"
)

func main() {
	httpAddr := flag.String("http", "", "serve streamable HTTP on this address (path /mcp)")
	sseAddr := flag.String("sse", "", "serve legacy SSE on this address (paths /sse and /message)")
	wsAddr := flag.String("ws", "", "serve WebSocket (subprotocol mcp) on this address (path /ws)")
	flag.Parse()
	if err := run(*httpAddr, *sseAddr, *wsAddr); err != nil {
		fmt.Fprintln(os.Stderr, "clock:", err)
		os.Exit(1)
	}
}

func run(httpAddr, sseAddr, wsAddr string) error {
	s := clockserver.New()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch {
	case httpAddr != "" && sseAddr != "", wsAddr != "" && (httpAddr != "" || sseAddr != ""):
		return errors.New("-http, -sse and -ws are exclusive")
	case wsAddr != "":
		mux := http.NewServeMux()
		mux.Handle("/ws", clockserver.WebSocketHandler(s))
		return serveHTTP(ctx, wsAddr, "ws", "/ws", mux)
	case httpAddr != "":
		mux := http.NewServeMux()
		mux.Handle("/mcp", server.NewStreamableHTTPServer(s))
		return serveHTTP(ctx, httpAddr, "http", "/mcp", mux)
	case sseAddr != "":
		return serveHTTP(ctx, sseAddr, "http", "/sse", server.NewSSEServer(s))
	}
	stdio := server.NewStdioServer(s)
	stdio.SetErrorLogger(slog.NewLogLogger(slog.NewTextHandler(os.Stderr, nil), slog.LevelError))
	return stdio.Listen(ctx, os.Stdin, os.Stdout)
}

func serveHTTP(ctx context.Context, addr, scheme, path string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("listening on %s://%s%s\n", scheme, ln.Addr(), path)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
