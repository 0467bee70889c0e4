package registry_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/registry"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/upstream"
)

func httpConfig(url string) domain.ServerConfig {
	return domain.ServerConfig{Type: domain.TransportStreamableHTTP, URL: url, InitTimeoutMS: 5000}
}

func TestService_Put_RegistersChangesAndIgnoresIdentical(t *testing.T) {
	// given an empty registry that does not inspect
	h := newHarness(t, nil, registry.Options{InspectOnPut: registry.InspectOff})
	ctx := ctxT(t, 10*time.Second)
	cfg := httpConfig("https://mcp.example.com/mcp")

	// when a server is put for the first time
	res, err := h.Svc.Put(ctx, "admin", domain.AppScope, "docs", cfg)
	// then it is registered at the position of its event
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.Version != 1 || len(res.Changed) != 0 {
		t.Fatalf("first put = %+v, want created at version 1", res)
	}

	// when the identical config is put again
	res, err = h.Svc.Put(ctx, "admin", domain.AppScope, "docs", cfg)
	// then nothing is written and the version is unchanged
	if err != nil {
		t.Fatal(err)
	}
	if res.Created || res.Changed != nil || res.Version != 1 || h.head(t) != 1 {
		t.Fatalf("identical put = %+v, head %d; want no change", res, h.head(t))
	}

	// when a field changes
	cfg.TimeoutMS = 1234
	res, err = h.Svc.Put(ctx, "admin", domain.AppScope, "docs", cfg)
	// then a config change naming the field is recorded
	if err != nil {
		t.Fatal(err)
	}
	if res.Created || !slices.Equal(res.Changed, []string{"timeout"}) || res.Version != 2 {
		t.Fatalf("changed put = %+v, want changed [timeout] at version 2", res)
	}
	if got := h.streamTypes(t, domain.AppScope, "docs"); !slices.Equal(got,
		[]string{events.TypeServerRegistered, events.TypeServerConfigChanged}) {
		t.Fatalf("stream = %v", got)
	}
	if ev := readEvent(t, h, 1); ev.Actor != "admin" || !strings.HasPrefix(ev.Source, "mcpes://") {
		t.Fatalf("event meta = actor %q source %q", ev.Actor, ev.Source)
	}
}

func TestService_Put_UnknownFieldsAreWarnings(t *testing.T) {
	// given a config with a field mcpes does not know
	h := newHarness(t, nil, registry.Options{InspectOnPut: registry.InspectOff})
	cfg := httpConfig("https://mcp.example.com/mcp")
	cfg.Extra = map[string]domain.RawJSON{"flavour": domain.RawJSON(`"vanilla"`)}

	// when it is put
	res, err := h.Svc.Put(ctx(t), "admin", domain.AppScope, "docs", cfg)

	// then it is registered and the field is reported as a warning, and kept
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 1 || res.Warnings[0].Field != "flavour" || !res.Warnings[0].Warning {
		t.Fatalf("warnings = %+v", res.Warnings)
	}
	if got := h.state(domain.AppScope, "docs").Config.Extra["flavour"]; string(got) != `"vanilla"` {
		t.Fatalf("extra field = %s", got)
	}
}

func TestService_Put_UserScopeRefusals_WriteNothing(t *testing.T) {
	cases := map[string]struct {
		cfg   domain.ServerConfig
		field string
	}{
		"stdio": {cfg: domain.ServerConfig{Command: "/bin/sh", Args: []string{"-c", "id"}}, field: "type"},
		"env placeholder in header": {cfg: domain.ServerConfig{Type: "streamable-http", URL: "https://mcp.example.com/mcp",
			Headers: map[string]string{"Authorization": "Bearer ${HOME}"}}, field: "headers.Authorization"},
		"placeholder in url": {cfg: domain.ServerConfig{Type: "sse", URL: "https://${HOST}/sse"}, field: "url"},
		"someone else's secret ref": {cfg: domain.ServerConfig{Type: "streamable-http", URL: "https://mcp.example.com/mcp",
			Headers: map[string]string{"Authorization": "secret:0123456789abcdef0123456789abcdef"}}, field: "headers.Authorization"},
		"someone else's secret ref as oauth client secret": {cfg: domain.ServerConfig{Type: "streamable-http", URL: "https://mcp.example.com/mcp",
			OAuth: &domain.OAuthConfig{ClientID: "c", ClientSecret: "secret:0123456789abcdef0123456789abcdef"}},
			field: "oauth.client_secret"},
		"secret ref in requestHeaders": {cfg: domain.ServerConfig{Type: "streamable-http", URL: "https://mcp.example.com/mcp",
			RequestHeaders: map[string]string{"X": "secret:0123456789abcdef0123456789abcdef"}}, field: "requestHeaders.X"},
		"secret ref as api key": {cfg: domain.ServerConfig{Type: "streamable-http", URL: "https://mcp.example.com/mcp",
			APIKey: &domain.APIKey{Source: "user", AuthorizationType: "bearer", Key: "secret:0123456789abcdef0123456789abcdef"}}, field: "apiKey.key"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			// given an empty registry
			h := newHarness(t, nil, registry.Options{})

			// when an owner puts the config
			_, err := h.Svc.Put(ctx(t), "owner:alice", domain.UserScope("alice"), "mine", tc.cfg)

			// then it is refused as invalid, naming the field, and no event is written
			var verr *domain.ValidationError
			if !errors.As(err, &verr) || !errors.Is(err, domain.ErrInvalidConfig) {
				t.Fatalf("error = %v, want a *domain.ValidationError", err)
			}
			if !slices.ContainsFunc(verr.Problems, func(p domain.Problem) bool { return p.Field == tc.field }) {
				t.Fatalf("problems = %+v, want one about %s", verr.Problems, tc.field)
			}
			if h.head(t) != 0 {
				t.Fatalf("head = %d, want no event", h.head(t))
			}
		})
	}
}

func TestService_Put_InvalidConfig_ListsEveryProblem(t *testing.T) {
	// given a config with two bad fields
	h := newHarness(t, nil, registry.Options{})
	cfg := domain.ServerConfig{Type: "carrier-pigeon", URL: "not a url", TimeoutMS: -5}

	// when it is put
	_, err := h.Svc.Put(ctx(t), "admin", domain.AppScope, "bad", cfg)

	// then every problem is listed and nothing is written
	var verr *domain.ValidationError
	if !errors.As(err, &verr) || len(verr.Problems) < 2 {
		t.Fatalf("error = %v, want several problems", err)
	}
	if h.head(t) != 0 {
		t.Fatalf("head = %d, want 0", h.head(t))
	}
}

func TestService_Remove(t *testing.T) {
	// given a registered server
	h := newHarness(t, nil, registry.Options{InspectOnPut: registry.InspectOff})
	if _, err := h.Svc.Put(ctx(t), "admin", domain.AppScope, "docs", httpConfig("https://mcp.example.com/mcp")); err != nil {
		t.Fatal(err)
	}

	// when it is removed
	err := h.Svc.Remove(ctx(t), "admin", domain.AppScope, "docs")

	// then the removal is recorded and the projection no longer has it
	if err != nil {
		t.Fatal(err)
	}
	if h.state(domain.AppScope, "docs").Exists {
		t.Fatal("server still exists")
	}

	// when an unknown server is removed
	err = h.Svc.Remove(ctx(t), "admin", domain.AppScope, "docs")

	// then the error says it was not found, and nothing is written
	wantErr(t, err, domain.ErrServerNotFound)
	if err.Error() != "server docs not found" {
		t.Fatalf("message = %q", err)
	}
	if h.head(t) != 2 {
		t.Fatalf("head = %d, want 2", h.head(t))
	}
}

func TestService_Put_SecretsAreSealedDeterministically(t *testing.T) {
	// given a user-scope config carrying a token in a header
	h := newHarness(t, nil, registry.Options{InspectOnPut: registry.InspectOff})
	const token = "Bearer tok-4f1d9c2be7a35e60"
	cfg := httpConfig("https://mcp.example.com/mcp")
	cfg.Headers = map[string]string{"Authorization": token}

	// when it is put twice
	for range 2 {
		if _, err := h.Svc.Put(ctx(t), "owner:alice", domain.UserScope("alice"), "mine", cfg); err != nil {
			t.Fatal(err)
		}
	}

	// then one event is written, carrying a reference that resolves to the token
	if h.head(t) != 1 {
		t.Fatalf("head = %d, want 1 (the second put was identical)", h.head(t))
	}
	ref := h.state(domain.UserScope("alice"), "mine").Config.Headers["Authorization"]
	if !domain.IsSecretRef(ref) {
		t.Fatalf("stored header = %q, want a secret reference", ref)
	}
	v, err := h.Store.Secret(ctx(t), ref)
	if err != nil || string(v) != token {
		t.Fatalf("secret %s = %q, %v", ref, v, err)
	}
	// and no stored record carries the token in clear
	assertNoRecordContains(t, h, token)

	// when the owner sends back the reference their own server already holds
	cfg.Headers = map[string]string{"Authorization": ref}
	_, err = h.Svc.Put(ctx(t), "owner:alice", domain.UserScope("alice"), "mine", cfg)
	// then it is accepted and nothing changes
	if err != nil || h.head(t) != 1 {
		t.Fatalf("put of own reference: err %v, head %d", err, h.head(t))
	}
}

func assertNoRecordContains(tb testing.TB, h *harness, secret string) {
	tb.Helper()
	n := 0
	err := h.Store.ReadRecords(context.Background(), 1, func(pos uint64, rec []byte) error {
		n++
		if bytes.Contains(rec, []byte(secret)) {
			tb.Errorf("record %d contains the secret in clear", pos)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	if n == 0 {
		tb.Fatal("no records scanned")
	}
}

func readEvent(tb testing.TB, h *harness, pos uint64) events.Envelope {
	tb.Helper()
	evs, err := h.Store.ReadAll(context.Background(), pos, 1)
	if err != nil || len(evs) != 1 {
		tb.Fatalf("read %d: %v", pos, err)
	}
	return evs[0]
}

func ctx(tb testing.TB) context.Context { return ctxT(tb, 30*time.Second) }

func TestService_Put_UserScopeURLToLoopbackRefused(t *testing.T) {
	// given a real server on loopback, which an owner must not make mcpes reach
	h := newHarness(t, nil, registry.Options{})
	up := startMCP(t, "alpha")
	for _, url := range []string{up.URL, "http://localhost:9/mcp", "http://169.254.169.254/latest", "http://[::ffff:127.0.0.1]:80/mcp"} {
		// when an owner registers it
		_, err := h.Svc.Put(ctx(t), "owner:mallory", domain.UserScope("mallory"), "sneaky", httpConfig(url))

		// then the SSRF guard refuses it with a clear error, and nothing is written
		wantErr(t, err, registry.ErrBlockedURL)
		wantErr(t, err, upstream.ErrBlockedAddress)
		if !strings.Contains(err.Error(), "sneaky") {
			t.Fatalf("error %q does not name the server", err)
		}
		if h.head(t) != 0 {
			t.Fatalf("%s: head = %d, want no event", url, h.head(t))
		}
	}
	if up.Inspections() != 0 {
		t.Fatal("the loopback server was contacted")
	}

	// when the operator registers the same URL in the app scope
	_, err := h.Svc.Put(ctx(t), "admin", domain.AppScope, "local", httpConfig(up.URL))
	// then it is trusted
	if err != nil || !h.state(domain.AppScope, "local").Inspected {
		t.Fatalf("app-scope put: %v", err)
	}
}

func TestService_Put_ConcurrentWritersNeverLoseTheStream(t *testing.T) {
	// given a registered server
	h := newHarness(t, nil, registry.Options{InspectOnPut: registry.InspectOff})
	if _, err := h.Svc.Put(ctx(t), "admin", domain.AppScope, "busy", httpConfig("https://busy.example.com/mcp")); err != nil {
		t.Fatal(err)
	}

	// when eight writers change it at once, each to its own timeout
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			cfg := httpConfig("https://busy.example.com/mcp")
			cfg.TimeoutMS = int64(1000 + i)
			_, errs[i] = h.Svc.Put(ctx(t), "admin", domain.AppScope, "busy", cfg)
		})
	}
	wg.Wait()

	// then each either landed or gave up with ErrConflict, and the projection holds the
	// config of the last event of the stream
	landed := 0
	for _, err := range errs {
		switch {
		case err == nil:
			landed++
		case errors.Is(err, registry.ErrConflict) && errors.Is(err, store.ErrVersionConflict):
		default:
			t.Fatalf("put: %v", err)
		}
	}
	if landed == 0 {
		t.Fatal("no writer landed")
	}
	evs, err := h.Store.ReadStream(ctx(t), domain.ServerStream(domain.AppScope, "busy"), 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1+landed {
		t.Fatalf("stream has %d events, want 1 + %d landed", len(evs), landed)
	}
	fact, err := events.Decode(evs[len(evs)-1])
	if err != nil {
		t.Fatal(err)
	}
	if got := h.state(domain.AppScope, "busy"); !got.Config.Equal(fact.(domain.ServerConfigChanged).Config) {
		t.Fatalf("projection %+v differs from the last event", got.Config)
	}
}
