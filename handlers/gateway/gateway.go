// Package gateway is mcpes's MCP endpoints: /mcp, which offers the tools, prompts
// and resources of every server an owner's connection repository may connect, and
// /mcp/{server}, one server of the owner's view as if direct. Both route each
// request through the owner's repository, so every connect, stale eviction and
// refusal behind a call is recorded, with the MCP session and request id as its
// correlation id.
//
// One engine serves them: a message-level relay (direct.go, session.go, relay.go,
// aggregate.go). Clients that start with initialize (every revision up to
// 2025-11-25) get sessions of it; clients of 2026-07-28 (no initialize, no
// session) get a session per request on /mcp (modern.go). Requests go upstream as
// sent and results, errors, progress, log messages and the server's own requests
// (sampling, elicitation, roots; not to 2026-07-28 clients) come back as the
// upstream sent them.
//
// Naming on /mcp. A tool or prompt `t` of server `s` is offered as `s__t` (server
// names may not contain "__", so the first "__" splits the two). A resource `u`
// of server `s` is offered as `mcpes://s/u` (the upstream URI appended verbatim
// after the server name and a slash; server names contain no "/"), and the
// contents read back carry the prefixed URI.
//
// Listing never waits on an upstream: the offer is built from the server-config
// projection's catalogue of each server's last successful inspection (each entry
// kept as the server sent it), and rebuilt whenever the projection says a server
// changed (registered, changed, removed, inspected, inspection failed). Clients get
// notifications/tools/list_changed (and the prompts and resources equivalents)
// when an owner's offer changes. When Deps.Inspector is set, a recorded
// connection.lost (and, with Deps.ReinspectOnUnreachable, an unreachable
// connection.open_failed) triggers a re-inspection of that server, so a dead
// upstream's tools drop out (its inspection fails, the repository may no longer
// connect it) and come back after a successful reinspect. An upstream's own
// list_changed of any kind triggers one too.
package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/mcpes/mcpes/connections"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/handlers"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/store"
)

// Tool-call audit levels (Deps.AuditToolCalls, the config's audit.toolCalls).
const (
	AuditOff      = "off"
	AuditMetadata = "metadata" // tool.called with an argument digest, never the arguments
	AuditFull     = "full"     // tool.called with the arguments too
)

// DefaultMaxBodyBytes bounds request bodies unless Deps.MaxBodyBytes says otherwise.
const DefaultMaxBodyBytes = 4 << 20

// DefaultSessionIdleTTL ends MCP sessions unused for longer.
const DefaultSessionIdleTTL = 30 * time.Minute

// ConnManager hands out the connection repository of an owner
// (*connections.Manager implements it).
type ConnManager interface {
	Repo(owner string) *connections.Repository
}

// Inspector re-inspects a server (*registry.Service implements it).
type Inspector interface {
	Inspect(ctx context.Context, scope domain.Scope, name string) (domain.InspectionOutcome, error)
}

// Deps are what the gateway is built on.
type Deps struct {
	// Store receives tool.called events and is observed for connection.lost.
	// Required.
	Store store.Store
	// Servers is the server-config projection following Store. Required.
	Servers *projections.Servers
	// Manager gives each owner's connection repository. Required.
	Manager ConnManager
	// Inspector, when set, is asked to re-inspect a server after one of its
	// connections was recorded lost.
	Inspector Inspector
	// ReinspectOnUnreachable also re-inspects after a connect failed with class
	// unreachable, so an upstream dead before its first use drops out of the offer
	// (it then stays out until reinspected, instead of being retried by the
	// repository's breaker). Off by default.
	ReinspectOnUnreachable bool
	// Owner says which owner's repository serves a request ("" = the shared one), or
	// an error wrapping ErrUnauthorized (answered 401) or ErrBadOwner (400). Default
	// OwnerFromIdentity.
	Owner func(r *http.Request) (owner string, err error)
	// AuditToolCalls is AuditOff (default), AuditMetadata or AuditFull.
	AuditToolCalls string
	// Authorize, when set, starts an owner's OAuth authorization of a server and
	// returns the URL to send the owner to; a call refused for want of a grant then
	// answers with that URL (see authorizationNeeded).
	Authorize func(ctx context.Context, actor, owner, server string) (string, error)
	// StepUp, when set, starts an owner's authorization of a server with more scope
	// after the server refused the owner's request with 403 insufficient_scope, and
	// returns the URL ("" when the server sent no such refusal); the call then
	// answers with that URL like a missing grant (see stepUpLink).
	StepUp func(ctx context.Context, actor, owner, server string) (string, error)
	// MaxBodyBytes bounds request bodies (default DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// SessionIdleTTL ends idle MCP sessions (default DefaultSessionIdleTTL).
	SessionIdleTTL time.Duration
	// MaxSessions bounds the open /mcp/{server} sessions (default
	// DefaultMaxSessions); an initialize beyond it gets an error.
	MaxSessions int
	// MaxTimeout bounds a /mcp/{server} request whose progress notifications keep
	// restarting the server's timeout (default DefaultMaxTimeout).
	MaxTimeout time.Duration
	// Source is the CloudEvents source of tool.called events (default mcpes://local).
	Source string
	// Clock returns now (default time.Now); NewID returns an event id (default UUIDv7).
	Clock func() time.Time
	NewID func() string
	// Logger receives operational logs (default slog.Default()).
	Logger *slog.Logger
}

// Gateway is the /mcp handler. Its methods are safe for concurrent use.
type Gateway struct {
	d Deps

	mu     sync.RWMutex
	owners map[string]*ownerServer

	dirtyMu  sync.Mutex
	dirtyAll bool
	dirty    map[string]bool
	wake     chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	life   sync.Mutex
	closed atomic.Bool
	wg     sync.WaitGroup

	inspectMu  sync.Mutex
	inspecting map[string]bool
	hooked     sync.Map // connection id -> struct{}: upstream list_changed hooked
	hookedMsgs sync.Map // *upstream.Conn -> struct{}: its notifications go to sessions
	// connCatalogue is *upstream.Conn -> the server's catalogue digest when the
	// gateway first used the connection.
	connCatalogue sync.Map

	stepMu  sync.Mutex
	stepUps map[string]int // owner+NUL+server -> step-ups since its last successful call

	sessMu   sync.Mutex
	sessions map[string]*session // relay sessions by id
	byOwner  map[string]map[*session]struct{}
	swept    time.Time // when idle sessions were last dropped
}

// New returns the gateway. It registers a change hook on Deps.Servers and an observer
// on Deps.Store, which stay registered (and do nothing) after Close. It panics when a
// required dependency is nil.
func New(d Deps) *Gateway {
	switch {
	case d.Store == nil:
		panic("gateway: nil Store")
	case d.Servers == nil:
		panic("gateway: nil Servers")
	case d.Manager == nil:
		panic("gateway: nil Manager")
	}
	if d.Owner == nil {
		d.Owner = OwnerFromIdentity
	}
	if d.AuditToolCalls == "" {
		d.AuditToolCalls = AuditOff
	}
	if d.MaxBodyBytes <= 0 {
		d.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if d.SessionIdleTTL <= 0 {
		d.SessionIdleTTL = DefaultSessionIdleTTL
	}
	if d.MaxSessions <= 0 {
		d.MaxSessions = DefaultMaxSessions
	}
	if d.MaxTimeout <= 0 {
		d.MaxTimeout = DefaultMaxTimeout
	}
	if d.Source == "" {
		d.Source = "mcpes://local"
	}
	if d.Clock == nil {
		d.Clock = time.Now
	}
	if d.NewID == nil {
		d.NewID = newID
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	g := &Gateway{d: d, owners: map[string]*ownerServer{}, dirty: map[string]bool{},
		wake: make(chan struct{}, 1), inspecting: map[string]bool{}, sessions: map[string]*session{},
		byOwner: map[string]map[*session]struct{}{}}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	d.Servers.OnChange(g.changed)
	d.Store.Observe(g.observe)
	g.wg.Add(1)
	go g.resync()
	return g
}

func newID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

// OwnerFromIdentity is the default Deps.Owner: the identity the handlers.Auth
// middleware stored in the request context selects the repository — an owner
// token's own owner always; for the admin the ?owner= query parameter, or the shared
// repository without it (as in the HTTP API). Returns ErrUnauthorized without an
// identity and ErrBadOwner for a malformed ?owner=.
func OwnerFromIdentity(r *http.Request) (string, error) {
	id, ok := handlers.IdentityFrom(r.Context())
	if !ok {
		return "", ErrUnauthorized
	}
	owner, err := handlers.RequestOwner(r, id)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadOwner, err)
	}
	return owner, nil
}

// ServeHTTP checks the request (Origin, Host, body size), finds the calling owner and
// hands the request to that owner's MCP server.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.closed.Load() {
		http.Error(w, ErrClosed.Error(), http.StatusServiceUnavailable)
		return
	}
	if !g.admit(w, r) {
		return
	}
	owner, err := g.d.Owner(r)
	switch {
	case errors.Is(err, ErrBadOwner):
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	case err != nil:
		w.Header().Set("WWW-Authenticate", "Bearer")
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if server, ok := strings.CutPrefix(r.URL.Path, "/mcp/"); ok && server != "" {
		g.serveDirect(w, r, owner, strings.TrimSuffix(server, "/"))
		return
	}
	if g.relayed(r) {
		g.serveDirect(w, r, owner, "")
		return
	}
	g.serveModern(w, r, owner)
}

// relayed reports whether a request of /mcp belongs to a session of the relay (one
// naming a session, or an initialize: a client of a revision with sessions) rather
// than standing alone (2026-07-28 clients, which send neither).
func (g *Gateway) relayed(r *http.Request) bool {
	if r.Header.Get("Mcp-Session-Id") != "" {
		return true // 2026-07-28 has no sessions: an unknown one gets the relay's 404
	}
	if r.Method != http.MethodPost || r.Body == nil {
		return false
	}
	body, err := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return false
	}
	var m struct {
		Method string `json:"method"`
	}
	return json.Unmarshal(body, &m) == nil && m.Method == "initialize"
}

// ownerServer returns owner's MCP server, created (and its offer built) on first use;
// nil after Close.
func (g *Gateway) ownerServer(owner string) *ownerServer {
	g.mu.RLock()
	o := g.owners[owner]
	g.mu.RUnlock()
	if o != nil {
		return o
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed.Load() {
		return nil
	}
	if o = g.owners[owner]; o != nil {
		return o
	}
	o = newOwnerServer(g, owner)
	o.sync()
	g.owners[owner] = o
	return o
}

// changed is the projection's change hook (on the store's commit path): it marks the
// owners whose offer may have changed and wakes the resync loop.
func (g *Gateway) changed(scope domain.Scope, _ string) {
	if g.closed.Load() {
		return
	}
	g.dirtyMu.Lock()
	if scope.IsApp() {
		g.dirtyAll = true
	} else {
		g.dirty[scope.Owner()] = true
	}
	g.dirtyMu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// resync rebuilds the offers of the owners marked dirty, until Close.
func (g *Gateway) resync() {
	defer g.wg.Done()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-g.wake:
		}
		g.dirtyMu.Lock()
		all, dirty := g.dirtyAll, g.dirty
		g.dirtyAll, g.dirty = false, map[string]bool{}
		g.dirtyMu.Unlock()
		g.mu.RLock()
		var todo []*ownerServer
		for owner, o := range g.owners {
			if all || dirty[owner] {
				todo = append(todo, o)
			}
		}
		g.mu.RUnlock()
		for _, o := range todo {
			o.sync()
		}
	}
}

// Sync rebuilds every owner's offer now (the change hook does it in the background;
// tests and callers that just changed the projection may want it at once).
func (g *Gateway) Sync() {
	g.mu.RLock()
	todo := make([]*ownerServer, 0, len(g.owners))
	for _, o := range g.owners {
		todo = append(todo, o)
	}
	g.mu.RUnlock()
	for _, o := range todo {
		o.sync()
	}
}

// Close stops the background work, ends every MCP session and waits for the
// re-inspections it started, or for ctx. Later requests get 503. Idempotent.
func (g *Gateway) Close(ctx context.Context) error {
	g.life.Lock()
	already := g.closed.Swap(true)
	g.life.Unlock()
	if already {
		return nil
	}
	g.cancel() // ends the listen streams and the requests without a session
	g.sessMu.Lock()
	sessions := g.sessions
	g.sessions, g.byOwner = map[string]*session{}, map[string]map[*session]struct{}{}
	g.sessMu.Unlock()
	for _, s := range sessions {
		s.end()
	}
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// begin registers a background goroutine; false once closed.
func (g *Gateway) begin() bool {
	g.life.Lock()
	defer g.life.Unlock()
	if g.closed.Load() {
		return false
	}
	g.wg.Add(1)
	return true
}
