package connections

import (
	"context"
	"fmt"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// record (e.mu held) appends one decision event to conn/<owner>/<server>. Pending
// coalesced refusals of the entry are flushed first, so the stream keeps the order in
// which the decisions were made. reason goes into the envelope's reason extension.
func (r *Repository) record(ctx context.Context, e *entry, o origin, fact any, reason string) error {
	if _, ok := fact.(domain.ConnectionRefused); !ok {
		r.flushRefusals(ctx, e, false)
	}
	return r.append(ctx, e, o, fact, reason)
}

func (r *Repository) append(ctx context.Context, e *entry, o origin, fact any, reason string) error {
	opts := &r.m.opts
	env, err := events.New(fact, events.Meta{ID: opts.NewID(), Source: opts.Source, Time: opts.Clock(),
		Actor: o.actor, Reason: reason, CorrelationID: o.correlation})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrRecord, err)
	}
	// A decision is recorded even when the caller who caused it goes away.
	if _, err := r.m.st.Append(context.WithoutCancel(ctx), domain.ConnStream(r.owner, e.name), store.AnyVersion, env); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrRecord, env.Type, err)
	}
	r.m.count(kindOf(fact))
	return nil
}

func kindOf(fact any) string {
	switch f := fact.(type) {
	case domain.ConnectionOpened:
		return "opened"
	case domain.ConnectionOpenFailed:
		return "open_failed"
	case domain.ConnectionRefused:
		return "refused/" + string(f.Rule)
	case domain.ConnectionEvicted:
		return "evicted/" + string(f.Reason)
	case domain.ConnectionLost:
		return "lost"
	}
	return fmt.Sprintf("%T", fact)
}

// refusals coalesces identical refusals of one entry: the first is appended at once
// and opens a window; identical ones inside the window are only counted and appended
// as one event with that count when the window closes (the window then stays open
// while repeats keep coming) or before any other decision of the entry. Refusals are
// identical when rule, actor and inputs are, the inputs differing at most in the log
// position read (the projection's position moves with every event, the config view
// and the rule do not); the correlation id is kept only when every repeat shares it.
type refusals struct {
	open    bool
	in      domain.DecisionInputs // the latest repeat's inputs
	rule    domain.Rule
	origin  origin
	pending int
	gen     uint64
	timer   *time.Timer
}

func sameRefusal(a, b domain.DecisionInputs) bool {
	a.Position, b.Position = 0, 0
	return a == b
}

// refuse (e.mu held) records a refusal, coalesced.
func (r *Repository) refuse(ctx context.Context, e *entry, in domain.DecisionInputs, rule domain.Rule) error {
	rf := &e.ref
	o := originOf(ctx)
	if rf.open && rf.rule == rule && rf.origin.actor == o.actor && sameRefusal(rf.in, in) {
		if rf.pending == 0 {
			rf.origin.correlation = o.correlation
		} else if rf.origin.correlation != o.correlation {
			rf.origin.correlation = "" // the repeats came from several requests
		}
		rf.pending++
		rf.in = in
		return nil
	}
	r.flushRefusals(ctx, e, false)
	if err := r.append(ctx, e, o, domain.ConnectionRefused{Inputs: in, Rule: rule, Count: 1}, string(rule)); err != nil {
		return err
	}
	if r.m.closed.Load() {
		return nil // no window outlives the manager
	}
	rf.gen++
	*rf = refusals{open: true, in: in, rule: rule, origin: o, gen: rf.gen}
	gen := rf.gen
	rf.timer = time.AfterFunc(r.m.opts.RefusalWindow, func() { r.windowClosed(e, gen) })
	return nil
}

// windowClosed flushes the repeats of a refusal window; while repeats keep coming the
// window is renewed, so a tight loop writes one event per window.
func (r *Repository) windowClosed(e *entry, gen uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	rf := &e.ref
	if !rf.open || rf.gen != gen {
		return
	}
	if rf.pending == 0 {
		rf.open = false
		return
	}
	r.flushRefusals(context.Background(), e, true)
}

// flushRefusals (e.mu held) appends the counted repeats as one event. With keepOpen
// the window is renewed; otherwise it ends.
func (r *Repository) flushRefusals(ctx context.Context, e *entry, keepOpen bool) {
	rf := &e.ref
	if !rf.open {
		return
	}
	if rf.pending > 0 {
		fact := domain.ConnectionRefused{Inputs: rf.in, Rule: rf.rule, Count: rf.pending}
		if err := r.append(ctx, e, rf.origin, fact, string(rf.rule)); err != nil {
			r.m.opts.Logger.Error("record coalesced refusals", "owner", r.owner, "server", e.name,
				"count", rf.pending, "err", err)
		}
		rf.pending = 0
	}
	if keepOpen && !r.m.closed.Load() {
		gen := rf.gen
		rf.timer = time.AfterFunc(r.m.opts.RefusalWindow, func() { r.windowClosed(e, gen) })
		return
	}
	if rf.timer != nil {
		rf.timer.Stop()
	}
	rf.open = false
	rf.gen++
}

// flushAll flushes every entry's pending refusals (Close).
func (r *Repository) flushAll(ctx context.Context) {
	r.flushUnknown(ctx)
	for _, e := range r.snapshot() {
		e.mu.Lock()
		r.flushRefusals(ctx, e, false)
		e.mu.Unlock()
	}
}
