package connections

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/examples/servers/clock/clockserver"
	"github.com/mcpes/mcpes/internal/testevents"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/memory"
	"github.com/mcpes/mcpes/upstream"
)

// env is a repository under test: a store, the projection following it, a manager,
// and a count of dial attempts. Cleanup closes the manager and checks that replaying
// every recorded decision gives no mismatch.
type env struct {
	tb      testing.TB
	st      store.Store
	servers *projections.Servers
	m       *Manager
	dials   atomic.Int64
	byName  sync.Map // server name -> *atomic.Int64 dial attempts
	// forged is set by tests that tamper with the log on purpose.
	forged bool
}

// dialsOf returns the dial attempts made for server name.
func (e *env) dialsOf(name string) int64 {
	v, ok := e.byName.Load(name)
	if !ok {
		return 0
	}
	return v.(*atomic.Int64).Load()
}

func newEnv(tb testing.TB, mod func(*Options)) *env {
	tb.Helper()
	return newEnvOn(tb, memory.New(), mod)
}

func newEnvOn(tb testing.TB, st store.Store, mod func(*Options)) *env {
	tb.Helper()
	ctx := context.Background()
	servers, err := projections.Load(ctx, st, projections.Options{})
	if err != nil {
		tb.Fatalf("load projection: %v", err)
	}
	e := &env{tb: tb, st: st, servers: servers}
	quiet := slog.New(slog.DiscardHandler)
	opts := Options{Source: "mcpes://test", IdleTimeout: time.Hour, Logger: quiet,
		Upstream: upstream.Options{Logger: quiet, Guard: &upstream.Guard{AllowedDomains: []string{"127.0.0.1"}}}}
	if mod != nil {
		mod(&opts)
	}
	base := opts.Dial
	if base == nil {
		base = UpstreamDial(opts.Upstream)
	}
	opts.Dial = func(ctx context.Context, req DialRequest) (Session, error) {
		e.dials.Add(1)
		v, _ := e.byName.LoadOrStore(req.Name, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
		return base(ctx, req)
	}
	e.m = NewManager(st, servers, opts)
	tb.Cleanup(func() {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := e.m.Close(cctx); err != nil {
			tb.Errorf("close manager: %v", err)
		}
		rep, err := ReplayDecisions(ctx, st, 0, nil)
		if e.forged {
			_ = st.Close()
			return
		}
		if err != nil {
			tb.Errorf("replay decisions: %v", err)
		}
		for _, mm := range rep.Mismatches {
			tb.Errorf("replay mismatch: %s", mm)
		}
		_ = st.Close()
	})
	return e
}

// append writes one server fact through the store, as the registry would.
func (e *env) append(fact any) uint64 {
	e.tb.Helper()
	return testevents.Append(e.tb, e.st, "admin", fact)
}

func newTestID() string { return (Options{}).withDefaults().NewID() }

// put registers name in scope, or changes its config, and returns the config version.
func (e *env) put(scope domain.Scope, name string, cfg domain.ServerConfig) uint64 {
	e.tb.Helper()
	if st, ok := e.servers.State(scope, name); ok && st.Exists {
		return e.append(domain.ServerConfigChanged{Scope: scope, Name: name, Config: cfg, Changed: []string{"url"}})
	}
	return e.append(domain.ServerRegistered{Scope: scope, Name: name, Config: cfg})
}

func (e *env) remove(scope domain.Scope, name string) {
	e.tb.Helper()
	e.append(domain.ServerRemoved{Scope: scope, Name: name})
}

func (e *env) failInspection(scope domain.Scope, name string) {
	e.tb.Helper()
	st, _ := e.servers.State(scope, name)
	e.append(domain.ServerInspectionFailed{Scope: scope, Name: name, ConfigVersion: st.Version,
		Class: domain.FailureUnreachable, Message: "connection refused"})
}

// facts returns the decoded facts of a connection stream, in order.
func (e *env) facts(owner, server string) []any {
	e.tb.Helper()
	evs, err := e.st.ReadStream(context.Background(), domain.ConnStream(owner, server), 1, 0)
	if err != nil {
		e.tb.Fatalf("read stream: %v", err)
	}
	var out []any
	for _, ev := range evs {
		f, err := events.Decode(ev)
		if err != nil {
			e.tb.Fatalf("decode: %v", err)
		}
		out = append(out, f)
	}
	return out
}

// kinds summarises facts as "opened", "evicted/stale", "refused/<rule>x<count>", ...
func kinds(facts []any) []string {
	var out []string
	for _, f := range facts {
		k := kindOf(f)
		if r, ok := f.(domain.ConnectionRefused); ok && r.Count != 1 {
			k = fmt.Sprintf("%sx%d", k, r.Count)
		}
		out = append(out, k)
	}
	return out
}

func httpConfig(url string) domain.ServerConfig {
	return domain.ServerConfig{Type: domain.TransportStreamableHTTP, URL: url, InitTimeoutMS: 5000}
}

// mcpServer is an in-process clock server over streamable HTTP that counts the
// connection handshakes it receives (server/discover or initialize requests).
type mcpServer struct {
	URL        string
	ts         *httptest.Server
	handshakes atomic.Int64
	delay      atomic.Int64 // nanoseconds to hold each handshake
	// gate, when set before the first request, holds every handshake until closed.
	gate chan struct{}
}

func newMCPServer(tb testing.TB) *mcpServer {
	tb.Helper()
	s := &mcpServer{}
	h := server.NewStreamableHTTPServer(clockserver.New())
	s.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			body, _ := io.ReadAll(r.Body)
			var msg struct {
				Method string `json:"method"`
			}
			_ = json.Unmarshal(body, &msg)
			if msg.Method == "server/discover" || msg.Method == "initialize" {
				s.handshakes.Add(1)
				if d := s.delay.Load(); d > 0 {
					time.Sleep(time.Duration(d))
				}
				if s.gate != nil {
					select {
					case <-s.gate:
					case <-r.Context().Done():
					}
				}
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		h.ServeHTTP(w, r)
	}))
	s.URL = s.ts.URL + "/mcp"
	tb.Cleanup(func() {
		s.ts.CloseClientConnections()
		s.ts.Close()
	})
	return s
}

// deadURL returns a loopback URL nothing listens on.
func deadURL(tb testing.TB) string {
	tb.Helper()
	ts := httptest.NewServer(http.NotFoundHandler())
	u := ts.URL + "/mcp"
	ts.Close()
	return u
}

var (
	clockOnce sync.Once
	clockPath string
	clockErr  error
)

// clockBinary builds the clock example server once per test binary.
func clockBinary(tb testing.TB) string {
	tb.Helper()
	clockOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mcpes-clock-")
		if err != nil {
			clockErr = err
			return
		}
		clockPath = filepath.Join(dir, "clock")
		out, err := exec.Command("go", "build", "-o", clockPath, "github.com/mcpes/mcpes/examples/servers/clock").CombinedOutput()
		if err != nil {
			clockErr = fmt.Errorf("build clock: %v: %s", err, out)
		}
	})
	if clockErr != nil {
		tb.Fatal(clockErr)
	}
	return clockPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if clockPath != "" {
		_ = os.RemoveAll(filepath.Dir(clockPath))
	}
	os.Exit(code)
}

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds or 10 s pass.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
