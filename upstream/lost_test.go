package upstream

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/examples/servers/clock/clockserver"
)

func TestConn_Done_StdioChildKilled(t *testing.T) {
	// given a stdio connection to the clock server
	c := dialT(t, "clock", stdioCfg(clockBin), appOpts(t))
	pid := c.Pid()
	// when the child is killed behind our back
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// then Done closes without any request, Err says the process exited
	waitDone(t, c, 5*time.Second)
	if !errors.Is(c.Err(), ErrChildExited) || Classify(c.Err()) != domain.FailureUnreachable {
		t.Fatalf("Err = %v (class %s)", c.Err(), Classify(c.Err()))
	}
	// and calls fail with ErrConnLost
	if _, err := c.ListTools(ctxT(t, time.Second)); !errors.Is(err, ErrConnLost) {
		t.Fatalf("ListTools after loss: %v", err)
	}
	// and the child was reaped
	if !processGone(pid) {
		t.Fatalf("pid %d still exists", pid)
	}
	// and a fresh Dial works
	exercise(t, dialT(t, "clock", stdioCfg(clockBin), appOpts(t)))
}

func TestConn_Done_HTTPServerKilled(t *testing.T) {
	for _, tc := range []struct {
		name, flag, typ, pin string
	}{
		{"streamable-http-2026", "-http", "streamable-http", ""},
		{"streamable-http-legacy", "-http", "streamable-http", mcp.ProtocolVersion20251125},
		{"sse", "-sse", "sse", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// given a connection to a clock server process
			url, cmd := clockProcess(t, tc.flag)
			opts := appOpts(t)
			opts.ProtocolVersion = tc.pin
			opts.ProbeInterval = -1 // the stream alone must notice
			c := dialT(t, "clock", domain.ServerConfig{Type: tc.typ, URL: url}, opts)
			if _, err := c.ListTools(ctxT(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
			// when the server process dies
			_ = cmd.Process.Kill()
			// then Done closes without a request
			waitDone(t, c, 5*time.Second)
			t.Logf("Err: %v (class %s)", c.Err(), Classify(c.Err()))
			if c.Err() == nil || Classify(c.Err()) != domain.FailureUnreachable {
				t.Fatalf("Err = %v (class %s)", c.Err(), Classify(c.Err()))
			}
		})
	}
}

func TestConn_Done_ProbeWithoutStream(t *testing.T) {
	// given a legacy streamable-HTTP server that offers no GET stream (405)
	h := server.NewStreamableHTTPServer(clockserver.New())
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			http.Error(w, "no stream here", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	opts := appOpts(t)
	opts.ProtocolVersion = mcp.ProtocolVersion20251125
	opts.ProbeInterval = 50 * time.Millisecond
	c := dialT(t, "clock", domain.ServerConfig{Type: "http", URL: ts.URL}, opts)
	exercise(t, c)
	// when the server goes away
	ts.CloseClientConnections()
	ts.Close()
	// then the probe notices
	waitDone(t, c, 5*time.Second)
	if !strings.Contains(c.Err().Error(), "health of clock") {
		t.Errorf("Err does not come from the probe: %v", c.Err())
	}
	if Classify(c.Err()) != domain.FailureUnreachable {
		t.Fatalf("Err = %v (class %s)", c.Err(), Classify(c.Err()))
	}
}

func TestConn_OnToolsChanged(t *testing.T) {
	for _, tc := range []struct{ name, typ, pin string }{
		{"http-2026", "http", ""}, {"http-legacy", "http", mcp.ProtocolVersion20251125},
		{"sse-2026", "sse", ""}, {"sse-legacy", "sse", mcp.ProtocolVersion20251125},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// given a connection to an in-process server
			var ts *httptest.Server
			var s *server.MCPServer
			url := ""
			if tc.typ == "http" {
				ts, s = inProcessHTTP(t)
				url = ts.URL
			} else {
				s = clockserver.New()
				ts = httptest.NewServer(server.NewSSEServer(s))
				t.Cleanup(ts.Close)
				url = ts.URL + "/sse"
			}
			opts := appOpts(t)
			opts.ProtocolVersion = tc.pin
			c := dialT(t, "clock", domain.ServerConfig{Type: tc.typ, URL: url}, opts)
			changed := make(chan struct{}, 4)
			c.OnToolsChanged(func() { changed <- struct{}{} })
			// when the server adds a tool (after its stream is open)
			deadline := time.After(5 * time.Second)
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				s.AddTool(mcp.NewTool("extra"), func(ctx2 ctxAlias, r mcp.CallToolRequest) (*mcp.CallToolResult, error) {
					return mcp.NewToolResultText("x"), nil
				})
				select {
				case <-changed:
					// then the handler runs, and the new tool is listed
					tools, err := c.ListTools(ctxT(t, 5*time.Second))
					if err != nil || len(tools) != 5 {
						t.Fatalf("tools after change: %d, %v", len(tools), err)
					}
					return
				case <-tick.C:
				case <-deadline:
					t.Fatal("no tools/list_changed within 5s")
				}
			}
		})
	}
}

func TestDial_StdioCommandNotFound(t *testing.T) {
	_, err := Dial(ctxT(t, 5*time.Second), "nope", stdioCfg("/nonexistent/mcp-server"), appOpts(t))
	if Classify(err) != domain.FailureUnreachable {
		t.Fatalf("err = %v (class %s)", err, Classify(err))
	}
	if _, err := exec.LookPath("/nonexistent/mcp-server"); err == nil {
		t.Fatal("test binary exists")
	}
}

func TestConn_Close_LeavesNoGoroutines(t *testing.T) {
	ts, _ := inProcessHTTP(t)
	sse := httptest.NewServer(server.NewSSEServer(clockserver.New()))
	t.Cleanup(sse.Close)
	for _, tc := range []struct {
		name string
		cfg  domain.ServerConfig
		pin  string
	}{
		{"stdio", stdioCfg(clockBin), ""},
		{"http-2026", domain.ServerConfig{Type: "http", URL: ts.URL}, ""},
		{"http-legacy", domain.ServerConfig{Type: "http", URL: ts.URL}, mcp.ProtocolVersion20251125},
		{"sse", domain.ServerConfig{Type: "sse", URL: sse.URL + "/sse"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			appTransport.CloseIdleConnections()
			base := runtimeGoroutines()
			// given a used connection
			opts := appOpts(t)
			opts.ProtocolVersion = tc.pin
			c, err := Dial(ctxT(t, 10*time.Second), "clock", tc.cfg, opts)
			if err != nil {
				t.Fatal(err)
			}
			exercise(t, c)
			// when it is closed
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			// then none of its goroutines survive (idle keep-alive sockets aside)
			appTransport.CloseIdleConnections()
			waitGoroutines(t, base, 5*time.Second)
		})
	}
}
