package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpes/mcpes/connections"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/handlers"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/upstream"
)

// Tool-call outcomes recorded in tool.called.
const (
	OutcomeOK        = "ok"
	OutcomeToolError = "tool_error"
	OutcomeError     = "error"
)

// upstreamOf gets a connection to srv through the owner's repository (recording the
// decisions as the owner's) and returns its MCP session. ctx must already carry the
// per-server timeout.
func (o *ownerServer) upstreamOf(ctx context.Context, srv string) (*upstream.Conn, error) {
	conn, err := o.repo.Get(connections.WithActor(ctx, o.actorOf(ctx)), srv)
	if err != nil {
		return nil, fmt.Errorf("server %s: %w", srv, err)
	}
	up := conn.Upstream()
	if up == nil {
		return nil, fmt.Errorf("server %s: %w", srv, ErrNotRouted)
	}
	o.g.hookToolsChanged(conn, up)
	o.g.hookMessages(o.owner, srv, up)
	if _, seen := o.g.connCatalogue.Load(up); !seen {
		o.g.connCatalogue.Store(up, o.digestOf(srv))
		go func() {
			<-up.Done()
			o.g.connCatalogue.Delete(up)
		}()
	}
	return up, nil
}

// digestOf is the digest of srv's catalogue in the owner's view ("" before any).
func (o *ownerServer) digestOf(srv string) string {
	st, _, _ := o.g.d.Servers.Effective(o.owner, srv)
	if st.LastSuccess == nil {
		return ""
	}
	return st.LastSuccess.Digest
}

// catalogueMoved reports whether srv's catalogue changed since up was first used:
// a server may offer a new tool only to sessions opened after it appeared.
func (o *ownerServer) catalogueMoved(srv string, up *upstream.Conn) bool {
	d, ok := o.g.connCatalogue.Load(up)
	return ok && d.(string) != o.digestOf(srv)
}

// actorOf is who makes a request, as recorded: the caller's identity when the auth
// middleware stored one (the admin acting for an owner stays "admin"), else the
// owner's actor.
func (o *ownerServer) actorOf(ctx context.Context) string {
	if id, ok := handlers.IdentityFrom(ctx); ok {
		return id.Actor()
	}
	return o.actor
}

// timeoutOf returns the per-request timeout of the owner's effective config of srv.
func (o *ownerServer) timeoutOf(srv string) time.Duration {
	st, _, _ := o.g.d.Servers.Effective(o.owner, srv)
	return time.Duration(st.Config.Timeout()) * time.Millisecond
}

// explain turns a failure into the error the client sees, naming a timeout as such.
func explain(ctx context.Context, srv string, timeout time.Duration, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("server %s did not answer within its timeout (%v): %w", srv, timeout, err)
	}
	return err
}

// hookToolsChanged asks, once per connection, for a re-inspection when the upstream
// announces notifications/tools/list_changed, so the offer follows its catalogue.
func (g *Gateway) hookToolsChanged(c *connections.Connection, up *upstream.Conn) {
	if g.d.Inspector == nil {
		return
	}
	if _, seen := g.hooked.LoadOrStore(c.ConnID, struct{}{}); seen {
		return
	}
	scope, name := c.ConfigScope, c.Server
	up.OnToolsChanged(func() { g.reinspect(scope, name) })
	go func() {
		<-up.Done()
		g.hooked.Delete(c.ConnID)
	}()
}

// ArgsDigest is the hex SHA-256 of the canonical JSON of tool-call arguments (object
// keys sorted, no insignificant white space, as encoding/json writes a decoded
// value); absent arguments digest as "null".
func ArgsDigest(args any) (string, []byte) {
	b, err := json.Marshal(args)
	if err != nil {
		b = []byte("null")
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), b
}

// audit records a tool.called event on the owner's connection stream, with the
// correlation id of the MCP request when there is one. A failure to record is
// logged: the call's answer does not depend on it.
func (g *Gateway) audit(ctx context.Context, o *ownerServer, srv, tool string, args any,
	outcome string, d time.Duration, correlation string) {
	digest, canon := ArgsDigest(args)
	fact := domain.ToolCalled{Owner: o.owner, Server: srv, Tool: tool, Outcome: outcome,
		DurationMS: d.Milliseconds(), ArgsDigest: digest}
	if g.d.AuditToolCalls == AuditFull {
		fact.Arguments = canon
	}
	env, eerr := events.New(fact, events.Meta{ID: g.d.NewID(), Source: g.d.Source, Time: g.d.Clock(),
		Actor: o.actorOf(ctx), Reason: outcome, CorrelationID: correlation})
	if eerr == nil {
		_, eerr = g.d.Store.Append(context.WithoutCancel(ctx), domain.ConnStream(o.owner, srv), store.AnyVersion, env)
	}
	if eerr != nil {
		g.d.Logger.Error("gateway: record tool call", "owner", o.owner, "server", srv, "tool", tool, "err", eerr)
	}
}

// authorizationLink returns the link the owner must open when err is a refusal for
// want of an OAuth grant, or srv asked for more scope (step-up); ok false for any
// other error, or without an authorizer.
func (o *ownerServer) authorizationLink(ctx context.Context, srv string, err error) (link string, ok bool, aerr error) {
	var ref *connections.RefusedError
	if !errors.As(err, &ref) || ref.Rule != domain.RuleNoGrant {
		link, ok, aerr = o.stepUpLink(ctx, srv)
		if aerr != nil {
			aerr = errors.Join(err, aerr)
		}
		return link, ok, aerr
	}
	if o.g.d.Authorize == nil || o.owner == "" {
		return "", false, nil
	}
	u, aerr := o.g.d.Authorize(ctx, o.actorOf(ctx), o.owner, srv)
	if aerr != nil {
		return "", false, errors.Join(err, aerr)
	}
	return u, true, nil
}

// authorizationNeededMsg is the text of the tool error that carries the link.
func authorizationNeededMsg(srv, link string) string {
	return "mcpes needs your authorization to use " + srv + "; open this link, then call again: " + link
}

// urlElicitation is the -32042 error asking the client to open the link.
func urlElicitation(o *ownerServer, srv, link string) mcp.URLElicitationRequiredError {
	return mcp.URLElicitationRequiredError{Elicitations: []mcp.ElicitationParams{{Mode: mcp.ElicitationModeURL,
		Message: "mcpes needs your authorization to use " + srv, URL: link, ElicitationID: o.g.d.NewID()}}}
}

// authorizationAnswer turns a refusal of a relayed tools/call for want of an OAuth
// grant into the link the owner must open: a URL elicitation (-32042) for clients
// that declared URL elicitation, else a tool error result carrying the link. It is
// nil when err is not such a refusal.
func (g *Gateway) authorizationAnswer(ctx context.Context, s *session, id json.RawMessage, srv string, err error) []byte {
	u, ok, aerr := s.o.authorizationLink(ctx, srv, err)
	if aerr != nil || !ok {
		return nil
	}
	if s.caps.urlElicitation {
		je := urlElicitation(s.o, srv, u).JSONRPCError()
		data, _ := json.Marshal(je.Error.Data)
		return rpcError(id, je.Error.Code, je.Error.Message, data)
	}
	res, _ := json.Marshal(mcp.NewToolResultError(authorizationNeededMsg(srv, u)))
	return rpcResult(id, res)
}

// auditRaw records a tool.called event for a tools/call relayed on a session
// (params as sent upstream).
func (g *Gateway) auditRaw(ctx context.Context, s *session, server string, id, params json.RawMessage,
	resp *upstream.Response, err error, d time.Duration) {
	var p struct {
		Name      string `json:"name"`
		Arguments any    `json:"arguments"`
	}
	_ = json.Unmarshal(params, &p)
	outcome := OutcomeOK
	switch {
	case err != nil || resp.Error != nil:
		outcome = OutcomeError
	default:
		var r struct {
			IsError bool `json:"isError"`
		}
		if json.Unmarshal(resp.Result, &r) == nil && r.IsError {
			outcome = OutcomeToolError
		}
	}
	g.audit(ctx, s.o, server, p.Name, p.Arguments, outcome, d, s.id+"/"+string(id))
}
