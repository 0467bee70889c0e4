package e2e

// The operator's day (issue 12): each of its eight points, through the built binary.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpes/mcpes/internal/testnats"
)

// serverField reads one field of GET /v1/servers/{name} as admin ("" when absent).
func serverField(tb testing.TB, svc *service, name, field string) string {
	tb.Helper()
	status, b := svc.call("GET", "/v1/servers/"+name, adminToken, nil)
	if status != 200 {
		return ""
	}
	var s map[string]any
	_ = json.Unmarshal(b, &s)
	return fmt.Sprint(s[field])
}

// eventsOf returns the events of one subject (stream).
func eventsOf(tb testing.TB, svc *service, subject string) []map[string]any {
	tb.Helper()
	var out []map[string]any
	for _, ev := range svc.events(adminToken) {
		if ev["subject"] == subject {
			out = append(out, ev)
		}
	}
	return out
}

// childrenRunning counts the running child processes of pid whose command line
// mentions bin.
func childrenRunning(tb testing.TB, pid int, bin string) int {
	tb.Helper()
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	n := 0
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		for _, c := range strings.Fields(string(b)) {
			cmdline, _ := os.ReadFile("/proc/" + c + "/cmdline")
			stat, _ := os.ReadFile("/proc/" + c + "/stat")
			if strings.Contains(string(cmdline), bin) && !strings.Contains(string(stat), ") Z ") {
				n++
			}
		}
	}
	return n
}

func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Point 1: app servers have a source; restarts (with the file, without a file) keep
// the API's; an empty file is refused; SIGHUP reloads in place.
func TestOperator_AppServerSources_RestartNoFileEmptyFileAndSIGHUP(t *testing.T) {
	t.Parallel()
	// given a service on a config file, and an app server an admin added through the API
	cfgPath := writeConfig(t, baseConfig())
	data := filepath.Join(t.TempDir(), "data")
	svc := startService(t, serveOpts{config: cfgPath, data: data})
	svc.mustCall(201, "PUT", "/v1/servers/extra", adminToken, []byte(`{"type":"sse","url":"http://127.0.0.1:1/sse","initTimeout":1000}`))
	if got := []string{serverField(t, svc, "clock", "source"), serverField(t, svc, "extra", "source")}; got[0] != "file" || got[1] != "api" {
		t.Fatalf("sources = %v, want file, api", got)
	}
	// when the API tries to change the file's server, then 409 names the file and line
	status, body := svc.call("PUT", "/v1/servers/clock", adminToken, []byte(`{"command":"x"}`))
	if status != 409 || !strings.Contains(string(body), "file_sourced") || !strings.Contains(string(body), cfgPath+" (line 2)") {
		t.Fatalf("PUT of a file server: %d %s", status, body)
	}
	res := runCLI(t, []string{"MCPES_URL=" + svc.url, "MCPES_TOKEN=" + adminToken}, "", "servers", "list")
	if res.code != 0 || !strings.Contains(res.stdout, "SOURCE") || !strings.Contains(res.stdout, " api ") {
		t.Fatalf("servers list: %s", res)
	}
	svc.stop(syscall.SIGTERM)

	// when it restarts with the same file, then without any file
	for _, cfg := range []string{cfgPath, ""} {
		svc = startService(t, serveOpts{config: cfg, data: data, env: []string{"MCPES_ADMIN_TOKEN=" + adminToken}})
		// then the API's server and the file's are both still there
		for _, name := range []string{"clock", "extra"} {
			if serverField(t, svc, name, "name") != name {
				t.Fatalf("config %q: server %s gone after restart:\n%s", cfg, name, svc.logs.String())
			}
		}
		svc.stop(syscall.SIGTERM)
	}

	// when it is started with an empty config file, then it refuses to start
	empty := writeConfig(t, "# nothing here yet\n")
	cmd := exec.Command(mcpesBin(), "serve", "--config", empty, "--data", data, "--listen", fmt.Sprintf("127.0.0.1:%d", testnats.FreePort(t)))
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "config file is empty") {
		t.Fatalf("serve with an empty file: %v\n%s", err, out)
	}

	// when the file changes and the service gets SIGHUP
	svc = startService(t, serveOpts{config: cfgPath, data: data})
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(baseConfig(), "  clock:\n", "  clock2:\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	svc.signal(syscall.SIGHUP)
	// then the file's servers are reconciled in place, the API's is kept, and the
	// process still serves
	eventually(t, "reload", func() bool {
		return serverField(t, svc, "clock2", "source") == "file" && serverField(t, svc, "clock", "name") == ""
	})
	if serverField(t, svc, "clock", "name") == "clock" || serverField(t, svc, "extra", "source") != "api" {
		t.Fatalf("after SIGHUP: clock %q, extra %q", serverField(t, svc, "clock", "name"), serverField(t, svc, "extra", "source"))
	}
	// when the file is emptied by mistake and the service gets SIGHUP again
	if err := os.WriteFile(cfgPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	svc.signal(syscall.SIGHUP)
	// then nothing changes, the log says why, and the process still serves
	eventually(t, "the refused reload", func() bool { return strings.Contains(svc.logs.String(), "config file is empty") })
	if serverField(t, svc, "clock2", "source") != "file" || serverField(t, svc, "extra", "source") != "api" {
		t.Fatal("an empty file removed servers on reload")
	}
	select {
	case <-svc.done:
		t.Fatalf("SIGHUP stopped the service: %v", svc.exitErr)
	default:
	}
}

// Point 2: removing a server evicts every owner's connection at once, records
// each eviction and stops the processes.
func TestOperator_RemoveEvictsEveryOwnersConnectionAndStopsProcesses(t *testing.T) {
	t.Parallel()
	// given an API app server over stdio, connected by the shared repository, alice and bob
	svc := startService(t, serveOpts{config: writeConfig(t, baseConfig())})
	svc.mustCall(201, "PUT", "/v1/servers/tick", adminToken, []byte(`{"command":"`+clockBin()+`","initTimeout":20000}`))
	waitInspected(t, svc, "tick", adminToken)
	for _, owner := range []string{"", "alice", "bob"} {
		svc.mustCall(200, "POST", "/v1/connections/tick?owner="+owner, adminToken, nil)
	}
	if n := childrenRunning(t, svc.cmd.Process.Pid, clockBin()); n < 3 {
		t.Fatalf("%d clock processes before removal, want at least 3", n)
	}

	// when an admin removes it
	admin := []string{"MCPES_URL=" + svc.url, "MCPES_TOKEN=" + adminToken}
	if res := runCLI(t, admin, "", "servers", "rm", "tick"); res.code != 0 {
		t.Fatalf("servers rm: %s", res)
	}

	// then, before anyone asks again, no connection to it is listed, each eviction
	// is recorded, and the processes are gone
	for _, owner := range []string{"", "alice", "bob"} {
		b := svc.mustCall(200, "GET", "/v1/connections?owner="+owner, adminToken, nil)
		if strings.Contains(string(b), `"server":"tick"`) {
			t.Fatalf("owner %q still lists tick: %s", owner, b)
		}
		stream := "conn/" + map[string]string{"": "_"}[owner] + owner + "/tick"
		evs := eventsOf(t, svc, stream)
		last := evs[len(evs)-1]
		if last["type"] != "mcpes.connection.evicted.v1" || last["reason"] != "removed" {
			t.Fatalf("%s: last event %v, want connection.evicted (removed)", stream, last)
		}
	}
	eventually(t, "clock processes to exit", func() bool { return childrenRunning(t, svc.cmd.Process.Pid, clockBin()) == 0 })
}

// Point 3: after an unclean exit, connections the log shows open are recorded lost
// (reason restart) before serving.
func TestOperator_UncleanExit_OpenConnectionsRecordedLostAtRestart(t *testing.T) {
	t.Parallel()
	// given a shared connection, and the service killed without a chance to close it
	cfg := writeConfig(t, baseConfig())
	svc := startService(t, serveOpts{config: cfg})
	svc.waitReady()
	svc.mustCall(200, "POST", "/v1/connections/clock", adminToken, nil)
	svc.stop(syscall.SIGKILL)

	// when it starts again on the same data
	svc = startService(t, serveOpts{config: cfg, data: svc.data})

	// then the connection is recorded lost with reason restart, the log shows none open,
	// and the next connect opens one (not a second open without a close)
	evs := eventsOf(t, svc, "conn/_/clock")
	last := evs[len(evs)-1]
	data, _ := last["data"].(map[string]any)
	if last["type"] != "mcpes.connection.lost.v1" || last["reason"] != "restart" || data["reason"] != "restart" {
		t.Fatalf("last event of conn/_/clock = %v, want connection.lost (restart)", last)
	}
	if b := svc.mustCall(200, "GET", "/v1/connections", adminToken, nil); strings.Contains(string(b), `"server":"clock"`) {
		t.Fatalf("connection still listed after restart: %s", b)
	}
	svc.waitReady()
	svc.mustCall(200, "POST", "/v1/connections/clock", adminToken, nil)
	res := runCLI(t, []string{"MCPES_URL=" + svc.url, "MCPES_TOKEN=" + adminToken}, "", "verify")
	if res.code != 0 {
		t.Fatalf("verify after recovery: %s", res)
	}
}

// Point 4: reinspect of a failed server that now answers 401 says requires_oauth
// and exits 1.
func TestOperator_ReinspectOfA401ServerSaysRequiresOAuth(t *testing.T) {
	t.Parallel()
	// given an app server whose inspection failed (nothing listened)
	port := testnats.FreePort(t)
	svc := startService(t, serveOpts{config: writeConfig(t, baseConfig())})
	svc.mustCall(201, "PUT", "/v1/servers/locked", adminToken,
		[]byte(fmt.Sprintf(`{"type":"streamable-http","url":"http://127.0.0.1:%d/mcp","initTimeout":3000}`, port)))
	eventually(t, "the failed inspection", func() bool { return serverField(t, svc, "locked", "state") == "failed" })

	// when it comes back answering 401 and is reinspected
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="x"`)
		w.WriteHeader(http.StatusUnauthorized)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	res := runCLI(t, []string{"MCPES_URL=" + svc.url, "MCPES_TOKEN=" + adminToken}, "", "reinspect", "locked")

	// then it says requires_oauth and exits 1 (the shared repository cannot use it)
	if res.code != 1 || !strings.Contains(res.stdout, "reinspected: requires_oauth") || strings.Contains(res.stdout, "reinspected: ok") {
		t.Fatalf("reinspect of a 401 server: %s", res)
	}
	if serverField(t, svc, "locked", "state") != "requires_oauth" {
		t.Fatalf("state = %s", serverField(t, svc, "locked", "state"))
	}
}

// Point 5: events --follow exits non-zero saying why when the service stops;
// --url is the service, --server a server name.
func TestOperator_FollowEndsWithAReasonAndURLFlag(t *testing.T) {
	t.Parallel()
	svc := startService(t, serveOpts{config: writeConfig(t, baseConfig())})
	svc.waitReady()
	// --url names the service and --server the server, in one command
	res := runCLI(t, []string{"MCPES_TOKEN=" + adminToken}, "", "--url", svc.url, "export", "--server", "clock", "--type", "server.registered")
	if res.code != 0 || !strings.Contains(res.stdout, `"subject":"server/app/clock"`) {
		t.Fatalf("export --url --server: %s", res)
	}
	// given a follower
	follow := exec.Command(mcpesBin(), "events", "--follow", "--url", svc.url)
	follow.Env = append(os.Environ(), "MCPES_TOKEN="+adminToken)
	stdout, _ := follow.StdoutPipe()
	var stderr strings.Builder
	follow.Stderr = &stderr
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		t.Fatal("follower printed nothing")
	}
	go func() {
		for sc.Scan() {
		}
	}()
	// when the service stops
	svc.stop(syscall.SIGTERM)
	// then the follower exits 1 and says the stream ended and where to resume
	done := make(chan error, 1)
	go func() { done <- follow.Wait() }()
	select {
	case err := <-done:
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "closed the stream") || !strings.Contains(stderr.String(), "--after") {
			t.Fatalf("follower exit: %v, stderr %q", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		_ = follow.Process.Kill()
		t.Fatal("follower still running after the service stopped")
	}
}

// Point 6: servers get, the reason column, --version, usage help of the subcommand,
// disconnect of nothing, explain's left-out count, export --type bogus.
func TestOperator_CLISaysWhatHappened(t *testing.T) {
	t.Parallel()
	svc := startService(t, serveOpts{config: writeConfig(t, baseConfigWith("  needsvar:\n    type: sse\n    url: http://127.0.0.1:1/sse\n    headers: {X-Key: \"${MCPES_E2E_UNSET_VAR}\"}\n")),
		env: []string{testKeys}})
	svc.waitReady()
	admin := []string{"MCPES_URL=" + svc.url, "MCPES_TOKEN=" + adminToken}
	step := func(want string, code int, args ...string) cliResult {
		t.Helper()
		res := runCLI(t, admin, "", args...)
		if res.code != code || !strings.Contains(res.stdout+res.stderr, want) {
			t.Fatalf("mcpes %v: want exit %d and %q, got %s", args, code, want, res)
		}
		return res
	}
	step("MCPES_E2E_UNSET_VAR", 0, "servers", "list")
	step("failed", 0, "servers", "list")
	res := step("source:", 0, "servers", "get", "clock")
	for _, want := range []string{"ready", "echo", "last inspection:", "config (secrets redacted)"} {
		if !strings.Contains(res.stdout, want) {
			t.Fatalf("servers get clock lacks %q:\n%s", want, res.stdout)
		}
	}
	step("mcpes ", 0, "--version")
	if b := svc.mustCall(200, "GET", "/healthz", "", nil); !strings.Contains(string(b), `"version"`) {
		t.Fatalf("/healthz: %s", b)
	}
	if ev := svc.events(adminToken)[0]; !strings.Contains(fmt.Sprint(ev["source"]), "?version=") {
		t.Fatalf("event source %v carries no version", ev["source"])
	}
	step("Run 'mcpes servers put --help'", 2, "servers", "put")
	step("no open connection to clock", 0, "disconnect", "clock")
	for range 6 {
		step("connected to clock", 0, "connect", "clock")
		step("disconnected from clock", 0, "disconnect", "clock")
	}
	step("2 earlier decisions not shown", 0, "explain", "--owner", "app", "--server", "clock")
	step("--type bogus matches no event type", 2, "export", "--type", "bogus")
}

// Point 7: one vocabulary: state words, the shared repository as "app", config
// version distinct from position, refusals "refused by policy (rule X)", config
// problems sorted by line with none hidden.
func TestOperator_OneVocabulary(t *testing.T) {
	t.Parallel()
	svc := startService(t, serveOpts{config: writeConfig(t, baseConfigWith("  later:\n    command: "+clockBin()+"\n    args: []\n    startup: false\n"))})
	svc.waitReady()
	admin := []string{"MCPES_URL=" + svc.url, "MCPES_TOKEN=" + adminToken}
	var s map[string]any
	_ = json.Unmarshal(svc.mustCall(200, "GET", "/v1/servers/clock", adminToken, nil), &s)
	if s["state"] != "ready" || s["configVersion"] != float64(1) || s["position"] == nil || s["version"] != nil {
		t.Fatalf("server words: state %v configVersion %v position %v version %v", s["state"], s["configVersion"], s["position"], s["version"])
	}
	res := runCLI(t, admin, "", "connect", "later")
	if res.code != 1 || !strings.Contains(res.stderr, "server later for app: refused by policy (rule startup_false)") {
		t.Fatalf("refusal: %s", res)
	}
	runCLI(t, admin, "", "connect", "clock")
	res = runCLI(t, admin, "", "connections")
	if !strings.Contains(res.stdout, "app ") || strings.Contains(res.stdout, "(shared)") {
		t.Fatalf("connections owner word: %s", res)
	}
	if res = runCLI(t, admin, "", "connections", "--owner", "app"); res.code != 0 || !strings.Contains(res.stdout, "clock") {
		t.Fatalf("connections --owner app: %s", res)
	}
	// a config file with problems on lines 3 and 5 (the first hiding nothing) and 7
	bad := writeConfig(t, "mcpServers:\n  zeta:\n    url: 42\n    timeout: -1\n  alpha: {type: pigeon, command: x}\nlisten: [1]\n")
	cmd := exec.Command(mcpesBin(), "serve", "--config", bad, "--data", t.TempDir())
	out, _ := cmd.CombinedOutput()
	lines := []int{}
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if rest, ok := strings.CutPrefix(l, "line "); ok {
			n, _ := strconv.Atoi(strings.SplitN(rest, ":", 2)[0])
			lines = append(lines, n)
		}
	}
	if fmt.Sprint(lines) != "[3 4 5 6]" {
		t.Fatalf("problem lines %v, want [3 4 5 6]:\n%s", lines, out)
	}
}
