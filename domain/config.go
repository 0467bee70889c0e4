package domain

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Transport types a ServerConfig may name.
const (
	TransportStdio          = "stdio"
	TransportSSE            = "sse"
	TransportStreamableHTTP = "streamable-http"
	TransportHTTP           = "http" // alias of streamable-http
	TransportWebsocket      = "websocket"
)

// Defaults of the per-server timeouts, in milliseconds.
const (
	DefaultTimeoutMS     = 60000
	DefaultInitTimeoutMS = 30000
)

// Bounds of one message read from an upstream server (a stdio line, an HTTP body,
// an SSE event): the default of connections.maxMessageBytes, and the most it may be.
const (
	DefaultMaxMessageBytes = 16 << 20
	MaxMessageBytesCeiling = 1 << 30
)

// ServerConfig is one MCP server's configuration, in the shape of LibreChat's
// mcpServers entries. Fields it does not know are kept in Extra and written back
// unchanged, so an operator's config round-trips.
type ServerConfig struct {
	Type               string                   `json:"type,omitempty"`
	Command            string                   `json:"command,omitempty"`
	Args               []string                 `json:"args,omitempty"`
	Env                map[string]string        `json:"env,omitempty"`
	URL                string                   `json:"url,omitempty"`
	Headers            map[string]string        `json:"headers,omitempty"`
	Startup            *bool                    `json:"startup,omitempty"`
	RequiresOAuth      *bool                    `json:"requiresOAuth,omitempty"`
	CustomUserVars     map[string]CustomUserVar `json:"customUserVars,omitempty"`
	TimeoutMS          int64                    `json:"timeout,omitempty"`
	InitTimeoutMS      int64                    `json:"initTimeout,omitempty"`
	ServerInstructions *Instructions            `json:"serverInstructions,omitempty"`
	Title              string                   `json:"title,omitempty"`
	Description        string                   `json:"description,omitempty"`
	IconPath           string                   `json:"iconPath,omitempty"`
	ChatMenu           *bool                    `json:"chatMenu,omitempty"`
	// LibreChat fields beyond the basics; librechat.go documents each and how mcpes
	// honours it.
	Cwd                           string                     `json:"cwd,omitempty"`
	Stderr                        *Stderr                    `json:"stderr,omitempty"`
	SSEReadTimeoutMS              int64                      `json:"sseReadTimeout,omitempty"`
	Proxy                         string                     `json:"proxy,omitempty"`
	RequestHeaders                map[string]string          `json:"requestHeaders,omitempty"`
	OAuth                         *OAuthConfig               `json:"oauth,omitempty"`
	OAuthHeaders                  map[string]string          `json:"oauth_headers,omitempty"`
	APIKey                        *APIKey                    `json:"apiKey,omitempty"`
	OBO                           *OBO                       `json:"obo,omitempty"`
	OAuthRefreshWaitTimeoutMS     int64                      `json:"oauthRefreshWaitTimeout,omitempty"`
	OAuthRefreshCoordination      *bool                      `json:"oauthRefreshCoordination,omitempty"`
	OAuthPersistenceWaitTimeoutMS int64                      `json:"oauthPersistenceWaitTimeout,omitempty"`
	Extra                         map[string]json.RawMessage `json:"-"`
}

// CustomUserVar describes one per-user variable a server needs.
type CustomUserVar struct {
	Title       string `json:"title,omitempty"`
	Description string `json:"description,omitempty"`
	// Sensitive, when not false, marks the value as a credential: never echoed, and
	// redacted from messages. LibreChat's default is sensitive.
	Sensitive *bool `json:"sensitive,omitempty"`
}

// Instructions is serverInstructions: true (fetch from the server at inspection) or
// a fixed text.
type Instructions struct {
	Fetch bool
	Text  string
}

// MarshalJSON writes a string when Text is set, else a boolean.
func (in Instructions) MarshalJSON() ([]byte, error) {
	if in.Text != "" {
		return json.Marshal(in.Text)
	}
	return json.Marshal(in.Fetch)
}

// UnmarshalJSON accepts a boolean or a string.
func (in *Instructions) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch t := v.(type) {
	case bool:
		*in = Instructions{Fetch: t}
	case string:
		*in = Instructions{Text: t}
	default:
		return fmt.Errorf("serverInstructions: want true, false or a string")
	}
	return nil
}

// knownFields lists the JSON names ServerConfig decodes; everything else goes to Extra.
var knownFields = map[string]bool{
	"type": true, "command": true, "args": true, "env": true, "url": true, "headers": true,
	"startup": true, "requiresOAuth": true, "customUserVars": true, "timeout": true,
	"initTimeout": true, "serverInstructions": true, "title": true, "description": true,
	"iconPath": true, "chatMenu": true, "cwd": true, "stderr": true, "sseReadTimeout": true,
	"proxy": true, "requestHeaders": true, "oauth": true, "oauth_headers": true, "apiKey": true,
	"obo": true, "oauthRefreshWaitTimeout": true, "oauthRefreshCoordination": true,
	"oauthPersistenceWaitTimeout": true,
}

type plainConfig ServerConfig

// UnmarshalJSON decodes the known fields from their exact keys only and keeps every
// other key in Extra. encoding/json alone would also fill a field from a key that
// differs only in case ("Headers", "URL"), and the last such key would win: a stored
// extra key could then override the real field when the event is read back. Here an
// extra key never reaches a field; ValidateConfig refuses such keys at the edge.
func (c *ServerConfig) UnmarshalJSON(b []byte) error {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	known := make(map[string]json.RawMessage, len(all))
	var extra map[string]json.RawMessage
	for k, v := range all {
		if knownFields[k] {
			known[k] = v
			continue
		}
		if extra == nil {
			extra = map[string]json.RawMessage{}
		}
		extra[k] = v
	}
	var p plainConfig
	if len(known) > 0 {
		kb, err := json.Marshal(known)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(kb, &p); err != nil {
			return err
		}
	}
	p.Extra = extra
	*c = ServerConfig(p)
	return nil
}

// FoldedKey returns the known field that key differs from only in case ("" when it
// differs more, or is that field).
func FoldedKey(key string) string {
	if knownFields[key] {
		return ""
	}
	for f := range knownFields {
		if strings.EqualFold(f, key) {
			return f
		}
	}
	return ""
}

// MarshalJSON writes the known fields and then Extra, keys sorted, so equal configs
// give equal bytes.
func (c ServerConfig) MarshalJSON() ([]byte, error) {
	known, err := json.Marshal(plainConfig(c))
	if err != nil || len(c.Extra) == 0 {
		return known, err
	}
	var buf bytes.Buffer
	buf.Write(known[:len(known)-1])
	first := len(known) == 2
	for _, k := range slices.Sorted(maps.Keys(c.Extra)) {
		if knownFields[k] {
			continue
		}
		if !first {
			buf.WriteByte(',')
		}
		first = false
		kb, _ := json.Marshal(k)
		buf.Write(kb)
		buf.WriteByte(':')
		var compact bytes.Buffer
		if err := json.Compact(&compact, c.Extra[k]); err != nil {
			return nil, fmt.Errorf("field %q: %w", k, err)
		}
		buf.Write(compact.Bytes())
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// TransportType returns the effective transport as LibreChat infers it: Type when
// set, "stdio" when Command is set (a url beside it is ignored), else "websocket"
// for a ws:// or wss:// url and "sse" for any other url. "http" is reported as
// "streamable-http".
func (c ServerConfig) TransportType() string {
	switch {
	case c.Type == TransportHTTP:
		return TransportStreamableHTTP
	case c.Type != "":
		return c.Type
	case c.Command != "":
		return TransportStdio
	case isWebsocketURL(c.URL):
		return TransportWebsocket
	case c.URL != "":
		return TransportSSE
	}
	return ""
}

// isWebsocketURL reports whether u starts with ws: or wss: (any case), as LibreChat
// tests it.
func isWebsocketURL(u string) bool {
	l := strings.ToLower(strings.TrimSpace(u))
	return strings.HasPrefix(l, "ws:") || strings.HasPrefix(l, "wss:")
}

// StartupEnabled reports the startup flag (default true).
func (c ServerConfig) StartupEnabled() bool { return c.Startup == nil || *c.Startup }

// OAuthDeclared reports whether the config itself says requiresOAuth: true.
func (c ServerConfig) OAuthDeclared() bool { return c.RequiresOAuth != nil && *c.RequiresOAuth }

// Timeout returns the per-request timeout in milliseconds, defaulted.
func (c ServerConfig) Timeout() int64 {
	if c.TimeoutMS > 0 {
		return c.TimeoutMS
	}
	return DefaultTimeoutMS
}

// InitTimeout returns the connect-and-initialize timeout in milliseconds, defaulted.
func (c ServerConfig) InitTimeout() int64 {
	if c.InitTimeoutMS > 0 {
		return c.InitTimeoutMS
	}
	return DefaultInitTimeoutMS
}

// Equal reports whether two configs are the same, field for field (Extra included).
func (c ServerConfig) Equal(o ServerConfig) bool {
	a, errA := json.Marshal(c)
	b, errB := json.Marshal(o)
	return errA == nil && errB == nil && bytes.Equal(a, b)
}

// ChangedFields names the top-level JSON fields that differ between c and o, sorted.
func (c ServerConfig) ChangedFields(o ServerConfig) []string {
	ma, mb := c.fieldMap(), o.fieldMap()
	var out []string
	for k, va := range ma {
		if vb, ok := mb[k]; !ok || !bytes.Equal(va, vb) {
			out = append(out, k)
		}
	}
	for k := range mb {
		if _, ok := ma[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func (c ServerConfig) fieldMap() map[string][]byte {
	b, _ := json.Marshal(c)
	var raw map[string]json.RawMessage
	_ = json.Unmarshal(b, &raw)
	out := make(map[string][]byte, len(raw))
	for k, v := range raw {
		var buf bytes.Buffer
		_ = json.Compact(&buf, v)
		out[k] = buf.Bytes()
	}
	return out
}

// Clone returns a deep copy of c.
func (c ServerConfig) Clone() ServerConfig {
	out := c
	out.Args = slices.Clone(c.Args)
	out.Env = maps.Clone(c.Env)
	out.Headers = maps.Clone(c.Headers)
	out.CustomUserVars = maps.Clone(c.CustomUserVars)
	out.Extra = maps.Clone(c.Extra)
	if c.Startup != nil {
		v := *c.Startup
		out.Startup = &v
	}
	if c.RequiresOAuth != nil {
		v := *c.RequiresOAuth
		out.RequiresOAuth = &v
	}
	if c.ChatMenu != nil {
		v := *c.ChatMenu
		out.ChatMenu = &v
	}
	if c.ServerInstructions != nil {
		v := *c.ServerInstructions
		out.ServerInstructions = &v
	}
	for k, v := range out.CustomUserVars {
		v.Sensitive = cloneBool(v.Sensitive)
		out.CustomUserVars[k] = v
	}
	out.Stderr = clonePtr(c.Stderr)
	out.RequestHeaders = maps.Clone(c.RequestHeaders)
	out.OAuthHeaders = maps.Clone(c.OAuthHeaders)
	out.OAuth = c.OAuth.clone()
	out.APIKey = clonePtr(c.APIKey)
	out.OBO = clonePtr(c.OBO)
	out.OAuthRefreshCoordination = cloneBool(c.OAuthRefreshCoordination)
	return out
}

func cloneBool(b *bool) *bool { return clonePtr(b) }

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// RawJSON is a compact JSON value carried through unchanged.
type RawJSON = json.RawMessage
