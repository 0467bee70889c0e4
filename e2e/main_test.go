package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpes/mcpes/internal/testnats"
)

var (
	binDir   string // holds mcpes and clock, built once
	repoRoot string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	repoRoot = root
	dir, err := os.MkdirTemp("", "mcpes-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	args := []string{"build", "-o", dir + "/"}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "./cmd/mcpes", "./examples/servers/clock")...)
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build mcpes: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

func mcpesBin() string { return filepath.Join(binDir, "mcpes") }
func clockBin() string { return filepath.Join(binDir, "clock") }

// Tokens of the tests (the config stores their hashes).
const (
	adminToken = "admin-secret-token"
	aliceToken = "alice-secret-token"
	bobToken   = "bob-secret-token"
)

func hashOf(tok string) string {
	s := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(s[:])
}

// syncBuffer is a goroutine-safe buffer for a child's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// service is one running `mcpes serve`.
type service struct {
	tb      testing.TB
	cmd     *exec.Cmd
	url     string
	data    string
	logs    *syncBuffer
	done    chan struct{}
	exitErr error
}

// testKeys is an MCPES_KEYS setting for services whose config holds secrets.
var testKeys = "MCPES_KEYS=k1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))

// serveOpts configure startService.
type serveOpts struct {
	config string // path of the config file
	data   string // data directory (default: a new temp dir)
	port   int    // default: a free port
	args   []string
	env    []string
}

// startService starts `mcpes serve` and waits for /healthz. It is stopped (SIGTERM,
// then SIGKILL) at cleanup if still running.
func startService(tb testing.TB, o serveOpts) *service {
	tb.Helper()
	if o.data == "" {
		o.data = filepath.Join(tb.TempDir(), "data")
	}
	if o.port == 0 {
		o.port = testnats.FreePort(tb)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", o.port)
	args := []string{"serve", "--data", o.data, "--listen", addr, "--drain-timeout", "5s"}
	if o.config != "" {
		args = append(args, "--config", o.config)
	}
	args = append(args, o.args...)
	s := &service{tb: tb, url: "http://" + addr, data: o.data, logs: &syncBuffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(mcpesBin(), args...)
	s.cmd.Dir = repoRoot
	s.cmd.Env = append(os.Environ(), o.env...)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { s.exitErr = s.cmd.Wait(); close(s.done) }()
	tb.Cleanup(func() {
		s.signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(20 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		if strings.Contains(s.logs.String(), "WARNING: DATA RACE") {
			tb.Errorf("data race in mcpes serve:\n%s", s.logs.String())
		} else if tb.Failed() {
			tb.Logf("mcpes serve logs:\n%s", s.logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			tb.Fatalf("mcpes serve exited: %v\n%s", s.exitErr, s.logs.String())
		default:
		}
		if resp, err := http.Get(s.url + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("mcpes serve not healthy after 30s:\n%s", s.logs.String())
	return nil
}

func (s *service) signal(sig os.Signal) {
	select {
	case <-s.done:
	default:
		_ = s.cmd.Process.Signal(sig)
	}
}

// stop sends sig and waits for the exit; it fails the test when the exit is not clean
// after SIGTERM.
func (s *service) stop(sig os.Signal) {
	s.tb.Helper()
	s.signal(sig)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.tb.Fatalf("mcpes serve did not stop:\n%s", s.logs.String())
	}
	if sig == syscall.SIGTERM && s.exitErr != nil {
		s.tb.Fatalf("mcpes serve exited with %v after SIGTERM:\n%s", s.exitErr, s.logs.String())
	}
}

func (s *service) waitReady() {
	s.tb.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(s.url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.tb.Fatalf("not ready:\n%s", s.logs.String())
}

// call sends one API request and returns the status and body.
func (s *service) call(method, path, token string, body []byte) (int, []byte) {
	s.tb.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		s.tb.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// mustCall is call that fails the test unless the status is want.
func (s *service) mustCall(want int, method, path, token string, body []byte) []byte {
	s.tb.Helper()
	status, b := s.call(method, path, token, body)
	if status != want {
		s.tb.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, b)
	}
	return b
}

// head returns the number of events in the log (from the API as admin).
func (s *service) events(token string) []map[string]any {
	s.tb.Helper()
	b := s.mustCall(200, "GET", "/v1/events?limit=100000", token, nil)
	return parseLines(s.tb, b)
}

func parseLines(tb testing.TB, b []byte) []map[string]any {
	tb.Helper()
	var out []map[string]any
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal(line, &ev); err != nil {
			tb.Fatalf("bad event line %q: %v", line, err)
		}
		out = append(out, ev)
	}
	return out
}

func countType(evs []map[string]any, prefix string) int {
	n := 0
	for _, e := range evs {
		if t, _ := e["type"].(string); strings.HasPrefix(t, prefix) {
			n++
		}
	}
	return n
}

// cliResult is one CLI run.
type cliResult struct {
	stdout, stderr string
	code           int
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// runCLI runs the mcpes binary with args and extra environment.
func runCLI(tb testing.TB, env []string, stdin string, args ...string) cliResult {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, mcpesBin(), args...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		tb.Fatalf("run mcpes %v: %v", args, err)
	}
	return cliResult{stdout: out.String(), stderr: errb.String(), code: code}
}

func writeConfig(tb testing.TB, body string) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "mcpes.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// baseConfig is a config with tokens for admin, alice and bob, the clock over stdio,
// and loopback allowed for owner URLs.
func baseConfig() string { return baseConfigWith("") }

// baseConfigWith is baseConfig with more mcpServers entries (indented by two spaces).
func baseConfigWith(servers string) string {
	return fmt.Sprintf(`mcpServers:
  clock:
    command: %s
    args: []
    initTimeout: 20000
`+servers+`mcpSettings:
  allowedDomains: ["127.0.0.1"]
auth:
  tokens:
    - {sha256: %s, role: admin}
    - {sha256: %s, role: owner, owner: alice}
    - {sha256: %s, role: owner, owner: bob}
`, clockBin(), hashOf(adminToken), hashOf(aliceToken), hashOf(bobToken))
}

// startClockHTTP runs the example clock over streamable HTTP and returns its /mcp URL.
func startClockHTTP(tb testing.TB) (string, *exec.Cmd) {
	tb.Helper()
	port := testnats.FreePort(tb)
	cmd := exec.Command(clockBin(), "-http", fmt.Sprintf("127.0.0.1:%d", port))
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "listening on") {
		if time.Now().After(deadline) {
			tb.Fatalf("clock did not start: %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Sprintf("http://127.0.0.1:%d/mcp", port), cmd
}

func httpGet(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func sleepShort() { time.Sleep(50 * time.Millisecond) }

var httpClient = &http.Client{Timeout: 30 * time.Second}

func newRequest(url, method, token string, body []byte) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}
