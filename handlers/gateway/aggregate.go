package gateway

import (
	"encoding/json"
	"slices"
	"strings"
)

// The aggregate /mcp on the relay. Clients that start with initialize (every
// revision up to 2025-11-25: the TypeScript SDK, mcp-go pinned to 2025-11-25)
// get sessions of the same relay as /mcp/{server}; clients of 2026-07-28 (no
// initialize, no session) get a session per request (modern.go). Lists are
// answered from the owner's offer (the inspected catalogue, never waiting on an
// upstream), each entry as the upstream sent it with only its name or URI
// rewritten; calls, prompts, reads, subscriptions and completions go to the
// server the name or URI says, through the owner's repository, and come back
// verbatim (contents URIs rewritten). Instructions are every server's own,
// labelled with its name.

// aggregateCapabilities are what the aggregate announces.
const aggregateCapabilities = `{"tools":{"listChanged":true},"prompts":{"listChanged":true},` +
	`"resources":{"subscribe":true,"listChanged":true},"logging":{},"completions":{}}`

// aggregateIntro starts the aggregate's instructions.
const aggregateIntro = "mcpes gateway: the tools of every MCP server you may use, named <server>__<tool>."

// aggregateInit is the initialize result of the aggregate for o.
func (o *ownerServer) aggregateInit(proto string) []byte {
	o.offerMu.RLock()
	instr := aggregateIntro + o.instructions
	o.offerMu.RUnlock()
	b, _ := json.Marshal(struct {
		ProtocolVersion string          `json:"protocolVersion"`
		Capabilities    json.RawMessage `json:"capabilities"`
		ServerInfo      any             `json:"serverInfo"`
		Instructions    string          `json:"instructions"`
	}{proto, json.RawMessage(aggregateCapabilities), map[string]string{"name": "mcpes", "version": "1"}, instr})
	return b
}

// offerChanged tells the owner's aggregate sessions that a list changed.
func (g *Gateway) offerChanged(owner, method string) {
	msg := notificationMsg(method, nil)
	for _, s := range g.sessionsOf(owner, "") {
		switch {
		case s.listen == nil:
			s.send(nil, msg, false)
		case s.listen[method]:
			s.send(nil, s.listenMsg(method), false)
		}
	}
}

// listOf answers a list request of the aggregate from the offer: servers by name,
// each one's entries in its own order.
func (o *ownerServer) listOf(method string) (json.RawMessage, bool) {
	o.offerMu.RLock()
	defer o.offerMu.RUnlock()
	var from map[string]offered
	var key string
	switch method {
	case "tools/list":
		from, key = o.tools, "tools"
	case "prompts/list":
		from, key = o.prompts, "prompts"
	case "resources/list":
		from, key = o.resources, "resources"
	case "resources/templates/list":
		from, key = o.templates, "resourceTemplates"
	default:
		return nil, false
	}
	names := make([]string, 0, len(from))
	for n := range from {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		x, y := from[a], from[b]
		if c := strings.Compare(x.server, y.server); c != 0 {
			return c
		}
		return x.pos - y.pos
	})
	var b strings.Builder
	b.WriteString(`{"` + key + `":[`)
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(from[n].entry)
	}
	b.WriteString("]}")
	return json.RawMessage(b.String()), true
}

// route decides where an aggregate request goes: the server, the params to send
// it (names and URIs turned back into the upstream's) and how to fix the result.
// A request answered here (lists, setLevel) or refused gets its answer from
// answer and done is true.
func (g *Gateway) route(s *session, m wire, answer func([]byte)) (server string, params json.RawMessage, fix func(json.RawMessage) json.RawMessage, done bool) {
	o := s.o
	if res, ok := o.listOf(m.Method); ok {
		answer(rpcResult(m.ID, res))
		return "", nil, nil, true
	}
	refuse := func(code int, msg string) (string, json.RawMessage, func(json.RawMessage) json.RawMessage, bool) {
		answer(rpcError(m.ID, code, msg, nil))
		return "", nil, nil, true
	}
	var p map[string]json.RawMessage
	if len(m.Params) > 0 && json.Unmarshal(m.Params, &p) != nil {
		return refuse(-32602, "params must be an object")
	}
	str := func(k string) string {
		var v string
		_ = json.Unmarshal(p[k], &v)
		return v
	}
	set := func(k, v string) json.RawMessage {
		p[k], _ = json.Marshal(v)
		b, _ := json.Marshal(p)
		return b
	}
	switch m.Method {
	case "logging/setLevel":
		if levelIndex(str("level")) < 0 {
			return refuse(-32602, "unknown log level")
		}
		s.mu.Lock()
		s.level = levelIndex(str("level"))
		s.mu.Unlock()
		answer(rpcResult(m.ID, json.RawMessage("{}")))
		return "", nil, nil, true
	case "tools/call", "prompts/get":
		name := str("name")
		o.offerMu.RLock()
		e, ok := o.tools[name]
		if m.Method == "prompts/get" {
			e, ok = o.prompts[name]
		}
		o.offerMu.RUnlock()
		if !ok {
			return refuse(-32602, "unknown "+strings.TrimSuffix(strings.Split(m.Method, "/")[0], "s")+": "+name)
		}
		var fix func(json.RawMessage) json.RawMessage
		if m.Method == "tools/call" {
			fix = func(res json.RawMessage) json.RawMessage { return prefixLinks(e.server, res) }
		}
		return e.server, set("name", e.name), fix, false
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		srv, uri, ok := SplitResourceURI(str("uri"))
		if !ok {
			return refuse(-32602, "unknown resource: "+str("uri"))
		}
		srv = s.o.serverOf(srv)
		if m.Method != "resources/read" {
			return srv, set("uri", uri), nil, false
		}
		return srv, set("uri", uri), func(res json.RawMessage) json.RawMessage { return prefixContents(srv, res) }, false
	case "completion/complete":
		var ref map[string]json.RawMessage
		if json.Unmarshal(p["ref"], &ref) != nil {
			return refuse(-32602, "completion without a ref")
		}
		var name, uri string
		_ = json.Unmarshal(ref["name"], &name)
		_ = json.Unmarshal(ref["uri"], &uri)
		var srv, up string
		var ok bool
		if name != "" {
			srv, up, ok = SplitName(name)
			ref["name"], _ = json.Marshal(up)
		} else {
			srv, up, ok = SplitResourceURI(uri)
			ref["uri"], _ = json.Marshal(up)
		}
		if !ok {
			return refuse(-32602, "unknown completion ref")
		}
		srv = s.o.serverOf(srv)
		p["ref"], _ = json.Marshal(ref)
		b, _ := json.Marshal(p)
		return srv, b, nil, false
	}
	return refuse(-32601, "method not found: "+m.Method)
}

// prefixContents rewrites the URIs of a resources/read result to the aggregate's.
func prefixContents(server string, res json.RawMessage) json.RawMessage {
	var r map[string]json.RawMessage
	if json.Unmarshal(res, &r) != nil {
		return res
	}
	var contents []map[string]json.RawMessage
	if json.Unmarshal(r["contents"], &contents) != nil {
		return res
	}
	for _, c := range contents {
		var uri string
		if json.Unmarshal(c["uri"], &uri) == nil && uri != "" {
			c["uri"], _ = json.Marshal(ResourceURI(server, uri))
		}
	}
	r["contents"], _ = json.Marshal(contents)
	out, err := json.Marshal(r)
	if err != nil {
		return res
	}
	return out
}

// prefixLinks rewrites the URIs of the resource links in a tools/call result to
// the aggregate's, so that the client can read them through it.
func prefixLinks(server string, res json.RawMessage) json.RawMessage {
	if !strings.Contains(string(res), `"resource_link"`) {
		return res
	}
	var r map[string]json.RawMessage
	if json.Unmarshal(res, &r) != nil {
		return res
	}
	var content []map[string]json.RawMessage
	if json.Unmarshal(r["content"], &content) != nil {
		return res
	}
	for _, c := range content {
		var typ, uri string
		_ = json.Unmarshal(c["type"], &typ)
		if typ == "resource_link" && json.Unmarshal(c["uri"], &uri) == nil && uri != "" {
			c["uri"], _ = json.Marshal(ResourceURI(server, uri))
		}
	}
	r["content"], _ = json.Marshal(content)
	out, err := json.Marshal(r)
	if err != nil {
		return res
	}
	return out
}
