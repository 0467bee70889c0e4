package upstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mcpes/mcpes/domain"
)

// inheritedEnv names the variables a stdio child inherits from mcpes's own
// environment; everything else it gets comes from the config's env. mcpes's own
// secrets (tokens, keys) are therefore never handed to a server by accident.
var inheritedEnv = []string{"HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "LC_ALL", "TMPDIR", "TZ"}

// Stop timings of a stdio child: after stdin is closed it gets stdinGrace to exit
// on its own, then SIGTERM and termGrace, then SIGKILL.
var (
	stdinGrace = 300 * time.Millisecond
	termGrace  = time.Second
)

// child is a stdio server process in its own process group. mcpes owns its pipes
// and reaps it, so an exit is noticed at once and Close leaves nothing behind.
type child struct {
	cmd     *exec.Cmd
	stdin   *os.File // our write end
	stdout  io.Reader
	exited  chan struct{}
	waitErr error // set before exited is closed
	stderr  *tailBuffer
	drained chan struct{}
}

// childOpts are the stdio settings besides command, args and env: the working
// directory (cwd; a relative command path is taken from it) and what becomes of
// stderr ("pipe", the default: its tail is kept for error messages; "ignore";
// "inherit": also copied to mcpes's stderr).
type childOpts struct {
	dir    string
	stderr string
}

// startChild starts command with args and env (KEY=VALUE, added to inheritedEnv).
// onGarbage is called once with the first stdout line that is not a JSON-RPC
// message. The child is not tied to any context: stop ends it.
func startChild(command string, args, env []string, o childOpts, logger *slog.Logger, onGarbage func(error)) (*child, error) {
	if o.dir != "" && strings.ContainsRune(command, filepath.Separator) && !filepath.IsAbs(command) {
		command = filepath.Join(o.dir, command)
	}
	path, err := exec.LookPath(command)
	if err != nil {
		return nil, fmt.Errorf("command %q: %w", command, err)
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = o.dir
	for _, k := range inheritedEnv {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		return nil, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	err = cmd.Start()
	// The child has its copies; ours of its ends must go so EOF arrives on exit.
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("start %q: %w", command, err)
	}
	c := &child{
		cmd: cmd, stdin: inW, exited: make(chan struct{}),
		stdout: &lineChecker{r: outR, closer: outR, onBad: onGarbage},
		stderr: &tailBuffer{max: 2048}, drained: make(chan struct{}),
	}
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	go func() {
		defer close(c.drained)
		defer errR.Close()
		var dst io.Writer = c.stderr
		switch o.stderr {
		case domain.StderrIgnore:
			dst = io.Discard
		case domain.StderrInherit:
			dst = io.MultiWriter(c.stderr, os.Stderr)
		}
		_, _ = io.Copy(dst, errR)
	}()
	logger.Debug("stdio server started", "command", command, "pid", cmd.Process.Pid)
	return c, nil
}

// exitError describes the child's exit, with the tail of its stderr.
func (c *child) exitError() error {
	// Let the stderr drain catch up with the exit (grandchildren may keep it
	// open, so not for long).
	select {
	case <-c.drained:
	case <-time.After(200 * time.Millisecond):
	}
	status := "exited"
	if c.waitErr != nil {
		status = c.waitErr.Error()
	} else if c.cmd.ProcessState != nil {
		status = c.cmd.ProcessState.String()
	}
	if tail := c.stderr.String(); tail != "" {
		return fmt.Errorf("%w (pid %d, %s); stderr: %s", ErrChildExited, c.cmd.Process.Pid, status, tail)
	}
	return fmt.Errorf("%w (pid %d, %s)", ErrChildExited, c.cmd.Process.Pid, status)
}

// stop ends the child: close stdin, give it stdinGrace, SIGTERM the group, give it
// termGrace, SIGKILL the group; then it waits until the child is reaped and kills
// whatever is left of its process group. Safe to call more than once.
func (c *child) stop() {
	_ = c.stdin.Close()
	pgid := c.cmd.Process.Pid
	select {
	case <-c.exited:
	case <-time.After(stdinGrace):
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(termGrace):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-c.exited
		}
	}
	// Grandchildren keep the group alive (and so its id reserved) after the leader
	// exits; they must not outlive the connection.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-c.drained
}

// kill ends the child at once (SIGKILL to its group) and waits until it is reaped.
func (c *child) kill() {
	_ = c.stdin.Close()
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.exited
	<-c.drained
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.b))
}

// maxCheckedLine bounds the bytes of one stdout line kept for checking; longer
// lines pass unchecked (they are results, not the garbage this looks for).
const maxCheckedLine = 1 << 20

// lineChecker passes a stdio server's stdout through unchanged and reports the
// first complete line that is not a JSON-RPC 2.0 message. The MCP stdio transport
// says a server must not write anything else to stdout.
type lineChecker struct {
	r       io.Reader
	closer  io.Closer
	onBad   func(error)
	line    []byte
	tooLong bool
	bad     bool
}

func (l *lineChecker) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if n > 0 && !l.bad && l.onBad != nil {
		l.scan(p[:n])
	}
	return n, err
}

func (l *lineChecker) scan(b []byte) {
	for len(b) > 0 && !l.bad {
		i := bytes.IndexByte(b, '\n')
		part := b
		if i >= 0 {
			part = b[:i]
		}
		if !l.tooLong {
			if len(l.line)+len(part) > maxCheckedLine {
				l.tooLong, l.line = true, l.line[:0]
			} else {
				l.line = append(l.line, part...)
			}
		}
		if i < 0 {
			return
		}
		if !l.tooLong {
			if err := checkJSONRPCLine(l.line); err != nil {
				l.bad = true
				l.onBad(err)
			}
		}
		l.line, l.tooLong = l.line[:0], false
		b = b[i+1:]
	}
}

// checkJSONRPCLine returns an error wrapping ErrProtocol when line (without its
// newline) is neither blank nor a JSON-RPC 2.0 object.
func checkJSONRPCLine(line []byte) error {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return nil
	}
	var msg struct {
		JSONRPC string `json:"jsonrpc"`
	}
	if err := json.Unmarshal(line, &msg); err != nil || msg.JSONRPC != "2.0" {
		return fmt.Errorf("%w: server wrote a non-JSON-RPC line on stdout: %q", ErrProtocol, snippet(line, 80))
	}
	return nil
}

func snippet(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}

var errNoCommand = errors.New("no command")
