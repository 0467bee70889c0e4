package registry

import (
	"context"
	"errors"
	"maps"
	"slices"

	"github.com/mcpes/mcpes/domain"
)

// ReconcileReport names the app servers a Reconcile registered, changed and removed.
type ReconcileReport struct {
	Registered []string `json:"registered,omitempty"`
	Changed    []string `json:"changed,omitempty"`
	Removed    []string `json:"removed,omitempty"`
}

// Reconcile makes the app scope equal the operator's config file: it registers,
// changes or removes a server only where the file differs from the projection, so a
// restart with the same file writes no event. Every config is validated first: a bad
// file returns a *domain.ValidationError listing every problem of every server, and
// nothing is applied. A store error part-way returns the report of what was applied
// so far with the error. Reconcile does not inspect; see StartupInspect.
func (s *Service) Reconcile(ctx context.Context, fileServers map[string]domain.ServerConfig) (ReconcileReport, error) {
	var rep ReconcileReport
	if err := s.checkOpen(); err != nil {
		return rep, err
	}
	names := slices.Sorted(maps.Keys(fileServers))
	var problems []domain.Problem
	for _, name := range names {
		var verr *domain.ValidationError
		if err := domain.ValidateConfig(domain.AppScope, name, fileServers[name]); errors.As(err, &verr) {
			problems = append(problems, verr.Problems...)
		} else if err != nil {
			return rep, err
		}
		if err := domain.CheckToolPrefix(name, names); err != nil {
			problems = append(problems, domain.Problem{Server: name, Field: "name", Reason: err.Error()})
		}
	}
	if len(problems) > 0 {
		return rep, &domain.ValidationError{Problems: problems}
	}
	sealed := make(map[string]domain.ServerConfig, len(names))
	for _, name := range names {
		cfg, err := s.seal(ctx, fileServers[name])
		if err != nil {
			return rep, err
		}
		sealed[name] = cfg
	}
	const actor, reason = "system", "config file"
	for _, name := range names {
		out, err := s.putSealed(ctx, actor, reason, domain.AppScope, name, sealed[name])
		if err != nil {
			return rep, err
		}
		switch {
		case out.created:
			rep.Registered = append(rep.Registered, name)
		case out.eventID != "":
			rep.Changed = append(rep.Changed, name)
		}
	}
	for _, name := range s.appNames() {
		if _, ok := fileServers[name]; ok {
			continue
		}
		err := s.remove(ctx, actor, reason, domain.AppScope, name)
		if errors.Is(err, domain.ErrServerNotFound) {
			continue // removed concurrently
		}
		if err != nil {
			return rep, err
		}
		rep.Removed = append(rep.Removed, name)
	}
	return rep, nil
}

// putOutcome is what putSealed wrote: nothing (eventID ""), a registration or a change.
type putOutcome struct {
	created bool
	changed []string
	version uint64 // config version after the put
	eventID string
}

// putSealed decides and appends one already validated and sealed config, retrying on
// version conflicts.
func (s *Service) putSealed(ctx context.Context, actor, reason string, scope domain.Scope, name string,
	sealed domain.ServerConfig) (putOutcome, error) {
	for attempt := 0; ; attempt++ {
		st := s.state(scope, name)
		facts, err := domain.DecidePutServer(st, scope, name, sealed)
		if err != nil {
			return putOutcome{}, err
		}
		if len(facts) == 0 {
			return putOutcome{version: st.Version}, nil
		}
		ar, ids, err := s.append(ctx, scope, name, st.StreamVersion, actor, reason, "", facts...)
		if s.again(attempt, &err) {
			continue
		}
		if err != nil {
			return putOutcome{}, err
		}
		out := putOutcome{version: ar.Positions[0], eventID: ids[0]}
		switch f := facts[0].(type) {
		case domain.ServerRegistered:
			out.created = true
		case domain.ServerConfigChanged:
			out.changed = f.Changed
		}
		return out, nil
	}
}
