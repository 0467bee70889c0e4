package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpes/mcpes/connections"
	"github.com/mcpes/mcpes/handlers"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/registry"
	"github.com/mcpes/mcpes/store/memory"
	"github.com/mcpes/mcpes/upstream"
)

// FuzzPutServerBody sends arbitrary bodies to PUT /v1/servers/{name} as the admin.
// Whatever the body, the handler must not panic, must answer 200/201 (accepted), 400 or
// 413 with a JSON body, and must write nothing when it refuses. Inspection is off, so
// an accepted config is stored and never run.
func FuzzPutServerBody(f *testing.F) {
	for _, seed := range []string{
		`{"url":"http://127.0.0.1:1/mcp"}`,
		`{"type":"streamable-http","url":"http://127.0.0.1:1/mcp","headers":{"Authorization":"Bearer x"},"timeout":1000}`,
		`{"type":"sse","url":"http://example.com/sse","startup":false,"customUserVars":{"K":{"title":"t"}}}`,
		`{"command":"node","args":["server.js"],"env":{"A":"${HOME}","B":"plain"}}`,
		`{"type":"websocket","url":"ws://127.0.0.1:1/ws","serverInstructions":true}`,
		`{"url":"http://127.0.0.1:1/mcp","serverInstructions":"use me","x-extra":{"nested":[1,2,3]}}`,
		`{"url":"http://127.0.0.1:1/mcp","timeout":"soon"}`,
		`{"url": `, `[]`, `null`, `""`, `{}`, `{"type":7}`, `{"headers":{"":""}}`,
		`{"url":"http://127.0.0.1:1/mcp"} trailing`, "\xff\xfe{}", `{"args":[null]}`,
	} {
		f.Add(seed)
	}
	st := memory.New()
	ctx := context.Background()
	servers, err := projections.Load(ctx, st, projections.Options{NoSnapshot: true})
	if err != nil {
		f.Fatal(err)
	}
	reg, err := registry.New(st, servers, &upstream.Guard{}, registry.Options{InspectOnPut: registry.InspectOff,
		LookupEnv: func(string) (string, bool) { return "set", true }})
	if err != nil {
		f.Fatal(err)
	}
	mgr := connections.NewManager(st, servers, connections.Options{IdleTimeout: time.Hour})
	h := handlers.New(handlers.Deps{Store: st, Servers: servers, Registry: reg, Manager: mgr, MaxBodyBytes: 8 << 10})
	f.Cleanup(func() {
		_ = mgr.Close(ctx)
		_ = reg.Close()
		_ = st.Close()
	})

	f.Fuzz(func(t *testing.T, body string) {
		before, _, _ := st.Head(ctx)
		req := httptest.NewRequest("PUT", "/v1/servers/fuzzed", strings.NewReader(body))
		req.RemoteAddr = "127.0.0.1:1234" // no tokens configured: loopback is the admin
		req.Host = "127.0.0.1:7300"
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		after, _, _ := st.Head(ctx)

		switch rec.Code {
		case http.StatusOK, http.StatusCreated:
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if after != before {
				t.Fatalf("refused with %d but wrote events (%d -> %d): %s", rec.Code, before, after, rec.Body)
			}
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("response is not JSON: %q", rec.Body)
		}
	})
}
