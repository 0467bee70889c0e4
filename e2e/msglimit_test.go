package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
)

// TestMessageLimit_ConfiguredLimitFailsInspectionAndCallsAndIsRecorded runs the
// service with connections.maxMessageBytes at 1 MiB: a server whose catalogue is
// larger fails its inspection as a protocol failure naming the setting, and a tool
// call whose answer is larger fails through /mcp and is recorded as such, while a
// smaller answer on the same server still comes through.
func TestMessageLimit_ConfiguredLimitFailsInspectionAndCallsAndIsRecorded(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "bigserver")
	build := exec.Command("go", "build", "-o", bin, "./upstream/testdata/bigserver")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build bigserver: %v\n%s", err, out)
	}
	// given a service with a 1 MiB limit, a server answering as much as asked and
	// one whose tool list is 2 MB
	cfg := baseConfigWith("  big:\n    command: "+bin+"\n    args: []\n    initTimeout: 20000\n"+
		"  bigcatalogue:\n    command: "+bin+"\n    args: [\"-tooldesc\", \"2000000\"]\n    initTimeout: 20000\n") +
		"connections:\n  maxMessageBytes: 1048576\naudit:\n  toolCalls: metadata\n"
	svc := startService(t, serveOpts{config: writeConfig(t, cfg)})
	svc.waitReady()
	const want = "upstream message exceeds connections.maxMessageBytes (1048576 bytes)"

	// then the inspection of the large catalogue failed as a protocol failure naming the limit
	var failed map[string]any
	for _, ev := range svc.events(adminToken) {
		if ev["type"] == "mcpes.server.inspection_failed.v1" && ev["subject"] == "server/app/bigcatalogue" {
			failed, _ = ev["data"].(map[string]any)
		}
	}
	if failed == nil || failed["class"] != "protocol" || !strings.Contains(failed["message"].(string), want) {
		t.Fatalf("inspection_failed of bigcatalogue: %v", failed)
	}

	// when alice calls big for a 2 MB answer, then for a small one
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, _ := mcpClient(ctx, t, svc.url+"/mcp", aliceToken, "")
	call := func(n int) (*mcp.CallToolResult, error) {
		var req mcp.CallToolRequest
		req.Params.Name, req.Params.Arguments = "big__big", map[string]any{"bytes": n}
		return c.CallTool(ctx, req)
	}
	res, err := call(2_000_000)
	// then the large answer fails naming the limit
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("2 MB answer: %+v, %v; want an error naming the limit", res, err)
	}
	// and a small one still comes through on the same server
	res, err = call(1000)
	if err != nil || res.IsError || len(mcp.GetTextFromContent(res.Content[0])) != 1000 {
		t.Fatalf("small answer: %+v, %v", res, err)
	}
	// and both calls were recorded in alice's stream, the first as an error
	var outcomes []string
	for _, ev := range svc.events(adminToken) {
		if ev["type"] == "mcpes.tool.called.v1" && ev["subject"] == "conn/alice/big" {
			d, _ := ev["data"].(map[string]any)
			outcomes = append(outcomes, d["outcome"].(string))
		}
	}
	if strings.Join(outcomes, ",") != "error,ok" {
		t.Fatalf("tool.called outcomes: %v, want error,ok", outcomes)
	}
}
