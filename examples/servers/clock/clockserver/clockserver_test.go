package clockserver_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpes/mcpes/examples/servers/clock/clockserver"
)

func call(t *testing.T, ctx context.Context, c *client.Client, name string, args map[string]any) (*mcp.CallToolResult, error) {
	t.Helper()
	var req mcp.CallToolRequest
	req.Params.Name, req.Params.Arguments = name, args
	return c.CallTool(ctx, req)
}

func TestClock_InProcess(t *testing.T) {
	// given the clock server behind an in-process client
	c, err := client.NewInProcessClient(clockserver.New())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var in mcp.InitializeRequest
	in.Params.ClientInfo = mcp.Implementation{Name: "test", Version: "0"}
	if _, err := c.Initialize(ctx, in); err != nil {
		t.Fatal(err)
	}
	// then each tool answers
	res, err := call(t, ctx, c, "now", map[string]any{"zone": "Asia/Tokyo"})
	if err != nil || res.IsError || !strings.HasSuffix(mcp.GetTextFromContent(res.Content[0]), "+09:00") {
		t.Fatalf("now: %+v %v", res, err)
	}
	if res, _ := call(t, ctx, c, "now", map[string]any{"zone": "Mars/Olympus"}); res == nil || !res.IsError {
		t.Fatalf("now with a bad zone: %+v", res)
	}
	if res, err := call(t, ctx, c, "add", map[string]any{"a": 40, "b": 2}); err != nil || mcp.GetTextFromContent(res.Content[0]) != "42" {
		t.Fatalf("add: %+v %v", res, err)
	}
	if res, err := call(t, ctx, c, "echo", map[string]any{"text": "x y"}); err != nil || mcp.GetTextFromContent(res.Content[0]) != "x y" {
		t.Fatalf("echo: %+v %v", res, err)
	}
	// and sleep stops when its request is cancelled
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	start := time.Now()
	_, err = call(t, short, c, "sleep", map[string]any{"ms": 5000})
	if err == nil || !strings.Contains(err.Error(), "deadline exceeded") || time.Since(start) > 2*time.Second {
		t.Fatalf("sleep: %v after %s", err, time.Since(start))
	}
	// and the prompt and resource are served
	var gp mcp.GetPromptRequest
	gp.Params.Name, gp.Params.Arguments = "time-in", map[string]string{"city": "Lima"}
	if p, err := c.GetPrompt(ctx, gp); err != nil || len(p.Messages) != 1 {
		t.Fatalf("prompt: %+v %v", p, err)
	}
	var rr mcp.ReadResourceRequest
	rr.Params.URI = clockserver.ResourceURI
	if r, err := c.ReadResource(ctx, rr); err != nil || len(r.Contents) != 1 {
		t.Fatalf("resource: %+v %v", r, err)
	}
}
