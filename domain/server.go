package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"time"
)

// ServerState is one server stream folded from its events: the state the decide
// functions read.
type ServerState struct {
	Scope  Scope        `json:"scope"`
	Name   string       `json:"name"`
	Exists bool         `json:"exists"`
	Config ServerConfig `json:"config"`
	// Source is the recorded source of an app server ("" before sources were
	// recorded, and for user scopes); see AppSource.
	Source Source `json:"source,omitempty"`
	// ConfigVersion counts this server's configs: 1 at registration, one more for
	// every change and for a recovery by reinspection.
	ConfigVersion uint64 `json:"configVersion"`
	// Version is the log position of the last config-changing event (see ConfigView).
	Version uint64 `json:"version"`
	// StreamVersion is the number of events in the stream, for optimistic concurrency.
	StreamVersion uint64    `json:"streamVersion"`
	UpdatedAt     time.Time `json:"updatedAt"`
	// Inspected is set once any inspection result was recorded for this config.
	Inspected        bool         `json:"inspected"`
	InspectionFailed bool         `json:"inspectionFailed"`
	OAuthDetected    bool         `json:"oauthDetected,omitempty"`
	FailureClass     FailureClass `json:"failureClass,omitempty"`
	FailureMessage   string       `json:"failureMessage,omitempty"`
	// LastSuccess is the latest successful inspection, nil before the first.
	LastSuccess *ServerInspected `json:"lastSuccess,omitempty"`
}

// RequiresOAuth reports whether the config declares OAuth or inspection detected it.
func (s ServerState) RequiresOAuth() bool { return s.Config.OAuthDeclared() || s.OAuthDetected }

// View returns the policy inputs this state gives for its own scope.
func (s ServerState) View() ConfigView {
	if !s.Exists {
		return ConfigView{}
	}
	return ConfigView{
		Found:            true,
		Scope:            s.Scope,
		Version:          s.Version,
		InspectionFailed: s.InspectionFailed,
		Startup:          s.Config.StartupEnabled(),
		RequiresOAuth:    s.RequiresOAuth(),
		CustomUserVars:   NeedsUserValues(s.Config),
	}
}

// Effective applies the app-wins rule: the app state when it exists, else the
// owner's private one. Shadowed is set when both exist.
func Effective(app, private ServerState) (ServerState, ConfigView) {
	switch {
	case app.Exists:
		v := app.View()
		v.Shadowed = private.Exists
		return app, v
	case private.Exists:
		return private, private.View()
	}
	return ServerState{}, ConfigView{}
}

// Apply folds one fact at log position pos and time at into the state. Facts of
// other streams or unknown types leave it unchanged.
func (s ServerState) Apply(fact any, pos uint64, at time.Time) ServerState {
	s.StreamVersion++
	switch f := fact.(type) {
	case ServerRegistered:
		s = ServerState{Scope: f.Scope, Name: f.Name, Exists: true, Config: f.Config, Source: f.Source,
			ConfigVersion: 1, Version: pos, StreamVersion: s.StreamVersion, UpdatedAt: at}
	case ServerConfigChanged:
		s.Config, s.Version, s.UpdatedAt = f.Config, pos, at
		s.ConfigVersion++
		if f.Source != "" {
			s.Source = f.Source
		}
		s.Inspected, s.InspectionFailed, s.OAuthDetected = false, false, false
		s.FailureClass, s.FailureMessage = "", ""
	case ServerRemoved:
		s = ServerState{Scope: f.Scope, Name: f.Name, StreamVersion: s.StreamVersion, UpdatedAt: at}
	case ServerInspected:
		if f.Recovered {
			s.Version, s.UpdatedAt = pos, at
			s.ConfigVersion++
		}
		// An inspection that needed an owner's grant shows the server requires OAuth.
		s.Inspected, s.InspectionFailed, s.OAuthDetected = true, false, f.AsOwner != ""
		s.FailureClass, s.FailureMessage = "", ""
		last := f
		s.LastSuccess = &last
	case ServerInspectionFailed:
		s.Inspected = true
		s.FailureClass, s.FailureMessage = f.Class, f.Message
		if f.RequiresOAuth {
			s.OAuthDetected, s.InspectionFailed = true, false
		} else {
			s.InspectionFailed = true
		}
	}
	return s
}

// Commands. Each is a plain struct; its decide function returns the facts to append.

// RegisterServer adds a new server config to a scope. Source is set for app servers.
type RegisterServer struct {
	Scope  Scope
	Name   string
	Config ServerConfig
	Source Source
}

// ChangeServerConfig replaces an existing server's config. Source is set for app
// servers; a change of source alone is a change (field "source").
type ChangeServerConfig struct {
	Scope  Scope
	Name   string
	Config ServerConfig
	Source Source
}

// RemoveServer removes a server config from its scope.
type RemoveServer struct {
	Scope Scope
	Name  string
}

// InspectionOutcome is the result of one inspection, as the upstream adapter reports it.
type InspectionOutcome struct {
	OK bool
	// On success:
	ServerName, ServerVersion, ProtocolVersion string
	Capabilities                               Capabilities
	Tools                                      []Tool
	Prompts                                    []Prompt
	Resources                                  []Resource
	ResourceTemplates                          []RawJSON
	Instructions                               string
	// AsOwner is the owner whose OAuth grant the inspection used ("" for none).
	AsOwner string
	// On failure:
	Class         FailureClass
	Message       string
	RequiresOAuth bool
	Duration      time.Duration
}

// RecordInspection records an inspection of the config at InspectedVersion.
type RecordInspection struct {
	Scope            Scope
	Name             string
	InspectedVersion uint64
	Outcome          InspectionOutcome
}

// RequestReinspection asks to reinspect a failed server.
type RequestReinspection struct {
	Scope Scope
	Name  string
}

// DecideRegisterServer validates cmd and returns ServerRegistered. Returns a
// *ValidationError for a bad config and ErrServerExists (as *ServerError) when the
// name is taken in that scope.
func DecideRegisterServer(st ServerState, cmd RegisterServer) ([]any, error) {
	if err := ValidateConfig(cmd.Scope, cmd.Name, cmd.Config); err != nil {
		return nil, err
	}
	if st.Exists {
		return nil, &ServerError{Name: cmd.Name, Err: ErrServerExists}
	}
	return []any{ServerRegistered{Scope: cmd.Scope, Name: cmd.Name, Config: cmd.Config.Clone(), Source: cmd.Source}}, nil
}

// DecideChangeServerConfig validates cmd and returns ServerConfigChanged, or nothing
// when the config is unchanged. Returns ErrServerNotFound when the server is absent.
func DecideChangeServerConfig(st ServerState, cmd ChangeServerConfig) ([]any, error) {
	if err := ValidateConfig(cmd.Scope, cmd.Name, cmd.Config); err != nil {
		return nil, err
	}
	if !st.Exists {
		return nil, &ServerError{Name: cmd.Name, Err: ErrServerNotFound}
	}
	changed := st.Config.ChangedFields(cmd.Config)
	if cmd.Source != "" && cmd.Source != st.AppSource() {
		changed = append(changed, "source")
	}
	if len(changed) == 0 {
		return nil, nil
	}
	return []any{ServerConfigChanged{Scope: cmd.Scope, Name: cmd.Name, Config: cmd.Config.Clone(),
		Changed: changed, Source: cmd.Source}}, nil
}

// DecidePutServer registers the server when absent and changes it when present.
// source is where an app server's config comes from ("" for user scopes).
func DecidePutServer(st ServerState, scope Scope, name string, cfg ServerConfig, source Source) ([]any, error) {
	if st.Exists {
		return DecideChangeServerConfig(st, ChangeServerConfig{Scope: scope, Name: name, Config: cfg, Source: source})
	}
	return DecideRegisterServer(st, RegisterServer{Scope: scope, Name: name, Config: cfg, Source: source})
}

// DecideRemoveServer returns ServerRemoved, or ErrServerNotFound when absent.
func DecideRemoveServer(st ServerState, cmd RemoveServer) ([]any, error) {
	if !st.Exists {
		return nil, &ServerError{Name: cmd.Name, Err: ErrServerNotFound}
	}
	return []any{ServerRemoved{Scope: cmd.Scope, Name: cmd.Name}}, nil
}

// DecideRecordInspection returns the facts of an inspection: ServerInspected (plus
// ServerToolsChanged when the catalogue drifted from the last success) or
// ServerInspectionFailed. An inspection of a config version that is no longer current
// is dropped (nil, nil): it describes a config that no longer exists.
func DecideRecordInspection(st ServerState, cmd RecordInspection) ([]any, error) {
	if !st.Exists {
		return nil, &ServerError{Name: cmd.Name, Err: ErrServerNotFound}
	}
	if cmd.InspectedVersion != st.Version {
		return nil, nil
	}
	o := cmd.Outcome
	if !o.OK {
		return []any{ServerInspectionFailed{Scope: cmd.Scope, Name: cmd.Name, ConfigVersion: st.Version,
			Class: o.Class, Message: o.Message, DurationMS: o.Duration.Milliseconds(), RequiresOAuth: o.RequiresOAuth}}, nil
	}
	tools := slices.Clone(o.Tools)
	slices.SortFunc(tools, func(a, b Tool) int { return cmpString(a.Name, b.Name) })
	ins := ServerInspected{Scope: cmd.Scope, Name: cmd.Name, ConfigVersion: st.Version,
		ServerName: o.ServerName, ServerVersion: o.ServerVersion, ProtocolVersion: o.ProtocolVersion,
		Capabilities: o.Capabilities, Tools: tools, Prompts: o.Prompts, Resources: o.Resources,
		ResourceTemplates: o.ResourceTemplates,
		Digest:            CatalogueDigest(tools), Instructions: o.Instructions, DurationMS: o.Duration.Milliseconds(),
		Recovered: st.InspectionFailed, AsOwner: o.AsOwner}
	if tools == nil {
		ins.Tools = []Tool{}
	}
	out := []any{ins}
	if st.LastSuccess != nil && catalogueChanged(st.LastSuccess, tools, ins.Digest) {
		added, removed, changed := ToolDrift(st.LastSuccess.Tools, tools)
		out = append(out, ServerToolsChanged{Scope: cmd.Scope, Name: cmd.Name,
			PrevDigest: st.LastSuccess.Digest, Digest: ins.Digest, Added: added, Removed: removed, Changed: changed})
	}
	return out, nil
}

// DecideRequestReinspection returns ServerReinspectionRequested. Returns
// ErrServerNotFound when absent and ErrNotFailed when the server is not failed.
func DecideRequestReinspection(st ServerState, cmd RequestReinspection) ([]any, error) {
	if !st.Exists {
		return nil, &ServerError{Name: cmd.Name, Err: ErrServerNotFound}
	}
	if !st.InspectionFailed {
		return nil, &ServerError{Name: cmd.Name, Err: ErrNotFailed}
	}
	return []any{ServerReinspectionRequested{Scope: cmd.Scope, Name: cmd.Name}}, nil
}

// CatalogueDigest is the SHA-256 (hex) of the tool catalogue sorted by name.
func CatalogueDigest(tools []Tool) string {
	sorted := slices.Clone(tools)
	slices.SortFunc(sorted, func(a, b Tool) int { return cmpString(a.Name, b.Name) })
	if sorted == nil {
		sorted = []Tool{}
	}
	b, _ := json.Marshal(sorted)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// catalogueChanged reports whether tools (digest d) differ from the last successful
// inspection. An inspection recorded before tools carried their raw Entry is compared
// on the fields it recorded, so the upgrade that adds entries is not itself a change;
// the next inspection then records the full digest.
func catalogueChanged(last *ServerInspected, tools []Tool, d string) bool {
	if last.Digest == d {
		return false
	}
	for _, t := range last.Tools {
		if t.Entry != nil {
			return true
		}
	}
	bare := make([]Tool, len(tools))
	for i, t := range tools {
		t.Entry = nil
		bare[i] = t
	}
	return last.Digest != CatalogueDigest(bare)
}

// ToolDrift compares two catalogues by tool name and content.
func ToolDrift(before, after []Tool) (added, removed, changed []string) {
	prev := make(map[string]Tool, len(before))
	for _, t := range before {
		prev[t.Name] = t
	}
	seen := make(map[string]bool, len(after))
	for _, t := range after {
		seen[t.Name] = true
		p, ok := prev[t.Name]
		if !ok {
			added = append(added, t.Name)
			continue
		}
		a, _ := json.Marshal(p)
		b, _ := json.Marshal(t)
		if string(a) != string(b) {
			changed = append(changed, t.Name)
		}
	}
	for _, t := range before {
		if !seen[t.Name] {
			removed = append(removed, t.Name)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	slices.Sort(changed)
	return added, removed, changed
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
