package upstream

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/internal/testnpm"
)

// eras are the two protocol choices every npm peer must work with: mcp-go's
// default (tries 2026-07-28, falls back) and pinned 2025-11-25.
var eras = []struct{ name, pin string }{{"default", ""}, {"pinned-2025-11-25", mcp.ProtocolVersion20251125}}

func everythingEcho(t *testing.T, c *Conn) {
	t.Helper()
	res, err := c.CallTool(ctxT(t, 20*time.Second), "echo", map[string]any{"message": "hello npm"}, nil)
	if err != nil || res.IsError || len(res.Content) == 0 || !strings.Contains(mcp.GetTextFromContent(res.Content[0]), "hello npm") {
		t.Fatalf("echo: %+v, %v", res, err)
	}
}

func TestNPM_Everything_Stdio(t *testing.T) {
	t.Parallel()
	env := testnpm.Require(t)
	cmd, args := env.Command(t, "mcp-server-everything", "stdio")
	cfg := domain.ServerConfig{Command: cmd, Args: args, InitTimeoutMS: 20000}
	for _, era := range eras {
		t.Run(era.name, func(t *testing.T) {
			opts := appOpts(t)
			opts.ProtocolVersion = era.pin
			// given an inspection of the reference server
			out := Inspect(ctxT(t, 30*time.Second), "everything", cfg, opts)
			if !out.OK || len(out.Tools) < 5 || out.ProtocolVersion != mcp.ProtocolVersion20251125 {
				t.Fatalf("inspect: ok=%v %s %s tools=%d proto=%s", out.OK, out.Class, out.Message, len(out.Tools), out.ProtocolVersion)
			}
			// when connected, a tool call works
			c := dialT(t, "everything", cfg, opts)
			everythingEcho(t, c)
			// and killing the process mid-session closes Done with a sensible Err
			pid := c.Pid()
			_ = syscall.Kill(pid, syscall.SIGKILL)
			waitDone(t, c, 10*time.Second)
			if !errors.Is(c.Err(), ErrChildExited) {
				t.Fatalf("Err = %v", c.Err())
			}
			if !processGone(pid) {
				t.Fatalf("pid %d not reaped", pid)
			}
			// and a fresh Dial works
			everythingEcho(t, dialT(t, "everything", cfg, opts))
		})
	}
}

func TestNPM_Everything_HTTP(t *testing.T) {
	t.Parallel()
	env := testnpm.Require(t)
	for _, mode := range []struct{ arg, typ, path string }{
		{"streamableHttp", "streamable-http", "/mcp"},
		{"sse", "sse", "/sse"},
	} {
		for _, era := range eras {
			t.Run(mode.typ+"/"+era.name, func(t *testing.T) {
				// given server-everything listening on a free port (it binds every
				// interface; we connect on loopback)
				p := env.StartHTTP(t, "mcp-server-everything", nil, mode.arg)
				cfg := domain.ServerConfig{Type: mode.typ, URL: fmt.Sprintf("http://127.0.0.1:%d%s", p.Port, mode.path), InitTimeoutMS: 20000}
				opts := appOpts(t)
				opts.ProtocolVersion = era.pin
				opts.ProbeInterval = -1 // the stream alone must notice the loss
				out := Inspect(ctxT(t, 30*time.Second), "everything", cfg, opts)
				if !out.OK || len(out.Tools) < 5 {
					t.Fatalf("inspect: ok=%v %s %s tools=%d", out.OK, out.Class, out.Message, len(out.Tools))
				}
				c := dialT(t, "everything", cfg, opts)
				everythingEcho(t, c)
				// when the server process is killed mid-session
				p.Kill()
				// then Done closes without a request
				waitDone(t, c, 10*time.Second)
				t.Logf("Err: %v", c.Err())
				if Classify(c.Err()) != domain.FailureUnreachable {
					t.Fatalf("Err = %v (class %s)", c.Err(), Classify(c.Err()))
				}
				// and a fresh Dial to a restarted server works
				p2 := env.StartHTTP(t, "mcp-server-everything", nil, mode.arg)
				cfg.URL = fmt.Sprintf("http://127.0.0.1:%d%s", p2.Port, mode.path)
				everythingEcho(t, dialT(t, "everything", cfg, opts))
			})
		}
	}
}

func TestNPM_Memory_Stdio(t *testing.T) {
	t.Parallel()
	env := testnpm.Require(t)
	cmd, args := env.Command(t, "mcp-server-memory")
	for _, era := range eras {
		t.Run(era.name, func(t *testing.T) {
			cfg := domain.ServerConfig{Command: cmd, Args: args, InitTimeoutMS: 20000,
				Env: map[string]string{"MEMORY_FILE_PATH": filepath.Join(t.TempDir(), "memory.jsonl")}}
			opts := appOpts(t)
			opts.ProtocolVersion = era.pin
			out := Inspect(ctxT(t, 30*time.Second), "memory", cfg, opts)
			if !out.OK || len(out.Tools) == 0 {
				t.Fatalf("inspect: %+v", out)
			}
			c := dialT(t, "memory", cfg, opts)
			res, err := c.CallTool(ctxT(t, 20*time.Second), "create_entities", map[string]any{"entities": []any{
				map[string]any{"name": "mcpes", "entityType": "project", "observations": []any{"written in Go"}},
			}}, nil)
			if err != nil || res.IsError {
				t.Fatalf("create_entities: %+v, %v", res, err)
			}
			res, err = c.CallTool(ctxT(t, 20*time.Second), "read_graph", map[string]any{}, nil)
			if err != nil || res.IsError || !strings.Contains(mcp.GetTextFromContent(res.Content[0]), "written in Go") {
				t.Fatalf("read_graph: %+v, %v", res, err)
			}
		})
	}
}
