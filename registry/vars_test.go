package registry_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/registry"
)

// startGated serves an MCP server that answers 401 unless the request carries the
// wanted headers.
func startGated(tb testing.TB, want map[string]string) *mcpServer {
	tb.Helper()
	m := &mcpServer{MCP: newMCP("alpha")}
	inner := m.handler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range want {
			if r.Header.Get(k) != v {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		}
		inner.ServeHTTP(w, r)
	}))
	tb.Cleanup(ts.Close)
	m.URL = ts.URL + "/mcp"
	return m
}

func TestService_Inspect_AppScopeExpandsVarsAndResolvesSecrets(t *testing.T) {
	// given an app server that wants a bearer token from the environment, a team
	// name from the environment and a literal API key from the config file
	env := map[string]string{"TOKEN": "env-tok-61c2", "TEAM": "blue"}
	h := newHarness(t, nil, registry.Options{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	up := startGated(t, map[string]string{"Authorization": "Bearer env-tok-61c2", "X-Team": "blue", "X-Api-Key": "file-key-9d"})
	cfg := httpConfig(up.URL)
	cfg.Headers = map[string]string{"Authorization": "Bearer ${TOKEN}", "X-Team": "${TEAM}", "X-Api-Key": "file-key-9d"}

	// when it is registered and inspected
	if _, err := h.Svc.Put(ctx(t), "admin", domain.AppScope, "gated", cfg); err != nil {
		t.Fatal(err)
	}

	// then the inspection got through with every header expanded or resolved
	st := h.state(domain.AppScope, "gated")
	if st.InspectionFailed || st.RequiresOAuth() || st.LastSuccess == nil {
		t.Fatalf("state = %+v (%s), want inspected", st, st.FailureMessage)
	}
	// and the stored config keeps the placeholder and no literal key
	if got := st.Config.Headers["X-Team"]; got != "${TEAM}" {
		t.Fatalf("X-Team stored as %q", got)
	}
	if got := st.Config.Headers["X-Api-Key"]; !domain.IsSecretRef(got) {
		t.Fatalf("X-Api-Key stored as %q, want a reference", got)
	}
	assertNoRecordContains(t, h, "file-key-9d")
	assertNoRecordContains(t, h, "env-tok-61c2")
}
