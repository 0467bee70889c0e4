package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mcpes/mcpes/audit"
	"github.com/mcpes/mcpes/connections"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
)

func TestExplain_PrivateServerThenShadowedByApp(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	url := clockURL(t)

	// given alice registered her own "clock" and connected it
	privVersion := w.register("owner:alice", domain.UserScope("alice"), "clock", url)
	if _, err := w.get("owner:alice", "alice", "clock"); err != nil {
		t.Fatalf("connect private clock: %v", err)
	}
	before := between(t)
	// and later the operator registered an app "clock", and alice connected again
	appVersion := w.register("admin", domain.AppScope, "clock", url)
	if _, err := w.get("owner:alice", "alice", "clock"); err != nil {
		t.Fatalf("connect app clock: %v", err)
	}
	after := between(t)

	// when the auditor asks about both times
	exBefore, err := audit.Explain(ctx, w.st, "alice", "clock", before)
	if err != nil {
		t.Fatal(err)
	}
	exAfter, err := audit.Explain(ctx, w.st, "alice", "clock", after)
	if err != nil {
		t.Fatal(err)
	}

	// then before, alice's own config was in force, not shadowed, and allowed
	if !exBefore.Found || exBefore.Scope != domain.UserScope("alice") || exBefore.Version != privVersion || exBefore.Shadowed {
		t.Fatalf("before: found=%v scope=%q version=%d shadowed=%v, want user:alice v%d unshadowed",
			exBefore.Found, exBefore.Scope, exBefore.Version, exBefore.Shadowed, privVersion)
	}
	if !exBefore.MayConnect || exBefore.Rule != domain.RuleAllowed {
		t.Fatalf("before: mayConnect=%v rule=%q", exBefore.MayConnect, exBefore.Rule)
	}
	if got := historyTypes(exBefore); strings.Join(got, ",") != "registered@user:alice,inspected@user:alice" {
		t.Fatalf("before: history %v", got)
	}
	// and its decisions show the first connect, then (after that time) the stale eviction
	if len(exBefore.Decisions) < 2 || exBefore.Decisions[0].Type != events.TypeConnectionOpened || exBefore.Decisions[0].After {
		t.Fatalf("before: decisions %+v", exBefore.Decisions)
	}
	if !hasAfter(exBefore, domain.EvictStale) {
		t.Fatalf("before: no later stale replacement among %+v", exBefore.Decisions)
	}

	// and after, the app config wins and alice's own is reported as shadowed
	if exAfter.Scope != domain.AppScope || exAfter.Version != appVersion || !exAfter.Shadowed || exAfter.PrivateVersion != privVersion {
		t.Fatalf("after: scope=%q version=%d shadowed=%v private=%d", exAfter.Scope, exAfter.Version, exAfter.Shadowed, exAfter.PrivateVersion)
	}
	if len(exAfter.History) != 4 {
		t.Fatalf("after: history %v, want both streams' 4 events", historyTypes(exAfter))
	}
	text := exAfter.Text()
	t.Log(text)
	for _, want := range []string{"owner alice may connect clock", "app scope", "shadowed", "stale"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	// and secrets stay references, redacted in the output
	if exAfter.Config == nil || exAfter.Config.Headers["X-Api-Key"] != domain.Redacted {
		t.Fatalf("after: config headers %v", exAfter.Config)
	}
}

func TestExplain_FailedAppServer_RefusedWithRule(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)

	// given an app server whose inspection failed, and the shared repository asked for it
	v := w.append("admin", domain.ServerRegistered{Scope: domain.AppScope, Name: "dead",
		Config: domain.ServerConfig{Type: "sse", URL: "http://127.0.0.1:1/sse"}})
	w.append("system", domain.ServerInspectionFailed{Scope: domain.AppScope, Name: "dead", ConfigVersion: v,
		Class: domain.FailureUnreachable, Message: "connection refused"})
	_, err := w.get("system", "", "dead")
	var re *connections.RefusedError
	if !errors.As(err, &re) || re.Rule != domain.RuleInspectionFailed {
		t.Fatalf("get: %v, want refused by inspection_failed", err)
	}
	w.closeManager() // flushes coalesced refusals into the log

	// when the auditor asks why ("_" names the shared repository)
	ex, err := audit.Explain(ctx, w.st, "_", "dead", time.Time{})
	if err != nil {
		t.Fatal(err)
	}

	// then the verdict and the recorded refusal both name the rule
	if ex.MayConnect || ex.Rule != domain.RuleInspectionFailed || !ex.InspectionFailed {
		t.Fatalf("verdict: mayConnect=%v rule=%q failed=%v", ex.MayConnect, ex.Rule, ex.InspectionFailed)
	}
	var refused *audit.DecisionEntry
	for i := range ex.Decisions {
		if ex.Decisions[i].Type == events.TypeConnectionRefused {
			refused = &ex.Decisions[i]
		}
	}
	if refused == nil || refused.Rule != domain.RuleInspectionFailed || refused.Inputs == nil {
		t.Fatalf("decisions %+v, want a refusal by inspection_failed with inputs", ex.Decisions)
	}
	text := ex.Text()
	for _, want := range []string{"may not connect", "inspection_failed", "connection refused", "refused:"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	// and the JSON form carries the same verdict
	b, _ := json.Marshal(ex)
	if !strings.Contains(string(b), `"rule":"inspection_failed"`) {
		t.Fatalf("json: %s", b)
	}
}

func TestExplain_OtherOwnersServerIsInvisible(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)

	// given bob's private server "notes"
	w.register("owner:bob", domain.UserScope("bob"), "notes", "http://127.0.0.1:1/mcp")

	// when alice's explanation for "notes" is asked
	ex, err := audit.Explain(ctx, w.st, "alice", "notes", time.Time{})
	if err != nil {
		t.Fatal(err)
	}

	// then nothing of bob's shows: no config, no history, rule no_config
	if ex.Found || ex.Rule != domain.RuleNoConfig || len(ex.History) != 0 || len(ex.Decisions) != 0 {
		t.Fatalf("explanation leaks bob's server: %+v", ex)
	}
	if !strings.Contains(ex.Text(), "no_config") {
		t.Fatalf("text: %s", ex.Text())
	}
}

func TestExplain_BadArguments(t *testing.T) {
	w := newWorld(t)
	for _, c := range []struct{ owner, server string }{{"al ice", "clock"}, {"alice", ""}, {"alice", "a/b"}} {
		_, err := audit.Explain(context.Background(), w.st, c.owner, c.server, time.Time{})
		if !errors.Is(err, audit.ErrInvalidArgument) {
			t.Errorf("Explain(%q, %q): %v, want ErrInvalidArgument", c.owner, c.server, err)
		}
	}
}

func historyTypes(ex audit.Explanation) []string {
	var out []string
	for _, h := range ex.History {
		name := strings.TrimSuffix(strings.TrimPrefix(h.Type, "mcpes.server."), ".v1")
		out = append(out, name+"@"+string(h.Scope))
	}
	return out
}

func hasAfter(ex audit.Explanation, reason domain.EvictReason) bool {
	for _, d := range ex.Decisions {
		if d.After && d.Evict == reason {
			return true
		}
	}
	return false
}
