package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcpes/mcpes/connections"
	"github.com/mcpes/mcpes/upstream"
)

// DefaultMaxTimeout bounds a request whose progress keeps restarting its timeout,
// unless Deps.MaxTimeout says otherwise.
const DefaultMaxTimeout = 10 * time.Minute

func withCorrelationID(ctx context.Context, id string) context.Context {
	return connections.WithCorrelationID(ctx, id)
}

// peer is the client side of relayed requests of one session: what belongs to a
// request goes on its stream (st; the GET stream when nil).
type peer struct {
	s   *session
	st  *stream
	ddl *deadline
}

func (p *peer) Notify(method string, params json.RawMessage) {
	switch method {
	case "notifications/progress":
		if p.ddl != nil {
			p.ddl.progressed()
		}
	case "notifications/message":
		if !p.s.wantsLog(params) {
			return
		}
	}
	p.s.send(p.st, notificationMsg(method, params), false)
}

func (p *peer) Request(ctx context.Context, method string, params json.RawMessage) (*upstream.Response, error) {
	raw, err := p.s.request(ctx, p.st, method, params)
	if err != nil {
		if errors.Is(err, ErrUnsupported) {
			return &upstream.Response{Error: &upstream.RPCError{Code: -32601, Message: err.Error()}}, nil
		}
		return nil, err
	}
	var m struct {
		Result json.RawMessage    `json:"result"`
		Error  *upstream.RPCError `json:"error"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	if m.Error != nil {
		return &upstream.Response{Error: m.Error}, nil
	}
	if len(m.Result) == 0 {
		m.Result = json.RawMessage("{}")
	}
	return &upstream.Response{Result: m.Result}, nil
}

func notificationMsg(method string, params json.RawMessage) []byte {
	b, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		Method  string          `json:"method"`
		Params  json.RawMessage `json:"params,omitempty"`
	}{"2.0", method, params})
	return b
}

// wantsLog filters a log message by the level the session set.
func (s *session) wantsLog(params json.RawMessage) bool {
	s.mu.Lock()
	lvl := s.level
	s.mu.Unlock()
	if lvl < 0 {
		return true
	}
	var p struct {
		Level string `json:"level"`
	}
	_ = json.Unmarshal(params, &p)
	return levelIndex(p.Level) >= lvl
}

// handle answers one request of a session on st; final says its answer ends st.
func (g *Gateway) handle(s *session, st *stream, m wire, final bool) {
	answer := func(b []byte) { s.send(st, b, final) }
	if m.Method == "ping" {
		answer(rpcResult(m.ID, json.RawMessage("{}")))
		return
	}
	server, params := s.server, m.Params
	var fix func(json.RawMessage) json.RawMessage
	if server == "" {
		if strings.HasSuffix(m.Method, "/list") {
			s.stream(st) // lists come on an event stream, as the suite expects of a server
		}
		var done bool
		if server, params, fix, done = g.route(s, m, answer); done {
			return
		}
	}
	o := s.o
	start := g.d.Clock()
	timeout := o.timeoutOf(server)
	ctx, cancel := context.WithCancelCause(s.ctx)
	defer cancel(nil)
	ddl := &deadline{start: time.Now(), timeout: timeout, max: max(g.d.MaxTimeout, timeout)}
	ddl.timer = time.AfterFunc(timeout, func() { cancel(errTimedOut) })
	defer ddl.timer.Stop()
	key := string(m.ID)
	s.mu.Lock()
	s.inflight[key] = func() { cancel(context.Canceled) }
	st.cancels = append(st.cancels, func() { cancel(context.Canceled) })
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.inflight, key)
		s.mu.Unlock()
	}()
	ctx = withCorrelation(ctx, s, m.ID)

	up, err := o.upstreamOf(ctx, server)
	if err != nil {
		if m.Method == "tools/call" {
			if a := g.authorizationAnswer(ctx, s, m.ID, server, err); a != nil {
				answer(a) // the link to authorize at, not a failure
				return
			}
		}
		answer(rpcError(m.ID, -32603, g.failure(ctx, server, timeout, err), nil))
		return
	}
	switch m.Method {
	case "logging/setLevel":
		params = g.setLevel(s, params)
	case "resources/unsubscribe":
		if g.subscribe(s, server, params, false) {
			answer(rpcResult(m.ID, json.RawMessage("{}"))) // others still subscribed
			return
		}
	}
	resp, err := up.Relay(ctx, m.Method, params, &peer{s: s, st: st, ddl: ddl})
	if m.Method == "tools/call" && err == nil && resp.Error != nil && resp.Error.Code == -32602 && o.catalogueMoved(server, up) {
		// The tool may be one the server added after this connection opened (and
		// offers only to newer sessions): renew the connection once and retry.
		if derr := o.repo.Disconnect(connections.WithActor(ctx, o.actorOf(ctx)), server); derr == nil {
			if up, err = o.upstreamOf(ctx, server); err == nil {
				resp, err = up.Relay(ctx, m.Method, params, &peer{s: s, st: st, ddl: ddl})
			}
		}
	}
	if m.Method == "tools/call" && (g.d.AuditToolCalls == AuditMetadata || g.d.AuditToolCalls == AuditFull) {
		g.auditRaw(ctx, s, server, m.ID, params, resp, err, g.d.Clock().Sub(start))
	}
	if err != nil {
		if m.Method == "tools/call" {
			if a := g.authorizationAnswer(ctx, s, m.ID, server, err); a != nil {
				answer(a) // the server asked for more scope: the link to authorize at
				return
			}
		}
		answer(rpcError(m.ID, -32603, g.failure(ctx, server, timeout, err), nil))
		return
	}
	if m.Method == "tools/call" && resp.Error == nil {
		g.callSucceeded(o.owner, server)
	}
	if resp.Error != nil {
		answer(rpcError(m.ID, resp.Error.Code, resp.Error.Message, resp.Error.Data))
		return
	}
	if m.Method == "resources/subscribe" {
		g.subscribe(s, server, params, true)
	}
	if resp.Streamed {
		s.stream(st) // answer the way the upstream did
	}
	result := resp.Result
	if fix != nil {
		result = fix(result)
	}
	answer(rpcResult(m.ID, result))
}

// failure is the message of a request that got no answer from the upstream.
func (g *Gateway) failure(ctx context.Context, server string, timeout time.Duration, err error) string {
	if errors.Is(context.Cause(ctx), errTimedOut) {
		return "server " + server + " did not answer within its timeout (" + timeout.String() + ")"
	}
	return err.Error()
}

// setLevel records the session's level and returns the params to send upstream:
// the most verbose level of the sessions on that server.
func (g *Gateway) setLevel(s *session, params json.RawMessage) json.RawMessage {
	var p struct {
		Level string `json:"level"`
	}
	if json.Unmarshal(params, &p) != nil || levelIndex(p.Level) < 0 {
		return params
	}
	s.mu.Lock()
	s.level = levelIndex(p.Level)
	s.mu.Unlock()
	lowest := levelIndex(p.Level)
	for _, x := range g.sessionsOf(s.o.owner, s.server) {
		x.mu.Lock()
		if x.level >= 0 && x.level < lowest {
			lowest = x.level
		}
		x.mu.Unlock()
	}
	return json.RawMessage(`{"level":` + strconv.Quote(logLevels[lowest]) + `}`)
}

// subscribe records (on) or drops a session's subscription to the upstream URI in
// params of server. Dropping reports whether another session of the owner is
// still subscribed (then the upstream stays subscribed).
func (g *Gateway) subscribe(s *session, server string, params json.RawMessage, on bool) (others bool) {
	var p struct {
		URI string `json:"uri"`
	}
	if json.Unmarshal(params, &p) != nil || p.URI == "" {
		return false
	}
	key := server + "\x00" + p.URI
	s.mu.Lock()
	if on {
		s.subs[key] = true
	} else {
		delete(s.subs, key)
	}
	s.mu.Unlock()
	if on {
		return false
	}
	for _, x := range g.sessionsFor(s.o.owner, server) {
		if x == s {
			continue
		}
		x.mu.Lock()
		sub := x.subs[key]
		x.mu.Unlock()
		if sub {
			return true
		}
	}
	return false
}

// sessionsFor returns the open sessions that hear from server: its own and the
// owner's aggregate sessions.
func (g *Gateway) sessionsFor(owner, server string) []*session {
	g.sessMu.Lock()
	defer g.sessMu.Unlock()
	var out []*session
	for s := range g.byOwner[owner] {
		if s.server == server || s.server == "" {
			out = append(out, s)
		}
	}
	return out
}

// sessionsOf returns the open sessions of owner on server.
func (g *Gateway) sessionsOf(owner, server string) []*session {
	g.sessMu.Lock()
	defer g.sessMu.Unlock()
	var out []*session
	for s := range g.byOwner[owner] {
		if s.server == server {
			out = append(out, s)
		}
	}
	return out
}

// hookMessages delivers, once per upstream connection, the notifications that
// belong to no request to the sessions of that server: list changes to all (and a
// prompts or resources change re-inspects the server, as a tools change does),
// resources/updated to the subscribers, log messages by each session's level.
func (g *Gateway) hookMessages(owner, server string, up *upstream.Conn) {
	if _, seen := g.hookedMsgs.LoadOrStore(up, struct{}{}); seen {
		return
	}
	up.OnMessage(func(method string, params json.RawMessage) {
		switch method {
		case "notifications/prompts/list_changed", "notifications/resources/list_changed":
			if g.d.Inspector != nil {
				st, _, _ := g.d.Servers.Effective(owner, server)
				if st.Exists {
					go g.reinspect(st.Scope, server)
				}
			}
		}
		var uri string
		if method == "notifications/resources/updated" {
			var p struct {
				URI string `json:"uri"`
			}
			_ = json.Unmarshal(params, &p)
			uri = p.URI
		}
		msg := notificationMsg(method, params)
		var aggMsg []byte // the aggregate's: its list changes come from the offer
		if uri != "" {
			aggMsg = notificationMsg(method, json.RawMessage(rewriteEntry(params, "uri", ResourceURI(server, uri))))
		} else if !strings.HasSuffix(method, "/list_changed") {
			aggMsg = msg
		}
		for _, s := range g.sessionsFor(owner, server) {
			switch {
			case s.listen != nil:
				continue // a listen stream hears only the list changes it asked for
			case uri != "":
				s.mu.Lock()
				sub := s.subs[server+"\x00"+uri]
				s.mu.Unlock()
				if !sub {
					continue
				}
			case method == "notifications/message" && !s.wantsLog(params):
				continue
			}
			if s.server == "" {
				if aggMsg != nil {
					s.send(nil, aggMsg, false)
				}
				continue
			}
			s.send(nil, msg, false)
		}
	})
	go func() {
		<-up.Done()
		g.hookedMsgs.Delete(up)
	}()
}

// errTimedOut ends a request that ran past its timeout.
var errTimedOut = errors.New("timed out")

// deadline is a request's timeout: each progress notification restarts it, up to
// max after the start.
type deadline struct {
	mu      sync.Mutex
	timer   *time.Timer
	start   time.Time
	timeout time.Duration
	max     time.Duration
}

func (d *deadline) progressed() {
	d.mu.Lock()
	defer d.mu.Unlock()
	left := d.max - time.Since(d.start)
	if left > 0 {
		d.timer.Reset(min(d.timeout, left))
	}
}

func withCorrelation(ctx context.Context, s *session, id json.RawMessage) context.Context {
	return withCorrelationID(ctx, s.id+"/"+string(id))
}
