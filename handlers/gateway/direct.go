package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// /mcp/{server}: one server of the caller's view, relayed at the message level.
// Requests go to the upstream as the client sent them (with mcpes's own request
// ids and progress tokens, mapped back on the way out), and results, errors
// (code, message, data) and notifications come back as the upstream sent them.
// initialize is answered from the upstream's own initialize result (capabilities,
// serverInfo, instructions); ping is answered here.
//
// Client sessions share the owner's one connection to the server (the
// repository's). What a session asks of the server's state is kept per session
// where the protocol allows: the log level each session set filters the log
// messages it gets (the upstream is set to the most verbose level any session
// asked for), and resources/updated goes to the sessions subscribed to the URI
// (the upstream is unsubscribed when the last one leaves). Requests the server
// makes (sampling, elicitation, roots) go to the session whose request caused
// them (see upstream.Relay for how that is known per transport).

// Protocol revisions a client may negotiate on /mcp/{server}; the first is
// offered to a client asking for one not listed.
var revisions = []string{"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}

// batchRevisions allow JSON-RPC batches.
var batchRevisions = map[string]bool{"2025-03-26": true}

// maxBatch bounds the messages of one batch.
const maxBatch = 64

// wire is one JSON-RPC message from a client, undecoded.
type wire struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   json.RawMessage `json:"error,omitempty"`
}

func (m *wire) isRequest() bool      { return m.Method != "" && len(m.ID) > 0 }
func (m *wire) isNotification() bool { return m.Method != "" && len(m.ID) == 0 }

// serveDirect answers /mcp/{server} for owner.
func (g *Gateway) serveDirect(w http.ResponseWriter, r *http.Request, owner, server string) {
	if server != "" {
		if st, _, _ := g.d.Servers.Effective(owner, server); !st.Exists {
			http.Error(w, "no server "+server, http.StatusNotFound)
			return
		}
	}
	switch r.Method {
	case http.MethodPost:
		g.directPost(w, r, owner, server)
	case http.MethodGet:
		g.directGet(w, r, owner, server)
	case http.MethodDelete:
		s := g.sessionOf(w, r, owner, server)
		if s == nil {
			return
		}
		g.dropSession(s)
		w.WriteHeader(http.StatusOK)
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// accepts reports whether the Accept header admits every one of types.
func accepts(h string, types ...string) bool {
	if h == "" {
		return false
	}
	for _, t := range types {
		ok := false
		for _, part := range strings.Split(h, ",") {
			mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			major, _, _ := strings.Cut(t, "/")
			if mt == t || mt == "*/*" || mt == major+"/*" {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// sessionOf finds the session the request names, answering 400 (none named) or
// 404 (unknown, ended or another owner's) itself when there is none.
func (g *Gateway) sessionOf(w http.ResponseWriter, r *http.Request, owner, server string) *session {
	id := r.Header.Get("Mcp-Session-Id")
	if id == "" {
		writeRPCError(w, http.StatusBadRequest, nil, -32600, "missing Mcp-Session-Id")
		return nil
	}
	g.sessMu.Lock()
	s := g.sessions[id]
	g.sessMu.Unlock()
	if s == nil || s.o.owner != owner || s.server != server || !s.touch(g.d.Clock()) {
		writeRPCError(w, http.StatusNotFound, nil, -32001, "session not found")
		return nil
	}
	return s
}

func writeRPCError(w http.ResponseWriter, status int, id json.RawMessage, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(rpcError(id, code, msg, nil))
}

// hasURLMode reports whether an elicitation capability declares URL mode.
func hasURLMode(elicitation json.RawMessage) bool {
	var e struct {
		URL json.RawMessage `json:"url"`
	}
	return json.Unmarshal(elicitation, &e) == nil && e.URL != nil
}

func rpcError(id json.RawMessage, code int, msg string, data json.RawMessage) []byte {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	b, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   any             `json:"error"`
	}{"2.0", id, struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data,omitempty"`
	}{code, msg, data}})
	return b
}

func rpcResult(id, result json.RawMessage) []byte {
	b, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  json.RawMessage `json:"result"`
	}{"2.0", id, result})
	return b
}

// readPost checks a POST's Accept (406) and Content-Type (415) headers and reads its
// body (bounded by the route's MaxBytesReader: 413), answering the client itself
// when it returns false.
func readPost(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if !accepts(r.Header.Get("Accept"), "application/json", "text/event-stream") {
		http.Error(w, "Accept must admit application/json and text/event-stream", http.StatusNotAcceptable)
		return nil, false
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		http.Error(w, "Content-Type must be application/json", http.StatusUnsupportedMediaType)
		return nil, false
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "request body: "+err.Error(), http.StatusRequestEntityTooLarge)
		return nil, false
	}
	return body, true
}

// directPost handles one POST: an initialize, or messages of a session.
func (g *Gateway) directPost(w http.ResponseWriter, r *http.Request, owner, server string) {
	body, ok := readPost(w, r)
	if !ok {
		return
	}
	body = bytes.TrimSpace(body)
	var msgs []wire
	var err error
	batch := len(body) > 0 && body[0] == '['
	if batch {
		err = json.Unmarshal(body, &msgs)
	} else {
		var m wire
		err = json.Unmarshal(body, &m)
		msgs = []wire{m}
	}
	if err != nil || len(msgs) == 0 {
		writeRPCError(w, http.StatusBadRequest, nil, -32700, "parse error")
		return
	}
	if !batch && msgs[0].Method == "initialize" {
		g.initialize(w, r, owner, server, msgs[0])
		return
	}
	s := g.sessionOf(w, r, owner, server)
	if s == nil {
		return
	}
	if batch && !batchRevisions[s.proto] {
		writeRPCError(w, http.StatusBadRequest, nil, -32600, "batches are not part of protocol revision "+s.proto)
		return
	}
	if len(msgs) > maxBatch {
		writeRPCError(w, http.StatusBadRequest, nil, -32600, "a batch of more than "+strconv.Itoa(maxBatch)+" messages")
		return
	}
	var reqs []wire
	for _, m := range msgs {
		switch {
		case m.isRequest():
			if m.Method == "initialize" {
				writeRPCError(w, http.StatusBadRequest, m.ID, -32600, "initialize in a batch")
				return
			}
			reqs = append(reqs, m)
		case m.isNotification():
			g.clientNotification(r.Context(), s, m)
		case len(m.ID) > 0:
			var id string
			if json.Unmarshal(m.ID, &id) == nil {
				raw, _ := json.Marshal(m)
				s.answered(id, raw)
			}
		}
	}
	if len(reqs) == 0 {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	st := s.newStream("p")
	w.Header().Set("Mcp-Session-Id", s.id)
	s.mu.Lock()
	st.w = w
	if !batch {
		st.onJSON = func(msg []byte) bool {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			_, err := w.Write(msg)
			return err == nil
		}
	} else {
		s.attach(st, w)
	}
	s.mu.Unlock()
	stop := context.AfterFunc(r.Context(), func() {
		s.detach(st, w)
		time.AfterFunc(resumeGrace, func() { s.abandon(st) })
	})
	defer stop()
	if !batch {
		g.handle(s, st, reqs[0], true)
		return
	}
	var wg sync.WaitGroup
	for _, m := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.handle(s, st, m, false)
		}()
	}
	wg.Wait()
	s.mu.Lock()
	s.finish(st)
	s.mu.Unlock()
}

// directGet opens the session's standalone event stream, or resumes a stream
// after Last-Event-ID.
func (g *Gateway) directGet(w http.ResponseWriter, r *http.Request, owner, server string) {
	if !accepts(r.Header.Get("Accept"), "text/event-stream") {
		http.Error(w, "Accept must admit text/event-stream", http.StatusNotAcceptable)
		return
	}
	s := g.sessionOf(w, r, owner, server)
	if s == nil {
		return
	}
	var st *stream
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		var ok bool
		if st, ok = s.resume(w, last); !ok {
			http.Error(w, "unknown Last-Event-ID", http.StatusNotFound)
			return
		}
		if st == nil {
			return
		}
	} else {
		s.mu.Lock()
		if s.get != nil && s.get.w != nil && !s.get.done {
			s.mu.Unlock()
			http.Error(w, "the session already has a GET stream", http.StatusConflict)
			return
		}
		if s.get == nil || s.get.done {
			s.seq++
			s.get = &stream{id: "g" + newSessionID()[:8], wake: make(chan struct{})}
		}
		st = s.get
		s.attach(st, w)
		s.mu.Unlock()
	}
	select {
	case <-st.wake:
	case <-r.Context().Done():
	case <-s.ctx.Done():
	}
	s.detach(st, w)
}

// initialize starts a session: the upstream connection (through the owner's
// repository) answers with its own capabilities, serverInfo and instructions.
func (g *Gateway) initialize(w http.ResponseWriter, r *http.Request, owner, server string, m wire) {
	if len(m.ID) == 0 {
		writeRPCError(w, http.StatusBadRequest, nil, -32600, "initialize without an id")
		return
	}
	var p struct {
		ProtocolVersion string `json:"protocolVersion"`
		Capabilities    struct {
			Sampling    json.RawMessage `json:"sampling"`
			Elicitation json.RawMessage `json:"elicitation"`
			Roots       json.RawMessage `json:"roots"`
		} `json:"capabilities"`
	}
	_ = json.Unmarshal(m.Params, &p)
	proto := revisions[0]
	for _, v := range revisions {
		if v == p.ProtocolVersion {
			proto = v
		}
	}
	o := g.ownerServer(owner)
	if o == nil {
		http.Error(w, ErrClosed.Error(), http.StatusServiceUnavailable)
		return
	}
	s := &session{id: newSessionID(), o: o, server: server, proto: proto, level: -1,
		caps: clientCaps{sampling: p.Capabilities.Sampling != nil, elicitation: p.Capabilities.Elicitation != nil,
			roots: p.Capabilities.Roots != nil, urlElicitation: hasURLMode(p.Capabilities.Elicitation)},
		lastUsed: g.d.Clock(), subs: map[string]bool{}, streams: map[string]*stream{},
		inflight: map[string]context.CancelFunc{}, pending: map[string]chan json.RawMessage{}}
	s.ctx, s.cancel = context.WithCancel(g.ctx)
	if server == "" {
		if !g.addSession(s) {
			s.cancel()
			writeRPCError(w, http.StatusServiceUnavailable, m.ID, -32603, "too many sessions")
			return
		}
		writeJSON(w, s.id, rpcResult(m.ID, o.aggregateInit(proto)))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), o.timeoutOf(server))
	defer cancel()
	up, err := o.upstreamOf(withCorrelation(ctx, s, m.ID), server)
	if err != nil {
		s.cancel()
		writeJSON(w, "", rpcError(m.ID, -32603, explain(ctx, server, o.timeoutOf(server), err).Error(), nil))
		return
	}
	instr := up.Instructions()
	if st, _, _ := g.d.Servers.Effective(owner, server); st.Config.ServerInstructions != nil && st.Config.ServerInstructions.Text != "" {
		instr = st.Config.ServerInstructions.Text // the operator's own text wins, as at inspection
	}
	caps, _ := json.Marshal(up.Capabilities())
	info, _ := json.Marshal(up.ServerInfo())
	res, _ := json.Marshal(struct {
		ProtocolVersion string          `json:"protocolVersion"`
		Capabilities    json.RawMessage `json:"capabilities"`
		ServerInfo      json.RawMessage `json:"serverInfo"`
		Instructions    string          `json:"instructions,omitempty"`
	}{proto, caps, info, instr})
	if !g.addSession(s) {
		s.cancel()
		writeRPCError(w, http.StatusServiceUnavailable, m.ID, -32603, "too many sessions")
		return
	}
	writeJSON(w, s.id, rpcResult(m.ID, res))
}

func writeJSON(w http.ResponseWriter, sessionID string, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	if sessionID != "" {
		w.Header().Set("Mcp-Session-Id", sessionID)
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// addSession registers s after dropping sessions idle past the TTL; false when
// the gateway holds its maximum of sessions.
func (g *Gateway) addSession(s *session) bool {
	now := g.d.Clock()
	g.sessMu.Lock()
	defer g.sessMu.Unlock()
	if len(g.sessions) >= g.d.MaxSessions/2 || now.Sub(g.swept) > g.d.SessionIdleTTL/2 {
		g.swept = now
		for id, x := range g.sessions {
			x.mu.Lock()
			idle := now.Sub(x.lastUsed) > g.d.SessionIdleTTL && len(x.inflight) == 0
			x.mu.Unlock()
			if idle {
				g.unindex(id, x)
				go x.end()
			}
		}
	}
	if len(g.sessions) >= g.d.MaxSessions {
		return false
	}
	g.sessions[s.id] = s
	if g.byOwner[s.o.owner] == nil {
		g.byOwner[s.o.owner] = map[*session]struct{}{}
	}
	g.byOwner[s.o.owner][s] = struct{}{}
	return true
}

// unindex forgets a session; the caller holds g.sessMu.
func (g *Gateway) unindex(id string, s *session) {
	delete(g.sessions, id)
	if m := g.byOwner[s.o.owner]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(g.byOwner, s.o.owner)
		}
	}
}

func (g *Gateway) dropSession(s *session) {
	g.sessMu.Lock()
	g.unindex(s.id, s)
	g.sessMu.Unlock()
	s.end()
}

// clientNotification handles a notification of the client.
func (g *Gateway) clientNotification(ctx context.Context, s *session, m wire) {
	switch m.Method {
	case "notifications/initialized":
		return
	case "notifications/cancelled":
		var p struct {
			RequestID json.RawMessage `json:"requestId"`
		}
		if json.Unmarshal(m.Params, &p) == nil {
			s.mu.Lock()
			cancel := s.inflight[string(p.RequestID)]
			s.mu.Unlock()
			if cancel != nil {
				cancel()
			}
		}
		return
	}
	if s.server == "" {
		// the aggregate's client speaks to every open connection of the owner
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		for _, c := range s.o.repo.GetLoaded() {
			if up := c.Upstream(); up != nil {
				if err := up.Notify(ctx, m.Method, m.Params, &peer{s: s}); err != nil {
					g.d.Logger.Debug("gateway: notification not relayed", "server", c.Server, "method", m.Method, "err", err)
				}
			}
		}
		return
	}
	ctx, cancel := context.WithTimeout(withCorrelationID(context.WithoutCancel(ctx), s.id), s.o.timeoutOf(s.server))
	defer cancel()
	up, err := s.o.upstreamOf(ctx, s.server)
	if err != nil {
		g.d.Logger.Debug("gateway: notification not relayed", "server", s.server, "method", m.Method, "err", err)
		return
	}
	if err := up.Notify(ctx, m.Method, m.Params, &peer{s: s}); err != nil {
		g.d.Logger.Debug("gateway: notification not relayed", "server", s.server, "method", m.Method, "err", err)
	}
}
