// Command clock is a small example MCP server that needs no network: tools now, echo,
// add and sleep, the prompt time-in and the resource clock://zones.
//
//	clock                         # stdio (stdout carries only the protocol)
//	clock -http 127.0.0.1:8080    # streamable HTTP on /mcp
//	clock -sse 127.0.0.1:8081     # legacy SSE on /sse and /message
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
	flag.Parse()
	if err := run(*httpAddr, *sseAddr); err != nil {
		fmt.Fprintln(os.Stderr, "clock:", err)
		os.Exit(1)
	}
}

func run(httpAddr, sseAddr string) error {
	s := clockserver.New()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch {
	case httpAddr != "" && sseAddr != "":
		return errors.New("-http and -sse are exclusive")
	case httpAddr != "":
		mux := http.NewServeMux()
		mux.Handle("/mcp", server.NewStreamableHTTPServer(s))
		return serveHTTP(ctx, httpAddr, "/mcp", mux)
	case sseAddr != "":
		return serveHTTP(ctx, sseAddr, "/sse", server.NewSSEServer(s))
	}
	stdio := server.NewStdioServer(s)
	stdio.SetErrorLogger(slog.NewLogLogger(slog.NewTextHandler(os.Stderr, nil), slog.LevelError))
	return stdio.Listen(ctx, os.Stdin, os.Stdout)
}

func serveHTTP(ctx context.Context, addr, path string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("listening on http://%s%s\n", ln.Addr(), path)
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
