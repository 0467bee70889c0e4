package config

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/mcpes/mcpes/domain"
)

// MaxFileSize bounds a config file (and one server file for ParseServer).
const MaxFileSize = 4 << 20

// Load reads, parses and validates the config file at path, with defaults applied.
// Returns the warnings (unknown keys) of a good file. Returns an error wrapping
// fs.ErrNotExist for a missing file, and an *Error (ErrInvalid) listing every
// problem of a bad one; then the *Config is nil.
func Load(path string) (*Config, []Warning, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, path)
}

// Parse is Load on bytes; name is used in error messages.
func Parse(data []byte, name string) (*Config, []Warning, error) {
	if len(data) > MaxFileSize {
		return nil, nil, fmt.Errorf("%s: %w (%d bytes, at most %d)", name, ErrTooLarge, len(data), MaxFileSize)
	}
	d, top, err := newDecoder(data)
	if err != nil {
		return nil, nil, &Error{File: name, Problems: []Problem{*err}}
	}
	if top == nil {
		return nil, nil, fmt.Errorf("%s: %w (write \"mcpServers: {}\" for a file without servers)", name, ErrEmpty)
	}
	cfg := d.config(top)
	cfg.SetDefaults()
	if verr := cfg.Validate(); verr != nil {
		for _, p := range verr.(*Error).Problems {
			d.problem(p, d.serverPath(p))
		}
	}
	if len(d.problems) > 0 {
		return nil, nil, &Error{File: name, Problems: byLine(d.problems)}
	}
	return cfg, byLine(d.warnings), nil
}

// byLine sorts problems by line and column, those without a line last (stable).
func byLine(ps []Problem) []Problem {
	key := func(p Problem) int {
		if p.Line == 0 {
			return math.MaxInt
		}
		return p.Line<<16 | min(p.Column, 1<<16-1)
	}
	slices.SortStableFunc(ps, func(a, b Problem) int { return cmp.Compare(key(a), key(b)) })
	return ps
}

// ParseServer parses one server config (YAML, or JSON which is YAML) as used by
// `mcpes servers put -f FILE` and `mcpes inspect -f FILE`. It checks shape and types
// only: scope rules are the service's (or the caller's ServerProblems) to apply.
// Returns an *Error for a file that is not one mapping of server fields.
func ParseServer(data []byte, name string) (domain.ServerConfig, []Warning, error) {
	if len(data) > MaxFileSize {
		return domain.ServerConfig{}, nil, fmt.Errorf("%s: %w", name, ErrTooLarge)
	}
	d, top, perr := newDecoder(data)
	if perr != nil {
		return domain.ServerConfig{}, nil, &Error{File: name, Problems: []Problem{*perr}}
	}
	cfg, ok := d.server("", top, nil)
	if !ok || len(d.problems) > 0 {
		return domain.ServerConfig{}, nil, &Error{File: name, Problems: byLine(d.problems)}
	}
	for _, p := range domain.ConfigWarnings("", cfg) {
		d.warn(Problem{Field: p.Field, Reason: p.Reason}, []string{p.Field})
	}
	return cfg, d.warnings, nil
}

type decoder struct {
	root     ast.Node
	problems []Problem
	warnings []Warning
}

// newDecoder parses data into an AST (for positions) and a generic value.
func newDecoder(data []byte) (*decoder, any, *Problem) {
	file, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, nil, yamlProblem(err)
	}
	d := &decoder{}
	var docs []*ast.DocumentNode
	for _, doc := range file.Docs {
		if doc != nil && doc.Body != nil {
			docs = append(docs, doc)
		}
	}
	switch len(docs) {
	case 0:
		return d, nil, nil
	case 1:
	default:
		p := Problem{Reason: "more than one YAML document; want exactly one"}
		p.Line, p.Column = position(docs[1].Body)
		return nil, nil, &p
	}
	d.root = docs[0].Body
	var top any
	if err := yaml.NodeToValue(d.root, &top); err != nil {
		return nil, nil, yamlProblem(err)
	}
	return d, top, nil
}

func yamlProblem(err error) *Problem {
	p := Problem{Reason: err.Error()}
	var ye yaml.Error
	if errors.As(err, &ye) {
		p.Reason = ye.GetMessage()
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			p.Line, p.Column = tk.Position.Line, tk.Position.Column
		}
	}
	return &p
}

var topKeys = []string{"mcpServers", "mcpSettings", "auth", "dataDir", "listen", "pubsub",
	"nodeID", "inspection", "connections", "audit", "http", "limits", "credentials", "oauth", "cluster"}

func (d *decoder) config(top any) *Config {
	cfg := &Config{MCPServers: map[string]domain.ServerConfig{}, ServerLines: map[string]int{}}
	if top == nil {
		return cfg
	}
	m := d.obj(nil, top)
	if m == nil {
		return cfg
	}
	d.unknown(nil, m, topKeys...)
	if v, ok := m["mcpServers"]; ok {
		if v == nil {
			d.fail([]string{"mcpServers"}, "empty; list servers under it or remove the key (LibreChat refuses an empty mcpServers: too)")
		}
		servers := d.obj([]string{"mcpServers"}, v)
		for _, name := range slices.Sorted(maps.Keys(servers)) {
			path := []string{"mcpServers", name}
			cfg.ServerLines[name], _ = d.pos(path)
			if sc, ok := d.server(name, servers[name], path); ok {
				cfg.MCPServers[name] = sc
				for _, w := range domain.ConfigWarnings(name, sc) {
					d.warn(Problem{Server: name, Field: w.Field, Reason: w.Reason}, append(path, w.Field))
				}
			}
		}
	}
	if s := d.obj([]string{"mcpSettings"}, m["mcpSettings"]); s != nil {
		d.unknown([]string{"mcpSettings"}, s, "allowedDomains")
		cfg.MCPSettings.AllowedDomains = d.strs([]string{"mcpSettings", "allowedDomains"}, s["allowedDomains"])
	}
	if a := d.obj([]string{"auth"}, m["auth"]); a != nil {
		d.unknown([]string{"auth"}, a, "tokens")
		if v, ok := a["tokens"]; ok && v != nil {
			list, ok := v.([]any)
			if !ok {
				d.problem(Problem{Field: "auth.tokens", Reason: "want a list of {sha256, role, owner}"}, []string{"auth", "tokens"})
			}
			for i, tv := range list {
				path := []string{"auth", "tokens", strconv.Itoa(i)}
				t := d.obj(path, tv)
				if t == nil {
					continue
				}
				d.unknown(path, t, "sha256", "role", "owner")
				cfg.Auth.Tokens = append(cfg.Auth.Tokens, Token{
					SHA256: strings.ToLower(d.str(append(path, "sha256"), t["sha256"])),
					Role:   d.str(append(path, "role"), t["role"]),
					Owner:  d.str(append(path, "owner"), t["owner"]),
				})
			}
		}
	}
	cfg.DataDir = d.str([]string{"dataDir"}, m["dataDir"])
	cfg.Listen = d.str([]string{"listen"}, m["listen"])
	cfg.PubSub = d.str([]string{"pubsub"}, m["pubsub"])
	cfg.NodeID = d.str([]string{"nodeID"}, m["nodeID"])
	if c := d.obj([]string{"cluster"}, m["cluster"]); c != nil {
		d.unknown([]string{"cluster"}, c, "url", "maxStaleness")
		cfg.Cluster.URL = d.str([]string{"cluster", "url"}, c["url"])
		cfg.Cluster.MaxStaleness = d.dur([]string{"cluster", "maxStaleness"}, c["maxStaleness"])
	}
	if in := d.obj([]string{"inspection"}, m["inspection"]); in != nil {
		d.unknown([]string{"inspection"}, in, "concurrency")
		cfg.Inspection.Concurrency = d.int([]string{"inspection", "concurrency"}, in["concurrency"])
	}
	if c := d.obj([]string{"connections"}, m["connections"]); c != nil {
		p := []string{"connections"}
		d.unknown(p, c, "maxConcurrentConnects", "idleTimeout", "breaker", "protocolVersion", "maxMessageBytes", "maxRequestTimeout")
		cfg.Connections.MaxConcurrentConnects = d.int(append(p, "maxConcurrentConnects"), c["maxConcurrentConnects"])
		cfg.Connections.IdleTimeout = d.dur(append(p, "idleTimeout"), c["idleTimeout"])
		cfg.Connections.MaxRequestTimeout = d.dur(append(p, "maxRequestTimeout"), c["maxRequestTimeout"])
		cfg.Connections.ProtocolVersion = d.str(append(p, "protocolVersion"), c["protocolVersion"])
		cfg.Connections.MaxMessageBytes = int64(d.int(append(p, "maxMessageBytes"), c["maxMessageBytes"]))
		if b := d.obj(append(p, "breaker"), c["breaker"]); b != nil {
			bp := append(p, "breaker")
			d.unknown(bp, b, "failures", "openDuration")
			cfg.Connections.Breaker.Failures = d.int(append(bp, "failures"), b["failures"])
			cfg.Connections.Breaker.OpenDuration = d.dur(append(bp, "openDuration"), b["openDuration"])
		}
	}
	if a := d.obj([]string{"audit"}, m["audit"]); a != nil {
		p := []string{"audit"}
		d.unknown(p, a, "toolCalls", "checkpointEvery", "witness", "signingKeyFile")
		cfg.Audit.ToolCalls = d.str(append(p, "toolCalls"), a["toolCalls"])
		cfg.Audit.Witness = d.str(append(p, "witness"), a["witness"])
		cfg.Audit.SigningKeyFile = d.str(append(p, "signingKeyFile"), a["signingKeyFile"])
		if v, ok := a["checkpointEvery"].(string); ok {
			cfg.Audit.CheckpointEvery.Interval = d.dur(append(p, "checkpointEvery"), v)
		} else if a["checkpointEvery"] != nil {
			cfg.Audit.CheckpointEvery.Events = d.int(append(p, "checkpointEvery"), a["checkpointEvery"])
		}
	}
	if h := d.obj([]string{"http"}, m["http"]); h != nil {
		d.unknown([]string{"http"}, h, "allowedHosts", "allowedOrigins")
		cfg.HTTP.AllowedHosts = d.strs([]string{"http", "allowedHosts"}, h["allowedHosts"])
		cfg.HTTP.AllowedOrigins = d.strs([]string{"http", "allowedOrigins"}, h["allowedOrigins"])
	}
	if l := d.obj([]string{"limits"}, m["limits"]); l != nil {
		d.unknown([]string{"limits"}, l, "owner")
		if o := d.obj([]string{"limits", "owner"}, l["owner"]); o != nil {
			p := []string{"limits", "owner"}
			d.unknown(p, o, "rate", "burst")
			cfg.Limits.Owner.Rate = d.num(append(p, "rate"), o["rate"])
			cfg.Limits.Owner.Burst = d.int(append(p, "burst"), o["burst"])
		}
	}
	if c := d.obj([]string{"credentials"}, m["credentials"]); c != nil {
		d.unknown([]string{"credentials"}, c, "keyFile")
		cfg.Credentials.KeyFile = d.str([]string{"credentials", "keyFile"}, c["keyFile"])
	}
	if o := d.obj([]string{"oauth"}, m["oauth"]); o != nil {
		d.unknown([]string{"oauth"}, o, "publicURL")
		cfg.OAuth.PublicURL = d.str([]string{"oauth", "publicURL"}, o["publicURL"])
	}
	return cfg
}

// server decodes one mcpServers entry through JSON, so unknown fields land in Extra.
func (d *decoder) server(name string, v any, path []string) (domain.ServerConfig, bool) {
	var cfg domain.ServerConfig
	if v == nil {
		d.problem(Problem{Server: name, Reason: "empty server config; set command or url"}, path)
		return cfg, false
	}
	fields, ok := v.(map[string]any)
	if !ok {
		d.problem(Problem{Server: name, Reason: fmt.Sprintf("want a mapping of server fields, got %s", kind(v))}, path)
		return cfg, false
	}
	d.libreChatShape(name, fields, path)
	raw, err := json.Marshal(v)
	if err != nil {
		d.problem(Problem{Server: name, Reason: "cannot convert to JSON: " + err.Error()}, path)
		return cfg, false
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		d.fieldByField(name, v.(map[string]any), path)
		return cfg, false
	}
	return cfg, true
}

// fieldByField reports every field of a server entry whose value has the wrong
// type, and then the entry's other problems (domain validation of the fields that
// decoded), so that one type error does not hide the rest.
func (d *decoder) fieldByField(name string, m map[string]any, path []string) {
	var good domain.ServerConfig
	bad := map[string]bool{}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		one, _ := json.Marshal(map[string]any{k: m[k]})
		if err := json.Unmarshal(one, &good); err != nil {
			p := Problem{Server: name, Field: k, Reason: err.Error()}
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				if te.Field != "" {
					p.Field = te.Field
				}
				p.Reason = fmt.Sprintf("want %s, got %s", jsonKind(te.Type.String()), te.Value)
			}
			bad[k] = true
			d.problem(p, append(slices.Clone(path), fieldPath(p.Field)...))
		}
	}
	for _, p := range ServerProblems(domain.AppScope, name, good) {
		top, _, _ := strings.Cut(p.Field, ".")
		top, _, _ = strings.Cut(top, "[")
		inferred := p.Field == "type" && (bad["url"] || bad["command"])
		if p.Field == "" || bad[top] || inferred || name == "" && p.Field == "name" {
			continue // a consequence of a field that did not decode (or of no name)
		}
		d.problem(p, append(slices.Clone(path), fieldPath(p.Field)...))
	}
}

// serverPath is the AST path of a Validate problem.
func (d *decoder) serverPath(p Problem) []string {
	if p.Server == "" {
		return fieldPath(p.Field)
	}
	return append([]string{"mcpServers", p.Server}, fieldPath(p.Field)...)
}

// fieldPath splits "headers.X", "args[2]" or "auth.tokens[0].role" into AST keys.
func fieldPath(field string) []string {
	if field == "" {
		return nil
	}
	var out []string
	for _, part := range strings.Split(field, ".") {
		for {
			i := strings.IndexByte(part, '[')
			if i < 0 || !strings.HasSuffix(part, "]") {
				out = append(out, part)
				break
			}
			if i > 0 {
				out = append(out, part[:i])
			}
			rest := part[i+1:]
			j := strings.IndexByte(rest, ']')
			out = append(out, rest[:j])
			part = rest[j+1:]
			if part == "" {
				break
			}
		}
	}
	return out
}

func fieldName(path []string) string {
	var b strings.Builder
	for _, p := range path {
		if _, err := strconv.Atoi(p); err == nil {
			b.WriteString("[" + p + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}

func (d *decoder) problem(p Problem, path []string) {
	if p.Line == 0 {
		p.Line, p.Column = d.pos(path)
	}
	d.problems = append(d.problems, p)
}

func (d *decoder) warn(p Problem, path []string) {
	p.Line, p.Column = d.pos(path)
	d.warnings = append(d.warnings, p)
}

func (d *decoder) fail(path []string, format string, args ...any) {
	d.problem(Problem{Field: fieldName(path), Reason: fmt.Sprintf(format, args...)}, path)
}

func (d *decoder) obj(path []string, v any) map[string]any {
	if v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		d.problem(Problem{Field: fieldName(path), Reason: fmt.Sprintf("want a mapping, got %s", kind(v))}, path)
		return nil
	}
	return m
}

func (d *decoder) unknown(path []string, m map[string]any, known ...string) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(known, k) {
			p := append(slices.Clone(path), k)
			d.warn(Problem{Field: fieldName(p), Reason: "unknown key (ignored)"}, p)
		}
	}
}

func (d *decoder) str(path []string, v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	}
	d.fail(path, "want a string, got %s", kind(v))
	return ""
}

func (d *decoder) strs(path []string, v any) []string {
	if v == nil {
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		d.fail(path, "want a list of strings, got %s", kind(v))
		return nil
	}
	out := make([]string, 0, len(list))
	for i, e := range list {
		out = append(out, d.str(append(slices.Clone(path), strconv.Itoa(i)), e))
	}
	return out
}

func (d *decoder) int(path []string, v any) int {
	switch t := v.(type) {
	case nil:
		return 0
	case int:
		return t
	case int64:
		if t >= math.MinInt32 && t <= math.MaxInt32 {
			return int(t)
		}
	case uint64:
		if t <= math.MaxInt32 {
			return int(t)
		}
	case float64:
		if t == math.Trunc(t) && t >= math.MinInt32 && t <= math.MaxInt32 {
			return int(t)
		}
	}
	d.fail(path, "want a whole number, got %s", kind(v))
	return 0
}

func (d *decoder) num(path []string, v any) float64 {
	switch t := v.(type) {
	case nil:
		return 0
	case int:
		return float64(t)
	case int64:
		return float64(t)
	case uint64:
		return float64(t)
	case float64:
		return t
	}
	d.fail(path, "want a number, got %s", kind(v))
	return 0
}

func (d *decoder) dur(path []string, v any) Duration {
	if v == nil {
		return 0
	}
	s, ok := v.(string)
	if !ok {
		d.fail(path, "want a duration such as \"15m\" or \"30s\", got %s", kind(v))
		return 0
	}
	dd, err := time.ParseDuration(s)
	if err != nil {
		d.fail(path, "want a duration such as \"15m\" or \"30s\", got %q", s)
		return 0
	}
	return Duration(dd)
}

func kind(v any) string {
	switch t := v.(type) {
	case nil:
		return "nothing"
	case string:
		return fmt.Sprintf("string %q", t)
	case bool:
		return fmt.Sprintf("boolean %v", t)
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case int, int64, uint64, float64:
		return fmt.Sprintf("number %v", t)
	}
	return fmt.Sprintf("%T", v)
}

func jsonKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["):
		return "a mapping"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"), strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "string":
		return "a string"
	case goType == "bool", goType == "*bool":
		return "a boolean"
	}
	return goType
}

// RedactURLs returns a comma-separated list of URLs (cluster.url, pubsub) fit for
// logs and messages: any password or token in them is replaced by "xxxxx", and an
// entry that does not parse is replaced whole.
func RedactURLs(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		u, err := url.Parse(p)
		switch {
		case err != nil:
			parts[i] = "(unparsable URL)"
		case u.User == nil:
		default:
			if _, ok := u.User.Password(); ok {
				parts[i] = u.Redacted()
			} else {
				u.User = url.User("xxxxx") // a token alone
				parts[i] = u.String()
			}
		}
	}
	return strings.Join(parts, ",")
}

func validNATSURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "nats" || u.Scheme == "tls") && u.Host != ""
}

func validPublicURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		u.RawQuery == "" && u.Fragment == "" && u.User == nil
}

// insideDir reports whether path lies inside dir (both made absolute and clean).
func insideDir(path, dir string) bool {
	p, err1 := filepath.Abs(path)
	d, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
