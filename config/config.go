// Package config reads mcpes's YAML config file: the LibreChat-compatible
// mcpServers map, mcpSettings.allowedDomains, and mcpes's own settings (access
// tokens, data directory, listen address, pub/sub, inspection, connections, audit),
// each with a default. A bad file fails with every problem listed (server, field,
// reason, line and column where known) and nothing applied; unknown keys are kept
// out and reported as warnings.
package config

import (
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcpes/mcpes/domain"
)

// Defaults of mcpes's own settings.
const (
	DefaultDataDir               = "./mcpes-data"
	DefaultListen                = "127.0.0.1:7300"
	DefaultInspectionConcurrency = 8
	DefaultMaxConcurrentConnects = 3
	DefaultIdleTimeout           = 15 * time.Minute
	DefaultBreakerFailures       = 1
	DefaultBreakerOpen           = 30 * time.Second
	DefaultToolCallAudit         = ToolCallsOff
	DefaultOwnerRate             = 50
	DefaultOwnerBurst            = 100
	// A signed checkpoint is made after this many events, or this long after the
	// last one when the log has moved, whichever comes first.
	DefaultCheckpointEvents   = 10_000
	DefaultCheckpointInterval = time.Minute
	// The service keeps an as-of snapshot of the server-config projection at every
	// multiple of this many events, so explain folds at most that many (on a 10M log:
	// <= 0.1 s and ~200 MB resident, mostly mapped file pages; each snapshot is
	// ~0.5-2 MB of the file).
	DefaultSnapshotEvery = 25_000
	// DefaultMaxStaleness is cluster.maxStaleness: how long a clustered node serves
	// connects without confirming the shared log's head.
	DefaultMaxStaleness = 5 * time.Second
	// MinMaxStaleness is the least cluster.maxStaleness: the JetStream cluster's
	// replicas hear from each other about once a second, so a shorter bound flaps.
	MinMaxStaleness = 2 * time.Second
)

// Tool-call audit levels (audit.toolCalls).
const (
	ToolCallsOff      = "off"
	ToolCallsMetadata = "metadata"
	// ToolCallsFull records the arguments too; only when the operator asks for it.
	ToolCallsFull = "full"
)

// Token roles (auth.tokens[].role).
const (
	RoleAdmin = "admin"
	RoleOwner = "owner"
)

// Config is a loaded config file. The zero value with SetDefaults applied is a
// valid config with no servers.
type Config struct {
	// MCPServers are the app-scope servers, by name.
	MCPServers map[string]domain.ServerConfig `json:"mcpServers,omitempty"`
	// ServerLines is the line of each mcpServers entry in the file (for messages
	// that send the operator there).
	ServerLines map[string]int `json:"-"`
	MCPSettings MCPSettings    `json:"mcpSettings"`
	Auth        Auth           `json:"auth"`
	DataDir     string         `json:"dataDir"`
	Listen      string         `json:"listen"`
	// PubSub is "" for the in-process pub/sub or nats://HOST:PORT for JetStream.
	PubSub      string      `json:"pubsub,omitempty"`
	NodeID      string      `json:"nodeID,omitempty"`
	Inspection  Inspection  `json:"inspection"`
	Connections Connections `json:"connections"`
	Audit       Audit       `json:"audit"`
	HTTP        HTTP        `json:"http"`
	Limits      Limits      `json:"limits"`
	Credentials Credentials `json:"credentials"`
	OAuth       OAuth       `json:"oauth"`
	Cluster     Cluster     `json:"cluster"`
}

// Cluster joins the node to other mcpes nodes sharing one replicated config log.
type Cluster struct {
	// URL is "" for a single node, or nats://HOST:PORT[,nats://HOST:PORT...] of the
	// JetStream cluster holding the log.
	URL string `json:"url,omitempty"`
	// MaxStaleness is how long the node may go without confirming the log's head
	// before it refuses new connects (rule stale_node).
	MaxStaleness Duration `json:"maxStaleness"`
}

// HTTP is the request-origin policy of every route (the API, /mcp, /ui). A request
// must name a loopback address, localhost, the listen host or an allowed host in its
// Host header, and a browser request must come from the same origin or an allowed one.
type HTTP struct {
	// AllowedHosts are further Host header values (host or host:port) the service
	// answers to, e.g. its name behind a load balancer.
	AllowedHosts []string `json:"allowedHosts,omitempty"`
	// AllowedOrigins are browser origins (scheme://host[:port]) allowed to call the
	// service besides its own.
	AllowedOrigins []string `json:"allowedOrigins,omitempty"`
}

// Limits bounds what one caller may do.
type Limits struct {
	Owner OwnerLimits `json:"owner"`
}

// OwnerLimits is the token bucket of each owner over the API and /mcp: Rate
// requests a second, after a Burst. The admin is not limited.
type OwnerLimits struct {
	Rate  float64 `json:"rate"`
	Burst int     `json:"burst"`
}

// Credentials says where the encryption keys of stored secrets come from when
// MCPES_KEYS is not set. The key file is never inside the data directory.
type Credentials struct {
	// KeyFile is a 0600 file of "id:<base64>" lines, the active key first.
	KeyFile string `json:"keyFile,omitempty"`
}

// OAuth tunes mcpes as an OAuth client of upstream servers.
type OAuth struct {
	// PublicURL is the base URL at which users' browsers and authorization servers
	// reach this mcpes (the callback and the client ID metadata document live under
	// it). Default: http:// + listen.
	PublicURL string `json:"publicURL,omitempty"`
}

// MCPSettings is the LibreChat mcpSettings block.
type MCPSettings struct {
	// AllowedDomains are host patterns user-scope URLs may reach even when private.
	AllowedDomains []string `json:"allowedDomains,omitempty"`
}

// Auth lists the access tokens, stored as SHA-256 hashes.
type Auth struct {
	Tokens []Token `json:"tokens,omitempty"`
}

// Token is one access token: the hex SHA-256 of the bearer token, its role, and
// for an owner token the owner it acts for.
type Token struct {
	SHA256 string `json:"sha256"`
	Role   string `json:"role"`
	Owner  string `json:"owner,omitempty"`
}

// Inspection tunes startup inspection.
type Inspection struct {
	// Concurrency bounds how many servers are inspected at once.
	Concurrency int `json:"concurrency"`
}

// Connections tunes the connection repositories.
type Connections struct {
	MaxConcurrentConnects int      `json:"maxConcurrentConnects"`
	IdleTimeout           Duration `json:"idleTimeout"`
	Breaker               Breaker  `json:"breaker"`
	// ProtocolVersion is the MCP revision connections to upstreams speak:
	// "2025-11-25" (the default: what most servers and the TypeScript SDK speak, and
	// the faster hop through the /mcp gateway) or "latest" (mcp-go's newest revision,
	// 2026-07-28, falling back to 2025-11-25 for servers that do not know it).
	ProtocolVersion string `json:"protocolVersion"`
	// MaxMessageBytes bounds one message read from an upstream server (a stdio
	// line, an HTTP body, one SSE event); a response over it fails its call with
	// an error naming this setting. Default domain.DefaultMaxMessageBytes (16 MiB).
	MaxMessageBytes int64 `json:"maxMessageBytes"`
	// MaxRequestTimeout bounds a gateway request whose progress notifications keep
	// restarting the server's timeout (0: the gateway's default, 10m).
	MaxRequestTimeout Duration `json:"maxRequestTimeout"`
}

// Protocol revisions connections.protocolVersion accepts.
const (
	ProtocolStable = "2025-11-25"
	ProtocolLatest = "latest"
)

// Breaker tunes the per-(owner, server) circuit breaker.
type Breaker struct {
	// Failures is the number of consecutive failed connects that opens the breaker.
	Failures int `json:"failures"`
	// OpenDuration is how long an open breaker refuses connects before a trial.
	OpenDuration Duration `json:"openDuration"`
}

// Audit says what optional facts are recorded.
type Audit struct {
	// ToolCalls is "off" (default), "metadata" (tool.called events with a digest of
	// the arguments, never the arguments) or "full" (the arguments too).
	ToolCalls string `json:"toolCalls"`
	// CheckpointEvery says how often the service signs a checkpoint of the log's
	// Merkle tree: `checkpointEvery: 5000` (events) or `checkpointEvery: 30s`.
	CheckpointEvery CheckpointEvery `json:"checkpointEvery"`
	// Witness is where each signed checkpoint is published: file://PATH (JSON Lines,
	// appended), http(s)://URL (POSTed), nats://HOST:PORT/SUBJECT (a JetStream
	// message each), or "" for none (domain.ParseWitness).
	Witness string `json:"witness,omitempty"`
	// SigningKeyFile holds the note signer key (`mcpes keys gen --signing NAME`);
	// MCPES_SIGNING_KEY in the environment takes precedence. No key, no checkpoints.
	SigningKeyFile string `json:"signingKeyFile,omitempty"`
	// SnapshotEvery is the interval, in events, of the as-of snapshots the service
	// keeps in the store for explain (default DefaultSnapshotEvery, at least 1000).
	SnapshotEvery int `json:"snapshotEvery"`
}

// CheckpointEvery is a count of events and a time; a checkpoint is due when either
// is reached.
type CheckpointEvery struct {
	Events   int      `json:"events"`
	Interval Duration `json:"interval"`
}

// Duration is a time.Duration written as a Go duration string ("15m", "30s").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Duration(d).String() + `"`), nil
}

// SetDefaults fills every unset setting with its default. It never touches servers.
func (c *Config) SetDefaults() {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Inspection.Concurrency == 0 {
		c.Inspection.Concurrency = DefaultInspectionConcurrency
	}
	if c.Cluster.MaxStaleness == 0 {
		c.Cluster.MaxStaleness = Duration(DefaultMaxStaleness)
	}
	if c.Connections.MaxConcurrentConnects == 0 {
		c.Connections.MaxConcurrentConnects = DefaultMaxConcurrentConnects
	}
	if c.Connections.IdleTimeout == 0 {
		c.Connections.IdleTimeout = Duration(DefaultIdleTimeout)
	}
	if c.Connections.ProtocolVersion == "" {
		c.Connections.ProtocolVersion = ProtocolStable
	}
	if c.Connections.MaxMessageBytes == 0 {
		c.Connections.MaxMessageBytes = domain.DefaultMaxMessageBytes
	}
	if c.Connections.Breaker.Failures == 0 {
		c.Connections.Breaker.Failures = DefaultBreakerFailures
	}
	if c.Connections.Breaker.OpenDuration == 0 {
		c.Connections.Breaker.OpenDuration = Duration(DefaultBreakerOpen)
	}
	if c.Audit.ToolCalls == "" {
		c.Audit.ToolCalls = DefaultToolCallAudit
	}
	if c.Limits.Owner.Rate == 0 {
		c.Limits.Owner.Rate = DefaultOwnerRate
	}
	if c.Limits.Owner.Burst == 0 {
		c.Limits.Owner.Burst = DefaultOwnerBurst
	}
	if c.Audit.CheckpointEvery.Events == 0 {
		c.Audit.CheckpointEvery.Events = DefaultCheckpointEvents
	}
	if c.Audit.SnapshotEvery == 0 {
		c.Audit.SnapshotEvery = DefaultSnapshotEvery
	}
	if c.Audit.CheckpointEvery.Interval == 0 {
		c.Audit.CheckpointEvery.Interval = Duration(DefaultCheckpointInterval)
	}
	if c.MCPServers == nil {
		c.MCPServers = map[string]domain.ServerConfig{}
	}
}

// Validate checks every server (domain.ValidateConfig with the app scope) and every
// setting, and returns an *Error listing all problems, or nil. Call SetDefaults first.
func (c *Config) Validate() error {
	var probs []Problem
	for _, name := range slices.Sorted(maps.Keys(c.MCPServers)) {
		probs = append(probs, ServerProblems(domain.AppScope, name, c.MCPServers[name])...)
	}
	probs = append(probs, c.settingProblems()...)
	if len(probs) == 0 {
		return nil
	}
	return &Error{Problems: probs}
}

// ServerProblems returns domain.ValidateConfig's problems for one server as Problems.
func ServerProblems(scope domain.Scope, name string, cfg domain.ServerConfig) []Problem {
	err := domain.ValidateConfig(scope, name, cfg)
	if err == nil {
		return nil
	}
	if ve, ok := err.(*domain.ValidationError); ok {
		out := make([]Problem, len(ve.Problems))
		for i, p := range ve.Problems {
			out[i] = Problem{Server: p.Server, Field: p.Field, Reason: p.Reason}
		}
		return out
	}
	return []Problem{{Server: name, Reason: err.Error()}}
}

func (c *Config) settingProblems() []Problem {
	var out []Problem
	add := func(field, format string, args ...any) {
		out = append(out, Problem{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	for i, t := range c.Auth.Tokens {
		f := fmt.Sprintf("auth.tokens[%d]", i)
		if b, err := hex.DecodeString(t.SHA256); err != nil || len(b) != 32 {
			add(f+".sha256", "want 64 hex characters (the SHA-256 of the token; `mcpes token hash` prints it)")
		}
		switch t.Role {
		case RoleAdmin:
			if t.Owner != "" {
				add(f+".owner", "an admin token acts for every owner; remove owner")
			}
		case RoleOwner:
			if err := domain.ValidateOwner(t.Owner); err != nil {
				add(f+".owner", "an owner token needs a valid owner: %v", err)
			}
		default:
			add(f+".role", "want admin or owner, got %q", t.Role)
		}
	}
	for i, d := range c.MCPSettings.AllowedDomains {
		if err := domain.ValidateDomainPattern(d); err != nil {
			add(fmt.Sprintf("mcpSettings.allowedDomains[%d]", i), "%v", err)
		}
	}
	for i, h := range c.HTTP.AllowedHosts {
		if !validHost(h) {
			add(fmt.Sprintf("http.allowedHosts[%d]", i), "%q, want host or host:port", h)
		}
	}
	for i, o := range c.HTTP.AllowedOrigins {
		if !validOrigin(o) {
			add(fmt.Sprintf("http.allowedOrigins[%d]", i), "%q, want scheme://host[:port] with scheme http or https", o)
		}
	}
	if r := c.Limits.Owner.Rate; !(r > 0) || math.IsInf(r, 0) {
		add("limits.owner.rate", "want requests a second above 0, got %v", r)
	}
	if c.Limits.Owner.Burst < 1 {
		add("limits.owner.burst", "want at least 1, got %d", c.Limits.Owner.Burst)
	}
	if c.Inspection.Concurrency < 1 || c.Inspection.Concurrency > 1024 {
		add("inspection.concurrency", "want 1 to 1024, got %d", c.Inspection.Concurrency)
	}
	if n := c.Connections.MaxConcurrentConnects; n < 1 || n > 1024 {
		add("connections.maxConcurrentConnects", "want 1 to 1024, got %d", n)
	}
	if c.Connections.IdleTimeout < 0 {
		add("connections.idleTimeout", "must not be negative")
	}
	if n := c.Connections.MaxMessageBytes; n < 1024 || n > domain.MaxMessageBytesCeiling {
		add("connections.maxMessageBytes", "want 1024 to %d bytes, got %d", domain.MaxMessageBytesCeiling, n)
	}
	if c.Connections.MaxRequestTimeout < 0 {
		add("connections.maxRequestTimeout", "must not be negative")
	}
	if c.Connections.Breaker.Failures < 1 {
		add("connections.breaker.failures", "want at least 1, got %d", c.Connections.Breaker.Failures)
	}
	if c.Connections.Breaker.OpenDuration < 0 {
		add("connections.breaker.openDuration", "must not be negative")
	}
	if v := c.Connections.ProtocolVersion; v != ProtocolStable && v != ProtocolLatest {
		add("connections.protocolVersion", "want %q or %q, got %q", ProtocolStable, ProtocolLatest, v)
	}
	if !slices.Contains([]string{ToolCallsOff, ToolCallsMetadata, ToolCallsFull}, c.Audit.ToolCalls) {
		add("audit.toolCalls", "want off, metadata or full, got %q", c.Audit.ToolCalls)
	}
	if c.Credentials.KeyFile != "" && c.DataDir != "" && insideDir(c.Credentials.KeyFile, c.DataDir) {
		add("credentials.keyFile", "the key file must not be inside the data directory %s", c.DataDir)
	}
	if u := c.OAuth.PublicURL; u != "" && !validPublicURL(u) {
		add("oauth.publicURL", "want an absolute http(s) URL without query or fragment, got %q", u)
	}
	if c.Audit.CheckpointEvery.Events < 1 || c.Audit.CheckpointEvery.Interval < Duration(time.Second) {
		add("audit.checkpointEvery", "want a number of events (at least 1) or a duration of at least 1s")
	}
	if c.Audit.SnapshotEvery < 1000 {
		add("audit.snapshotEvery", "want a number of events of at least 1000, got %d", c.Audit.SnapshotEvery)
	}
	if w := c.Audit.Witness; w != "" {
		if _, err := domain.ParseWitness(w); err != nil {
			add("audit.witness", "%v", err)
		}
	}
	for u := range strings.SplitSeq(c.Cluster.URL, ",") {
		if c.Cluster.URL != "" && !validNATSURL(u) {
			add("cluster.url", "want empty (one node) or nats://[USER:PASSWORD@]HOST:PORT[,...], got %q", RedactURLs(c.Cluster.URL))
			break
		}
	}
	if c.Cluster.MaxStaleness.D() < MinMaxStaleness {
		add("cluster.maxStaleness", "%s is below the least bound, %s", c.Cluster.MaxStaleness.D(), MinMaxStaleness)
	}
	if c.PubSub != "" && !validNATSURL(c.PubSub) {
		add("pubsub", "want empty (in-process) or nats://[USER:PASSWORD@]HOST:PORT, got %q", RedactURLs(c.PubSub))
	}
	return out
}

// HasAdminToken reports whether any admin token is configured in the file.
func (c *Config) HasAdminToken() bool {
	return slices.ContainsFunc(c.Auth.Tokens, func(t Token) bool { return t.Role == RoleAdmin })
}

// validHost: a host name or IP literal, optionally with a port; no scheme, path or
// wildcard.
func validHost(h string) bool {
	name := h
	if host, port, err := net.SplitHostPort(h); err == nil {
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return false
		}
		name = host
	}
	if name == "" || strings.ContainsAny(name, "/*?#@ ") {
		return false
	}
	return true
}

// validOrigin: scheme://host[:port] with scheme http or https, nothing after.
func validOrigin(o string) bool {
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && validHost(u.Host) &&
		strings.TrimSuffix(u.Path, "/") == "" && u.RawQuery == "" && u.Fragment == "" && u.User == nil
}
