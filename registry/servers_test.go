package registry_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// mcpServer is an in-process mcp-go server served over streamable HTTP on loopback.
// It counts the tools/list requests it answers: each inspection lists tools once, so
// the count is the number of inspections that reached it.
type mcpServer struct {
	MCP        *server.MCPServer
	URL        string // .../mcp
	toolLists  atomic.Int64
	handshakes atomic.Int64
}

// Handshakes returns how many connections opened a session (server/discover or
// initialize) with this server.
func (m *mcpServer) Handshakes() int64 { return m.handshakes.Load() }

// Inspections returns how many inspections listed this server's tools.
func (m *mcpServer) Inspections() int64 { return m.toolLists.Load() }

func echoTool(name string) (mcp.Tool, server.ToolHandlerFunc) {
	return mcp.NewTool(name, mcp.WithDescription("echoes "+name), mcp.WithString("text", mcp.Required())),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(name), nil
		}
}

func newMCP(tools ...string) *server.MCPServer {
	s := server.NewMCPServer("fixture", "1.0.0", server.WithToolCapabilities(true))
	for _, t := range tools {
		s.AddTool(echoTool(t))
	}
	return s
}

// handler wraps the streamable-HTTP handler of s with the tools/list counter.
func (m *mcpServer) handler() http.Handler {
	h := server.NewStreamableHTTPServer(m.MCP)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Method == http.MethodPost {
			b, _ := io.ReadAll(r.Body)
			if bytes.Contains(b, []byte(`"tools/list"`)) {
				m.toolLists.Add(1)
			}
			if bytes.Contains(b, []byte(`"server/discover"`)) || bytes.Contains(b, []byte(`"method":"initialize"`)) {
				m.handshakes.Add(1)
			}
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		h.ServeHTTP(w, r)
	})
}

// startMCP serves a server with the given tools on a fresh loopback port.
func startMCP(tb testing.TB, tools ...string) *mcpServer {
	tb.Helper()
	m := &mcpServer{MCP: newMCP(tools...)}
	ts := httptest.NewServer(m.handler())
	tb.Cleanup(ts.Close)
	m.URL = ts.URL + "/mcp"
	return m
}

// startMCPOn serves a server on addr (a port that was dead until now).
func startMCPOn(tb testing.TB, addr string, tools ...string) *mcpServer {
	tb.Helper()
	m := &mcpServer{MCP: newMCP(tools...), URL: "http://" + addr + "/mcp"}
	var ln net.Listener
	var err error
	for range 50 { // the port was released by deadAddr; retry briefly if it lingers
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		tb.Fatalf("listen %s: %v", addr, err)
	}
	srv := &http.Server{Handler: m.handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return m
}

// deadAddr returns a loopback address with nothing listening on it.
func deadAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// startUnauthorized serves 401 with an OAuth protected-resource challenge to every
// request, as an OAuth-protected MCP server does to a client without a token.
func startUnauthorized(tb testing.TB) string {
	tb.Helper()
	var ts *httptest.Server
	ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate",
			`Bearer resource_metadata="`+ts.URL+`/.well-known/oauth-protected-resource"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	tb.Cleanup(ts.Close)
	return ts.URL + "/mcp"
}

// startHanging serves a handler that accepts every request and never answers until
// the client gives up. It reports how many requests are still being held.
func startHanging(tb testing.TB) (url string, open *atomic.Int64) {
	tb.Helper()
	open = new(atomic.Int64)
	stop := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		open.Add(1)
		defer open.Add(-1)
		// net/http notices a client going away only once the body has been read.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	tb.Cleanup(func() { close(stop); ts.Close() })
	return ts.URL + "/mcp", open
}

var clockBuild struct {
	once sync.Once
	path string
	err  error
}

// clockBinary builds the example clock server once per test binary.
func clockBinary(tb testing.TB) string {
	tb.Helper()
	clockBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "mcpes-clock-")
		if err != nil {
			clockBuild.err = err
			return
		}
		clockBuild.path = filepath.Join(dir, "clock")
		out, err := exec.Command("go", "build", "-o", clockBuild.path,
			"github.com/mcpes/mcpes/examples/servers/clock").CombinedOutput()
		if err != nil {
			clockBuild.err = &buildError{out: string(out), err: err}
		}
	})
	if clockBuild.err != nil {
		tb.Fatalf("build clock: %v", clockBuild.err)
	}
	return clockBuild.path
}

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

// startClockHTTP runs the example clock server as a subprocess over streamable HTTP
// and returns its URL.
func startClockHTTP(tb testing.TB) string {
	tb.Helper()
	cmd := exec.Command(clockBinary(tb), "-http", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		tb.Fatalf("clock server: %v", err)
	}
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok {
		tb.Fatalf("clock server said %q", line)
	}
	return url
}

func mustJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// TestMain removes the clock binary built for the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if clockBuild.path != "" {
		_ = os.RemoveAll(filepath.Dir(clockBuild.path))
	}
	os.Exit(code)
}
