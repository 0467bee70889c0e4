// Package audit answers an auditor's questions from the event log alone: why was a
// connection made, refused or evicted (Explain), is the log intact and does every
// recorded decision replay to the same outcome (VerifyAll), what did the projections
// hold at a past position (Replay), and the log as CloudEvents JSON Lines (Export).
//
// Every function reads a store.Store and nothing else, so the same code serves the
// HTTP API and the offline `mcpes --data DIR` commands.
package audit

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/store"
)

// How many connection decisions an Explanation shows before and after its time.
const (
	DecisionsBefore = 10
	DecisionsAfter  = 5
	// HistoryMax is how many config events (of both streams) an Explanation shows,
	// the last ones up to its time.
	HistoryMax = 100
)

// Explanation says, for one owner and one server at one time, which config was in
// force, where it came from, how it got there, and what the connection repository
// decided and would decide.
type Explanation struct {
	// Owner is the repository asked about; "" is the shared (app-level) one.
	Owner  string    `json:"owner"`
	Server string    `json:"server"`
	At     time.Time `json:"at"`
	// Position is the last log position in force at At.
	Position uint64 `json:"position"`
	// Snapshot is the position of the as-of snapshot the config projection was folded
	// from (0: from the start of the log). Snapshots are derived data: `mcpes
	// snapshots --check` compares each with the log.
	Snapshot uint64 `json:"snapshot,omitempty"`

	// Found is set when an effective config existed at Position.
	Found bool `json:"found"`
	// Scope is where the effective config came from (app wins over the owner's own).
	Scope            domain.Scope         `json:"scope,omitempty"`
	Config           *domain.ServerConfig `json:"config,omitempty"` // secrets redacted
	Version          uint64               `json:"version,omitempty"`
	UpdatedAt        time.Time            `json:"updatedAt,omitzero"`
	Inspected        bool                 `json:"inspected"`
	InspectionFailed bool                 `json:"inspectionFailed"`
	RequiresOAuth    bool                 `json:"requiresOAuth"`
	FailureClass     domain.FailureClass  `json:"failureClass,omitempty"`
	FailureMessage   string               `json:"failureMessage,omitempty"`
	// Shadowed is set when the owner had a private server of this name that the app
	// server hid; PrivateVersion is that private config's version.
	Shadowed       bool   `json:"shadowed"`
	PrivateVersion uint64 `json:"privateVersion,omitempty"`

	// View is the policy input; MayConnect and Rule are the may-connect verdict at
	// Position, Verdict says it in words.
	View       domain.ConfigView `json:"view"`
	MayConnect bool              `json:"mayConnect"`
	Rule       domain.Rule       `json:"rule"`
	Verdict    string            `json:"verdict"`
	// Grant is the owner's OAuth grant at Position, for a server that requires OAuth.
	Grant *GrantState `json:"grant,omitempty"`

	// History lists the last HistoryMax events of both config streams (app and the
	// owner's) up to Position, oldest first; EarlierHistory counts the ones it leaves
	// out.
	History        []HistoryEntry `json:"history"`
	EarlierHistory int            `json:"earlierHistory,omitempty"`
	// Decisions lists the last DecisionsBefore connection events up to Position and
	// the first DecisionsAfter after it (After set), oldest first.
	Decisions []DecisionEntry `json:"decisions"`
	// EarlierDecisions counts the decisions before Position that Decisions leaves out.
	EarlierDecisions int `json:"earlierDecisions,omitempty"`
}

// HistoryEntry is one event of a server config stream.
type HistoryEntry struct {
	Position uint64       `json:"position"`
	Time     time.Time    `json:"time"`
	Type     string       `json:"type"`
	Scope    domain.Scope `json:"scope"`
	Actor    string       `json:"actor"`
	Reason   string       `json:"reason,omitempty"`
	Changed  []string     `json:"changed,omitempty"`
	Summary  string       `json:"summary"`
}

// DecisionEntry is one event of the (owner, server) connection stream.
type DecisionEntry struct {
	Position uint64    `json:"position"`
	Time     time.Time `json:"time"`
	Type     string    `json:"type"`
	Actor    string    `json:"actor"`
	// Rule is the policy rule behind the decision (empty for a lost connection).
	Rule domain.Rule `json:"rule,omitempty"`
	// Evict is the eviction reason of an evicted (or replaced) connection.
	Evict  domain.EvictReason     `json:"evict,omitempty"`
	Count  int                    `json:"count,omitempty"`
	Inputs *domain.DecisionInputs `json:"inputs,omitempty"`
	// After is set for decisions made after the explanation's time.
	After   bool   `json:"after,omitempty"`
	Summary string `json:"summary"`
}

// NormalizeOwner maps "", "_" and "app" to the shared repository ("") and checks any other
// owner id. Returns an error wrapping ErrInvalidArgument for a bad id.
func NormalizeOwner(owner string) (string, error) {
	if domain.IsSharedOwner(owner) {
		return "", nil
	}
	if err := domain.ValidateOwner(owner); err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	return owner, nil
}

// Explain reconstructs, from st alone, the effective config of (owner, server) at time
// at (zero: now), where it came from, its history and the connection decisions around
// then. owner "" (or "_") is the shared repository. Returns an error wrapping
// ErrInvalidArgument for a bad owner or server name, and the store's error when
// reading fails. A server that never existed is not an error: Found is false and the
// verdict names rule no_config.
func Explain(ctx context.Context, st store.Store, owner, server string, at time.Time) (Explanation, error) {
	owner, err := NormalizeOwner(owner)
	if err != nil {
		return Explanation{}, err
	}
	if err := domain.ValidateServerName(server); err != nil {
		return Explanation{}, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	if at.IsZero() {
		at = time.Now()
	}
	at = at.UTC()
	pos, err := st.PositionAt(ctx, at)
	if err != nil {
		return Explanation{}, fmt.Errorf("explain: position at %s: %w", at.Format(time.RFC3339Nano), err)
	}
	ex := Explanation{Owner: owner, Server: server, At: at, Position: pos,
		History: []HistoryEntry{}, Decisions: []DecisionEntry{}}

	// The same fold the connection repositories read, rebuilt to that position from
	// the nearest as-of snapshot.
	servers, from, err := projections.AsOfSnapshot(ctx, st, pos, slog.Default())
	if err != nil {
		return Explanation{}, fmt.Errorf("explain: %w", err)
	}
	ex.Snapshot = from
	appEvents, appEarlier, err := streamWindow(ctx, st, domain.ServerStream(domain.AppScope, server), pos, HistoryMax, 0)
	if err != nil {
		return Explanation{}, fmt.Errorf("explain: %w", err)
	}
	var private domain.ServerState
	var privEvents []events.Envelope
	privEarlier := 0
	if owner != "" {
		private, _ = servers.State(domain.UserScope(owner), server)
		privEvents, privEarlier, err = streamWindow(ctx, st, domain.ServerStream(domain.UserScope(owner), server), pos, HistoryMax, 0)
		if err != nil {
			return Explanation{}, fmt.Errorf("explain: %w", err)
		}
	}
	eff, view, _ := servers.Effective(owner, server)
	ex.View = view
	ex.MayConnect, ex.Rule = domain.MayConnect(owner, view)
	if view.Found {
		cfg := domain.RedactSecrets(eff.Config)
		ex.Found, ex.Scope, ex.Config = true, eff.Scope, &cfg
		ex.Version, ex.UpdatedAt = eff.Version, eff.UpdatedAt
		ex.Inspected, ex.InspectionFailed, ex.RequiresOAuth = eff.Inspected, eff.InspectionFailed, eff.RequiresOAuth()
		ex.FailureClass = eff.FailureClass
		ex.FailureMessage = domain.FailureMessageFor(owner, eff.Scope, eff.FailureClass, eff.FailureMessage)
		if view.Shadowed {
			ex.Shadowed, ex.PrivateVersion = true, private.Version
		}
	}
	if owner != "" && ex.RequiresOAuth {
		if ex.Grant, err = grantAt(ctx, st, owner, server, pos, at); err != nil {
			return Explanation{}, fmt.Errorf("explain: %w", err)
		}
		if ex.MayConnect && !ex.Grant.Held {
			ex.MayConnect, ex.Rule = false, domain.RuleNoGrant
		}
	}
	ex.Verdict = verdict(ex)
	merged := mergeByPosition(appEvents, privEvents)
	cut := max(len(merged)-HistoryMax, 0)
	ex.History = history(owner, merged[cut:])
	ex.EarlierHistory = appEarlier + privEarlier + cut

	decisions, earlier, err := decisionsAround(ctx, st, domain.ConnStream(owner, server), pos)
	if err != nil {
		return Explanation{}, fmt.Errorf("explain: %w", err)
	}
	ex.Decisions, ex.EarlierDecisions = decisions, earlier
	return ex, nil
}

func mergeByPosition(a, b []events.Envelope) []events.Envelope {
	out := make([]events.Envelope, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		if j >= len(b) || (i < len(a) && a[i].Sequence < b[j].Sequence) {
			out = append(out, a[i])
			i++
		} else {
			out = append(out, b[j])
			j++
		}
	}
	return out
}

func history(owner string, evs []events.Envelope) []HistoryEntry {
	out := make([]HistoryEntry, 0, len(evs))
	for _, e := range evs {
		h := HistoryEntry{Position: uint64(e.Sequence), Time: e.Time, Type: e.Type, Actor: e.Actor, Reason: e.Reason}
		fact, err := events.Decode(e)
		if err != nil {
			h.Summary = fmt.Sprintf("unreadable event (%v)", err)
			out = append(out, h)
			continue
		}
		h.Scope, h.Summary = serverSummary(owner, fact)
		if c, ok := fact.(domain.ServerConfigChanged); ok {
			h.Changed = c.Changed
		}
		out = append(out, h)
	}
	return out
}

func serverSummary(owner string, fact any) (domain.Scope, string) {
	switch f := fact.(type) {
	case domain.ServerRegistered:
		return f.Scope, fmt.Sprintf("registered (%s)", transportWords(f.Config))
	case domain.ServerConfigChanged:
		return f.Scope, "config changed: " + strings.Join(f.Changed, ", ")
	case domain.ServerRemoved:
		return f.Scope, "removed"
	case domain.ServerInspected:
		s := fmt.Sprintf("inspected: %d tools, digest %.12s", len(f.Tools), f.Digest)
		if f.Recovered {
			s += "; recovered from a failed state (config version moved on)"
		}
		return f.Scope, s
	case domain.ServerInspectionFailed:
		msg := domain.FailureMessageFor(owner, f.Scope, f.Class, f.Message)
		if f.RequiresOAuth {
			return f.Scope, "inspection found that the server requires OAuth: " + msg
		}
		return f.Scope, fmt.Sprintf("inspection failed (%s): %s", f.Class, msg)
	case domain.ServerToolsChanged:
		return f.Scope, fmt.Sprintf("tools changed: added %v, removed %v, changed %v", f.Added, f.Removed, f.Changed)
	case domain.ServerReinspectionRequested:
		return f.Scope, "reinspection requested"
	}
	return "", fmt.Sprintf("%T", fact)
}

func transportWords(c domain.ServerConfig) string {
	t := c.TransportType()
	if c.URL != "" {
		return t + " " + c.URL
	}
	if c.Command != "" {
		return t + " " + c.Command
	}
	return t
}

// decisionsAround reads the connection stream: the last DecisionsBefore events with
// position <= pos and the first DecisionsAfter after it, and how many earlier ones
// it left out.
func decisionsAround(ctx context.Context, st store.Store, stream string, pos uint64) ([]DecisionEntry, int, error) {
	page, earlier, err := streamWindow(ctx, st, stream, pos, DecisionsBefore, DecisionsAfter)
	if err != nil {
		return nil, 0, err
	}
	out := make([]DecisionEntry, 0, len(page))
	for _, e := range page {
		d := decision(e)
		d.After = uint64(e.Sequence) > pos
		out = append(out, d)
	}
	return out, earlier, nil
}

// streamWindow returns the last `before` events of stream with position <= pos and
// the first `after` ones after it, and how many earlier ones it left out. It finds
// the stream version in force at pos by bisection through the stream index, so it
// reads O(log n) events of a long stream plus the ones it returns.
func streamWindow(ctx context.Context, st store.Store, stream string, pos uint64, before, after int) ([]events.Envelope, int, error) {
	last, err := st.StreamVersion(ctx, stream)
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", stream, err)
	}
	// lo: the greatest version known to be at or before pos; hi: the least known after.
	lo, hi := uint64(0), last+1
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		page, err := st.ReadStream(ctx, stream, mid, 1)
		if err != nil {
			return nil, 0, fmt.Errorf("read %s: %w", stream, err)
		}
		if len(page) == 0 || uint64(page[0].Sequence) > pos {
			hi = mid
		} else {
			lo = mid
		}
	}
	from := max(lo, uint64(before)) - uint64(before) + 1
	n := int(lo-from+1) + after
	if n == 0 {
		return nil, int(from - 1), nil
	}
	page, err := st.ReadStream(ctx, stream, from, n)
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", stream, err)
	}
	return page, int(from - 1), nil
}

func decision(e events.Envelope) DecisionEntry {
	d := DecisionEntry{Position: uint64(e.Sequence), Time: e.Time, Type: e.Type, Actor: e.Actor}
	fact, err := events.Decode(e)
	if err != nil {
		d.Summary = fmt.Sprintf("unreadable event (%v)", err)
		return d
	}
	switch f := fact.(type) {
	case domain.ConnectionOpened:
		in := f.Inputs
		d.Inputs, d.Rule, d.Evict = &in, domain.RuleAllowed, f.Replaced
		d.Summary = fmt.Sprintf("connected to config version %d (%s)", in.Config.Version, ruleWords(domain.RuleAllowed))
		if f.Replaced != "" {
			d.Summary += fmt.Sprintf(", replacing a %s connection", f.Replaced)
		}
	case domain.ConnectionOpenFailed:
		in := f.Inputs
		d.Inputs, d.Rule = &in, domain.RuleAllowed
		d.Summary = fmt.Sprintf("allowed, but the connect attempt %d failed (%s): %s", f.Attempt, f.Class, f.Message)
	case domain.ConnectionRefused:
		in := f.Inputs
		d.Inputs, d.Rule, d.Count = &in, f.Rule, f.Count
		d.Summary = "refused: " + ruleWords(f.Rule)
		if f.Count > 1 {
			d.Summary += fmt.Sprintf(" (%d identical refusals)", f.Count)
		}
	case domain.ConnectionEvicted:
		in := f.Inputs
		d.Inputs, d.Rule, d.Evict = &in, f.Rule, f.Reason
		d.Summary = "evicted: " + evictWords(f.Reason)
		if f.Reason == domain.EvictStale && in.ExistingVersion == in.Config.Version && in.OAuth.Existing != in.OAuth.Grant {
			d.Summary = "evicted: stale, the connection was built with an earlier OAuth grant of the owner"
		}
		if f.Rule != "" && f.Rule != domain.RuleAllowed {
			d.Summary += " (" + ruleWords(f.Rule) + ")"
		}
	case domain.ConnectionLost:
		d.Summary = "connection lost: " + f.Error
	case domain.ToolCalled:
		d.Summary = fmt.Sprintf("tool %s called: %s", f.Tool, f.Outcome)
	default:
		d.Summary = e.Type
		if s, ok := oauthSummary(fact); ok {
			d.Summary = s
		}
	}
	return d
}
