package connections

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/store"
)

// Sweep evicts, in every owner's repository, the open connections to the named
// servers that the policy no longer allows: the server was removed (evicted:
// removed) or its config now forbids the owner (evicted: disallowed). Each eviction
// is recorded and its connection (a child process for stdio) is closed before Sweep
// returns. Connections still allowed are left alone, stale ones included: the next
// Get replaces those. Returns the recording errors, joined.
//
// The manager also sweeps by itself after every server change the projection
// applies; callers that must see the effect at once (an API removal) call Sweep.
func (m *Manager) Sweep(ctx context.Context, names ...string) error {
	var errs []error
	for _, r := range m.repositories() {
		for _, name := range names {
			if e := r.lookup(name); e == nil || e.conn.Load() == nil {
				continue
			}
			if _, err := r.evictDisallowed(ctx, name); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// queueSweep (called in the projection's commit path) notes name for the sweeper.
func (m *Manager) queueSweep(name string) {
	m.sweepMu.Lock()
	m.toSweep[name] = struct{}{}
	m.sweepMu.Unlock()
	select {
	case m.sweepKick <- struct{}{}:
	default:
	}
}

// sweeper sweeps the servers the projection reported changed, off the commit path.
func (m *Manager) sweeper() {
	defer m.end()
	for {
		select {
		case <-m.stop:
			return
		case <-m.sweepKick:
		}
		m.sweepMu.Lock()
		names := slices.Sorted(maps.Keys(m.toSweep))
		clear(m.toSweep)
		m.sweepMu.Unlock()
		if err := m.Sweep(context.Background(), names...); err != nil {
			m.opts.Logger.Error("evict connections of changed servers", "servers", names, "err", err)
		}
	}
}

// RecoverRestart records, for every connection the log shows open, that it was lost
// (connection.lost with reason LostRestart): a process that stopped without
// closing them (a crash, SIGKILL) held them, and none survives it. Call it once at
// startup, before any repository is used, with the connections projection loaded
// from the log. Returns how many were recorded, and the first recording error.
func (m *Manager) RecoverRestart(ctx context.Context, open []projections.ConnInfo) (int, error) {
	for i, ci := range open {
		fact := domain.ConnectionLost{Owner: ci.Owner, Server: ci.Server, ConnID: ci.ConnID,
			ConfigVersion: ci.ConfigVersion, Error: "mcpes stopped without closing it", Reason: domain.LostRestart}
		env, err := events.New(fact, events.Meta{ID: m.opts.NewID(), Source: m.opts.Source, Time: m.opts.Clock(),
			Actor: "system", Reason: domain.LostRestart})
		if err != nil {
			return i, fmt.Errorf("%w: %v", ErrRecord, err)
		}
		if _, err := m.st.Append(ctx, domain.ConnStream(ci.Owner, ci.Server), store.AnyVersion, env); err != nil {
			return i, fmt.Errorf("%w: %s: %w", ErrRecord, env.Type, err)
		}
		m.count("lost")
	}
	return len(open), nil
}
