package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpes/mcpes/connections"
	"github.com/mcpes/mcpes/domain"
)

// Separator joins a server name and a tool or prompt name.
const Separator = "__"

// ResourceScheme prefixes the URIs of aggregated resources: mcpes://<server>/<uri>.
const ResourceScheme = "mcpes://"

// ToolName returns the name the gateway offers tool of server under: the server's
// tool prefix (domain.ToolPrefix: the name itself when it is a plain one), "__", the
// tool's own name.
func ToolName(server, tool string) string { return domain.ToolPrefix(server) + Separator + tool }

// SplitName splits an offered tool or prompt name into the server's tool prefix and
// the upstream name (ownerServer.serverOf maps the prefix back to the server). ok is
// false when name has no separator, an empty part, or a prefix ToolPrefix never makes.
func SplitName(name string) (server, upstreamName string, ok bool) {
	server, upstreamName, ok = strings.Cut(name, Separator)
	return server, upstreamName, ok && server != "" && upstreamName != "" && domain.ToolPrefix(server) == server
}

// ResourceURI returns the URI the gateway offers resource uri of server under (with
// the server's tool prefix, which is always a valid URI host).
func ResourceURI(server, uri string) string {
	return ResourceScheme + domain.ToolPrefix(server) + "/" + uri
}

// SplitResourceURI splits an offered resource URI into the server's tool prefix and
// the upstream URI.
func SplitResourceURI(u string) (server, uri string, ok bool) {
	rest, ok := strings.CutPrefix(u, ResourceScheme)
	if !ok {
		return "", "", false
	}
	server, uri, ok = strings.Cut(rest, "/")
	return server, uri, ok && server != "" && uri != "" && domain.ToolPrefix(server) == server
}

// ownerServer is one owner's side of the gateway: its repository and the offer it
// was last given.
type ownerServer struct {
	g     *Gateway
	owner string
	actor string
	repo  *connections.Repository

	mu           sync.Mutex // serialises sync
	tools        map[string]offered
	prompts      map[string]offered
	resources    map[string]offered
	templates    map[string]offered
	instructions string // every server's instructions, labelled

	offerMu sync.RWMutex // guards the maps above for readers other than sync
}

// offered is one entry of an offer: where it routes, what it looked like (to see
// changes) and the entry as the upstream sent it with the name (or URI) rewritten.
type offered struct {
	server, name string
	fingerprint  string
	entry        string
	pos          int // in the server's own list
}

func newOwnerServer(g *Gateway, owner string) *ownerServer {
	o := &ownerServer{g: g, owner: owner, actor: "admin", repo: g.d.Manager.Repo(owner),
		tools: map[string]offered{}, prompts: map[string]offered{}, resources: map[string]offered{},
		templates: map[string]offered{}}
	if owner != "" {
		o.actor = "owner:" + owner
	}
	return o
}

// catalogue is what an owner may be offered now.
type catalogue struct {
	toolFP   map[string]offered
	promptFP map[string]offered
	resFP    map[string]offered
	tmplFP   map[string]offered
	instr    strings.Builder
}

// serverOf maps a tool prefix (SplitName, SplitResourceURI) back to the name of the
// server of this owner's view it stands for; a plain name is its own prefix.
func (o *ownerServer) serverOf(prefix string) string {
	if domain.ToolPrefix(prefix) == prefix {
		for _, e := range o.g.d.Servers.List(o.owner) {
			if e.Name != prefix && domain.ToolPrefix(e.Name) == prefix {
				return e.Name
			}
		}
	}
	return prefix
}

// build reads the projection: every server visible to the owner that its repository
// may connect (domain.MayConnect on the owner's view), with the catalogue of its last
// successful inspection.
func (o *ownerServer) build() catalogue {
	c := catalogue{toolFP: map[string]offered{}, promptFP: map[string]offered{},
		resFP: map[string]offered{}, tmplFP: map[string]offered{}}
	sv := o.g.d.Servers
	for _, e := range sv.List(o.owner) {
		if e.Shadowed {
			continue
		}
		if ok, _ := domain.MayConnect(o.owner, e.View); !ok {
			continue
		}
		// The catalogue this owner may see: the server's, or for an on-demand server
		// the one its own first connect inspected (none yet: nothing offered).
		ins := sv.Catalogue(o.owner, e.Scope, e.Name)
		if ins == nil {
			continue
		}
		if ins.Instructions != "" {
			fmt.Fprintf(&c.instr, "\n\n## %s\n%s", e.Name, ins.Instructions)
		}
		for i, t := range ins.Tools {
			name := ToolName(e.Name, t.Name)
			tool := mcp.Tool{Name: name, Title: t.Title, Description: t.Description}
			if len(t.InputSchema) > 0 {
				tool.RawInputSchema = json.RawMessage(t.InputSchema)
			} else {
				tool.InputSchema = mcp.ToolInputSchema{Type: "object"}
			}
			if err := mcp.ValidateParamHeaderAnnotations(&tool); err != nil {
				o.g.d.Logger.Warn("gateway: tool left out", "owner", o.owner, "tool", name, "err", err)
				continue
			}
			entry := rewriteEntry(t.Entry, "name", name)
			if entry == "" {
				b, _ := json.Marshal(tool)
				entry = string(b)
			}
			c.toolFP[name] = offered{server: e.Name, name: t.Name, entry: entry, pos: i,
				fingerprint: t.Title + "\x00" + t.Description + "\x00" + string(compact(t.InputSchema)) + "\x00" + entry}
		}
		for i, p := range ins.Prompts {
			name := ToolName(e.Name, p.Name)
			entry := rewriteEntry(p.Entry, "name", name)
			if entry == "" {
				b, _ := json.Marshal(mcp.Prompt{Name: name, Description: p.Description})
				entry = string(b)
			}
			c.promptFP[name] = offered{server: e.Name, name: p.Name, fingerprint: p.Description + "\x00" + entry, entry: entry, pos: i}
		}
		for i, r := range ins.Resources {
			uri := ResourceURI(e.Name, r.URI)
			entry := rewriteEntry(r.Entry, "uri", uri)
			if entry == "" {
				b, _ := json.Marshal(mcp.Resource{URI: uri, Name: r.Name, MIMEType: r.MIMEType})
				entry = string(b)
			}
			c.resFP[uri] = offered{server: e.Name, name: r.URI, fingerprint: r.Name + "\x00" + r.MIMEType + "\x00" + entry, entry: entry, pos: i}
		}
		for i, raw := range ins.ResourceTemplates {
			var t struct {
				URITemplate string `json:"uriTemplate"`
			}
			if json.Unmarshal(raw, &t) != nil || t.URITemplate == "" {
				continue
			}
			tmpl := ResourceURI(e.Name, t.URITemplate)
			entry := rewriteEntry(raw, "uriTemplate", tmpl)
			c.tmplFP[tmpl] = offered{server: e.Name, name: t.URITemplate, fingerprint: entry, entry: entry, pos: i}
		}
	}
	return c
}

// rewriteEntry returns entry (a JSON object) with key set to value; "" when entry
// is empty or not an object.
func rewriteEntry(entry []byte, key, value string) string {
	if len(entry) == 0 {
		return ""
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(entry, &m) != nil || m == nil {
		return ""
	}
	m[key], _ = json.Marshal(value)
	b, err := json.Marshal(m)
	if err != nil {
		return ""
	}
	return string(b)
}

func compact(b []byte) []byte {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return b
	}
	return buf.Bytes()
}

// diff returns the names to delete (gone or changed) and to add (new or changed).
func diff(old, now map[string]offered) (del, add []string) {
	for k, v := range old {
		if n, ok := now[k]; !ok || n != v {
			del = append(del, k)
		}
	}
	for k, v := range now {
		if p, ok := old[k]; !ok || p != v {
			add = append(add, k)
		}
	}
	slices.Sort(del)
	slices.Sort(add)
	return del, add
}

// sync brings the owner's offer in line with the projection and tells the owner's
// clients which lists changed.
func (o *ownerServer) sync() {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.build()
	var changed []string
	if del, add := diff(o.tools, c.toolFP); len(del)+len(add) > 0 {
		changed = append(changed, "notifications/tools/list_changed")
	}
	if del, add := diff(o.prompts, c.promptFP); len(del)+len(add) > 0 {
		changed = append(changed, "notifications/prompts/list_changed")
	}
	del, add := diff(o.resources, c.resFP)
	if tdel, tadd := diff(o.templates, c.tmplFP); len(del)+len(add)+len(tdel)+len(tadd) > 0 {
		changed = append(changed, "notifications/resources/list_changed")
	}
	o.offerMu.Lock()
	o.tools, o.prompts, o.resources, o.templates = c.toolFP, c.promptFP, c.resFP, c.tmplFP
	o.instructions = c.instr.String()
	o.offerMu.Unlock()
	for _, method := range changed {
		o.g.offerChanged(o.owner, method)
	}
	if len(o.tools) > 0 || len(o.prompts) > 0 || len(o.resources) > 0 {
		o.g.d.Logger.Debug("gateway offer", "owner", o.owner, "tools", len(o.tools),
			"prompts", len(o.prompts), "resources", len(o.resources))
	}
}
