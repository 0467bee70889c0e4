package gateway_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/internal/testnpm"
)

// tsOut is what testdata/npm/gateway_client.mjs prints.
type tsOut struct {
	Tools []struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		InputSchema json.RawMessage `json:"inputSchema"`
	} `json:"tools"`
	Calls []struct {
		Result json.RawMessage `json:"result"`
		Error  string          `json:"error"`
	} `json:"calls"`
	Progress []int  `json:"progress"`
	Fatal    string `json:"fatal"`
}

type tsCall struct {
	Name      string         `json:"name"`
	Arguments map[string]any `json:"arguments,omitempty"`
	Progress  bool           `json:"progress,omitempty"`
}

// runTS runs the TypeScript SDK client with plan and decodes its output.
func runTS(tb testing.TB, npm *testnpm.Env, plan map[string]any) tsOut {
	tb.Helper()
	raw, err := json.Marshal(plan)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm.Node, filepath.Join(npm.Dir, "gateway_client.mjs"), string(raw))
	cmd.Dir = npm.Dir
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("ts client: %v: %s", err, out)
	}
	var o tsOut
	if err := json.Unmarshal(out, &o); err != nil {
		tb.Fatalf("ts client output %q: %v", out, err)
	}
	if o.Fatal != "" {
		tb.Fatalf("ts client: %s", o.Fatal)
	}
	return o
}

func TestTypeScriptSDK_TwoUpstreamsSameResultsAsDirect(t *testing.T) {
	npm := testnpm.Require(t)
	// given the clock over streamable HTTP and server-everything over stdio as app
	// servers
	e := newEnv(t)
	clock := startClock(t, "127.0.0.1:0")
	e.put(domain.AppScope, "clock", httpCfg(clock.URL))
	evCmd, evArgs := npm.Command(t, "mcp-server-everything", "stdio")
	e.put(domain.AppScope, "everything", domain.ServerConfig{Command: evCmd, Args: evArgs, InitTimeoutMS: 20000})

	// when the official TypeScript SDK client lists and calls through /mcp with
	// alice's token
	via := runTS(t, npm, map[string]any{"url": e.URL(), "token": aliceToken, "calls": []tsCall{
		{Name: "clock__echo", Arguments: map[string]any{"text": "hello gateway"}},
		{Name: "everything__echo", Arguments: map[string]any{"message": "hello everything"}},
		{Name: "clock__sleep", Arguments: map[string]any{"ms": 100}, Progress: true},
	}})
	// and calls the same upstreams directly
	directClock := runTS(t, npm, map[string]any{"url": clock.URL, "calls": []tsCall{
		{Name: "echo", Arguments: map[string]any{"text": "hello gateway"}},
	}})
	directEv := runTS(t, npm, map[string]any{"command": evCmd, "args": evArgs, "calls": []tsCall{
		{Name: "echo", Arguments: map[string]any{"message": "hello everything"}},
	}})

	// then the gateway lists both servers' tools, prefixed, with the same
	// descriptions and schemas
	byName := map[string]int{}
	for i, tl := range via.Tools {
		byName[tl.Name] = i
	}
	for prefix, direct := range map[string]tsOut{"clock__": directClock, "everything__": directEv} {
		for _, dt := range direct.Tools {
			i, ok := byName[prefix+dt.Name]
			if !ok {
				t.Fatalf("gateway lacks %s%s; has %v", prefix, dt.Name, byName)
			}
			gt := via.Tools[i]
			// (the inspection's catalogue goes through mcp-go's tool type, which drops
			// $schema and writes an empty required list)
			if gt.Description != dt.Description || !jsonEqual(t, dropSchemaKey(t, gt.InputSchema), dropSchemaKey(t, dt.InputSchema)) {
				t.Fatalf("%s differs:\n gateway %s %s\n direct  %s %s", gt.Name, gt.Description, gt.InputSchema,
					dt.Description, dt.InputSchema)
			}
		}
	}
	// and each call gives what the upstream gives directly
	if via.Calls[0].Error != "" || !jsonEqual(t, via.Calls[0].Result, directClock.Calls[0].Result) {
		t.Fatalf("clock echo: gateway %s / %s, direct %s", via.Calls[0].Result, via.Calls[0].Error, directClock.Calls[0].Result)
	}
	if via.Calls[1].Error != "" || !jsonEqual(t, via.Calls[1].Result, directEv.Calls[0].Result) {
		t.Fatalf("everything echo: gateway %s / %s, direct %s", via.Calls[1].Result, via.Calls[1].Error, directEv.Calls[0].Result)
	}
	// and progress notifications reached the TypeScript client
	if via.Calls[2].Error != "" || via.Progress[2] == 0 {
		t.Fatalf("sleep with progress: %s %s progress=%v", via.Calls[2].Result, via.Calls[2].Error, via.Progress)
	}
	if !strings.Contains(string(via.Calls[0].Result), "hello gateway") {
		t.Fatalf("clock echo result %s", via.Calls[0].Result)
	}
}

func jsonEqual(tb testing.TB, a, b json.RawMessage) bool {
	tb.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		return false
	}
	if err := json.Unmarshal(b, &y); err != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// dropSchemaKey removes the top-level "$schema" and an empty "required" of a JSON
// Schema object.
func dropSchemaKey(tb testing.TB, raw json.RawMessage) json.RawMessage {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return raw
	}
	delete(m, "$schema")
	if r, ok := m["required"].([]any); ok && len(r) == 0 {
		delete(m, "required")
	}
	out, err := json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}
