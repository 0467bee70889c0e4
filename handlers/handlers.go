// Package handlers is mcpes's HTTP API: the server registry, connections, the event
// feed and the audit endpoints, behind bearer-token access control. It is the only
// place that maps errors to HTTP status codes (errorStatus).
//
// Response shapes (JSON unless noted; errors are always {"error": {"code", "message"}}):
//
//	GET    /v1/servers              {"owner", "servers": [Server]}
//	GET    /v1/servers/{name}       Server (with tools and inspection)
//	PUT    /v1/servers/{name}       201/200 Server + {"created", "changed": [field], "warnings": [problem]}
//	DELETE /v1/servers/{name}       {"server", "scope", "removed": true}
//	POST   /v1/servers/{name}/reinspect  {"server", "ok", "reason"?}
//	GET    /v1/connections          {"owner", "connections": [Connection]}
//	POST   /v1/connections/{name}   Connection
//	DELETE /v1/connections/{name}   {"server", "disconnected": bool}
//	GET    /v1/events               JSON Lines of CloudEvents, or SSE with Accept: text/event-stream
//	GET    /v1/audit/explain        audit.Explanation + {"text"}
//	POST   /v1/audit/verify         audit.VerifyReport
//	GET    /v1/audit/timeline       Timeline (events per time bucket, lane and kind)
//	GET    /v1/identity             IdentityResponse (who the token is)
//	GET    /ui/                     the audit console (package console)
//	GET    /v1/audit/export         JSON Lines (owner tokens: their own events), ?proofs=1 adds inclusion proofs
package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mcpes/mcpes/cluster"
	"github.com/mcpes/mcpes/connections"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/handlers/console"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/registry"
	"github.com/mcpes/mcpes/store"
)

// DefaultMaxBodyBytes bounds request bodies unless Deps.MaxBodyBytes says otherwise.
const DefaultMaxBodyBytes = 1 << 20

// DefaultHeartbeat is how often an idle SSE event stream gets a comment line.
const DefaultHeartbeat = 15 * time.Second

// ServerReader is what the API reads from the server-config projection
// (*projections.Servers implements it).
type ServerReader interface {
	State(scope domain.Scope, name string) (domain.ServerState, bool)
	Effective(owner, name string) (domain.ServerState, domain.ConfigView, uint64)
	List(owner string) []projections.Entry
}

// ConnReader is what the API reads from the connections projection
// (*projections.Connections implements it).
type ConnReader interface {
	Open(owner string) []projections.ConnInfo
}

// Registry is the server command service (*registry.Service implements it).
type Registry interface {
	PutIf(ctx context.Context, actor string, scope domain.Scope, name string, cfg domain.ServerConfig,
		cond domain.Precondition) (registry.PutResult, error)
	Remove(ctx context.Context, actor string, scope domain.Scope, name string) error
	Reinspect(ctx context.Context, actor string, scope domain.Scope, name string) (registry.ReinspectResult, error)
}

// ConnManager hands out the connection repository of an owner
// (*connections.Manager implements it).
type ConnManager interface {
	Repo(owner string) *connections.Repository
	// Sweep evicts every owner's connections to names that may no longer be connected.
	Sweep(ctx context.Context, names ...string) error
}

// Deps are the parts the API is built on.
type Deps struct {
	Store    store.Store  // required
	Servers  ServerReader // required
	Registry Registry     // required
	Manager  ConnManager  // required
	// ConnProjection, when set, lists connections recorded in the log (also those of
	// other nodes) in GET /v1/connections; without it the manager's open ones are listed.
	ConnProjection ConnReader
	// Auth checks bearer tokens; nil (or no tokens) admits loopback callers as admin.
	Auth *Auth
	// Protection is the Host/Origin/Content-Type policy applied to every route,
	// /mcp included; nil means the zero policy (loopback Hosts, same-origin only).
	Protection *Protection
	// Limiter limits each owner's requests to the API and /mcp; nil: no limit.
	Limiter *Limiter
	// Metrics serves GET /metrics; default the Prometheus default registry.
	Metrics http.Handler
	// ClusterDecisions, on a cluster node, reads every node's shipped decisions for
	// POST /v1/audit/verify: how many each node shipped, and the problems found with
	// this node's (nil on a single node).
	ClusterDecisions func(ctx context.Context) (perNode map[string]int, problems []string, err error)
	// RecentDecisions, on a cluster node, reads a page of the decisions stream for
	// GET /v1/cluster/decisions (*cluster.Store's method; nil on a single node).
	RecentDecisions func(ctx context.Context, node string, before uint64, limit int) (cluster.DecisionPage, error)
	// Ready reports readiness and a detail object for GET /readyz; nil means ready.
	Ready func() (bool, any)
	// Gateway, when set, is mounted at /mcp behind the same token check.
	Gateway http.Handler
	Logger  *slog.Logger
	// MaxBodyBytes bounds request bodies (default DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// Clock returns now (default time.Now); explain uses it when no time is given.
	Clock func() time.Time
	// Heartbeat is the SSE keep-alive interval (default DefaultHeartbeat).
	Heartbeat time.Duration
	// Version is mcpes's version, shown by GET /healthz.
	Version string
	// OAuth, when set, mounts the authorization routes (see oauth.go), and
	// ClientMetadata is the client ID metadata document served there.
	OAuth          OAuthBroker
	ClientMetadata map[string]any
}

// api is the HTTP API; its methods are the route handlers.
type api struct {
	Deps
	mux *http.ServeMux
}

// New returns the API handler. It panics when a required dependency is nil.
func New(deps Deps) http.Handler {
	switch {
	case deps.Store == nil:
		panic("handlers: nil Store")
	case deps.Servers == nil:
		panic("handlers: nil Servers")
	case deps.Registry == nil:
		panic("handlers: nil Registry")
	case deps.Manager == nil:
		panic("handlers: nil Manager")
	}
	if deps.Metrics == nil {
		deps.Metrics = promhttp.Handler()
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.MaxBodyBytes <= 0 {
		deps.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	if deps.Heartbeat <= 0 {
		deps.Heartbeat = DefaultHeartbeat
	}
	if deps.Protection == nil {
		deps.Protection = &Protection{}
	}
	a := &api{Deps: deps, mux: http.NewServeMux()}
	m := a.mux
	m.HandleFunc("GET /healthz", a.healthz)
	m.HandleFunc("GET /readyz", a.readyz)
	m.Handle("GET /metrics", deps.Metrics)

	m.Handle("GET /v1/servers", a.route(a.listServers))
	m.Handle("GET /v1/servers/{name}", a.route(a.getServer))
	m.Handle("PUT /v1/servers/{name}", a.route(a.putServer))
	m.Handle("DELETE /v1/servers/{name}", a.route(a.deleteServer))
	m.Handle("POST /v1/servers/{name}/reinspect", a.route(a.reinspect))
	m.Handle("GET /v1/servers/{name}/vars", a.route(a.varsRoute(nil)))
	m.Handle("PUT /v1/servers/{name}/vars", a.route(a.varsRoute(a.putVars)))
	m.Handle("DELETE /v1/servers/{name}/vars", a.route(a.varsRoute(a.deleteVars)))
	m.Handle("GET /v1/owners/{owner}/profile", a.route(a.getProfile))
	m.Handle("PUT /v1/owners/{owner}/profile", a.route(a.putProfile))
	m.Handle("GET /v1/connections", a.route(a.listConnections))
	m.Handle("POST /v1/connections/{name}", a.route(a.connect))
	m.Handle("DELETE /v1/connections/{name}", a.route(a.disconnect))
	m.Handle("GET /v1/events", a.route(a.events))
	m.Handle("GET /v1/audit/explain", a.route(a.explain))
	m.Handle("POST /v1/audit/verify", a.route(a.verify))
	m.Handle("GET /v1/audit/timeline", a.route(a.timeline))
	m.Handle("GET /v1/identity", a.route(a.identity))
	m.Handle("GET /v1/cluster/decisions", a.route(a.clusterDecisions))
	m.Handle(console.Prefix, console.Handler())
	a.mountOAuth()
	m.Handle("GET /v1/audit/export", a.route(a.export))
	if deps.Gateway != nil {
		m.Handle("/mcp", a.admit(deps.Gateway))
		m.Handle("/mcp/", a.admit(deps.Gateway))
	}
	return a
}

// ServeHTTP checks r against the request-origin policy and routes it; requests no
// route matches get a JSON 404 or 405.
func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := a.Protection.Check(r); err != nil {
		writeError(w, r, a.Logger, err)
		return
	}
	h, pattern := a.mux.Handler(r)
	if pattern != "" {
		a.mux.ServeHTTP(w, r) // sets the path values h reads
		return
	}
	// Ask the mux what it would answer (404 or 405 with Allow) and say it in JSON.
	probe := &statusProbe{header: http.Header{}}
	h.ServeHTTP(probe, r)
	if probe.status == http.StatusMethodNotAllowed {
		if allow := probe.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		writeJSON(w, http.StatusMethodNotAllowed, ErrorBody{Error: APIError{Code: CodeMethodNotAllowed,
			Message: "method " + r.Method + " not allowed on " + r.URL.Path}})
		return
	}
	writeJSON(w, http.StatusNotFound, ErrorBody{Error: APIError{Code: CodeNotFound, Message: "no route " + r.URL.Path}})
}

// statusProbe records the status and headers a handler writes and drops the body.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header { return p.header }
func (p *statusProbe) WriteHeader(s int) {
	if p.status == 0 {
		p.status = s
	}
}
func (p *statusProbe) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return len(b), nil
}

// handlerFunc is an API route: it acts for id and returns an error for errorStatus.
type handlerFunc func(w http.ResponseWriter, r *http.Request, id Identity) error

// route authenticates and limits the request, runs h, and writes h's error.
func (a *api) route(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := a.admitRequest(w, r)
		if !ok {
			return
		}
		r = r.WithContext(WithIdentity(r.Context(), id))
		if err := h(w, r, id); err != nil {
			writeError(w, r, a.Logger, err)
		}
	})
}

// admit authenticates and limits the request before next, which finds the identity
// in the request context (IdentityFrom).
func (a *api) admit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, ok := a.admitRequest(w, r); ok {
			next.ServeHTTP(w, r.WithContext(WithIdentity(r.Context(), id)))
		}
	})
}

// admitRequest returns the caller's identity, or writes the 401 or 429 and reports false.
func (a *api) admitRequest(w http.ResponseWriter, r *http.Request) (Identity, bool) {
	id, err := a.Auth.Authenticate(r)
	if err != nil {
		writeError(w, r, a.Logger, err)
		return Identity{}, false
	}
	if wait, err := a.Limiter.Allow(id); err != nil {
		w.Header().Set("Retry-After", retryAfter(wait))
		writeError(w, r, a.Logger, err)
		return Identity{}, false
	}
	return id, true
}

func (a *api) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": a.Version})
}

// ReadyResponse is the body of GET /readyz.
type ReadyResponse struct {
	Ready  bool `json:"ready"`
	Detail any  `json:"detail,omitempty"`
}

func (a *api) readyz(w http.ResponseWriter, _ *http.Request) {
	ready, detail := true, any(nil)
	if a.Ready != nil {
		ready, detail = a.Ready()
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, ReadyResponse{Ready: ready, Detail: detail})
}
