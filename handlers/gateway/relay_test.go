package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/handlers/gateway"
	"github.com/mcpes/mcpes/internal/testnpm"
)

// relayOut is what testdata/npm/relay_client.mjs prints.
type relayOut struct {
	Tools     json.RawMessage `json:"tools"`
	Prompts   json.RawMessage `json:"prompts"`
	Resources json.RawMessage `json:"resources"`
	Templates json.RawMessage `json:"templates"`
	Calls     []struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int             `json:"code"`
			Message string          `json:"message"`
			Data    json.RawMessage `json:"data"`
		} `json:"error"`
	} `json:"calls"`
	Wire  []int             `json:"wire"`
	Asked []string          `json:"asked"`
	Reads []json.RawMessage `json:"reads"`
	Fatal string            `json:"fatal"`
}

func runRelayClient(tb testing.TB, npm *testnpm.Env, plan map[string]any) relayOut {
	tb.Helper()
	raw, err := json.Marshal(plan)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node22(tb, npm), filepath.Join(npm.Dir, "relay_client.mjs"), string(raw))
	cmd.Dir = npm.Dir
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("relay client: %v: %s", err, out)
	}
	var o relayOut
	if err := json.Unmarshal(out, &o); err != nil {
		tb.Fatalf("relay client output %q: %v", out, err)
	}
	if o.Fatal != "" {
		tb.Fatalf("relay client: %s", o.Fatal)
	}
	return o
}

// confEnv is the conformance reference server registered as the app server "conf".
func confEnv(t *testing.T, opts ...envOption) (*env, *testnpm.Env, string) {
	t.Helper()
	npm := testnpm.Require(t)
	ref := startConformanceServer(t, npm)
	e := newEnv(t, opts...)
	e.put(domain.AppScope, "conf", httpCfg(ref))
	return e, npm, ref
}

func TestPerServer_TypeScriptSDKSeesWhatDirectSees(t *testing.T) {
	e, npm, ref := confEnv(t)
	var calls []tsCall
	for range 20 {
		calls = append(calls, tsCall{Name: "test_tool_with_progress", Progress: true})
	}
	calls = append(calls,
		tsCall{Name: "no_such_tool"},
		tsCall{Name: "test_sampling", Arguments: map[string]any{"prompt": "hi"}},
		tsCall{Name: "test_elicitation", Arguments: map[string]any{"message": "name?"}},
		tsCall{Name: "test_elicitation_url"},
		tsCall{Name: "test_roots"},
		tsCall{Name: "annotated_tool"},
	)
	plan := map[string]any{"list": true, "calls": calls}

	// when the official TypeScript SDK client runs the same plan directly and
	// through /mcp/conf
	plan["url"] = ref
	direct := runRelayClient(t, npm, plan)
	plan["url"], plan["token"] = e.ts.URL+"/mcp/conf", aliceToken
	via := runRelayClient(t, npm, plan)

	// then the lists are equal as JSON values
	for _, c := range []struct {
		what   string
		d, via json.RawMessage
	}{{"tools", direct.Tools, via.Tools}, {"prompts", direct.Prompts, via.Prompts},
		{"resources", direct.Resources, via.Resources}, {"templates", direct.Templates, via.Templates}} {
		if !jsonEqual(t, c.d, c.via) {
			t.Errorf("%s differ:\ndirect %s\nvia    %s", c.what, c.d, c.via)
		}
	}
	// and every progress notification is on the wire before its result, 20 of 20
	for i := range 20 {
		if via.Wire[i] != 3 || direct.Wire[i] != 3 {
			t.Errorf("call %d: progress before the result: direct %d, via %d, want 3", i, direct.Wire[i], via.Wire[i])
		}
	}
	// and results and errors (code, message, data) are the same, sampling,
	// elicitation (form and URL) and roots included
	if len(via.Calls) != len(direct.Calls) {
		t.Fatalf("calls: %d via, %d direct", len(via.Calls), len(direct.Calls))
	}
	for i := 20; i < len(calls); i++ {
		d, v := direct.Calls[i], via.Calls[i]
		switch {
		case d.Error != nil:
			if v.Error == nil || v.Error.Code != d.Error.Code || v.Error.Message != d.Error.Message || !jsonEqual(t, d.Error.Data, v.Error.Data) {
				t.Errorf("%s: error direct %+v, via %+v", calls[i].Name, d.Error, v.Error)
			}
		case !jsonEqual(t, d.Result, v.Result):
			t.Errorf("%s: result direct %s, via %s", calls[i].Name, d.Result, v.Result)
		}
	}
	if direct.Calls[20].Error == nil || direct.Calls[20].Error.Code != -32602 {
		t.Errorf("the unknown tool should fail with -32602 and data directly: %+v", direct.Calls[20])
	}
	want := "sampling/createMessage,elicitation/create:form,elicitation/create:url,roots/list"
	if got := strings.Join(via.Asked, ","); got != want {
		t.Errorf("client was asked %s, want %s", got, want)
	}
}

func TestPerServer_TwoClientsEachGetTheirOwnElicitation(t *testing.T) {
	e, npm, _ := confEnv(t)
	// when two clients of alice call the eliciting tool at the same time, each
	// taking a while to answer (so the calls overlap)
	var wg sync.WaitGroup
	outs := make([]relayOut, 2)
	// (the first client's tool waits before it asks, so the second client's calls
	// start in between)
	for i, who := range []string{"first", "second"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var calls []tsCall
			for range 5 {
				calls = append(calls, tsCall{Name: "test_elicitation",
					Arguments: map[string]any{"message": who, "delayMs": 200 * (1 - i)}})
			}
			outs[i] = runRelayClient(t, npm, map[string]any{"url": e.ts.URL + "/mcp/conf", "token": aliceToken,
				"who": who, "calls": calls, "elicitDelayMs": 150})
		}()
	}
	wg.Wait()
	// then each got its own elicitations and its own answers back
	for i, who := range []string{"first", "second"} {
		if len(outs[i].Asked) != 5 {
			t.Errorf("%s was asked %d times, want 5: %v", who, len(outs[i].Asked), outs[i].Asked)
		}
		for _, c := range outs[i].Calls {
			if !strings.Contains(string(c.Result), fmt.Sprintf(`\"response\":\"%s answers\"`, who)) {
				t.Errorf("%s got %s", who, c.Result)
			}
		}
	}
}

func TestAggregate_TypeScriptSDKSeesWhatDirectSeesButTheNames(t *testing.T) {
	e, npm, ref := confEnv(t)
	names := []string{"no_such_tool", "test_sampling", "test_elicitation", "test_elicitation_url", "test_roots", "annotated_tool", "test_error_handling"}
	args := map[string]map[string]any{"test_sampling": {"prompt": "hi"}, "test_elicitation": {"message": "name?"}}
	plan := func(prefix string) map[string]any {
		var calls []tsCall
		for range 20 {
			calls = append(calls, tsCall{Name: prefix + "test_tool_with_progress", Progress: true})
		}
		for _, n := range names {
			calls = append(calls, tsCall{Name: prefix + n, Arguments: args[n]})
		}
		calls = append(calls, tsCall{Name: prefix + "test_resource_link"})
		return map[string]any{"list": true, "calls": calls, "readLinks": true}
	}
	// when the TypeScript SDK client runs the same plan directly and through /mcp
	// (names prefixed with conf__)
	p := plan("")
	p["url"] = ref
	direct := runRelayClient(t, npm, p)
	p = plan("conf" + gateway.Separator)
	p["url"], p["token"] = e.URL(), aliceToken
	via := runRelayClient(t, npm, p)

	// then the lists hold the same entries (as JSON values) but for the names and
	// URIs (the inspected catalogue keeps tools in name order)
	strip := func(b json.RawMessage) json.RawMessage {
		return byName(t, shimAnswer(b, "conf"+gateway.Separator, gateway.ResourceURI("conf", "")))
	}
	for _, c := range []struct {
		what   string
		d, via json.RawMessage
	}{{"tools", direct.Tools, via.Tools}, {"prompts", direct.Prompts, via.Prompts},
		{"resources", direct.Resources, via.Resources}, {"templates", direct.Templates, via.Templates}} {
		if !jsonEqual(t, byName(t, c.d), strip(c.via)) {
			t.Errorf("%s differ:\ndirect %s\nvia    %s", c.what, c.d, c.via)
		}
	}
	// and every progress notification is on the wire before its result, 20 of 20
	for i := range 20 {
		if via.Wire[i] != 3 {
			t.Errorf("call %d: %d progress notifications before the result, want 3", i, via.Wire[i])
		}
	}
	// and results and errors are the same (the unknown tool is the gateway's own
	// -32602: it is not in the offer)
	for i, n := range names {
		d, v := direct.Calls[20+i], via.Calls[20+i]
		switch {
		case n == "no_such_tool":
			if v.Error == nil || v.Error.Code != -32602 {
				t.Errorf("unknown tool through /mcp: %+v", v)
			}
		case d.Error != nil:
			if v.Error == nil || v.Error.Code != d.Error.Code || !jsonEqual(t, d.Error.Data, v.Error.Data) {
				t.Errorf("%s: error direct %+v, via %+v", n, d.Error, v.Error)
			}
		case !jsonEqual(t, d.Result, v.Result):
			t.Errorf("%s: result direct %s, via %s", n, d.Result, v.Result)
		}
	}
	want := "sampling/createMessage,elicitation/create:form,elicitation/create:url,roots/list"
	if got := strings.Join(via.Asked, ","); got != want {
		t.Errorf("client was asked %s, want %s", got, want)
	}
	// and a resource link a tool returns can be read through the aggregate
	if len(via.Reads) != 1 || len(direct.Reads) != 1 || !jsonEqual(t, direct.Reads[0], strip1(via.Reads[0])) {
		t.Errorf("resource link read: direct %s, via %s", direct.Reads, via.Reads)
	}
}

// strip1 strips the aggregate's prefixes from one JSON value.
func strip1(b json.RawMessage) json.RawMessage {
	return shimAnswer(b, "conf"+gateway.Separator, gateway.ResourceURI("conf", ""))
}

// byName sorts a JSON array of objects by their name.
func byName(tb testing.TB, b json.RawMessage) json.RawMessage {
	tb.Helper()
	var list []map[string]any
	if err := json.Unmarshal(b, &list); err != nil {
		tb.Fatalf("list %s: %v", b, err)
	}
	sort.Slice(list, func(i, j int) bool { return fmt.Sprint(list[i]["name"]) < fmt.Sprint(list[j]["name"]) })
	out, _ := json.Marshal(list)
	return out
}

func TestPerServer_StdioUpstreamSameAsDirect(t *testing.T) {
	npm := testnpm.Require(t)
	// given server-everything over stdio as the app server "everything"
	e := newEnv(t)
	cmd, args := npm.Command(t, "mcp-server-everything", "stdio")
	e.put(domain.AppScope, "everything", domain.ServerConfig{Command: cmd, Args: args, InitTimeoutMS: 20000})
	calls := []tsCall{
		{Name: "get-sum", Arguments: map[string]any{"a": 2, "b": 3}},
		{Name: "trigger-long-running-operation", Arguments: map[string]any{"duration": 1, "steps": 4}, Progress: true},
		{Name: "trigger-sampling-request", Arguments: map[string]any{"prompt": "hi", "maxTokens": 10}},
		{Name: "get-roots-list"},
		{Name: "no-such-tool"},
	}
	// when the TypeScript SDK client runs the same plan on its own child and
	// through /mcp/everything
	direct := runRelayClient(t, npm, map[string]any{"command": cmd, "args": args, "calls": calls, "list": true})
	via := runRelayClient(t, npm, map[string]any{"url": e.ts.URL + "/mcp/everything", "token": aliceToken,
		"calls": calls, "list": true})
	// then it sees the same tools (the ones that need sampling and roots included)
	// and gets the same results, the server's requests answered by the client
	if !jsonEqual(t, direct.Tools, via.Tools) {
		t.Errorf("tools differ:\ndirect %s\nvia    %s", direct.Tools, via.Tools)
	}
	for i, c := range calls {
		d, v := direct.Calls[i], via.Calls[i]
		if (d.Error == nil) != (v.Error == nil) || d.Error != nil && (d.Error.Code != v.Error.Code || d.Error.Message != v.Error.Message) {
			t.Errorf("%s: error direct %+v, via %+v", c.Name, d.Error, v.Error)
		} else if d.Error == nil && !jsonEqual(t, d.Result, v.Result) {
			t.Errorf("%s: result direct %s, via %s", c.Name, d.Result, v.Result)
		}
	}
	if got, want := strings.Join(via.Asked, ","), strings.Join(direct.Asked, ","); got != want || !strings.Contains(got, "sampling") {
		t.Errorf("client was asked %s, directly %s", got, want)
	}
	if via.Wire[1] != 4 && via.Wire[1] != 5 {
		t.Errorf("progress notifications of the long operation on the wire before its result: %d", via.Wire[1])
	}
}

func TestAggregate_RootsChangesReachTheServers(t *testing.T) {
	npm := testnpm.Require(t)
	// given server-everything over stdio as the app server "everything"
	e := newEnv(t)
	cmd, args := npm.Command(t, "mcp-server-everything", "stdio")
	e.put(domain.AppScope, "everything", domain.ServerConfig{Command: cmd, Args: args, InitTimeoutMS: 20000})
	// when a client of /mcp, after a call, says its roots changed (and directly)
	direct := runRelayClient(t, npm, map[string]any{"command": cmd, "args": args, "rootsChanged": true,
		"calls": []tsCall{{Name: "get-sum", Arguments: map[string]any{"a": 1, "b": 2}}}})
	via := runRelayClient(t, npm, map[string]any{"url": e.URL(), "token": aliceToken, "rootsChanged": true,
		"calls": []tsCall{{Name: "everything__get-sum", Arguments: map[string]any{"a": 1, "b": 2}}}})
	// then the server asks that client for its roots again, as it does directly
	count := func(asked []string) int {
		n := 0
		for _, a := range asked {
			if a == "roots/list" {
				n++
			}
		}
		return n
	}
	if count(direct.Asked) < 1 || count(via.Asked) != count(direct.Asked) {
		t.Errorf("roots asked: direct %v, via /mcp %v", direct.Asked, via.Asked)
	}
}
