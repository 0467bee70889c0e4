package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpes/mcpes/domain"
)

// Message-level relay. A gateway that wants a client to get exactly what the
// server sent uses Relay instead of the typed calls: params go out and results and
// errors come back as raw JSON, and everything the server sends that belongs to
// the request (progress, log messages, sampling, elicitation and roots requests)
// goes to the request's Peer.
//
// Routing. On streamable HTTP before 2026-07-28 mcpes posts the request itself and
// reads the answer's event stream, so whatever arrives on it belongs to that
// request (a stream the server closes early is resumed with Last-Event-ID). On
// the other transports, progress is routed by its token (mcpes gives every
// relayed request its own), and a request or log message the server sends on its
// own goes to the client session turns.go says. Notifications of no request (list
// changes, resource updates) go to every OnMessage listener.

// RPCError is a JSON-RPC error object as the server sent it.
type RPCError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *RPCError) Error() string { return fmt.Sprintf("JSON-RPC error %d: %s", e.Code, e.Message) }

// Response is a JSON-RPC answer: Result, or Error when Error is not nil. Streamed
// says the server answered on an event stream rather than with plain JSON.
type Response struct {
	Result   json.RawMessage
	Error    *RPCError
	Streamed bool
}

// Peer is the client side of a relayed request.
type Peer interface {
	// Notify receives a notification that belongs to the request, with a
	// progress token already turned back into the one the client sent.
	Notify(method string, params json.RawMessage)
	// Request asks the client (sampling, elicitation, roots) and returns its
	// answer; an error means no answer could be had.
	Request(ctx context.Context, method string, params json.RawMessage) (*Response, error)
}

// relayCall is one relayed request in flight.
type relayCall struct {
	id    string          // the upstream request id, also its progress token
	token json.RawMessage // the client's progress token; nil when it sent none
	peer  Peer
}

type callKey struct{}

// relayState is the Conn's bookkeeping for relayed requests.
type relayState struct {
	mu        sync.Mutex
	calls     map[string]*relayCall
	order     []*relayCall // in start order
	lastPeer  Peer
	listeners []func(method string, params json.RawMessage)

	// turns (turns.go): the peer whose calls are in flight, how many, how many
	// calls of other peers wait, and a channel closed when the turn ends.
	turnPeer    Peer
	turnCalls   int
	turnWaiting int
	turnFree    chan struct{}
}

// Relay sends one request as it is and returns the server's answer. Cancelling
// ctx abandons the request and tells the server (notifications/cancelled). The
// connection's own per-request timeout does not apply: the caller bounds ctx.
// Returns an error wrapping ErrConnLost or ErrClosed on a dead connection, or the
// transport's error; a JSON-RPC error from the server is a Response, not an error.
func (c *Conn) Relay(ctx context.Context, method string, params json.RawMessage, peer Peer) (*Response, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	done, err := c.turn(ctx, peer)
	if err != nil {
		return nil, c.wrap(method+" on", err)
	}
	defer done()
	call := &relayCall{id: "mcpes-r" + strconv.FormatUint(c.progressSeq.Add(1), 10), peer: peer}
	params, call.token = swapProgressToken(params, json.RawMessage(strconv.Quote(call.id)))
	c.relay.mu.Lock()
	if c.relay.calls == nil {
		c.relay.calls = map[string]*relayCall{}
	}
	c.relay.calls[call.id] = call
	c.relay.order = append(c.relay.order, call)
	if peer != nil {
		c.relay.lastPeer = peer
	}
	c.relay.mu.Unlock()
	defer c.endCall(call)

	ctx = context.WithValue(ctx, callKey{}, call)
	var resp *Response
	if c.rawHTTP() {
		resp, err = c.postRelay(ctx, call, method, params)
	} else {
		resp, err = c.sendRelay(ctx, call, method, params)
	}
	if err != nil {
		if ctx.Err() != nil && c.Alive() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = c.Notify(cctx, string(mcp.MethodNotificationCancelled),
				json.RawMessage(`{"requestId":`+strconv.Quote(call.id)+`,"reason":"cancelled by the client"}`), nil)
			cancel()
		}
		return nil, c.wrap(method+" on", err)
	}
	return resp, nil
}

func (c *Conn) endCall(call *relayCall) {
	c.relay.mu.Lock()
	delete(c.relay.calls, call.id)
	for i, x := range c.relay.order {
		if x == call {
			c.relay.order = append(c.relay.order[:i], c.relay.order[i+1:]...)
			break
		}
	}
	c.relay.mu.Unlock()
}

// Notify sends a client notification as it is (roots/list_changed, cancelled, ...).
// peer, when not nil, becomes the one the server's own requests go to.
func (c *Conn) Notify(ctx context.Context, method string, params json.RawMessage, peer Peer) error {
	if err := c.check(); err != nil {
		return err
	}
	if peer != nil {
		c.relay.mu.Lock()
		c.relay.lastPeer = peer
		c.relay.mu.Unlock()
	}
	n := mcp.JSONRPCNotification{JSONRPC: mcp.JSONRPC_VERSION, Notification: mcp.Notification{Method: method}}
	if len(params) > 0 {
		if err := json.Unmarshal(params, &n.Params); err != nil {
			return fmt.Errorf("%w: notification params: %v", ErrProtocol, err)
		}
	}
	return c.wrap("notify "+method+" to", c.client.GetTransport().SendNotification(ctx, n))
}

// OnMessage registers f for the notifications that belong to no request
// (list_changed of every kind, resources/updated, log messages sent between
// requests). f runs on the reading goroutine, in the order the server sent them:
// it must not block.
func (c *Conn) OnMessage(f func(method string, params json.RawMessage)) {
	c.relay.mu.Lock()
	c.relay.listeners = append(c.relay.listeners, f)
	c.relay.mu.Unlock()
}

// rawHTTP reports whether relayed requests are posted by mcpes itself: streamable
// HTTP before 2026-07-28, whose sessions mcpes can address directly.
func (c *Conn) rawHTTP() bool {
	return c.transport == domain.TransportStreamableHTTP && !mcp.IsModernProtocol(c.init.ProtocolVersion)
}

// swapProgressToken replaces params._meta.progressToken, when there is one, by
// token and returns the client's.
func swapProgressToken(params, token json.RawMessage) (json.RawMessage, json.RawMessage) {
	if !bytes.Contains(params, []byte(`"progressToken"`)) {
		return params, nil
	}
	var p map[string]json.RawMessage
	if json.Unmarshal(params, &p) != nil {
		return params, nil
	}
	var meta map[string]json.RawMessage
	if json.Unmarshal(p["_meta"], &meta) != nil || meta["progressToken"] == nil {
		return params, nil
	}
	old := meta["progressToken"]
	meta["progressToken"] = token
	p["_meta"], _ = json.Marshal(meta)
	out, err := json.Marshal(p)
	if err != nil {
		return params, nil
	}
	return out, old
}

// sendRelay relays through mcp-go's transport (stdio, SSE, 2026-07-28).
func (c *Conn) sendRelay(ctx context.Context, call *relayCall, method string, params json.RawMessage) (*Response, error) {
	req := transport.JSONRPCRequest{JSONRPC: mcp.JSONRPC_VERSION, ID: mcp.NewRequestId(call.id), Method: method}
	if mcp.IsModernProtocol(c.init.ProtocolVersion) {
		params = c.modernMeta(params)
		req.Header = http.Header{}
		for k, v := range mcp.StandardHeaders(c.init.ProtocolVersion, mcp.MCPMethod(method), params) {
			req.Header.Set(k, v)
		}
	}
	if len(params) > 0 {
		req.Params = params
	}
	r, err := c.client.GetTransport().SendRequest(ctx, req)
	if err != nil {
		return nil, err
	}
	out := fromTransport(r)
	if mcp.IsModernProtocol(c.init.ProtocolVersion) && out.Error == nil {
		out.Result = hopless(out.Result)
	}
	return out, nil
}

// hopless drops from a 2026-07-28 result what belongs to that hop rather than to
// the answer: its resultType and the server's identity in _meta (a client of an
// earlier revision never sees them directly).
func hopless(res json.RawMessage) json.RawMessage {
	if !bytes.Contains(res, []byte(`"resultType"`)) && !bytes.Contains(res, []byte(mcp.MetaKeyServerInfo)) {
		return res
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(res, &m) != nil {
		return res
	}
	delete(m, "resultType")
	var meta map[string]json.RawMessage
	if json.Unmarshal(m["_meta"], &meta) == nil && meta != nil {
		delete(meta, mcp.MetaKeyServerInfo)
		if len(meta) == 0 {
			delete(m, "_meta")
		} else {
			m["_meta"], _ = json.Marshal(meta)
		}
	}
	out, err := json.Marshal(m)
	if err != nil {
		return res
	}
	return out
}

// modernMeta adds what 2026-07-28 wants in the _meta of every request: the
// protocol version, the client's identity and capabilities.
func (c *Conn) modernMeta(params json.RawMessage) json.RawMessage {
	fields := map[string]json.RawMessage{}
	if len(params) > 0 && json.Unmarshal(params, &fields) != nil {
		return params
	}
	meta := map[string]json.RawMessage{}
	if raw, ok := fields["_meta"]; ok {
		_ = json.Unmarshal(raw, &meta)
	}
	meta[mcp.MetaKeyProtocolVersion], _ = json.Marshal(c.init.ProtocolVersion)
	meta[mcp.MetaKeyClientCapabilities], _ = json.Marshal(c.client.GetClientCapabilities())
	meta[mcp.MetaKeyClientInfo], _ = json.Marshal(c.clientInfo)
	fields["_meta"], _ = json.Marshal(meta)
	out, err := json.Marshal(fields)
	if err != nil {
		return params
	}
	return out
}

func fromTransport(r *transport.JSONRPCResponse) *Response {
	if r.Error == nil {
		res := r.Result
		if len(res) == 0 {
			res = json.RawMessage("{}")
		}
		return &Response{Result: res}
	}
	e := &RPCError{Code: r.Error.Code, Message: r.Error.Message}
	if r.Error.Data != nil {
		e.Data, _ = json.Marshal(r.Error.Data)
	}
	return &Response{Error: e}
}

// serverRequestTimeout bounds how long a client may take to answer a server's
// request (an elicitation waits for a person).
const serverRequestTimeout = 10 * time.Minute

// serverRequest answers a request of the server through the Peer it belongs to.
func (c *Conn) serverRequest(ctx context.Context, method string, params json.RawMessage, related *relayCall) *Response {
	if method == string(mcp.MethodPing) {
		return &Response{Result: json.RawMessage("{}")}
	}
	if related == nil {
		related, _ = ctx.Value(callKey{}).(*relayCall)
	}
	var peer Peer
	if related != nil {
		peer = related.peer
	} else {
		peer = c.peerFor(params)
	}
	if peer == nil {
		return &Response{Error: &RPCError{Code: mcp.METHOD_NOT_FOUND, Message: "no client session to answer " + method}}
	}
	out, err := peer.Request(ctx, method, params)
	if err != nil {
		return &Response{Error: &RPCError{Code: mcp.INTERNAL_ERROR, Message: err.Error()}}
	}
	return out
}

// onTransportRequest is the request handler of mcp-go's bidirectional transports.
func (c *Conn) onTransportRequest(ctx context.Context, req transport.JSONRPCRequest) (*transport.JSONRPCResponse, error) {
	var params json.RawMessage
	if req.Params != nil {
		var err error
		if params, err = json.Marshal(req.Params); err != nil {
			return nil, err
		}
	}
	out := c.serverRequest(ctx, req.Method, params, nil)
	if out.Error != nil {
		var data any
		if len(out.Error.Data) > 0 {
			_ = json.Unmarshal(out.Error.Data, &data)
		}
		return transport.NewJSONRPCErrorResponse(req.ID, out.Error.Code, out.Error.Message, data), nil
	}
	return transport.NewJSONRPCResultResponse(req.ID, out.Result), nil
}

// notification routes one notification of the server.
func (c *Conn) notification(method string, params json.RawMessage, related *relayCall) {
	switch method {
	case string(mcp.MethodNotificationProgress):
		var p struct {
			Token json.RawMessage `json:"progressToken"`
		}
		_ = json.Unmarshal(params, &p)
		var tok string
		if json.Unmarshal(p.Token, &tok) == nil {
			c.relay.mu.Lock()
			call := c.relay.calls[tok]
			c.relay.mu.Unlock()
			if call != nil && call.token != nil {
				if out, old := swapToken(params, call.token); old && call.peer != nil {
					call.peer.Notify(method, out)
				}
				return
			}
		}
		c.typedProgress(params)
		return
	case "notifications/subscriptions/acknowledged":
		c.listenAcked.Store(true)
		return
	case string(mcp.MethodNotificationToolsListChanged):
		c.handlersMu.Lock()
		hs := append([]func(){}, c.toolsHandlers...)
		c.handlersMu.Unlock()
		for _, h := range hs {
			go h()
		}
	case "notifications/message":
		if related != nil && related.peer != nil {
			related.peer.Notify(method, params)
			return
		}
		c.relay.mu.Lock()
		busy := len(c.relay.order) > 0
		c.relay.mu.Unlock()
		if peer := c.peerFor(params); busy && peer != nil {
			peer.Notify(method, params) // a log message during a call: that call's session's
			return
		}
	}
	c.relay.mu.Lock()
	ls := append([]func(string, json.RawMessage){}, c.relay.listeners...)
	c.relay.mu.Unlock()
	for _, f := range ls {
		f(method, params)
	}
}

// swapToken puts the client's progress token back into a progress notification.
func swapToken(params, token json.RawMessage) (json.RawMessage, bool) {
	var p map[string]json.RawMessage
	if json.Unmarshal(params, &p) != nil {
		return nil, false
	}
	p["progressToken"] = token
	out, err := json.Marshal(p)
	return out, err == nil
}
