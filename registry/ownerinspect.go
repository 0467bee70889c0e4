package registry

import (
	"context"
	"errors"
	"strconv"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/projections"
)

// ownerInspections is implemented by projections that keep per-owner inspections
// (*projections.Servers does).
type ownerInspections interface {
	OwnerInspection(owner, server string) (projections.OwnerInspection, bool)
}

// InspectForOwner inspects the server owner sees under name with owner's own
// per-owner values, unless owner already has an inspection of its current config
// version, and records the outcome on owner's stream (OwnerInspected or
// OwnerInspectionFailed): that owner's catalogue of an on-demand server. Concurrent
// calls for one (owner, server, version) run one inspection. Returns
// domain.ErrServerNotFound (as a *domain.ServerError) for a server owner cannot see
// and a *domain.MissingUserVarsError when owner lacks a value (nothing recorded).
func (s *Service) InspectForOwner(ctx context.Context, actor, owner, name string) (domain.InspectionOutcome, error) {
	if err := s.checkOpen(); err != nil {
		return domain.InspectionOutcome{}, err
	}
	st := s.state(domain.AppScope, name)
	if !st.Exists {
		st = s.state(domain.UserScope(owner), name)
	}
	if !st.Exists {
		return domain.InspectionOutcome{}, &domain.ServerError{Name: name, Err: domain.ErrServerNotFound}
	}
	if oi, ok := s.proj.(ownerInspections); ok {
		if prev, ok := oi.OwnerInspection(owner, name); ok && prev.ConfigVersion() == st.Version && prev.Inspected != nil {
			return domain.InspectionOutcome{OK: true, Tools: prev.Inspected.Tools}, nil
		}
	}
	cfg := st.Config
	if domain.NeedsUserValues(cfg) {
		names, _ := s.proj.(SetNames)
		if names == nil {
			return domain.InspectionOutcome{}, errNoNames
		}
		vals, prof, err := s.UserValues(ctx, owner, name, names.UserVarsSet(owner, name), names.ProfileSet(owner))
		if err != nil {
			return domain.InspectionOutcome{}, err
		}
		if cfg, err = domain.SubstituteUserVars(cfg, owner, vals, prof); err != nil {
			return domain.InspectionOutcome{}, err
		}
	}
	key := domain.OwnerInspectionStream(owner, name) + "@" + strconv.FormatUint(st.Version, 10)
	ch := s.inspections.DoChan(key, func() (any, error) {
		done, ok := s.begin()
		if !ok {
			return flightResult{err: ErrClosed}, nil
		}
		defer done()
		run := st
		run.Config = cfg
		out := s.runInspector(run)
		cur := s.state(st.Scope, name)
		if !cur.Exists || cur.Version != st.Version {
			return flightResult{outcome: out}, nil // the config changed meanwhile
		}
		fact, err := domain.DecideOwnerInspection(cur, owner, out)
		if err == nil && fact != nil {
			err = s.appendOwner(s.bgCtx, actor, domain.OwnerInspectionStream(owner, name), fact)
		}
		return flightResult{outcome: out, err: err}, nil
	})
	select {
	case r := <-ch:
		fr := r.Val.(flightResult)
		return fr.outcome, fr.err
	case <-ctx.Done():
		return domain.InspectionOutcome{}, ctx.Err()
	}
}

// InspectOwnerAsync is InspectForOwner for connections.Options.InspectOwner: it
// runs under the service's background context and logs a failure to record.
func (s *Service) InspectOwnerAsync(owner, name string) {
	if _, err := s.InspectForOwner(s.bgCtx, "system", owner, name); err != nil {
		s.log.Warn("owner inspection", "owner", owner, "server", name, "err", err)
	}
}

// ReinspectForOwner reinspects an on-demand server for owner: the per-owner
// counterpart of Reinspect. Returns domain.ErrNotFailed (as a *domain.ServerError)
// when owner's last inspection of the current config succeeded, and
// domain.ErrServerNotFound when owner sees no such on-demand server.
func (s *Service) ReinspectForOwner(ctx context.Context, actor, owner, name string) (ReinspectResult, error) {
	st := s.state(domain.AppScope, name)
	if !st.Exists || !domain.OnDemand(st.Config) {
		return ReinspectResult{}, &domain.ServerError{Name: name, Err: domain.ErrServerNotFound}
	}
	if oi, ok := s.proj.(ownerInspections); ok {
		if prev, ok := oi.OwnerInspection(owner, name); ok && prev.ConfigVersion() == st.Version && prev.Inspected != nil {
			return ReinspectResult{}, &domain.ServerError{Name: name, Err: domain.ErrNotFailed}
		}
	}
	out, err := s.InspectForOwner(ctx, actor, owner, name)
	if err != nil {
		var missing *domain.MissingUserVarsError
		if errors.As(err, &missing) {
			return ReinspectResult{Server: name, OK: false, Reason: err.Error()}, nil
		}
		return ReinspectResult{}, err
	}
	res := ReinspectResult{Server: name, OK: out.OK}
	if !out.OK {
		res.Reason = string(out.Class) + ": " + out.Message
	}
	return res, nil
}
