// Package testnpm finds the npm peers pinned in testdata/npm (reference MCP servers,
// the TypeScript SDK, peer gateways) for tests, and starts them.
//
// When node or testdata/npm/node_modules is missing, a test is skipped with a message
// saying how to install them, unless the CI environment variable is set to a true
// value: then the test fails, so a CI run can never pass by skipping them.
package testnpm

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Env is a located npm test environment.
type Env struct {
	// Dir is the absolute path of testdata/npm.
	Dir string
	// Node is the absolute path of the node binary.
	Node string
}

// Require returns the npm environment, or skips tb (fails it when CI is set) when
// node or the installed packages are missing.
func Require(tb testing.TB) *Env {
	tb.Helper()
	env, err := Find()
	if err != nil {
		missing(tb, err)
	}
	return env
}

// Find locates node and testdata/npm/node_modules. Returns an error naming what is
// missing and how to install it.
func Find() (*Env, error) {
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, "testdata", "npm")
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("node not found in PATH (install Node.js, then run `npm ci` in %s)", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".bin")); err != nil {
		return nil, fmt.Errorf("%s/node_modules missing (run `make deps` or `npm ci` in %s)", dir, dir)
	}
	return &Env{Dir: dir, Node: node}, nil
}

func missing(tb testing.TB, err error) {
	tb.Helper()
	if InCI() {
		tb.Fatalf("npm test peers unavailable in CI: %v", err)
	}
	tb.Skipf("skipping: npm test peers unavailable: %v", err)
}

// InCI reports whether the CI environment variable is set to a true value.
func InCI() bool {
	v, ok := os.LookupEnv("CI")
	if !ok {
		return false
	}
	b, err := strconv.ParseBool(v)
	return err != nil && v != "" || b
}

// ModuleRoot returns the directory of the go.mod at or above the working directory
// (the module root when run by go test or go run). Returns an error when there is none.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Entry returns the JavaScript entry file of the npm binary bin (a name in
// node_modules/.bin), or fails tb when it is not installed.
func (e *Env) Entry(tb testing.TB, bin string) string {
	tb.Helper()
	p, err := filepath.EvalSymlinks(filepath.Join(e.Dir, "node_modules", ".bin", bin))
	if err != nil {
		missing(tb, fmt.Errorf("binary %s: %w", bin, err))
	}
	return p
}

// Command returns the command and arguments that run bin with node directly, so
// the process started is node itself (no shell or wrapper to outlive a kill).
func (e *Env) Command(tb testing.TB, bin string, args ...string) (string, []string) {
	tb.Helper()
	return e.Node, append([]string{e.Entry(tb, bin)}, args...)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Process is a started npm server.
type Process struct {
	Cmd  *exec.Cmd
	Port int
	out  *lockedBuf
	done chan struct{}
}

// Output returns what the process printed so far (stdout and stderr).
func (p *Process) Output() string { return p.out.String() }

// Kill kills the process and waits for it to be reaped. Safe to call twice.
func (p *Process) Kill() {
	if p.Cmd.Process != nil {
		_ = p.Cmd.Process.Kill()
	}
	<-p.done
}

// Done is closed when the process has exited and was reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// StartHTTP starts bin with PORT set to a free port plus env and args, waits until
// 127.0.0.1:PORT accepts connections (up to 20 s), and kills it at cleanup.
func (e *Env) StartHTTP(tb testing.TB, bin string, env []string, args ...string) *Process {
	tb.Helper()
	port := FreePort(tb)
	name, argv := e.Command(tb, bin, args...)
	cmd := exec.Command(name, argv...)
	cmd.Dir = tb.TempDir()
	cmd.Env = append(append(os.Environ(), "PORT="+strconv.Itoa(port)), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &Process{Cmd: cmd, Port: port, out: &lockedBuf{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", bin, err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	tb.Cleanup(p.Kill)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return p
		}
		select {
		case <-p.done:
			tb.Fatalf("%s exited before listening on %d: %s", bin, port, p.Output())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s not listening on %d after 20s: %s", bin, port, p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitOutput waits until the process output contains s, or fails tb after timeout.
func (p *Process) WaitOutput(tb testing.TB, s string, timeout time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for !strings.Contains(p.Output(), s) {
		select {
		case <-ctx.Done():
			tb.Fatalf("output never contained %q: %s", s, p.Output())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var _ io.Writer = (*lockedBuf)(nil)
