package upstream

import (
	"bufio"
	"errors"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpes/mcpes/domain"
)

// clockWS starts the example clock server in WebSocket mode on addr
// ("127.0.0.1:0" for any port) and returns its URL and process.
func clockWS(tb testing.TB, addr string) (string, *exec.Cmd) {
	tb.Helper()
	cmd := exec.Command(clockBin, "-ws", addr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	tb.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		tb.Fatalf("clock -ws: %v", err)
	}
	u, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok {
		tb.Fatalf("clock -ws printed %q", line)
	}
	return u, cmd
}

func TestWebsocket_InspectCallKillReconnect(t *testing.T) {
	// given a real WebSocket MCP server process, configured as LibreChat infers it
	// (a ws:// url and no type)
	u, cmd := clockWS(t, "127.0.0.1:0")
	cfg := domain.ServerConfig{URL: u, InitTimeoutMS: 10000}
	if cfg.TransportType() != domain.TransportWebsocket {
		t.Fatalf("transport %s", cfg.TransportType())
	}

	// when it is inspected, then its catalogue is read over the socket
	out := Inspect(ctxT(t, 20*time.Second), "clock-ws", cfg, appOpts(t))
	if !out.OK || len(out.Tools) == 0 {
		t.Fatalf("inspection: %+v", out)
	}

	// when connected and a tool is called, then it answers
	c := dialT(t, "clock-ws", cfg, appOpts(t))
	if c.Transport() != domain.TransportWebsocket {
		t.Fatalf("conn transport %s", c.Transport())
	}
	res, err := c.CallTool(ctxT(t, 10*time.Second), "echo", map[string]any{"text": "over ws"}, nil)
	if err != nil || res.IsError || !strings.Contains(textOf(res.Content), "over ws") {
		t.Fatalf("call: %v %+v", err, res)
	}

	// when the server process is killed, then the loss is noticed without a request
	addr := strings.TrimSuffix(strings.TrimPrefix(u, "ws://"), "/ws")
	_ = cmd.Process.Signal(syscall.SIGKILL)
	waitDone(t, c, 10*time.Second)
	if !errors.Is(c.Err(), ErrConnLost) {
		t.Fatalf("Err = %v, want ErrConnLost", c.Err())
	}
	if _, err := c.ListTools(ctxT(t, 5*time.Second)); !errors.Is(err, ErrConnLost) {
		t.Fatalf("call after loss: %v", err)
	}

	// when the server is back on the same address, then a new connection works
	clockWS(t, addr)
	again := dialT(t, "clock-ws", cfg, appOpts(t))
	if res, err := again.CallTool(ctxT(t, 10*time.Second), "echo", map[string]any{"text": "back"}, nil); err != nil || !strings.Contains(textOf(res.Content), "back") {
		t.Fatalf("call after reconnect: %v", err)
	}
}

func textOf(content []mcp.Content) string {
	if len(content) == 0 {
		return ""
	}
	return mcp.GetTextFromContent(content[0])
}

func TestWebsocket_FailuresClassified(t *testing.T) {
	noProto := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil) // no subprotocol
		if err == nil {
			c.CloseNow()
		}
	}))
	defer noProto.Close()
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"mcp"}})
		if err != nil {
			return
		}
		_, _, _ = c.Read(r.Context())
		_ = c.Write(r.Context(), websocket.MessageText, []byte("hello, not json"))
		time.Sleep(time.Second)
		c.CloseNow()
	}))
	defer garbage.Close()
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"mcp"}})
		if err != nil {
			return
		}
		<-r.Context().Done()
		c.CloseNow()
	}))
	defer silent.Close()
	denied := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer denied.Close()
	ws := func(s *httptest.Server) string { return "ws" + strings.TrimPrefix(s.URL, "http") + "/ws" }

	for _, tc := range []struct {
		name   string
		cfg    domain.ServerConfig
		opts   Options
		class  domain.FailureClass
		substr string
	}{
		{"no subprotocol", domain.ServerConfig{URL: ws(noProto)}, appOpts(t), domain.FailureProtocol, "subprotocol"},
		{"garbage frame", domain.ServerConfig{URL: ws(garbage)}, appOpts(t), domain.FailureProtocol, "not JSON"},
		{"silent", domain.ServerConfig{URL: ws(silent), InitTimeoutMS: 700}, appOpts(t), domain.FailureTimeout, "timed out"},
		{"401", domain.ServerConfig{URL: ws(denied)}, appOpts(t), domain.FailureAuth, "401"},
		{"user scope loopback", domain.ServerConfig{URL: ws(silent)}, Options{Scope: domain.UserScope("alice"), Logger: testLogger(t)}, domain.FailureRefused, "loopback"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := runtimeGoroutines()
			start := time.Now()
			_, err := Dial(ctxT(t, 10*time.Second), tc.name, tc.cfg, tc.opts)
			if Classify(err) != tc.class || !strings.Contains(err.Error(), tc.substr) {
				t.Fatalf("err = %v (class %s), want %s containing %q", err, Classify(err), tc.class, tc.substr)
			}
			if time.Since(start) > 5*time.Second {
				t.Errorf("took %s", time.Since(start))
			}
			waitGoroutines(t, base+2, 5*time.Second) // httptest handlers may still be finishing
		})
	}
}
