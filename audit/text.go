package audit

import (
	"fmt"
	"strings"
	"time"

	"github.com/mcpes/mcpes/domain"
)

// ruleWords says what a policy rule means, for a reviewer.
func ruleWords(r domain.Rule) string {
	switch r {
	case domain.RuleAllowed:
		return "allowed: a config exists and nothing forbids connecting it"
	case domain.RuleNoConfig:
		return "rule no_config: no server of this name is visible to this owner"
	case domain.RuleInspectionFailed:
		return "rule inspection_failed: the server's last inspection failed, it is a stub until reinspected"
	case domain.RuleStartupDisabled:
		return "rule startup_false: the config says startup: false, so the shared repository never connects it"
	case domain.RuleNoGrant:
		return "rule oauth_grant_missing: the server needs the owner's OAuth authorization, and the owner holds no valid grant (never authorized, revoked, or refused at refresh)"
	case domain.RuleRequiresOAuth:
		return "rule requires_oauth: the server needs a per-user OAuth token, so the shared repository never connects it"
	case domain.RuleCustomUserVars:
		return "rule custom_user_vars: the server needs per-user variables, so the shared repository never connects it"
	case domain.RuleUserVarsMissing:
		return "rule user_vars_missing: the owner has not set every per-owner value the config needs (named in the inputs), and a placeholder is never sent as is"
	case domain.RuleBreakerOpen:
		return "rule breaker_open: recent connect failures opened the circuit breaker for this owner and server"
	case domain.RuleStaleNode:
		return "rule stale_node: this cluster node had not confirmed the shared log's head within cluster.maxStaleness, so it opened no new connection"
	}
	return "rule " + string(r)
}

func evictWords(r domain.EvictReason) string {
	switch r {
	case domain.EvictStale:
		return "stale, the connection was built from an older config version"
	case domain.EvictDisallowed:
		return "disallowed, a rule no longer allows this connection"
	case domain.EvictRemoved:
		return "removed, the server config no longer exists for this owner"
	case domain.EvictDead:
		return "dead, the connection had stopped working"
	case domain.EvictIdle:
		return "idle for longer than the idle timeout"
	case domain.EvictExplicit:
		return "explicit disconnect"
	case domain.EvictShutdown:
		return "service shutdown"
	}
	return string(r)
}

func ownerWords(owner string) string {
	if owner == "" {
		return "the shared (app-level) repository"
	}
	return "owner " + owner
}

func verdict(ex Explanation) string {
	who := ownerWords(ex.Owner)
	if ex.MayConnect {
		return fmt.Sprintf("%s may connect %s (%s)", who, ex.Server, ruleWords(ex.Rule))
	}
	return fmt.Sprintf("%s may not connect %s (%s)", who, ex.Server, ruleWords(ex.Rule))
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Text renders the explanation for a human reviewer: the verdict first, then the
// config in force and where it came from, its history, and the decisions around then.
func (ex Explanation) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Server %s for %s at %s (log position %d)\n", ex.Server, ownerWords(ex.Owner), stamp(ex.At), ex.Position)
	if ex.Snapshot > 0 {
		fmt.Fprintf(&b, "(config folded from the as-of snapshot at position %d; `mcpes snapshots --check` checks it)\n", ex.Snapshot)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "Verdict: %s.\n", ex.Verdict)
	switch {
	case !ex.Found:
		b.WriteString("Config: none in force at that time.\n")
	default:
		fmt.Fprintf(&b, "Config in force: %s scope, version %d, last changed %s.\n", ex.Scope, ex.Version, stamp(ex.UpdatedAt))
		if ex.Config != nil {
			fmt.Fprintf(&b, "  transport: %s\n", transportWords(*ex.Config))
		}
		switch {
		case ex.InspectionFailed:
			fmt.Fprintf(&b, "  inspection: failed (%s): %s\n", ex.FailureClass, ex.FailureMessage)
		case ex.RequiresOAuth:
			b.WriteString("  inspection: the server requires OAuth\n")
		case ex.Inspected:
			b.WriteString("  inspection: succeeded\n")
		default:
			b.WriteString("  inspection: not yet recorded\n")
		}
		if ex.Grant != nil {
			fmt.Fprintf(&b, "  %s\n", grantWords(ex.Grant))
		}
		if ex.Shadowed {
			fmt.Fprintf(&b, "  The owner's own server %q (version %d) exists too, but the app server of the same name wins: the private one is shadowed and not used.\n", ex.Server, ex.PrivateVersion)
		}
	}
	b.WriteString("\nConfig history up to then:\n")
	if len(ex.History) == 0 {
		b.WriteString("  (none)\n")
	}
	if ex.EarlierHistory > 0 {
		fmt.Fprintf(&b, "  (%d earlier config events not shown: mcpes export --server %s lists them all)\n", ex.EarlierHistory, ex.Server)
	}
	for _, h := range ex.History {
		fmt.Fprintf(&b, "  #%d %s  %s by %s: %s", h.Position, stamp(h.Time), h.Scope, h.Actor, h.Summary)
		if h.Reason != "" {
			fmt.Fprintf(&b, " (reason: %s)", h.Reason)
		}
		b.WriteByte('\n')
	}
	b.WriteString("\nConnection decisions around then:\n")
	if len(ex.Decisions) == 0 {
		b.WriteString("  (none)\n")
	}
	if ex.EarlierDecisions > 0 {
		fmt.Fprintf(&b, "  (%d earlier decisions not shown: mcpes export --owner %s --server %s lists them all)\n",
			ex.EarlierDecisions, domain.OwnerWord(ex.Owner), ex.Server)
	}
	afterShown := false
	for _, d := range ex.Decisions {
		if d.After && !afterShown {
			b.WriteString("  -- after that time --\n")
			afterShown = true
		}
		fmt.Fprintf(&b, "  #%d %s  by %s: %s\n", d.Position, stamp(d.Time), d.Actor, d.Summary)
	}
	return b.String()
}
