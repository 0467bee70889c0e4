package domain

import "fmt"

// Facts are the payloads of the events in the v1 catalogue. The events package maps
// each to its CloudEvents type and stream; the domain produces and folds them.

// ServerRegistered records a new server config in a scope.
type ServerRegistered struct {
	Scope  Scope        `json:"scope"`
	Name   string       `json:"name"`
	Config ServerConfig `json:"config"`
	// Source says where an app server's config comes from (file or api).
	Source Source `json:"source,omitempty"`
}

// ServerConfigChanged records a new config for an existing server, naming the
// top-level fields that changed.
type ServerConfigChanged struct {
	Scope   Scope        `json:"scope"`
	Name    string       `json:"name"`
	Config  ServerConfig `json:"config"`
	Changed []string     `json:"changed"`
	// Source says where an app server's config comes from now (file or api).
	Source Source `json:"source,omitempty"`
}

// ServerRemoved records that a server config was removed from its scope.
type ServerRemoved struct {
	Scope Scope  `json:"scope"`
	Name  string `json:"name"`
}

// Tool is one entry of a server's tool catalogue.
type Tool struct {
	Name        string `json:"name"`
	Title       string `json:"title,omitempty"`
	Description string `json:"description,omitempty"`
	// InputSchema is the tool's JSON Schema, compacted.
	InputSchema RawJSON `json:"inputSchema,omitempty"`
	// Entry is the whole tools/list entry as the server sent it (compacted), so a
	// gateway can pass it on unchanged.
	Entry RawJSON `json:"entry,omitempty"`
}

// Prompt is one entry of a server's prompt list.
type Prompt struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Entry is the prompts/list entry as the server sent it (compacted).
	Entry RawJSON `json:"entry,omitempty"`
}

// Resource is one entry of a server's resource list.
type Resource struct {
	URI      string `json:"uri"`
	Name     string `json:"name,omitempty"`
	MIMEType string `json:"mimeType,omitempty"`
	// Entry is the resources/list entry as the server sent it (compacted).
	Entry RawJSON `json:"entry,omitempty"`
}

// Capabilities says which MCP features a server announced at inspection.
type Capabilities struct {
	Tools       bool `json:"tools,omitempty"`
	Prompts     bool `json:"prompts,omitempty"`
	Resources   bool `json:"resources,omitempty"`
	Logging     bool `json:"logging,omitempty"`
	Completions bool `json:"completions,omitempty"`
}

// ServerInspected records a successful inspection. ConfigVersion is the config
// version that was inspected; Recovered is set when it replaced a failed stub, which
// moves the config version on so existing connections become stale.
type ServerInspected struct {
	Scope           Scope        `json:"scope"`
	Name            string       `json:"name"`
	ConfigVersion   uint64       `json:"configVersion"`
	ServerName      string       `json:"serverName,omitempty"`
	ServerVersion   string       `json:"serverVersion,omitempty"`
	ProtocolVersion string       `json:"protocolVersion,omitempty"`
	Capabilities    Capabilities `json:"capabilities"`
	Tools           []Tool       `json:"tools"`
	Prompts         []Prompt     `json:"prompts,omitempty"`
	Resources       []Resource   `json:"resources,omitempty"`
	// ResourceTemplates are the resources/templates/list entries as sent.
	ResourceTemplates []RawJSON `json:"resourceTemplates,omitempty"`
	Digest            string    `json:"digest"`
	Instructions      string    `json:"instructions,omitempty"`
	DurationMS        int64     `json:"durationMs"`
	Recovered         bool      `json:"recovered,omitempty"`
	// AsOwner is set when the inspection used this owner's OAuth grant (a server
	// that answers nobody without a token); the server stays marked as needing OAuth.
	AsOwner string `json:"asOwner,omitempty"`
}

// FailureClass classifies a failed inspection or connect.
type FailureClass string

// Failure classes.
const (
	FailureUnreachable FailureClass = "unreachable"
	FailureTimeout     FailureClass = "timeout"
	FailureProtocol    FailureClass = "protocol"
	FailureAuth        FailureClass = "auth"
	FailureUnsupported FailureClass = "unsupported"
	FailureRefused     FailureClass = "refused" // blocked by the SSRF guard or the breaker
	// FailureConfig: the config cannot be used as it stands (an unset ${VAR}, a
	// secret that cannot be resolved): fix the config or the environment.
	FailureConfig FailureClass = "config"
)

// ServerInspectionFailed records a failed inspection. With RequiresOAuth set (the
// server answered 401/403 or an OAuth challenge) the server is marked as needing
// OAuth rather than failed.
type ServerInspectionFailed struct {
	Scope         Scope        `json:"scope"`
	Name          string       `json:"name"`
	ConfigVersion uint64       `json:"configVersion"`
	Class         FailureClass `json:"class"`
	Message       string       `json:"message"`
	DurationMS    int64        `json:"durationMs"`
	RequiresOAuth bool         `json:"requiresOAuth,omitempty"`
}

// ServerToolsChanged records tool drift: a successful inspection whose catalogue
// differs from the previous successful one.
type ServerToolsChanged struct {
	Scope      Scope    `json:"scope"`
	Name       string   `json:"name"`
	PrevDigest string   `json:"prevDigest"`
	Digest     string   `json:"digest"`
	Added      []string `json:"added,omitempty"`
	Removed    []string `json:"removed,omitempty"`
	Changed    []string `json:"changed,omitempty"`
}

// ServerReinspectionRequested records that someone asked to reinspect a failed server.
type ServerReinspectionRequested struct {
	Scope Scope  `json:"scope"`
	Name  string `json:"name"`
}

// ConnState is the state of an existing connection when a decision was made.
type ConnState string

// Connection states.
const (
	ConnNone  ConnState = "none"
	ConnAlive ConnState = "alive"
	ConnDead  ConnState = "dead"
)

// DecisionInputs are what a connection decision read. Replaying the log to Position
// and re-running the policy on these inputs must give the same decision.
type DecisionInputs struct {
	Owner  string `json:"owner"`
	Server string `json:"server"`
	// Position is the log position of the config projection the decision read.
	Position uint64 `json:"position"`
	// Config is what the projection said about the effective config at Position.
	Config ConfigView `json:"config"`
	// ExistingVersion and ExistingState describe the connection the repository held.
	ExistingVersion uint64    `json:"existingVersion,omitempty"`
	ExistingState   ConnState `json:"existingState"`
	// BreakerOpen is set when the (owner, server) circuit breaker was open.
	BreakerOpen bool `json:"breakerOpen,omitempty"`
	// StaleNode is set when the deciding cluster node had not confirmed the shared
	// log's head within cluster.maxStaleness, so its config view may be behind.
	StaleNode bool `json:"staleNode,omitempty"`
	// OAuth are the grant inputs of an owner's decision about an OAuth server.
	OAuth GrantInputs `json:"oauth,omitzero"`
}

// ConnectionOpened records a new upstream connection.
type ConnectionOpened struct {
	Inputs DecisionInputs `json:"inputs"`
	// Replaced says why an existing connection was replaced, when one was.
	Replaced        EvictReason `json:"replaced,omitempty"`
	ConnID          string      `json:"connId"`
	ProtocolVersion string      `json:"protocolVersion,omitempty"`
	DurationMS      int64       `json:"durationMs"`
}

// ConnectionOpenFailed records a failed connect attempt.
type ConnectionOpenFailed struct {
	Inputs     DecisionInputs `json:"inputs"`
	Class      FailureClass   `json:"class"`
	Message    string         `json:"message"`
	DurationMS int64          `json:"durationMs"`
	Attempt    int            `json:"attempt"`
}

// ConnectionRefused records a refusal; Count > 1 when refusals were coalesced.
// Servers > 1 when the coalesced refusals were of that many distinct names, none of
// them in the owner's view (rule no_config; Inputs are the latest one's).
type ConnectionRefused struct {
	Inputs  DecisionInputs `json:"inputs"`
	Rule    Rule           `json:"rule"`
	Count   int            `json:"count"`
	Servers int            `json:"servers,omitempty"`
}

// ConnectionEvicted records that a connection was closed and removed, and why.
type ConnectionEvicted struct {
	Inputs DecisionInputs `json:"inputs"`
	Reason EvictReason    `json:"reason"`
	Rule   Rule           `json:"rule,omitempty"`
	ConnID string         `json:"connId"`
}

// ConnectionLost records that an open connection died (child exit, stream closed).
type ConnectionLost struct {
	Owner         string `json:"owner"`
	Server        string `json:"server"`
	ConnID        string `json:"connId"`
	ConfigVersion uint64 `json:"configVersion"`
	Error         string `json:"error"`
	// Reason is LostRestart when the connection was open in the log when mcpes
	// stopped without closing it (crash, SIGKILL) and was found at the next start;
	// "" for a connection that died while mcpes ran.
	Reason string `json:"reason,omitempty"`
}

// LostRestart is the ConnectionLost reason of connections a restart found open in
// the log: the process that held them is gone.
const LostRestart = "restart"

// ToolCalled records one tool call through the gateway (optional audit).
type ToolCalled struct {
	Owner      string  `json:"owner"`
	Server     string  `json:"server"`
	Tool       string  `json:"tool"`
	Outcome    string  `json:"outcome"` // ok, tool_error, error
	DurationMS int64   `json:"durationMs"`
	ArgsDigest string  `json:"argsDigest"`
	Arguments  RawJSON `json:"arguments,omitempty"`
}

// FailureMessageFor is the failure message of a server of scope as owner may read it.
// An app server's message may carry its stderr, and with it the operator's secrets:
// an owner ("" is the shared repository and the operator) gets the class and a
// generic sentence instead. Messages of the owner's own servers are its own.
func FailureMessageFor(owner string, scope Scope, class FailureClass, msg string) string {
	if owner == "" || !scope.IsApp() || msg == "" {
		return msg
	}
	if class == "" {
		class = "unknown"
	}
	return fmt.Sprintf("the app server failed (%s); the operator has the details", class)
}
