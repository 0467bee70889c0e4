package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpes/mcpes/connections"
	"github.com/mcpes/mcpes/examples/servers/clock/clockserver"
	"github.com/mcpes/mcpes/handlers"
	"github.com/mcpes/mcpes/internal/testsvc"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/registry"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/memory"
)

// Tokens of the test service.
const (
	adminToken = testsvc.AdminToken
	aliceToken = testsvc.AliceToken
	bobToken   = testsvc.BobToken
)

// svc is the real API over the real store, projections, registry and connection
// manager, served on loopback.
type svc struct {
	tb      testing.TB
	st      store.Store
	servers *projections.Servers
	conns   *projections.Connections
	reg     *registry.Service
	mgr     *connections.Manager
	ts      *httptest.Server
	ready   atomic.Bool

	closeStore bool
	closeOnce  sync.Once
}

type svcOption func(*svc, *handlers.Deps)

func newSvc(tb testing.TB, opts ...svcOption) *svc {
	tb.Helper()
	return newSvcOn(tb, memory.New(), true, opts...)
}

func newSvcOn(tb testing.TB, st store.Store, closeStore bool, opts ...svcOption) *svc {
	tb.Helper()
	ctx := context.Background()
	core := testsvc.New(tb, st, nil)
	conns, err := projections.LoadConnections(ctx, st, projections.Options{NoSnapshot: true})
	if err != nil {
		tb.Fatalf("load connections: %v", err)
	}
	servers, reg, mgr, auth := core.Servers, core.Registry, core.Manager, core.Auth
	s := &svc{tb: tb, st: st, servers: servers, conns: conns, reg: reg, mgr: mgr}
	s.ready.Store(true)
	deps := handlers.Deps{Store: st, Servers: servers, Registry: reg, Manager: mgr, Auth: auth,
		Ready:     func() (bool, any) { return s.ready.Load(), map[string]any{"relayLag": 0} },
		Heartbeat: 50 * time.Millisecond}
	for _, o := range opts {
		o(s, &deps)
	}
	s.ts = httptest.NewServer(handlers.New(deps))
	s.closeStore = closeStore
	tb.Cleanup(s.close)
	return s
}

// close stops the HTTP server, the manager (recording shutdown evictions) and the
// registry, and closes the store if the service owns it. It runs once.
func (s *svc) close() {
	s.closeOnce.Do(func() {
		s.ts.CloseClientConnections()
		s.ts.Close()
		cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := s.mgr.Close(cctx); err != nil {
			s.tb.Errorf("close manager: %v", err)
		}
		_ = s.reg.Close()
		if s.closeStore {
			_ = s.st.Close()
		}
	})
}

// resp is one API answer.
type resp struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into v.
func (r resp) json(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		tb.Fatalf("decode %s: %v", r.body, err)
	}
}

// errCode returns the error code of an error body ("" when there is none).
func (r resp) errCode() string {
	var b handlers.ErrorBody
	_ = json.Unmarshal(r.body, &b)
	return b.Error.Code
}

// do sends a request with token (none when empty) and body (a string or JSON value).
func (s *svc) do(method, path, token string, body any) resp {
	s.tb.Helper()
	return s.doWith(method, path, token, body, nil)
}

// doWith is do with extra request headers.
func (s *svc) doWith(method, path, token string, body any, header http.Header) resp {
	s.tb.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			s.tb.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.ts.URL+path, rd)
	if err != nil {
		s.tb.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := s.ts.Client().Do(req)
	if err != nil {
		s.tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		s.tb.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: raw}
}

// expect checks the status (and error code when code is not empty) of r.
func expect(tb testing.TB, r resp, status int, code string) {
	tb.Helper()
	if r.status != status || (code != "" && r.errCode() != code) {
		tb.Fatalf("got %d %s, want %d %s", r.status, r.body, status, code)
	}
}

func (s *svc) head() uint64 {
	s.tb.Helper()
	h, _, err := s.st.Head(context.Background())
	if err != nil {
		s.tb.Fatal(err)
	}
	return h
}

// clockServer is the clock example server over streamable HTTP on loopback; while
// down is set it answers 503 to everything.
type clockServer struct {
	URL  string
	ts   *httptest.Server
	down atomic.Bool
}

func newClock(tb testing.TB) *clockServer {
	tb.Helper()
	c := &clockServer{}
	h := server.NewStreamableHTTPServer(clockserver.New())
	c.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}))
	c.URL = c.ts.URL + "/mcp"
	tb.Cleanup(func() {
		c.ts.CloseClientConnections()
		c.ts.Close()
	})
	return c
}

// httpCfg is a streamable-HTTP server config body.
func httpCfg(url string) map[string]any {
	return map[string]any{"type": "streamable-http", "url": url, "initTimeout": 5000}
}
