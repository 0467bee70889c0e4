package upstream

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/examples/servers/clock/clockserver"
)

func checkClockOutcome(t *testing.T, out domain.InspectionOutcome) {
	t.Helper()
	if !out.OK {
		t.Fatalf("inspection failed: %s: %s", out.Class, out.Message)
	}
	if out.ServerName != clockserver.Name || out.ServerVersion != clockserver.Version || out.ProtocolVersion == "" {
		t.Errorf("server %q %q %q", out.ServerName, out.ServerVersion, out.ProtocolVersion)
	}
	if !out.Capabilities.Tools || !out.Capabilities.Prompts || !out.Capabilities.Resources {
		t.Errorf("capabilities %+v", out.Capabilities)
	}
	if len(out.Tools) != 4 || len(out.Prompts) != 1 || len(out.Resources) != 1 {
		t.Fatalf("tools %d prompts %d resources %d", len(out.Tools), len(out.Prompts), len(out.Resources))
	}
	for _, tool := range out.Tools {
		if tool.Name == "echo" {
			var schema map[string]any
			if err := json.Unmarshal(tool.InputSchema, &schema); err != nil || schema["type"] != "object" {
				t.Errorf("echo schema %s: %v", tool.InputSchema, err)
			}
			var compact bytes.Buffer
			_ = json.Compact(&compact, tool.InputSchema)
			if !bytes.Equal(compact.Bytes(), tool.InputSchema) {
				t.Errorf("schema not compact: %s", tool.InputSchema)
			}
		}
	}
	if out.Duration <= 0 {
		t.Errorf("duration %s", out.Duration)
	}
}

func TestInspect_Clock(t *testing.T) {
	ts, _ := inProcessHTTP(t)
	for name, cfg := range map[string]domain.ServerConfig{
		"stdio": stdioCfg(clockBin),
		"http":  {Type: "http", URL: ts.URL},
	} {
		t.Run(name, func(t *testing.T) {
			// given serverInstructions: true
			cfg.ServerInstructions = &domain.Instructions{Fetch: true}
			// when inspected
			out := Inspect(ctxT(t, 20*time.Second), "clock", cfg, appOpts(t))
			// then the catalogue and the server's instructions are reported
			checkClockOutcome(t, out)
			if out.Instructions != clockserver.Instructions {
				t.Errorf("instructions %q", out.Instructions)
			}
			// and a string is used as given
			cfg.ServerInstructions = &domain.Instructions{Text: "use it wisely"}
			if out := Inspect(ctxT(t, 20*time.Second), "clock", cfg, appOpts(t)); out.Instructions != "use it wisely" {
				t.Errorf("instructions %q", out.Instructions)
			}
			// and none without the flag
			cfg.ServerInstructions = nil
			if out := Inspect(ctxT(t, 20*time.Second), "clock", cfg, appOpts(t)); out.Instructions != "" {
				t.Errorf("instructions %q", out.Instructions)
			}
		})
	}
}

func TestInspect_ToleratesMissingList(t *testing.T) {
	// given a server that announces prompts but answers prompts/list with METHOD_NOT_FOUND
	// (mcp-go sends that as HTTP 404 on 2026-07-28)
	h := server.NewStreamableHTTPServer(clockserver.New())
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Mcp-Method") == string(mcp.MethodPromptsList) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"prompts not supported"}}`))
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	// when inspected
	out := Inspect(ctxT(t, 20*time.Second), "clock", domain.ServerConfig{Type: "http", URL: ts.URL}, appOpts(t))
	// then it succeeds with no prompts
	if !out.OK || len(out.Prompts) != 0 || len(out.Tools) != 4 {
		t.Fatalf("outcome %+v", out)
	}
}

func TestInspect_AuthRequired(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		for _, typ := range []string{"streamable-http", "sse"} {
			// given a server that answers every request with 401/403
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if status == http.StatusUnauthorized {
					w.Header().Set("WWW-Authenticate", `Bearer resource_metadata="http://127.0.0.1/.well-known/oauth-protected-resource"`)
				}
				http.Error(w, "no", status)
			}))
			// when inspected
			out := Inspect(ctxT(t, 20*time.Second), "locked", domain.ServerConfig{Type: typ, URL: ts.URL + "/mcp"}, appOpts(t))
			ts.Close()
			// then it needs OAuth, class auth
			if out.OK || !out.RequiresOAuth || out.Class != domain.FailureAuth {
				t.Errorf("%s %d: outcome %+v", typ, status, out)
			}
		}
	}
}

func TestInspect_Failure(t *testing.T) {
	// given a server that is not there
	out := Inspect(ctxT(t, 20*time.Second), "gone", domain.ServerConfig{Type: "http", URL: "http://127.0.0.1:1/mcp"}, appOpts(t))
	// then the outcome is a failure, class unreachable, with a message and a duration
	if out.OK || out.Class != domain.FailureUnreachable || out.Message == "" || out.RequiresOAuth || out.Duration <= 0 {
		t.Fatalf("outcome %+v", out)
	}
}
