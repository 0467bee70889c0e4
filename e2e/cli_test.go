package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestCLI_CommandsAgainstAService(t *testing.T) {
	t.Parallel()
	// given a running service with tokens
	clockURL, _ := startClockHTTP(t)
	svc := startService(t, serveOpts{config: writeConfig(t, baseConfig())})
	svc.waitReady()
	admin := []string{"MCPES_URL=" + svc.url, "MCPES_TOKEN=" + adminToken}
	alice := []string{"MCPES_URL=" + svc.url, "MCPES_TOKEN=" + aliceToken}
	dir := t.TempDir()
	notes := filepath.Join(dir, "notes.json")
	os.WriteFile(notes, []byte(`{"type":"streamable-http","url":"`+clockURL+`","title":"Notes"}`), 0o600)

	// a live follower of alice's events (SSE through the API)
	follow := exec.Command(mcpesBin(), "events", "--follow", "--subject", "conn/alice/")
	follow.Env = append(os.Environ(), alice...)
	out, _ := follow.StdoutPipe()
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var followed []string
	followDone := make(chan struct{})
	go func() {
		defer close(followDone)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			mu.Lock()
			followed = append(followed, sc.Text())
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { _ = follow.Process.Signal(syscall.SIGTERM); <-followDone; _ = follow.Wait() })

	step := func(env []string, want string, code int, args ...string) cliResult {
		t.Helper()
		res := runCLI(t, env, "", args...)
		if res.code != code || !strings.Contains(res.stdout+res.stderr, want) {
			t.Fatalf("mcpes %v: want exit %d and %q, got %s", args, code, want, res)
		}
		return res
	}
	// owner commands act for the token's owner
	step(alice, "server notes registered", 0, "servers", "put", "notes", "-f", notes)
	waitInspected(t, svc, "notes", aliceToken)
	step(alice, "server notes unchanged", 0, "servers", "put", "notes", "-f", notes)
	step(alice, "notes", 0, "servers", "list")
	res := step(alice, "", 0, "servers", "list", "--json")
	var list map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &list); err != nil {
		t.Fatalf("servers list --json: %v", err)
	}
	step(alice, "connected to notes", 0, "connect", "notes")
	step(alice, "notes", 0, "connections")
	step(alice, "disconnected from notes", 0, "disconnect", "notes")
	step(alice, "not in a failed state", 1, "reinspect", "notes")
	step(alice, "not found", 1, "reinspect", "nope")
	// the admin reads alice's audit trail
	mid := time.Now().UTC().Format(time.RFC3339Nano)
	step(admin, "may connect notes", 0, "explain", "--owner", "alice", "--server", "notes")
	step(admin, "server notes removed", 0, "servers", "rm", "notes", "--owner", "alice")
	step(admin, "no_config", 0, "explain", "--owner", "alice", "--server", "notes")
	step(admin, "may connect notes", 0, "explain", "--owner", "alice", "--server", "notes", "--at", mid)
	res = step(admin, "mcpes.server.removed.v1", 0, "export", "--owner", "alice")
	if strings.Contains(res.stdout, "server/app/") {
		t.Errorf("export --owner alice has app events")
	}
	step(admin, "mcpes.server.registered.v1", 0, "export", "--type", "server.registered", "--server", "notes")
	step(admin, "state at position 3", 0, "replay", "--until", "3")
	step(admin, "0 mismatches", 0, "replay")
	step(admin, "verify ok", 0, "verify")
	step(alice, "404", 1, "verify")

	// the follower printed alice's connection events live, and nothing else
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		lines := append([]string(nil), followed...)
		mu.Unlock()
		opened, evicted := false, false
		for _, l := range lines {
			if !strings.Contains(l, `"subject":"conn/alice/notes"`) {
				t.Fatalf("follower printed another stream: %s", l)
			}
			opened = opened || strings.Contains(l, "mcpes.connection.opened.v1")
			evicted = evicted || strings.Contains(l, "mcpes.connection.evicted.v1")
		}
		if opened && evicted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("follower saw %d lines: %v", len(lines), lines)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// inspect: a reachable config succeeds, a dead one fails with exit 1
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("command: "+clockBin()+"\nargs: []\n"), 0o600)
	step(nil, "echo", 0, "inspect", "-f", good)
	dead := filepath.Join(dir, "dead.yaml")
	os.WriteFile(dead, []byte("type: streamable-http\nurl: http://127.0.0.1:1/mcp\ninitTimeout: 2000\n"), 0o600)
	step(nil, "inspection failed (unreachable)", 1, "inspect", "-f", dead)
}
