package connections

import (
	"bufio"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/mcpes/mcpes/domain"
)

// clockWS starts the clock example server in WebSocket mode on addr and returns
// its ws:// URL and process.
func clockWS(tb testing.TB, addr string) (string, *exec.Cmd) {
	tb.Helper()
	cmd := exec.Command(clockBinary(tb), "-ws", addr)
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
	u, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if err != nil || !ok {
		tb.Fatalf("clock -ws: %q %v", line, err)
	}
	return u, cmd
}

func TestRepository_WebsocketUpstream_CalledKilledReconnected(t *testing.T) {
	// given a WebSocket MCP server registered as LibreChat writes it (ws:// url, no type)
	u, cmd := clockWS(t, "127.0.0.1:0")
	e := newEnv(t, nil)
	e.put(domain.AppScope, "clock ws", domain.ServerConfig{URL: u, InitTimeoutMS: 10000})
	repo := e.m.Repo("")

	// when connected through the repository, then a tool call works
	c, err := repo.Get(ctxT(t), "clock ws")
	if err != nil {
		t.Fatal(err)
	}
	echo(t, c, "over websocket")

	// when the server process is killed, then the loss is recorded without a request
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "connection.lost", func() bool { return len(e.facts("", "clock ws")) == 2 })
	wantKinds(t, e, "", "clock ws", "opened", "lost")

	// when the server is back on its address, then the next Get reconnects
	clockWS(t, strings.TrimSuffix(strings.TrimPrefix(u, "ws://"), "/ws"))
	c2, err := repo.Get(ctxT(t), "clock ws")
	if err != nil {
		t.Fatal(err)
	}
	echo(t, c2, "after restart")
	wantKinds(t, e, "", "clock ws", "opened", "lost", "evicted/dead", "opened")
}
