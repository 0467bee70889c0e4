package gateway

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

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

// callTool routes tool of srv: the owner's repository Get, then tools/call upstream
// under srv's timeout with the client's cancellation, forwarding progress when the
// client sent a progress token. A tool-level error comes back as a result with
// IsError; a failure to connect or a protocol error as an error (a JSON-RPC error to
// the client).
func (o *ownerServer) callTool(srv, tool string) server.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		start := o.g.d.Clock()
		timeout := o.timeoutOf(srv)
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		res, err := o.call(cctx, ctx, srv, tool, req)
		if err != nil {
			err = explain(cctx, srv, timeout, err)
		}
		if o.g.d.AuditToolCalls == AuditMetadata || o.g.d.AuditToolCalls == AuditFull {
			outcome := OutcomeOK
			switch {
			case err != nil:
				outcome = OutcomeError
			case res != nil && res.IsError:
				outcome = OutcomeToolError
			}
			o.g.audit(ctx, o, srv, tool, req.Params.Arguments, outcome, o.g.d.Clock().Sub(start), "")
		}
		return res, err
	}
}

func (o *ownerServer) call(ctx, reqCtx context.Context, srv, tool string, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	up, err := o.upstreamOf(ctx, srv)
	if err != nil {
		return o.authorizationNeeded(reqCtx, srv, err)
	}
	var progress func(upstream.Progress)
	if req.Params.Meta != nil && req.Params.Meta.ProgressToken != nil {
		if s := server.ServerFromContext(reqCtx); s != nil {
			token := req.Params.Meta.ProgressToken
			progress = func(p upstream.Progress) {
				params := map[string]any{"progressToken": token, "progress": p.Progress}
				if p.Total != 0 {
					params["total"] = p.Total
				}
				if p.Message != "" {
					params["message"] = p.Message
				}
				_ = s.SendNotificationToClient(reqCtx, string(mcp.MethodNotificationProgress), params)
			}
		}
	}
	res, err := up.CallTool(ctx, tool, req.Params.Arguments, progress)
	if err != nil {
		return o.authorizationNeeded(reqCtx, srv, err)
	}
	o.g.callSucceeded(o.owner, srv)
	cleanResult(&res.Result)
	return res, nil
}

// cleanResult drops what belongs to the upstream hop rather than to the answer: the
// result type of the upstream's protocol era (mcp-go sets the client's own) and the
// upstream's server info in _meta. Other _meta fields pass through.
func cleanResult(r *mcp.Result) {
	r.ResultType = ""
	if r.Meta == nil {
		return
	}
	delete(r.Meta.AdditionalFields, mcp.MetaKeyServerInfo)
	if r.Meta.ProgressToken == nil && len(r.Meta.AdditionalFields) == 0 {
		r.Meta = nil
	}
}

func (o *ownerServer) getPrompt(srv, prompt string) server.PromptHandlerFunc {
	return func(ctx context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		timeout := o.timeoutOf(srv)
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		up, err := o.upstreamOf(cctx, srv)
		if err != nil {
			return nil, explain(cctx, srv, timeout, err)
		}
		res, err := up.GetPrompt(cctx, prompt, req.Params.Arguments)
		if err != nil {
			return nil, explain(cctx, srv, timeout, err)
		}
		cleanResult(&res.Result)
		return res, nil
	}
}

func (o *ownerServer) readResource(srv, uri string) server.ResourceHandlerFunc {
	return func(ctx context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
		timeout := o.timeoutOf(srv)
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		up, err := o.upstreamOf(cctx, srv)
		if err != nil {
			return nil, explain(cctx, srv, timeout, err)
		}
		res, err := up.ReadResource(cctx, uri)
		if err != nil {
			return nil, explain(cctx, srv, timeout, err)
		}
		out := make([]mcp.ResourceContents, 0, len(res.Contents))
		for _, c := range res.Contents {
			switch t := c.(type) {
			case mcp.TextResourceContents:
				t.URI = ResourceURI(srv, t.URI)
				c = t
			case mcp.BlobResourceContents:
				t.URI = ResourceURI(srv, t.URI)
				c = t
			}
			out = append(out, c)
		}
		return out, nil
	}
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

// authorizationNeeded turns a refusal for want of an OAuth grant into the link the
// owner must open: a URL elicitation (-32042) for clients that declared URL
// elicitation, else a tool error result carrying the link. Other errors pass.
func (o *ownerServer) authorizationNeeded(ctx context.Context, srv string, err error) (*mcp.CallToolResult, error) {
	u, ok, aerr := o.authorizationLink(ctx, srv, err)
	if aerr != nil || !ok {
		return nil, cmp.Or(aerr, err)
	}
	if s, ok := server.ClientSessionFromContext(ctx).(server.SessionWithClientInfo); ok {
		// -32042 is the 2025-11-25 answer; 2026-07-28 reserves the code, so its
		// clients get the link in the result like clients without URL elicitation.
		if c := s.GetClientCapabilities().Elicitation; c != nil && c.URL != nil && !mcp.IsModernProtocol(server.RequestProtocolVersion(ctx)) {
			return nil, urlElicitation(o, srv, u)
		}
	}
	return mcp.NewToolResultError(authorizationNeededMsg(srv, u)), nil
}

// urlElicitation is the -32042 error asking the client to open the link.
func urlElicitation(o *ownerServer, srv, link string) mcp.URLElicitationRequiredError {
	return mcp.URLElicitationRequiredError{Elicitations: []mcp.ElicitationParams{{Mode: mcp.ElicitationModeURL,
		Message: "mcpes needs your authorization to use " + srv, URL: link, ElicitationID: o.g.d.NewID()}}}
}

// authorizationAnswer is authorizationNeeded for a tools/call relayed on a session:
// the raw answer, or nil when err is not a refusal for want of a grant.
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
