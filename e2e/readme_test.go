package e2e

import (
	"bufio"
	"context"
	"fmt"
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

// readmeCommand is one command line of a ```sh readme-test block.
type readmeCommand struct {
	line       string // as written in the README
	background bool   // ends with &
	shows      string // "# shows: X": the output must contain X
	fails      string // "# fails: X": the command must fail, output containing X
}

// readmeCommands extracts the commands of the README's ```sh readme-test blocks.
func readmeCommands(tb testing.TB) []readmeCommand {
	tb.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []readmeCommand
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case !in && trimmed == "```sh readme-test":
			in = true
			continue
		case in && trimmed == "```":
			in = false
			continue
		case !in || trimmed == "" || strings.HasPrefix(trimmed, "#"):
			continue
		}
		c := readmeCommand{}
		cmd, comment, _ := strings.Cut(trimmed, "# ")
		comment = strings.TrimSpace(comment)
		if v, ok := strings.CutPrefix(comment, "shows: "); ok {
			c.shows = v
		} else if v, ok := strings.CutPrefix(comment, "fails: "); ok {
			c.fails = v
		} else if comment != "" {
			cmd = trimmed // a '#' that is not an expectation
		}
		cmd = strings.TrimSpace(cmd)
		if b, ok := strings.CutSuffix(cmd, "&"); ok {
			c.background, cmd = true, strings.TrimSpace(b)
		}
		c.line = cmd
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// TestREADME_WalkThrough runs every command of the README's walk-through, in order,
// as a user would in one shell from the repository root, and checks what the README
// says each shows. Only paths and ports differ: bin/ is a temporary directory, the
// data directory is temporary, and the ports 7300 and 7399 are free ones.
func TestREADME_WalkThrough(t *testing.T) {
	t.Parallel()
	cmds := readmeCommands(t)
	if len(cmds) < 20 {
		t.Fatalf("found only %d README commands", len(cmds))
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	data := filepath.Join(tmp, "mcpes-data")
	apiPort, clockPort := testnats.FreePort(t), testnats.FreePort(t)
	example, err := os.ReadFile(filepath.Join(repoRoot, "examples/mcpes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(tmp, "mcpes.yaml")
	cfg := strings.ReplaceAll(string(example), "7399", strconv.Itoa(clockPort))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	subst := strings.NewReplacer(
		"go run ./cmd/mcpes", filepath.Join(bin, "mcpes"),
		"bin/", bin+"/",
		"examples/mcpes.yaml", cfgPath,
		"mcpes-data", data,
		"7399", strconv.Itoa(clockPort),
		"7300", strconv.Itoa(apiPort),
	)
	env := append(os.Environ(),
		fmt.Sprintf("MCPES_URL=http://127.0.0.1:%d", apiPort),
		fmt.Sprintf("MCPES_LISTEN=127.0.0.1:%d", apiPort),
		"MCPES_DATA="+data,
		"MCPES_TOKEN=", "MCPES_ADMIN_TOKEN=",
	)

	type job struct {
		cmd  *exec.Cmd
		out  *syncBuffer
		done chan struct{}
	}
	var jobs []*job
	t.Cleanup(func() {
		for _, j := range jobs {
			select {
			case <-j.done:
				continue
			default:
			}
			_ = j.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-j.done:
			case <-time.After(15 * time.Second):
				_ = j.cmd.Process.Kill()
				<-j.done
			}
		}
		if t.Failed() {
			for i, j := range jobs {
				t.Logf("background job %%%d output:\n%s", i+1, j.out.String())
			}
		}
	})

	for i, c := range cmds {
		line := subst.Replace(c.line)
		step := fmt.Sprintf("README command %d %q", i+1, c.line)
		if n, ok := strings.CutPrefix(line, "kill %"); ok {
			idx, err := strconv.Atoi(n)
			if err != nil || idx < 1 || idx > len(jobs) {
				t.Fatalf("%s: no such job", step)
			}
			j := jobs[idx-1]
			_ = j.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-j.done:
			case <-time.After(30 * time.Second):
				t.Fatalf("%s: job did not stop\n%s", step, j.out.String())
			}
			continue
		}
		cmd := exec.Command("bash", "-c", line)
		cmd.Dir, cmd.Env = repoRoot, env
		if c.background && strings.HasPrefix(c.line, "go run") {
			// kill %N would stop only the go command and leave the program it started
			// running (issue 12, point 8).
			t.Fatalf("%s: a background job started with go run cannot be stopped by kill %%N; start the built binary", step)
		}
		if c.background {
			j := &job{cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
			cmd.Stdout, cmd.Stderr = j.out, j.out
			// exec directly so SIGTERM reaches the program, not a shell around it.
			cmd.Args = []string{"bash", "-c", "exec " + line}
			if err := cmd.Start(); err != nil {
				t.Fatalf("%s: %v", step, err)
			}
			go func() { _ = cmd.Wait(); close(j.done) }()
			jobs = append(jobs, j)
			waitBackground(t, step, line, j.out, apiPort, clockPort)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // the first go build on a cold cache is slow
		cmd = exec.CommandContext(ctx, "bash", "-c", line)
		cmd.Dir, cmd.Env = repoRoot, env
		out, err := cmd.CombinedOutput()
		cancel()
		t.Logf("$ %s\n%s", c.line, out)
		switch {
		case c.fails != "":
			if err == nil {
				t.Fatalf("%s: succeeded, README says it fails with %q:\n%s", step, c.fails, out)
			}
			if !strings.Contains(string(out), c.fails) {
				t.Fatalf("%s: output lacks %q:\n%s", step, c.fails, out)
			}
		case err != nil:
			t.Fatalf("%s: %v\n%s", step, err, out)
		case c.shows != "" && !strings.Contains(string(out), c.shows):
			t.Fatalf("%s: output lacks %q:\n%s", step, c.shows, out)
		}
	}
}

// waitBackground waits until a background job is up: the service answers /healthz,
// or the clock says it listens.
func waitBackground(tb testing.TB, step, line string, out *syncBuffer, apiPort, clockPort int) {
	tb.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		switch {
		case strings.Contains(line, " serve"):
			if resp, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/healthz", apiPort)); err == nil && resp == 200 {
				return
			}
		case strings.Contains(out.String(), "listening on"):
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("%s: did not come up:\n%s", step, out.String())
}
