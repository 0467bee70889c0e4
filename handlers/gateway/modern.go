package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"

	"github.com/mcpes/mcpes/handlers"
)

// Clients of protocol revision 2026-07-28 on /mcp. That revision has no
// initialize and no session: a client discovers the server (server/discover),
// then sends each request on its own, and hears of list changes on a
// subscriptions/listen stream it keeps open. Each request gets a session of the
// relay that lives as long as the request (its own id, so its decisions carry a
// correlation id like any other), and so the same answers as every other client:
// entries, results and errors verbatim, progress before the result, the timeout
// extended by progress. Errors map onto HTTP statuses as the revision says.
// Server-to-client requests are not relayed to these clients (the revision asks
// for them as multi round-trip results, which mcpes does not speak yet): the
// upstream gets an error, as from a client without the capability.

// modernRevision is the protocol revision without sessions.
const modernRevision = "2026-07-28"

// subscriptionIDKey tags every message of a subscriptions/listen stream.
const subscriptionIDKey = "io.modelcontextprotocol/subscriptionId"

// listenable maps the filter fields of subscriptions/listen to the notifications
// they select.
var listenable = map[string]string{
	"toolsListChanged":     "notifications/tools/list_changed",
	"promptsListChanged":   "notifications/prompts/list_changed",
	"resourcesListChanged": "notifications/resources/list_changed",
}

// serveModern serves one request of a client without a session on /mcp.
func (g *Gateway) serveModern(w http.ResponseWriter, r *http.Request, owner string) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "revision "+modernRevision+" has no "+r.Method+" on /mcp: POST a request, or initialize", http.StatusMethodNotAllowed)
		return
	}
	body, ok := readPost(w, r)
	if !ok {
		return
	}
	var m wire
	if body = bytes.TrimSpace(body); len(body) == 0 || body[0] != '{' || json.Unmarshal(body, &m) != nil {
		writeRPCError(w, http.StatusBadRequest, nil, -32700, "parse error (one JSON-RPC message per request)")
		return
	}
	if !m.isRequest() {
		w.WriteHeader(http.StatusAccepted) // notifications and answers: nothing here waits for them
		return
	}
	o := g.ownerServer(owner)
	if o == nil {
		http.Error(w, ErrClosed.Error(), http.StatusServiceUnavailable)
		return
	}
	s := &session{id: newSessionID(), o: o, proto: modernRevision, level: -1, lastUsed: g.d.Clock(),
		subs: map[string]bool{}, streams: map[string]*stream{},
		inflight: map[string]context.CancelFunc{}, pending: map[string]chan json.RawMessage{}}
	ctx := g.ctx
	if id, ok := handlers.IdentityFrom(r.Context()); ok {
		ctx = handlers.WithIdentity(ctx, id) // decisions name the caller, as the request's own
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	defer s.cancel()
	stop := context.AfterFunc(r.Context(), s.cancel)
	defer stop()
	switch m.Method {
	case "server/discover":
		writeJSON(w, "", rpcResult(m.ID, o.discover()))
	case "subscriptions/listen":
		g.listen(w, s, m)
	case "resources/subscribe", "resources/unsubscribe":
		// replaced by the listen filter in this revision (not relayed yet: a
		// subscription of a request that ends at once would outlive its client)
		writeRPCError(w, http.StatusNotFound, m.ID, -32601, m.Method+" is not part of revision "+modernRevision)
	default:
		m.Params = hopless(m.Params)
		st := s.newStream("p")
		s.mu.Lock()
		st.w = w
		st.onJSON = func(msg []byte) bool {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(errorStatus(msg))
			_, err := w.Write(msg)
			return err == nil
		}
		s.mu.Unlock()
		g.handle(s, st, m, true)
	}
}

// discover is the aggregate's server/discover result.
func (o *ownerServer) discover() []byte {
	o.offerMu.RLock()
	instr := aggregateIntro + o.instructions
	o.offerMu.RUnlock()
	b, _ := json.Marshal(struct {
		SupportedVersions []string        `json:"supportedVersions"`
		Capabilities      json.RawMessage `json:"capabilities"`
		ServerInfo        any             `json:"serverInfo"`
		Instructions      string          `json:"instructions"`
	}{append([]string{modernRevision}, revisions...), json.RawMessage(aggregateCapabilities),
		map[string]string{"name": "mcpes", "version": "1"}, instr})
	return b
}

// listen keeps a subscriptions/listen stream open until the client leaves: it is
// acknowledged with what it may hear, then carries the owner's list changes it
// asked for.
func (g *Gateway) listen(w http.ResponseWriter, s *session, m wire) {
	var p struct {
		Notifications map[string]json.RawMessage `json:"notifications"`
	}
	_ = json.Unmarshal(m.Params, &p)
	s.listen = map[string]bool{}
	allowed := map[string]bool{}
	for field, method := range listenable {
		if string(p.Notifications[field]) == "true" {
			s.listen[method], allowed[field] = true, true
		}
	}
	s.listenID = m.ID
	if !g.addListener(s) {
		writeRPCError(w, http.StatusServiceUnavailable, m.ID, -32603, "too many sessions")
		return
	}
	defer g.dropListener(s)
	ack, _ := json.Marshal(map[string]any{"_meta": map[string]json.RawMessage{subscriptionIDKey: m.ID}, "notifications": allowed})
	s.mu.Lock()
	s.seq++
	s.get = &stream{id: "l" + newSessionID()[:8], wake: make(chan struct{})}
	st := s.get
	s.attach(st, w)
	w.Header().Del("Mcp-Session-Id") // set by attach: this revision has none
	s.mu.Unlock()
	s.send(nil, notificationMsg("notifications/subscriptions/acknowledged", ack), false)
	<-s.ctx.Done()
	s.detach(st, w)
}

// listenMsg is a list change as a listen stream carries it: tagged with its id.
func (s *session) listenMsg(method string) []byte {
	p, _ := json.Marshal(map[string]any{"_meta": map[string]json.RawMessage{subscriptionIDKey: s.listenID}})
	return notificationMsg(method, p)
}

// addListener indexes a listen session under its owner (not by id: nothing may
// address it); false when the gateway holds its maximum of sessions.
func (g *Gateway) addListener(s *session) bool {
	g.sessMu.Lock()
	defer g.sessMu.Unlock()
	n := len(g.sessions)
	for _, m := range g.byOwner {
		n += len(m)
	}
	if n >= 2*g.d.MaxSessions {
		return false
	}
	if g.byOwner[s.o.owner] == nil {
		g.byOwner[s.o.owner] = map[*session]struct{}{}
	}
	g.byOwner[s.o.owner][s] = struct{}{}
	return true
}

func (g *Gateway) dropListener(s *session) {
	g.sessMu.Lock()
	defer g.sessMu.Unlock()
	g.unindex(s.id, s)
}

// hopKeys are the _meta keys by which a 2026-07-28 request describes its own hop
// (revision, client, capabilities): they are not the upstream's to read (an
// upstream on an earlier revision refuses a request naming another), and the
// upstream connection adds its own.
var hopKeys = []string{"io.modelcontextprotocol/protocolVersion", "io.modelcontextprotocol/clientInfo",
	"io.modelcontextprotocol/clientCapabilities"}

// hopless returns params without the hop's _meta keys.
func hopless(params json.RawMessage) json.RawMessage {
	if !bytes.Contains(params, []byte("io.modelcontextprotocol/")) {
		return params
	}
	var p map[string]json.RawMessage
	var meta map[string]json.RawMessage
	if json.Unmarshal(params, &p) != nil || json.Unmarshal(p["_meta"], &meta) != nil || meta == nil {
		return params
	}
	for _, k := range hopKeys {
		delete(meta, k)
	}
	if len(meta) == 0 {
		delete(p, "_meta")
	} else {
		p["_meta"], _ = json.Marshal(meta)
	}
	out, err := json.Marshal(p)
	if err != nil {
		return params
	}
	return out
}

// errorStatus is the HTTP status of a JSON answer on revision 2026-07-28.
func errorStatus(msg []byte) int {
	var m struct {
		Error *struct {
			Code int `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(msg, &m) != nil || m.Error == nil {
		return http.StatusOK
	}
	switch m.Error.Code {
	case -32601:
		return http.StatusNotFound
	case -32700, -32600, -32602:
		return http.StatusBadRequest
	}
	return http.StatusOK
}
