package upstream

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/examples/servers/clock/clockserver"
)

// Paths of the binaries TestMain builds.
var clockBin, badBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "upstream-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	clockBin, badBin = filepath.Join(dir, "clock"), filepath.Join(dir, "badserver")
	for pkg, out := range map[string]string{
		"github.com/mcpes/mcpes/examples/servers/clock": clockBin,
		"./testdata/badserver":                          badBin,
	} {
		if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, b)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func testLogger(tb testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func appOpts(tb testing.TB) Options {
	return Options{Scope: domain.AppScope, Logger: testLogger(tb), ClientName: "upstream-test", ClientVersion: "0"}
}

func ctxT(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

// dialT dials or fails tb, and closes the connection at cleanup.
func dialT(tb testing.TB, name string, cfg domain.ServerConfig, opts Options) *Conn {
	tb.Helper()
	c, err := Dial(ctxT(tb, 30*time.Second), name, cfg, opts)
	if err != nil {
		tb.Fatalf("Dial %s: %v (class %s)", name, err, Classify(err))
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// inProcessHTTP serves a fresh clock server over streamable HTTP from this process.
func inProcessHTTP(tb testing.TB, opts ...server.StreamableHTTPOption) (*httptest.Server, *server.MCPServer) {
	s := clockserver.New()
	ts := httptest.NewServer(server.NewStreamableHTTPServer(s, opts...))
	tb.Cleanup(ts.Close)
	return ts, s
}

// clockProcess starts the clock binary in mode "-http" or "-sse" on a free port
// and returns its URL and process (killed at cleanup).
func clockProcess(tb testing.TB, flag string) (string, *exec.Cmd) {
	tb.Helper()
	cmd := exec.Command(clockBin, flag, "127.0.0.1:0")
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
		tb.Fatalf("clock %s: %v", flag, err)
	}
	u, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok {
		tb.Fatalf("clock %s printed %q", flag, line)
	}
	return u, cmd
}

// waitDone waits for c.Done to close, or fails tb.
func waitDone(tb testing.TB, c *Conn, within time.Duration) {
	tb.Helper()
	select {
	case <-c.Done():
	case <-time.After(within):
		tb.Fatalf("Done not closed within %s", within)
	}
}

// processGone reports whether pid no longer exists (reaped, not a zombie).
func processGone(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == syscall.ESRCH
}

// waitGoroutines waits until the goroutine count is back to at most base, or
// fails tb with a dump.
func waitGoroutines(tb testing.TB, base int, within time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			tb.Fatalf("goroutines: %d, baseline %d\n%s", n, base, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func stdioCfg(bin string, args ...string) domain.ServerConfig {
	return domain.ServerConfig{Command: bin, Args: args, InitTimeoutMS: 10000}
}

type ctxAlias = context.Context

func runtimeGoroutines() int { return runtime.NumGoroutine() }
