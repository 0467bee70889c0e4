package domain

import "time"

// RuleNoGrant refuses an owner's connect to a server that needs OAuth while the owner
// holds no valid grant for it (never authorized, revoked, or refused at refresh).
const RuleNoGrant Rule = "oauth_grant_missing"

// GrantInputs are the OAuth inputs of a connection decision. They are set (Checked)
// only for an owner's decision about a server that requires OAuth, so decisions
// recorded before grants existed replay as they were made.
type GrantInputs struct {
	Checked bool `json:"checked,omitempty"`
	// Grant is the id of the owner's current grant for the server ("" when none).
	Grant string `json:"grant,omitempty"`
	// Existing is the grant id the existing connection was built with.
	Existing string `json:"existing,omitempty"`
}

// grantRule applies the grant inputs after the may-connect rules allowed a connect:
// no grant refuses; a connection built with another grant (re-authorized or revoked
// since) is stale.
func grantRule(in DecisionInputs) (refuse, stale bool) {
	if !in.OAuth.Checked {
		return false, false
	}
	if in.OAuth.Grant == "" {
		return true, false
	}
	return false, in.OAuth.Existing != in.OAuth.Grant
}

// OAuth facts. A flow's steps and refresh failures are the deciding node's, on the
// conn/<owner>/<server> stream; a grant's lifecycle (completed, refreshed, revoked) is
// shared, on GrantStream. They carry metadata only: never tokens, codes, verifiers,
// client secrets or state.

// OAuthFlowStarted records that an owner was sent to authorize a server.
type OAuthFlowStarted struct {
	Owner  string `json:"owner"`
	Server string `json:"server"`
	FlowID string `json:"flowId"`
	Issuer string `json:"issuer"`
	Scope  string `json:"scope,omitempty"`
	// Client says how mcpes is known to the AS: pre_registered, metadata_document or dynamic.
	Client    string    `json:"client"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// OAuthCompleted records a grant obtained at the callback.
type OAuthCompleted struct {
	Owner       string    `json:"owner"`
	Server      string    `json:"server"`
	FlowID      string    `json:"flowId"`
	GrantID     string    `json:"grantId"`
	Issuer      string    `json:"issuer"`
	Scope       string    `json:"scope,omitempty"`
	ExpiresAt   time.Time `json:"expiresAt,omitzero"`
	Refreshable bool      `json:"refreshable"`
}

// OAuthFailed records a flow that ended without a grant, and at which step.
type OAuthFailed struct {
	Owner  string `json:"owner"`
	Server string `json:"server"`
	FlowID string `json:"flowId,omitempty"`
	Stage  string `json:"stage"`
	Reason string `json:"reason"`
}

// TokenRefreshed records a refresh of an owner's grant.
type TokenRefreshed struct {
	Owner      string    `json:"owner"`
	Server     string    `json:"server"`
	GrantID    string    `json:"grantId"`
	Generation uint64    `json:"generation"`
	ExpiresAt  time.Time `json:"expiresAt,omitzero"`
	// Rotated is set when the AS issued a new refresh token.
	Rotated bool `json:"rotated"`
}

// TokenRefreshFailed records a failed refresh: invalid_grant (the owner must
// authorize again; the grant is dropped) or transient (retried after RetryAt).
type TokenRefreshFailed struct {
	Owner   string    `json:"owner"`
	Server  string    `json:"server"`
	GrantID string    `json:"grantId"`
	Class   string    `json:"class"`
	Reason  string    `json:"reason"`
	RetryAt time.Time `json:"retryAt,omitzero"`
}

// TokenRevoked records that an owner's grant was dropped: revoked by the owner
// (ASNotified when the AS was told, RFC 7009) or refused by the AS at refresh.
type TokenRevoked struct {
	Owner      string `json:"owner"`
	Server     string `json:"server"`
	GrantID    string `json:"grantId"`
	Reason     string `json:"reason"`
	ASNotified bool   `json:"asNotified"`
}
