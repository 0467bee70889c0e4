package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/mcpes/mcpes/internal/testnats"
)

func TestOfflineVerify_PassesAfterStopAndNamesAFlippedByte(t *testing.T) {
	t.Parallel()
	// given a stopped service whose log holds a server with a unique marker
	const marker = "tamper-marker-QQQQQQ"
	svc := startService(t, serveOpts{config: writeConfig(t, baseConfig())})
	svc.waitReady()
	svc.mustCall(201, "PUT", "/v1/servers/marked", adminToken,
		[]byte(`{"type":"sse","url":"http://127.0.0.1:1/sse","description":"`+marker+`"}`))
	svc.stop(syscall.SIGTERM)

	// when verify reads the data directory
	res := runCLI(t, nil, "", "verify", "--data", svc.data)
	// then it passes
	if res.code != 0 || !strings.Contains(res.stdout, "verify ok") {
		t.Fatalf("verify of an intact log: %s", res)
	}

	// given the position of the marked event
	ev := runCLI(t, nil, "", "events", "--data", svc.data, "--type", "server.registered", "--subject", "server/app/marked")
	var env struct {
		Sequence string `json:"sequence"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(ev.stdout)), &env); err != nil {
		t.Fatalf("events: %v: %s", err, ev)
	}
	pos, _ := strconv.ParseUint(env.Sequence, 10, 64)
	// when one byte of that event is flipped in the file (every stored copy of it)
	path := filepath.Join(svc.data, "mcpes.db")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := bytes.Count(raw, []byte(marker))
	if n == 0 {
		t.Fatal("marker not found in the data file")
	}
	raw = bytes.ReplaceAll(raw, []byte(marker), []byte(strings.Replace(marker, "Q", "R", 1)))
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	// then verify fails with exit 1 and names that position
	res = runCLI(t, nil, "", "verify", "--data", svc.data)
	if res.code != 1 || !strings.Contains(res.stdout, fmt.Sprintf("position %d", pos)) {
		t.Fatalf("verify of a tampered log (event %d): %s", pos, res)
	}
	res = runCLI(t, nil, "", "verify", "--data", svc.data, "--json")
	if res.code != 1 || !strings.Contains(res.stdout, `"ok": false`) {
		t.Fatalf("verify --json of a tampered log: %s", res)
	}
	// and an export of it writes the events but warns and exits 1
	res = runCLI(t, nil, "", "export", "--data", svc.data)
	if res.code != 1 || !strings.Contains(res.stderr, fmt.Sprintf("hash chain is broken at position %d", pos)) ||
		!strings.Contains(res.stdout, "mcpes.server.registered.v1") {
		t.Fatalf("export of a tampered log (event %d): %s", pos, res)
	}
}

func TestOfflineData_InUseByARunningService(t *testing.T) {
	t.Parallel()
	// given a running service
	svc := startService(t, serveOpts{config: writeConfig(t, baseConfig())})
	// when an offline command opens its data directory
	for _, args := range [][]string{{"verify"}, {"servers", "list"}, {"events"}, {"explain", "--owner", "_", "--server", "clock"}} {
		res := runCLI(t, nil, "", append(args, "--data", svc.data)...)
		// then it fails at once with a clear message naming the pid
		want := fmt.Sprintf("data directory %s is in use by a running mcpes (pid %d) — use --url or stop it", svc.data, svc.cmd.Process.Pid)
		if res.code != 1 || !strings.Contains(res.stderr, want) {
			t.Errorf("mcpes %v --data: %s", args, res)
		}
	}
	// and a second service on the same directory refuses to start
	res := runCLI(t, nil, "", "serve", "--data", svc.data, "--listen", fmt.Sprintf("127.0.0.1:%d", testnats.FreePort(t)))
	if res.code != 1 || !strings.Contains(res.stderr, "in use by another mcpes") {
		t.Errorf("second serve: %s", res)
	}
}

func TestSIGTERM_RecordsShutdownEvictionsAndSnapshot(t *testing.T) {
	t.Parallel()
	// given open connections: the shared repository's and alice's
	clockURL, _ := startClockHTTP(t)
	svc := startService(t, serveOpts{config: writeConfig(t, baseConfig())})
	svc.waitReady()
	svc.mustCall(201, "PUT", "/v1/servers/notes", aliceToken, []byte(`{"type":"streamable-http","url":"`+clockURL+`"}`))
	waitInspected(t, svc, "notes", aliceToken)
	svc.mustCall(200, "POST", "/v1/connections/clock", adminToken, nil)
	svc.mustCall(200, "POST", "/v1/connections/notes", aliceToken, nil)

	// when the service gets SIGTERM
	svc.stop(syscall.SIGTERM)

	// then each connection's shutdown is recorded, and the projections were snapshotted
	res := runCLI(t, nil, "", "events", "--data", svc.data, "--type", "connection.evicted")
	if res.code != 0 {
		t.Fatal(res)
	}
	for _, subject := range []string{"conn/_/clock", "conn/alice/notes"} {
		found := false
		for _, line := range strings.Split(strings.TrimSpace(res.stdout), "\n") {
			if strings.Contains(line, `"subject":"`+subject+`"`) && strings.Contains(line, `"reason":"shutdown"`) {
				found = true
			}
		}
		if !found {
			t.Errorf("no shutdown eviction for %s:\n%s", subject, res.stdout)
		}
	}
	if !strings.Contains(svc.logs.String(), "projections snapshotted") {
		t.Errorf("no snapshot at shutdown:\n%s", svc.logs.String())
	}
	if res := runCLI(t, nil, "", "connections", "--data", svc.data, "--json"); res.code != 0 || strings.Contains(res.stdout, "notes") {
		t.Errorf("connections after shutdown: %s", res)
	}
	if res := runCLI(t, nil, "", "verify", "--data", svc.data); res.code != 0 {
		t.Errorf("verify after shutdown: %s", res)
	}
}

// waitInspected waits until a server's inspection succeeded.
func waitInspected(tb testing.TB, svc *service, name, token string) {
	tb.Helper()
	for i := 0; i < 400; i++ {
		_, b := svc.call("GET", "/v1/servers/"+name, token, nil)
		var s map[string]any
		_ = json.Unmarshal(b, &s)
		if s["inspected"] == true && s["inspectionFailed"] != true {
			return
		}
		if s["inspectionFailed"] == true {
			tb.Fatalf("inspection of %s failed: %s", name, b)
		}
		sleepShort()
	}
	tb.Fatalf("%s not inspected", name)
}
