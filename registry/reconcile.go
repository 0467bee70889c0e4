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

// ConfigFile is the operator's config file as Reconcile applies it.
type ConfigFile struct {
	// Path names the file in messages.
	Path    string
	Servers map[string]domain.ServerConfig
	// Lines is the line of each server's entry (0 or absent when unknown).
	Lines map[string]int
}

// Reconcile makes the file-sourced app servers equal the operator's config file: it
// registers, changes or removes a server only where the file differs from the
// projection, so a restart with the same file writes no event. App servers an admin
// added through the API are never changed or removed by it, unless the file names
// them too: then the file takes them over (their source becomes file). Every config
// is validated first: a bad file returns a *domain.ValidationError listing every
// problem of every server, and nothing is applied. A store error part-way returns
// the report of what was applied so far with the error. Reconcile does not inspect;
// see StartupInspect.
func (s *Service) Reconcile(ctx context.Context, file ConfigFile) (ReconcileReport, error) {
	var rep ReconcileReport
	if err := s.checkOpen(); err != nil {
		return rep, err
	}
	fileServers := file.Servers
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
	s.fileMu.Lock()
	s.file = file
	s.fileMu.Unlock()
	m := meta{actor: "system", reason: "config file"}
	for _, name := range names {
		out, err := s.putSealed(ctx, m, domain.AppScope, name, sealed[name], domain.SourceFile, domain.Precondition{})
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
		up, err := s.update(ctx, domain.AppScope, name, m, func(st domain.ServerState) ([]any, error) {
			if st.AppSource() != domain.SourceFile {
				return nil, nil // an admin's: not the file's to remove
			}
			return domain.DecideRemoveServer(st, domain.RemoveServer{Scope: domain.AppScope, Name: name})
		})
		if errors.Is(err, domain.ErrServerNotFound) || len(up.facts) == 0 && err == nil {
			continue // removed concurrently, or not from the file
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

// putSealed decides and appends one already validated and sealed config from
// source, when the server meets cond. An API put (source api, or a user scope) of an app server that comes from
// the config file is refused with a *FileSourcedError.
func (s *Service) putSealed(ctx context.Context, m meta, scope domain.Scope, name string,
	sealed domain.ServerConfig, source domain.Source, cond domain.Precondition) (putOutcome, error) {
	up, err := s.update(ctx, scope, name, m, func(st domain.ServerState) ([]any, error) {
		if err := cond.Check(name, st); err != nil {
			return nil, err
		}
		if source != domain.SourceFile {
			if err := s.checkAPISource(st); err != nil {
				return nil, err
			}
		}
		return domain.DecidePutServer(st, scope, name, sealed, source)
	})
	if err != nil {
		return putOutcome{}, err
	}
	if len(up.facts) == 0 {
		return putOutcome{version: up.before.ConfigVersion}, nil
	}
	out := putOutcome{version: up.before.ConfigVersion + 1, eventID: up.ids[0]}
	switch f := up.facts[0].(type) {
	case domain.ServerRegistered:
		out.created, out.version = true, 1
	case domain.ServerConfigChanged:
		out.changed = f.Changed
	}
	return out, nil
}
