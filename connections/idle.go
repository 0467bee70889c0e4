package connections

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/mcpes/mcpes/domain"
)

// janitor runs on a timer: in a user repository it evicts connections idle for longer
// than IdleTimeout (evicted: idle), one server at a time, each judged by its own last
// use; in every repository it forgets entries that hold nothing, so asking for many
// unknown names does not grow memory.
func (r *Repository) janitor() {
	defer r.m.end()
	t := time.NewTicker(r.m.opts.IdleCheck)
	defer t.Stop()
	for {
		select {
		case <-r.idleStop:
			return
		case <-t.C:
		}
		if r.owner != "" {
			r.evictIdle(context.Background())
		}
		r.prune()
	}
}

func (r *Repository) stopIdle() { r.idleOnce.Do(func() { close(r.idleStop) }) }

// evictIdle evicts the idle connections, oldest use first, one at a time.
func (r *Repository) evictIdle(ctx context.Context) {
	limit := r.m.opts.IdleTimeout
	type cand struct {
		e    *entry
		used int64
	}
	var cands []cand
	now := r.m.opts.Clock()
	// Range, not snapshot: every tick of every repository walks its entries, and most
	// ticks find nothing to evict.
	r.entries.Range(func(_, v any) bool {
		e := v.(*entry)
		if c := e.conn.Load(); c != nil && now.Sub(time.Unix(0, c.lastUsed.Load())) > limit {
			cands = append(cands, cand{e, c.lastUsed.Load()})
		}
		return true
	})
	slices.SortFunc(cands, func(a, b cand) int { return cmp.Compare(a.used, b.used) })
	for _, cd := range cands {
		if r.m.closed.Load() {
			return
		}
		e := cd.e
		e.mu.Lock()
		c := e.conn.Load()
		now := r.m.opts.Clock()
		if c != nil && !e.pruned && now.Sub(time.Unix(0, c.lastUsed.Load())) > limit {
			_, in := r.inputs(ctx, e, now)
			if err := r.evict(ctx, e, c, domain.EvictIdle, "", in); err != nil {
				r.m.opts.Logger.Error("evict idle", "owner", r.owner, "server", e.name, "err", err)
			}
		}
		e.mu.Unlock()
	}
}

// prune drops entries with no connection, no connect in flight, no refusal window and
// a closed breaker.
func (r *Repository) prune() {
	now := r.m.opts.Clock()
	// Deleting while ranging is allowed by sync.Map.
	r.entries.Range(func(_, v any) bool {
		e := v.(*entry)
		if e.conn.Load() != nil || e.connecting.Load() {
			return true
		}
		e.mu.Lock()
		if e.conn.Load() == nil && e.call == nil && !e.ref.open && e.br.failures == 0 && !e.br.isOpen(now) {
			e.pruned = true
			r.entries.CompareAndDelete(e.name, e)
		}
		e.mu.Unlock()
		return true
	})
}
