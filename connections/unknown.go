package connections

import (
	"context"
	"sync"
	"time"

	"github.com/mcpes/mcpes/domain"
)

// unknownRefusals coalesces, per owner, the refusals of names that are not in the
// owner's view at all (rule no_config, nothing open to evict). Identical refusals are
// coalesced per entry already; these differ in the name, so without this a caller
// asking for 5,000 made-up names would write 5,000 events and keep 5,000 entries. The
// first refusal of a window is appended at once; the rest, whatever their names, are
// counted and appended as one event (on the stream of the latest name, with its
// inputs, Count the repeats and Servers the distinct names among them) when the
// window closes, or before any other decision of this repository.
type unknownRefusals struct {
	mu      sync.Mutex
	open    bool
	in      domain.DecisionInputs // the latest repeat's inputs
	origin  origin
	pending int
	names   map[string]struct{} // distinct names among the repeats, at most maxUnknownNames
	more    bool                // more distinct names than names holds
	gen     uint64
	timer   *time.Timer
}

// maxUnknownNames bounds the distinct names a window remembers; beyond it the event
// says "at least" by counting only what it holds, and memory stays bounded.
const maxUnknownNames = 1024

// isUnknown reports whether name is in the owner's view of nothing and has no entry
// here (so nothing is open, connecting or breaking for it).
func (r *Repository) isUnknown(name string) (domain.DecisionInputs, bool) {
	if r.lookup(name) != nil {
		return domain.DecisionInputs{}, false
	}
	_, view, pos := r.m.servers.Effective(r.owner, name)
	if view.Found {
		return domain.DecisionInputs{}, false
	}
	return domain.DecisionInputs{Owner: r.owner, Server: name, Position: pos, Config: view,
		ExistingState: domain.ConnNone}, true
}

// refuseUnknown records the no_config refusal of a name outside the owner's view,
// coalesced per owner.
func (r *Repository) refuseUnknown(ctx context.Context, in domain.DecisionInputs) error {
	u := &r.unknown
	o := originOf(ctx)
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.open && u.origin.actor == o.actor {
		if u.pending == 0 {
			u.origin.correlation = o.correlation
		} else if u.origin.correlation != o.correlation {
			u.origin.correlation = ""
		}
		u.pending++
		u.in = in
		if len(u.names) < maxUnknownNames {
			u.names[in.Server] = struct{}{}
		} else if _, ok := u.names[in.Server]; !ok {
			u.more = true
		}
		return nil
	}
	r.flushUnknownLocked(ctx, false)
	e := &entry{name: in.Server}
	fact := domain.ConnectionRefused{Inputs: in, Rule: domain.RuleNoConfig, Count: 1}
	if err := r.append(ctx, e, o, fact, string(domain.RuleNoConfig)); err != nil {
		return err
	}
	if r.m.closed.Load() {
		return nil
	}
	u.gen++
	gen := u.gen
	u.open, u.in, u.origin, u.pending, u.more = true, in, o, 0, false
	if u.names == nil {
		u.names = map[string]struct{}{}
	}
	clear(u.names)
	u.timer = time.AfterFunc(r.m.opts.RefusalWindow, func() { r.unknownWindowClosed(gen) })
	return nil
}

func (r *Repository) unknownWindowClosed(gen uint64) {
	u := &r.unknown
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.open || u.gen != gen {
		return
	}
	if u.pending == 0 {
		u.open = false
		return
	}
	r.flushUnknownLocked(context.Background(), true)
}

// flushUnknown appends the counted repeats, if any, and ends the window.
func (r *Repository) flushUnknown(ctx context.Context) {
	r.unknown.mu.Lock()
	defer r.unknown.mu.Unlock()
	r.flushUnknownLocked(ctx, false)
}

func (r *Repository) flushUnknownLocked(ctx context.Context, keepOpen bool) {
	u := &r.unknown
	if !u.open {
		return
	}
	if u.pending > 0 {
		servers := len(u.names)
		if u.more {
			servers++
		}
		fact := domain.ConnectionRefused{Inputs: u.in, Rule: domain.RuleNoConfig, Count: u.pending, Servers: servers}
		if err := r.append(ctx, &entry{name: u.in.Server}, u.origin, fact, string(domain.RuleNoConfig)); err != nil {
			r.m.opts.Logger.Error("record coalesced refusals", "owner", r.owner, "count", u.pending, "err", err)
		}
		u.pending = 0
		clear(u.names)
		u.more = false
	}
	if keepOpen && !r.m.closed.Load() {
		gen := u.gen
		u.timer = time.AfterFunc(r.m.opts.RefusalWindow, func() { r.unknownWindowClosed(gen) })
		return
	}
	if u.timer != nil {
		u.timer.Stop()
	}
	u.open = false
	u.gen++
}
