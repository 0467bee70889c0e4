package registry

import (
	"context"
	"errors"
	"fmt"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/store"
)

// meta is who and why, for the envelopes of one update.
type meta struct {
	actor, reason, causation string
}

// updated is what one update read and wrote. Facts is empty (and nothing was
// written) when decide returned none.
type updated struct {
	before domain.ServerState
	facts  []any
	result store.AppendResult
	ids    []string
}

// update is the one read-decide-append loop of the registry: it reads the server's
// state from the projection, lets decide choose the facts, and appends them at the
// stream version it read. When another writer moved the stream in between, the
// append fails with a version conflict and update reads and decides again, at most
// Options.ConflictRetries times in all; then the error wraps ErrConflict (and still
// matches store.ErrVersionConflict). decide's errors are returned unchanged.
func (s *Service) update(ctx context.Context, scope domain.Scope, name string, m meta,
	decide func(domain.ServerState) ([]any, error)) (updated, error) {
	for attempt := 1; ; attempt++ {
		st := s.state(scope, name)
		facts, err := decide(st)
		if err != nil || len(facts) == 0 {
			return updated{before: st}, err
		}
		ar, ids, err := s.append(ctx, scope, name, st.StreamVersion, m.actor, m.reason, m.causation, facts...)
		if err == nil {
			return updated{before: st, facts: facts, result: ar, ids: ids}, nil
		}
		if !errors.Is(err, store.ErrVersionConflict) {
			return updated{before: st}, err
		}
		if attempt >= s.opts.ConflictRetries {
			return updated{before: st}, fmt.Errorf("%w: %w", ErrConflict, err)
		}
		s.log.Debug("server stream moved, deciding again", "scope", scope, "server", name, "attempt", attempt)
	}
}
