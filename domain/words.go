package domain

import (
	"fmt"
	"strings"
)

// The words below are mcpes's one vocabulary: the API, the CLI, the events and the
// docs use them as defined here and nowhere else.
//
//   - scope: "app" (the operator's servers, visible to every owner) or
//     "user:<owner>"; the shared repository is the app-level one and is shown as
//     ScopeWordApp wherever an owner would be shown ("_" only in stream names).
//   - config version: per server, 1 for its registration and one more for every
//     change of its config (ServerState.ConfigVersion).
//   - position: where an event is in the log (1, 2, 3 ... across all streams).
//     ServerState.Version and ConfigView.Version are the position of the event that
//     last changed a config: the staleness check compares those, since they are
//     unique across scopes.
//   - state of a server: Status.
//   - a refusal: "refused by policy (rule X)" (RefusalText).

// ScopeWordApp is how output names the app scope and the shared repository.
const ScopeWordApp = string(AppScope)

// IsSharedOwner reports whether an owner given as input names the shared (app-level)
// repository: "" (none given), "_" (as in stream names) or "app".
func IsSharedOwner(owner string) bool {
	return owner == "" || owner == SharedOwner || owner == ScopeWordApp
}

// OwnerWord names owner in output: ScopeWordApp for the shared repository ("").
func OwnerWord(owner string) string {
	if owner == "" || owner == SharedOwner {
		return ScopeWordApp
	}
	return owner
}

// Source says where an app server's config comes from.
type Source string

// Sources of app servers. User-scope servers always come from the API and record no
// source.
const (
	// SourceFile: the operator's config file. Only reconciling the file changes or
	// removes it; the API refuses to.
	SourceFile Source = "file"
	// SourceAPI: registered by an admin through the API. Reconciling the file never
	// touches it.
	SourceAPI Source = "api"
)

// Status is the state of a server's config, in one word.
type Status string

// Server states.
const (
	// StatusPending: not inspected yet.
	StatusPending Status = "pending"
	// StatusReady: the last inspection of this config succeeded.
	StatusReady Status = "ready"
	// StatusFailed: the inspection failed; the server is a stub until reinspected.
	StatusFailed Status = "failed"
	// StatusRequiresOAuth: the server needs a per-user OAuth token (declared, or the
	// server answered 401/403); the shared repository never connects it.
	StatusRequiresOAuth Status = "requires_oauth"
	// StatusOnDemand: not inspected at startup (startup false, requiresOAuth or
	// per-owner values); each owner's first connect inspects it with its own values.
	StatusOnDemand Status = "on_demand"
)

// Status returns the state word of s.
func (s ServerState) Status() Status {
	switch {
	case s.InspectionFailed:
		return StatusFailed
	case s.RequiresOAuth() && s.Inspected:
		return StatusRequiresOAuth
	case s.Inspected:
		return StatusReady
	case OnDemand(s.Config):
		return StatusOnDemand
	}
	return StatusPending
}

// Reason says in words why s is in its state: the failure class and message of a
// failed inspection, what to do about an OAuth server, "" for a ready or pending one.
func (s ServerState) Reason() string {
	switch s.Status() {
	case StatusFailed:
		if s.FailureClass == "" {
			return s.FailureMessage
		}
		return string(s.FailureClass) + ": " + s.FailureMessage
	case StatusRequiresOAuth:
		return "the server asks for OAuth: each owner connects with their own token"
	}
	return ""
}

// AppSource returns where an app server's config comes from: the recorded source,
// or SourceFile for a registration recorded before sources existed (only the config
// file registered app servers then without an admin). "" for a user-scope server.
func (s ServerState) AppSource() Source {
	if !s.Scope.IsApp() {
		return ""
	}
	if s.Source == "" {
		return SourceFile
	}
	return s.Source
}

// RefusalText is the one wording of a refusal by the connection policy.
func RefusalText(server, owner string, rule Rule) string {
	return fmt.Sprintf("server %s for %s: refused by policy (rule %s)", server, OwnerWord(owner), rule)
}

// TidyMessage removes the repeated prefixes that wrapped errors of the MCP client
// carry ("failed to send request: failed to send request: x" becomes
// "failed to send request: x") and bounds the message to 1,000 bytes.
func TidyMessage(msg string) string {
	parts := strings.Split(msg, ": ")
	out := parts[:0]
	for i, p := range parts {
		if i > 0 && p == out[len(out)-1] {
			continue
		}
		out = append(out, p)
	}
	msg = strings.Join(out, ": ")
	if len(msg) > 1000 {
		msg = strings.ToValidUTF8(msg[:1000], "") + "…"
	}
	return msg
}
