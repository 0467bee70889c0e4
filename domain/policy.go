package domain

// ConfigView is what the config projection says about the effective config of one
// (owner, server) at one log position: the inputs of the may-connect policy.
type ConfigView struct {
	Found bool  `json:"found"`
	Scope Scope `json:"scope,omitempty"`
	// Version is the log position of the last event that changed this config (a
	// registration, a change, or a recovery by reinspection). Versions are unique across
	// scopes, so a connection is stale exactly when its version differs.
	Version          uint64 `json:"version,omitempty"`
	InspectionFailed bool   `json:"inspectionFailed,omitempty"`
	Startup          bool   `json:"startup,omitempty"`
	RequiresOAuth    bool   `json:"requiresOAuth,omitempty"`
	CustomUserVars   bool   `json:"customUserVars,omitempty"`
	// MissingUserVars names, for an owner, the per-owner values the config needs
	// that the owner has not set: sorted, joined by ", " (a string keeps the view
	// comparable, which decision coalescing and replay rely on). See
	// RequiredUserVars.
	MissingUserVars string `json:"missingUserVars,omitempty"`
	// Shadowed is set when the owner also has a private server of this name, which the
	// app server hides.
	Shadowed bool `json:"shadowed,omitempty"`
}

// Rule names the policy rule behind a connection decision.
type Rule string

// Policy rules.
const (
	RuleAllowed          Rule = "allowed"
	RuleNoConfig         Rule = "no_config"
	RuleInspectionFailed Rule = "inspection_failed"
	RuleStartupDisabled  Rule = "startup_false"
	RuleRequiresOAuth    Rule = "requires_oauth"
	RuleCustomUserVars   Rule = "custom_user_vars"
	RuleBreakerOpen      Rule = "breaker_open"
	RuleUserVarsMissing  Rule = "user_vars_missing"
	RuleStaleNode        Rule = "stale_node"
)

// EvictReason says why a connection was closed and removed.
type EvictReason string

// Eviction reasons.
const (
	EvictStale      EvictReason = "stale"
	EvictDisallowed EvictReason = "disallowed"
	EvictRemoved    EvictReason = "removed"
	EvictDead       EvictReason = "dead"
	EvictIdle       EvictReason = "idle"
	EvictExplicit   EvictReason = "explicit"
	EvictShutdown   EvictReason = "shutdown"
)

// MayConnect is the may-connect policy: whether owner's repository ("" = the shared
// app-level one) may connect the config described by cfg, and the rule that decided.
func MayConnect(owner string, cfg ConfigView) (bool, Rule) {
	switch {
	case !cfg.Found:
		return false, RuleNoConfig
	case cfg.InspectionFailed:
		return false, RuleInspectionFailed
	case owner != "" && cfg.MissingUserVars != "":
		return false, RuleUserVarsMissing
	case owner != "":
		return true, RuleAllowed
	case !cfg.Startup:
		return false, RuleStartupDisabled
	case cfg.RequiresOAuth:
		return false, RuleRequiresOAuth
	case cfg.CustomUserVars:
		return false, RuleCustomUserVars
	}
	return true, RuleAllowed
}

// IsStale reports whether a connection built from config version connVersion is
// stale against the projection's current version.
func IsStale(connVersion uint64, cfg ConfigView) bool { return connVersion != cfg.Version }

// Action is what a Get does.
type Action string

// Get actions.
const (
	ActionReuse   Action = "reuse"   // an alive, fresh connection is returned
	ActionConnect Action = "connect" // a new connection is built (after evicting Evict, if set)
	ActionRefuse  Action = "refuse"  // nothing is connected (after evicting Evict, if set)
)

// Decision is the outcome of DecideGet.
type Decision struct {
	Action Action      `json:"action"`
	Rule   Rule        `json:"rule"`
	Evict  EvictReason `json:"evict,omitempty"`
}

// DecideGet is the pure rule behind a repository's Get: given what the projection says,
// the existing connection and whether the breaker was open, what to do.
func DecideGet(in DecisionInputs) Decision {
	ok, rule := MayConnect(in.Owner, in.Config)
	has := in.ExistingState != ConnNone && in.ExistingState != ""
	noGrant, newGrant := grantRule(in)
	if ok && noGrant {
		ok, rule = false, RuleNoGrant
	}
	if !ok {
		d := Decision{Action: ActionRefuse, Rule: rule}
		if has {
			d.Evict = EvictDisallowed
			if !in.Config.Found {
				d.Evict = EvictRemoved
			}
		}
		return d
	}
	if has {
		switch {
		case IsStale(in.ExistingVersion, in.Config) || newGrant:
			if rule, blocked := connectBlocked(in); blocked {
				return Decision{Action: ActionRefuse, Rule: rule, Evict: EvictStale}
			}
			return Decision{Action: ActionConnect, Rule: rule, Evict: EvictStale}
		case in.ExistingState == ConnDead:
			if rule, blocked := connectBlocked(in); blocked {
				return Decision{Action: ActionRefuse, Rule: rule, Evict: EvictDead}
			}
			return Decision{Action: ActionConnect, Rule: rule, Evict: EvictDead}
		default:
			return Decision{Action: ActionReuse, Rule: rule}
		}
	}
	if rule, blocked := connectBlocked(in); blocked {
		return Decision{Action: ActionRefuse, Rule: rule}
	}
	return Decision{Action: ActionConnect, Rule: rule}
}

// connectBlocked names what stops a new connect the policy allows: a cluster node
// that may be behind the shared log, then an open circuit breaker. An alive, fresh
// connection is reused either way.
func connectBlocked(in DecisionInputs) (Rule, bool) {
	switch {
	case in.StaleNode:
		return RuleStaleNode, true
	case in.BreakerOpen:
		return RuleBreakerOpen, true
	}
	return "", false
}

// DecideHas is the pure rule behind Has: whether the server may be connected, and the
// eviction of a leftover connection when it may not.
func DecideHas(in DecisionInputs) Decision {
	ok, rule := MayConnect(in.Owner, in.Config)
	if noGrant, _ := grantRule(in); ok && noGrant {
		ok, rule = false, RuleNoGrant
	}
	if ok {
		return Decision{Action: ActionReuse, Rule: rule}
	}
	d := Decision{Action: ActionRefuse, Rule: rule}
	if in.ExistingState != ConnNone && in.ExistingState != "" {
		d.Evict = EvictDisallowed
		if !in.Config.Found {
			d.Evict = EvictRemoved
		}
	}
	return d
}
