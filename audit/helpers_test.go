package audit_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpes/mcpes/connections"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/examples/servers/clock/clockserver"
	"github.com/mcpes/mcpes/internal/testevents"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/memory"
	"github.com/mcpes/mcpes/upstream"
)

// testSecretRef is the header secret every registered test server carries.
const testSecretRef = "secret:0123456789abcdef0123456789abcdef"

// world is a log with the real projection following it and a real connection
// manager writing decisions into it.
type world struct {
	tb      testing.TB
	st      store.Store
	servers *projections.Servers
	mgr     *connections.Manager
}

func newWorld(tb testing.TB) *world {
	tb.Helper()
	return newWorldOn(tb, memory.New(), true)
}

// newWorldOn builds the world on st; closeStore says whether cleanup closes st.
func newWorldOn(tb testing.TB, st store.Store, closeStore bool) *world {
	tb.Helper()
	ctx := context.Background()
	servers, err := projections.Load(ctx, st, projections.Options{NoSnapshot: true})
	if err != nil {
		tb.Fatalf("load projection: %v", err)
	}
	if err := st.PutSecret(ctx, testSecretRef, []byte("key-in-clear")); err != nil {
		tb.Fatalf("put secret: %v", err)
	}
	secrets := func(ref string) (string, error) {
		b, err := st.Secret(context.Background(), ref)
		return string(b), err
	}
	mgr := connections.NewManager(st, servers, connections.Options{Source: "mcpes://test", IdleTimeout: time.Hour,
		Upstream: upstream.Options{Secrets: secrets, Guard: &upstream.Guard{AllowedDomains: []string{"127.0.0.1"}}}})
	w := &world{tb: tb, st: st, servers: servers, mgr: mgr}
	tb.Cleanup(func() {
		w.closeManager()
		if closeStore {
			_ = st.Close()
		}
	})
	return w
}

func (w *world) closeManager() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.mgr.Close(ctx); err != nil {
		w.tb.Errorf("close manager: %v", err)
	}
}

// append writes one fact as actor and returns its position.
func (w *world) append(actor string, fact any) uint64 {
	w.tb.Helper()
	return testevents.Append(w.tb, w.st, actor, fact)
}

// register records a streamable-HTTP server at url in scope and a successful
// inspection of it; it returns the config version.
func (w *world) register(actor string, scope domain.Scope, name, url string) uint64 {
	w.tb.Helper()
	cfg := domain.ServerConfig{Type: domain.TransportStreamableHTTP, URL: url, InitTimeoutMS: 5000,
		Headers: map[string]string{"X-Api-Key": testSecretRef}}
	v := w.append(actor, domain.ServerRegistered{Scope: scope, Name: name, Config: cfg})
	tools := []domain.Tool{{Name: "now"}, {Name: "echo"}}
	w.append("system", domain.ServerInspected{Scope: scope, Name: name, ConfigVersion: v, Tools: tools,
		Digest: domain.CatalogueDigest(tools), Capabilities: domain.Capabilities{Tools: true}})
	return v
}

// get asks owner's repository for a connection as actor.
func (w *world) get(actor, owner, name string) (*connections.Connection, error) {
	ctx := connections.WithActor(context.Background(), actor)
	return w.mgr.Repo(owner).Get(ctx, name)
}

func (w *world) head() uint64 {
	w.tb.Helper()
	h, _, err := w.st.Head(context.Background())
	if err != nil {
		w.tb.Fatal(err)
	}
	return h
}

// clockURL serves the clock example server over streamable HTTP on loopback.
func clockURL(tb testing.TB) string {
	tb.Helper()
	ts := httptest.NewServer(server.NewStreamableHTTPServer(clockserver.New()))
	tb.Cleanup(func() {
		ts.CloseClientConnections()
		ts.Close()
	})
	return ts.URL + "/mcp"
}

// between returns a time after everything written so far and before anything
// written next.
func between(tb testing.TB) time.Time {
	tb.Helper()
	time.Sleep(2 * time.Millisecond)
	t := time.Now()
	time.Sleep(2 * time.Millisecond)
	return t
}
