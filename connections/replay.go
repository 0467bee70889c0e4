package connections

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// ReplayReport is the outcome of ReplayDecisions.
type ReplayReport struct {
	// Events is the number of log events read; Decisions the connection events checked.
	Events     uint64     `json:"events"`
	Decisions  uint64     `json:"decisions"`
	Mismatches []Mismatch `json:"mismatches"`
	// More counts the mismatches beyond MaxMismatches, not listed.
	More uint64 `json:"more,omitempty"`
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

// MaxMismatches bounds ReplayReport.Mismatches; later ones are only counted.
const MaxMismatches = 1000

// ReplayDecisions re-runs every connection decision recorded up to position upTo (0 =
// the head) against the log: for opened, open_failed, refused and policy evictions
// (stale, dead, disallowed, removed) it compares the config view the decision
// recorded with the one the server-config projection gives at the position it read,
// checks the existing connection it saw, and re-runs domain.DecideGet / DecideHas on
// the recorded inputs; for idle, explicit and shutdown evictions and for losses
// (facts, not policy) it checks that the connection existed.
//
// The log is read once, in order, through a Replayer (which decodes only the events
// replay needs, and compares each view as of the position it read from a projection
// trailing the reading); only a decision that read further back than its window is
// compared in a second pass. Memory does not grow with the log. progress, when not
// nil, is called now and then with the events read so far and the total.
// Returns the store's read error or an error for an undecodable event; mismatches are
// in the report (at most MaxMismatches, the rest counted), not errors.
func ReplayDecisions(ctx context.Context, st store.Store, upTo uint64, progress func(done, total uint64)) (ReplayReport, error) {
	head, _, err := st.Head(ctx)
	if err != nil {
		return ReplayReport{}, fmt.Errorf("replay decisions: %w", err)
	}
	if upTo == 0 || upTo > head {
		upTo = head
	}
	r := NewReplayer(upTo, progress)
	if err := eachRecord(ctx, st, upTo, r.Record); err != nil {
		r.Close()
		return r.rep, fmt.Errorf("replay decisions: %w", err)
	}
	return r.Finish(ctx, st)
}

// laterView is a decision whose config view is compared in the second pass.
type laterView struct {
	pos uint64
	typ string
	in  domain.DecisionInputs
}

// compareLater folds the projection again up to the last position the later
// decisions read and compares each one's view there.
func compareLater(ctx context.Context, st store.Store, later []laterView, chk *checker) error {
	slices.SortStableFunc(later, func(a, b laterView) int { return cmp.Compare(a.in.Position, b.in.Position) })
	r := NewReplayer(later[len(later)-1].in.Position, nil)
	i := 0
	take := func(upTo uint64) {
		for ; i < len(later) && later[i].in.Position <= upTo; i++ {
			l := later[i]
			if _, v, _ := r.proj.Effective(l.in.Owner, l.in.Server); v != l.in.Config {
				chk.miss(l.pos, l.typ, l.in, "config "+viewString(l.in.Config), "config "+viewString(v))
			}
		}
	}
	take(0)
	var ferr error
	err := eachRecord(ctx, st, r.upTo, func(pos uint64, canonical []byte) {
		if ferr != nil {
			return
		}
		p, ok, err := prepare(pos, canonical, false)
		if err != nil {
			ferr = fmt.Errorf("position %d: %w", pos, err)
			return
		}
		if ok {
			r.queue = append(r.queue, p.e)
		}
		r.foldTo(pos)
		take(pos)
	})
	if err == nil {
		err = ferr
	}
	return err
}

// errStop ends a read early.
var errStop = errors.New("stop")

// eachRecord calls fn with the canonical bytes of every record from position 1 to
// upTo, in order.
func eachRecord(ctx context.Context, st store.Store, upTo uint64, fn func(pos uint64, canonical []byte)) error {
	err := st.ReadRecords(ctx, 1, func(pos uint64, rec []byte) error {
		if pos > upTo {
			return errStop
		}
		_, canon, err := events.SplitRecord(rec)
		if err != nil {
			return fmt.Errorf("position %d: %w", pos, err)
		}
		fn(pos, canon)
		return nil
	})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
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
	// open is the connection id open per stream; replaced the connection a policy
	// eviction just removed, which the Get decision that caused it (recorded next,
	// with the same inputs) saw as existing. A Has eviction has no such decision.
	open     map[string]string
	replaced map[string]evicted
	rep      *ReplayReport
}

func newChecker(rep *ReplayReport) *checker {
	return &checker{conns: map[string]connTrack{}, open: map[string]string{},
		replaced: map[string]evicted{}, grants: map[string]bool{}, rep: rep}
}

func (c *checker) miss(pos uint64, typ string, in domain.DecisionInputs, recorded, replayed string) {
	if len(c.rep.Mismatches) >= MaxMismatches {
		c.rep.More++
		return
	}
	c.rep.Mismatches = append(c.rep.Mismatches, Mismatch{Position: pos, Type: typ, Recorded: recorded,
		Replayed: replayed, Inputs: in})
}

// check compares one connection event with what replay derives: the stream it is
// on, the envelope's reason, the position and config view it read, the existing
// connection it saw, and the verdict and rule the pure policy gives on those inputs.
func (c *checker) check(e events.Envelope, fact any, view func(pos uint64, typ string, in domain.DecisionInputs) (domain.ConfigView, bool)) {
	pos, typ := uint64(e.Sequence), e.Type
	c.rep.Decisions++
	if lost, ok := fact.(domain.ConnectionLost); ok {
		in := domain.DecisionInputs{Owner: lost.Owner, Server: lost.Server}
		if !c.onStream(e, in) || !c.reason(e, in, lost.Reason) {
			return
		}
		if !c.existed(pos, typ, in, lost.ConnID, lost.ConfigVersion) {
			return
		}
		if lost.Reason == domain.LostRestart {
			// A restart found it open in the log: the new process has no connection.
			delete(c.conns, lost.ConnID)
			if c.open[e.Subject] == lost.ConnID {
				delete(c.open, e.Subject)
			}
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
	if !c.onStream(e, in) {
		return
	}
	if in.Position >= pos {
		c.miss(pos, typ, in, fmt.Sprintf("read position %d", in.Position), "a position before the decision")
		return
	}
	if v, ok := view(pos, typ, in); ok && v != in.Config {
		c.miss(pos, typ, in, "config "+viewString(in.Config), "config "+viewString(v))
	}
	// A decision that names a grant must come after that grant was issued to that
	// owner for that server: no decision can cite a grant the log does not hold.
	if g := in.OAuth.Grant; g != "" && !c.grants[in.Owner+"\x00"+in.Server+"\x00"+g] {
		c.miss(pos, typ, in, "grant "+g, "no such grant of this owner for this server before the decision")
	}
	switch f := fact.(type) {
	case domain.ConnectionOpened:
		c.reason(e, in, string(f.Replaced))
		c.sawExisting(e, in)
		d := domain.DecideGet(in)
		if d.Action != domain.ActionConnect || d.Evict != f.Replaced {
			c.miss(pos, typ, in, decisionString(domain.Decision{Action: domain.ActionConnect, Rule: domain.RuleAllowed, Evict: f.Replaced}), decisionString(d))
		}
		if _, dup := c.conns[f.ConnID]; dup || f.ConnID == "" {
			c.miss(pos, typ, in, "new connection "+f.ConnID, "a connection id not open already")
		}
		c.conns[f.ConnID] = connTrack{owner: in.Owner, server: in.Server, version: in.Config.Version}
		c.open[e.Subject] = f.ConnID
	case domain.ConnectionOpenFailed:
		c.reason(e, in, string(f.Class))
		c.sawExisting(e, in)
		if d := domain.DecideGet(in); d.Action != domain.ActionConnect {
			c.miss(pos, typ, in, "connect", decisionString(d))
		}
	case domain.ConnectionRefused:
		c.reason(e, in, string(f.Rule))
		c.sawExisting(e, in)
		if f.Count < 1 {
			c.miss(pos, typ, in, fmt.Sprintf("count %d", f.Count), "count of at least 1")
		}
		if d := domain.DecideGet(in); d.Action != domain.ActionRefuse || d.Rule != f.Rule {
			c.miss(pos, typ, in, decisionString(domain.Decision{Action: domain.ActionRefuse, Rule: f.Rule}), decisionString(d))
		}
	case domain.ConnectionEvicted:
		c.reason(e, in, string(f.Reason))
		if !c.existed(pos, typ, in, f.ConnID, in.ExistingVersion) {
			return
		}
		t := c.conns[f.ConnID]
		delete(c.conns, f.ConnID)
		delete(c.open, e.Subject)
		var d domain.Decision
		switch f.Reason {
		case domain.EvictStale, domain.EvictDead:
			d = domain.DecideGet(in)
		case domain.EvictDisallowed, domain.EvictRemoved:
			d = domain.DecideHas(in)
		default:
			if f.Rule != "" {
				c.miss(pos, typ, in, "evict "+string(f.Reason)+" (rule "+string(f.Rule)+")", "no rule for a "+string(f.Reason)+" eviction")
			}
			return // idle, explicit, shutdown: facts, checked for existence only
		}
		// The decision behind a policy eviction saw this connection; so does the
		// connect or refusal that follows it on the stream.
		if want := stateOf(t); in.ExistingState != want {
			c.miss(pos, typ, in, "existing "+string(in.ExistingState), "existing "+string(want))
		}
		c.replaced[e.Subject] = evicted{t, in.Position}
		if d.Evict != f.Reason || d.Rule != f.Rule {
			c.miss(pos, typ, in, "evict "+string(f.Reason)+" (rule "+string(f.Rule)+")", decisionString(d))
		}
	}
}

// onStream checks that the decision's owner and server are those of its stream.
func (c *checker) onStream(e events.Envelope, in domain.DecisionInputs) bool {
	if want := domain.ConnStream(in.Owner, in.Server); e.Subject != want {
		c.miss(uint64(e.Sequence), e.Type, in, "on stream "+e.Subject, "on stream "+want)
		return false
	}
	return true
}

// reason checks the envelope's reason extension against the fact's own reason.
func (c *checker) reason(e events.Envelope, in domain.DecisionInputs, want string) bool {
	if e.Reason != want {
		c.miss(uint64(e.Sequence), e.Type, in, fmt.Sprintf("reason %q", e.Reason), fmt.Sprintf("reason %q", want))
		return false
	}
	return true
}

// sawExisting checks the existing connection a connect or refusal decision recorded
// against the one open on its stream, or the one a policy eviction just removed.
func (c *checker) sawExisting(e events.Envelope, in domain.DecisionInputs) {
	var (
		state   = domain.ConnNone
		version uint64
	)
	r, replaced := c.replaced[e.Subject]
	delete(c.replaced, e.Subject)
	if replaced && r.read == in.Position {
		state, version = stateOf(r.conn), r.conn.version
	} else if id, ok := c.open[e.Subject]; ok {
		t := c.conns[id]
		state, version = stateOf(t), t.version
	}
	got := in.ExistingState
	if got == "" {
		got = domain.ConnNone
	}
	if got != state || in.ExistingVersion != version {
		c.miss(uint64(e.Sequence), e.Type, in, fmt.Sprintf("existing %s at version %d", got, in.ExistingVersion),
			fmt.Sprintf("existing %s at version %d", state, version))
	}
}

// evicted is a connection a policy eviction removed, and the position its decision read.
type evicted struct {
	conn connTrack
	read uint64
}

func stateOf(t connTrack) domain.ConnState {
	if t.dead {
		return domain.ConnDead
	}
	return domain.ConnAlive
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
