package connections

import (
	"context"
	"fmt"
	"strings"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/store"
)

// ReplayReport is the outcome of ReplayDecisions.
type ReplayReport struct {
	// Events is the number of log events read; Decisions the connection events checked.
	Events     uint64     `json:"events"`
	Decisions  uint64     `json:"decisions"`
	Mismatches []Mismatch `json:"mismatches"`
}

// Mismatch is one recorded decision that replay does not reproduce.
type Mismatch struct {
	// Position is the log position of the decision event.
	Position uint64 `json:"position"`
	Type     string `json:"type"`
	// Recorded and Replayed say what the log holds and what replay computed.
	Recorded string                `json:"recorded"`
	Replayed string                `json:"replayed"`
	Inputs   domain.DecisionInputs `json:"inputs"`
}

func (m Mismatch) String() string {
	return fmt.Sprintf("position %d (%s, owner %q, server %q): recorded %s, replayed %s",
		m.Position, m.Type, m.Inputs.Owner, m.Inputs.Server, m.Recorded, m.Replayed)
}

const replayPage = 1024

// ReplayDecisions re-runs every connection decision recorded up to position upTo (0 =
// the head) against the log: for opened, open_failed, refused and policy evictions
// (stale, dead, disallowed, removed) it rebuilds the server-config projection to the
// position the decision read, compares the config view it recorded with the one the
// projection gives there, and re-runs domain.DecideGet / DecideHas on the recorded
// inputs; for idle, explicit and shutdown evictions and for losses (facts, not policy)
// it checks that the connection existed. The log is read twice: once to learn which
// (position, owner, server) views are needed, once to fold the projection through
// them. progress, when not nil, is called now and then with the events read so far
// and the total, both counting the two passes (the total is twice upTo).
// Returns the store's read error or an error for an undecodable event; mismatches are
// in the report, not errors.
func ReplayDecisions(ctx context.Context, st store.Store, upTo uint64, progress func(done, total uint64)) (ReplayReport, error) {
	var rep ReplayReport
	head, _, err := st.Head(ctx)
	if err != nil {
		return rep, fmt.Errorf("replay decisions: %w", err)
	}
	if upTo == 0 || upTo > head {
		upTo = head
	}
	report := func(done uint64) {
		if progress != nil {
			progress(done, 2*upTo)
		}
	}

	// Pass 1: which views are needed, at which positions.
	need := map[uint64][]viewKey{}
	err = eachEvent(ctx, st, upTo, func(e events.Envelope) error {
		if e.Sequence%replayPage == 0 {
			report(uint64(e.Sequence))
		}
		if events.Area(e.Type) != "connection" {
			return nil
		}
		fact, err := events.Decode(e)
		if err != nil {
			return err
		}
		if in, ok := inputsOf(fact); ok {
			need[in.Position] = append(need[in.Position], viewKey{in.Position, in.Owner, in.Server})
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("replay decisions: %w", err)
	}

	// Pass 2: fold the projection event by event; take the needed views when it
	// reaches their position, and check each decision when it comes.
	proj := projections.NewServers()
	views := map[viewKey]domain.ConfigView{}
	take := func(pos uint64) {
		for _, k := range need[pos] {
			_, v, _ := proj.Effective(k.owner, k.server)
			views[k] = v
		}
		delete(need, pos)
	}
	take(0)
	chk := checker{conns: map[string]connTrack{}, grants: map[string]bool{}, rep: &rep}
	err = eachEvent(ctx, st, upTo, func(e events.Envelope) error {
		pos := uint64(e.Sequence)
		rep.Events++
		if pos%replayPage == 0 {
			report(upTo + pos)
		}
		if events.Area(e.Type) == "connection" {
			fact, err := events.Decode(e)
			if err != nil {
				return err
			}
			chk.check(pos, e.Type, fact, views)
		}
		if e.Type == events.TypeOAuthCompleted {
			fact, err := events.Decode(e)
			if err != nil {
				return err
			}
			f := fact.(domain.OAuthCompleted)
			chk.grants[f.Owner+"\x00"+f.Server+"\x00"+f.GrantID] = true
		}
		proj.Apply([]events.Envelope{e})
		take(pos)
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("replay decisions: %w", err)
	}
	report(2 * upTo)
	return rep, nil
}

type viewKey struct {
	pos           uint64
	owner, server string
}

// eachEvent calls fn for every event from position 1 to upTo, in order.
func eachEvent(ctx context.Context, st store.Store, upTo uint64, fn func(events.Envelope) error) error {
	for from := uint64(1); from <= upTo; {
		page, err := st.ReadAll(ctx, from, replayPage)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		for _, e := range page {
			if uint64(e.Sequence) > upTo {
				return nil
			}
			if err := fn(e); err != nil {
				return fmt.Errorf("position %d: %w", e.Sequence, err)
			}
		}
		from = uint64(page[len(page)-1].Sequence) + 1
	}
	return nil
}

func inputsOf(fact any) (domain.DecisionInputs, bool) {
	switch f := fact.(type) {
	case domain.ConnectionOpened:
		return f.Inputs, true
	case domain.ConnectionOpenFailed:
		return f.Inputs, true
	case domain.ConnectionRefused:
		return f.Inputs, true
	case domain.ConnectionEvicted:
		return f.Inputs, true
	}
	return domain.DecisionInputs{}, false
}

type connTrack struct {
	owner, server string
	version       uint64
	dead          bool
}

// checker holds what replay knows about open connections and collects mismatches.
type checker struct {
	conns map[string]connTrack
	// grants holds owner\x00server\x00grantID of every grant completed so far.
	grants map[string]bool
	rep    *ReplayReport
}

func (c *checker) miss(pos uint64, typ string, in domain.DecisionInputs, recorded, replayed string) {
	c.rep.Mismatches = append(c.rep.Mismatches, Mismatch{Position: pos, Type: typ, Recorded: recorded,
		Replayed: replayed, Inputs: in})
}

func (c *checker) check(pos uint64, typ string, fact any, views map[viewKey]domain.ConfigView) {
	c.rep.Decisions++
	if lost, ok := fact.(domain.ConnectionLost); ok {
		in := domain.DecisionInputs{Owner: lost.Owner, Server: lost.Server}
		if !c.existed(pos, typ, in, lost.ConnID, lost.ConfigVersion) {
			return
		}
		t := c.conns[lost.ConnID]
		t.dead = true
		c.conns[lost.ConnID] = t
		return
	}
	in, ok := inputsOf(fact)
	if !ok {
		return // tool.called and other audit facts are not decisions
	}
	k := viewKey{in.Position, in.Owner, in.Server}
	if in.Position >= pos {
		c.miss(pos, typ, in, fmt.Sprintf("read position %d", in.Position), "a position before the decision")
		return
	}
	if v, ok := views[k]; !ok || v != in.Config {
		c.miss(pos, typ, in, "config "+viewString(in.Config), "config "+viewString(v))
	}
	// A decision that names a grant must come after that grant was issued to that
	// owner for that server: no decision can cite a grant the log does not hold.
	if g := in.OAuth.Grant; g != "" && !c.grants[in.Owner+"\x00"+in.Server+"\x00"+g] {
		c.miss(pos, typ, in, "grant "+g, "no such grant of this owner for this server before the decision")
	}
	switch f := fact.(type) {
	case domain.ConnectionOpened:
		d := domain.DecideGet(in)
		if d.Action != domain.ActionConnect || d.Evict != f.Replaced {
			c.miss(pos, typ, in, decisionString(domain.Decision{Action: domain.ActionConnect, Rule: domain.RuleAllowed, Evict: f.Replaced}), decisionString(d))
		}
		c.conns[f.ConnID] = connTrack{owner: in.Owner, server: in.Server, version: in.Config.Version}
	case domain.ConnectionOpenFailed:
		if d := domain.DecideGet(in); d.Action != domain.ActionConnect {
			c.miss(pos, typ, in, "connect", decisionString(d))
		}
	case domain.ConnectionRefused:
		if d := domain.DecideGet(in); d.Action != domain.ActionRefuse || d.Rule != f.Rule {
			c.miss(pos, typ, in, decisionString(domain.Decision{Action: domain.ActionRefuse, Rule: f.Rule}), decisionString(d))
		}
	case domain.ConnectionEvicted:
		if !c.existed(pos, typ, in, f.ConnID, in.ExistingVersion) {
			return
		}
		delete(c.conns, f.ConnID)
		var d domain.Decision
		switch f.Reason {
		case domain.EvictStale, domain.EvictDead:
			d = domain.DecideGet(in)
		case domain.EvictDisallowed, domain.EvictRemoved:
			d = domain.DecideHas(in)
		default:
			return // idle, explicit, shutdown: facts, checked for existence only
		}
		if d.Evict != f.Reason || (f.Rule != "" && d.Rule != f.Rule) {
			c.miss(pos, typ, in, "evict "+string(f.Reason)+" (rule "+string(f.Rule)+")", decisionString(d))
		}
	}
}

// existed checks that connID is an open connection of (owner, server) built from
// version.
func (c *checker) existed(pos uint64, typ string, in domain.DecisionInputs, connID string, version uint64) bool {
	t, ok := c.conns[connID]
	switch {
	case !ok:
		c.miss(pos, typ, in, "connection "+connID, "no open connection "+connID)
		return false
	case t.owner != in.Owner || t.server != in.Server:
		c.miss(pos, typ, in, fmt.Sprintf("connection %s of %q/%q", connID, in.Owner, in.Server),
			fmt.Sprintf("connection of %q/%q", t.owner, t.server))
		return false
	case t.version != version:
		c.miss(pos, typ, in, fmt.Sprintf("existing version %d", version), fmt.Sprintf("existing version %d", t.version))
	}
	return true
}

func decisionString(d domain.Decision) string {
	var b strings.Builder
	b.WriteString(string(d.Action))
	if d.Rule != "" {
		b.WriteString(" (rule " + string(d.Rule) + ")")
	}
	if d.Evict != "" {
		b.WriteString(" evicting " + string(d.Evict))
	}
	return b.String()
}

func viewString(v domain.ConfigView) string {
	if !v.Found {
		return "{not found}"
	}
	return fmt.Sprintf("{scope %s, version %d, inspectionFailed %t, startup %t, requiresOAuth %t, customUserVars %t, shadowed %t}",
		v.Scope, v.Version, v.InspectionFailed, v.Startup, v.RequiresOAuth, v.CustomUserVars, v.Shadowed)
}
