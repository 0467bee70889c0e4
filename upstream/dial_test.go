package upstream

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/examples/servers/clock/clockserver"
)

// exercise runs the clock server's surface through c.
func exercise(t *testing.T, c *Conn) {
	t.Helper()
	ctx := ctxT(t, 20*time.Second)
	tools, err := c.ListTools(ctx)
	if err != nil || len(tools) != 4 {
		t.Fatalf("ListTools: %d tools, %v", len(tools), err)
	}
	res, err := c.CallTool(ctx, "echo", map[string]any{"text": "hi there"}, nil)
	if err != nil || res.IsError || mcp.GetTextFromContent(res.Content[0]) != "hi there" {
		t.Fatalf("echo: %+v, %v", res, err)
	}
	res, err = c.CallTool(ctx, "add", map[string]any{"a": 2, "b": 3.5}, nil)
	if err != nil || mcp.GetTextFromContent(res.Content[0]) != "5.5" {
		t.Fatalf("add: %+v, %v", res, err)
	}
	prompts, err := c.ListPrompts(ctx)
	if err != nil || len(prompts) != 1 || prompts[0].Name != "time-in" {
		t.Fatalf("ListPrompts: %+v, %v", prompts, err)
	}
	gp, err := c.GetPrompt(ctx, "time-in", map[string]string{"city": "Paris"})
	if err != nil || len(gp.Messages) != 1 {
		t.Fatalf("GetPrompt: %+v, %v", gp, err)
	}
	rs, err := c.ListResources(ctx)
	if err != nil || len(rs) != 1 || rs[0].URI != clockserver.ResourceURI {
		t.Fatalf("ListResources: %+v, %v", rs, err)
	}
	rr, err := c.ReadResource(ctx, clockserver.ResourceURI)
	if err != nil || len(rr.Contents) != 1 {
		t.Fatalf("ReadResource: %+v, %v", rr, err)
	}
	if err := c.Health(ctx); err != nil {
		t.Fatalf("Health: %v", err)
	}
	if c.ServerInfo().Name != clockserver.Name || c.Instructions() != clockserver.Instructions {
		t.Fatalf("server info %+v, instructions %q", c.ServerInfo(), c.Instructions())
	}
}

func TestDial_ClockEveryTransport(t *testing.T) {
	ts, _ := inProcessHTTP(t)
	httpURL, _ := clockProcess(t, "-http")
	sseURL, _ := clockProcess(t, "-sse")
	cases := []struct {
		name    string
		cfg     domain.ServerConfig
		pin     string
		wantVer string
	}{
		{"stdio", stdioCfg(clockBin), "", mcp.ProtocolVersion20260728},
		{"stdio-legacy", stdioCfg(clockBin), mcp.ProtocolVersion20251125, mcp.ProtocolVersion20251125},
		{"http-inprocess", domain.ServerConfig{Type: "streamable-http", URL: ts.URL}, "", mcp.ProtocolVersion20260728},
		{"http-inprocess-legacy", domain.ServerConfig{Type: "http", URL: ts.URL}, mcp.ProtocolVersion20251125, mcp.ProtocolVersion20251125},
		{"http-subprocess", domain.ServerConfig{Type: "streamable-http", URL: httpURL}, "", mcp.ProtocolVersion20260728},
		{"sse-subprocess", domain.ServerConfig{Type: "sse", URL: sseURL}, "", mcp.ProtocolVersion20260728},
		{"sse-subprocess-legacy", domain.ServerConfig{URL: sseURL}, mcp.ProtocolVersion20251125, mcp.ProtocolVersion20251125},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// given the clock server on this transport
			opts := appOpts(t)
			opts.ProtocolVersion = tc.pin
			// when we dial it
			c := dialT(t, "clock", tc.cfg, opts)
			// then the protocol era is the expected one and every method works
			if c.ProtocolVersion() != tc.wantVer {
				t.Errorf("protocol %s, want %s", c.ProtocolVersion(), tc.wantVer)
			}
			exercise(t, c)
			pid := c.Pid()
			if err := c.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if pid != 0 && !processGone(pid) {
				t.Errorf("stdio child %d not reaped after Close", pid)
			}
			if tc.cfg.TransportType() == domain.TransportStdio && pid == 0 {
				t.Error("no pid for a stdio connection")
			}
			select {
			case <-c.Done():
			default:
				t.Error("Done not closed after Close")
			}
			if !errors.Is(c.Err(), ErrClosed) {
				t.Errorf("Err after Close = %v", c.Err())
			}
			if err := c.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if _, err := c.ListTools(ctxT(t, time.Second)); err == nil || !strings.Contains(err.Error(), "closed") {
				t.Errorf("ListTools after Close: %v", err)
			}
		})
	}
}

func TestConn_CallTool_ProgressAndCancel(t *testing.T) {
	ts, _ := inProcessHTTP(t)
	for name, cfg := range map[string]domain.ServerConfig{
		"stdio": stdioCfg(clockBin),
		"http":  {Type: "http", URL: ts.URL},
	} {
		t.Run(name, func(t *testing.T) {
			c := dialT(t, "clock", cfg, appOpts(t))
			// given a progress callback
			var mu sync.Mutex
			var got []Progress
			res, err := c.CallTool(ctxT(t, 10*time.Second), "sleep", map[string]any{"ms": 100}, func(p Progress) {
				mu.Lock()
				got = append(got, p)
				mu.Unlock()
			})
			if err != nil || res.IsError {
				t.Fatalf("sleep: %+v %v", res, err)
			}
			mu.Lock()
			n := len(got)
			mu.Unlock()
			t.Logf("%s: %d progress notifications", name, n)
			if n == 0 {
				t.Errorf("no progress notifications")
			}
			// when the context ends before the tool does
			start := time.Now()
			_, err = c.CallTool(ctxT(t, 100*time.Millisecond), "sleep", map[string]any{"ms": 5000}, nil)
			// then the call returns at the deadline with a timeout class
			if err == nil || Classify(err) != domain.FailureTimeout || time.Since(start) > 2*time.Second {
				t.Fatalf("cancelled sleep: %v (class %s) after %s", err, Classify(err), time.Since(start))
			}
			// and the per-request timeout of the config applies without a deadline
			if err := c.Health(ctxT(t, 5*time.Second)); err != nil {
				t.Fatalf("Health after cancel: %v", err)
			}
		})
	}
}
