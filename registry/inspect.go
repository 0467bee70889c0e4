package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/mcpes/mcpes/domain"
)

// InspectRequest is what an InspectFunc needs to inspect one server config.
type InspectRequest struct {
	Scope domain.Scope
	Name  string
	// Config is the config as stored: header and env values are secret references.
	Config domain.ServerConfig
	// Secret resolves a secret reference from the store.
	Secret func(ref string) (string, error)
	// LookupEnv expands ${VAR} placeholders; nil for user scopes, which may not read
	// the host's environment.
	LookupEnv func(string) (string, bool)
	// Guard checks addresses at dial time; nil for the app scope, which is trusted.
	Guard URLChecker
	// MaxMessageBytes bounds one message read from the server (0: the default).
	MaxMessageBytes int64
	// WrapHTTP, when set, wraps the HTTP transport (an owner's OAuth token).
	WrapHTTP func(http.RoundTripper) http.RoundTripper
}

// InspectFunc runs one inspection (connect, initialize, list, disconnect) under ctx,
// whose deadline is the config's initTimeout. It reports every failure in the
// outcome; it must return promptly once ctx ends and leave nothing running.
type InspectFunc func(ctx context.Context, req InspectRequest) domain.InspectionOutcome

// ReinspectResult is the structured answer of Reinspect: OK is false with Reason when
// the server is still unreachable. State is the server's state after it: ready,
// failed, or requires_oauth (the server answered 401/403: OK, since it is no longer
// failed, but only owners with their own token can connect it).
type ReinspectResult struct {
	Server string        `json:"server"`
	OK     bool          `json:"ok"`
	State  domain.Status `json:"state"`
	Reason string        `json:"reason,omitempty"`
}

// Ready returns a channel closed once StartupInspect has finished (every app server
// inspected or timed out), for /readyz.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// IsReady reports whether Ready is closed.
func (s *Service) IsReady() bool {
	select {
	case <-s.ready:
		return true
	default:
		return false
	}
}

// Inspect inspects the current config of a server and records the outcome
// (ServerInspected, plus ServerToolsChanged on drift; or ServerInspectionFailed,
// marking OAuth for a 401/403). A failed inspection is an outcome, not an error.
// Returns domain.ErrServerNotFound (as *domain.ServerError) for an unknown server, and
// store errors. An inspection of the same config version already running is joined,
// not repeated; its outcome is recorded only if the config did not change meanwhile.
func (s *Service) Inspect(ctx context.Context, scope domain.Scope, name string) (domain.InspectionOutcome, error) {
	if err := s.checkOpen(); err != nil {
		return domain.InspectionOutcome{}, err
	}
	st := s.state(scope, name)
	if !st.Exists {
		return domain.InspectionOutcome{}, &domain.ServerError{Name: name, Err: domain.ErrServerNotFound}
	}
	return s.inspectState(ctx, st, "system", "")
}

// InspectAs inspects the current config of a server with owner's OAuth grant (wrap
// adds the token) and records the outcome like Inspect, marked as made with that
// owner's grant: the way a server that answers nobody without a token gets its
// catalogue, after its first owner authorized. It never records a failure: a
// failure with one owner's token says nothing about the server.
func (s *Service) InspectAs(ctx context.Context, scope domain.Scope, name, owner string,
	wrap func(http.RoundTripper) http.RoundTripper) (domain.InspectionOutcome, error) {
	if err := s.checkOpen(); err != nil {
		return domain.InspectionOutcome{}, err
	}
	st := s.state(scope, name)
	if !st.Exists {
		return domain.InspectionOutcome{}, &domain.ServerError{Name: name, Err: domain.ErrServerNotFound}
	}
	done, ok := s.begin()
	if !ok {
		return domain.InspectionOutcome{}, ErrClosed
	}
	defer done()
	out := s.runInspectorWith(st, wrap)
	if !out.OK {
		return out, nil
	}
	out.AsOwner = owner
	return out, s.record(s.bgCtx, st.Scope, st.Name, st.Version, out, "owner:"+owner, "")
}

type flightResult struct {
	outcome domain.InspectionOutcome
	err     error
}

// inspectState runs one inspection of st's config version (joined when one is
// already running) and records it. The inspection runs on the service's background
// context, so a caller that gives up does not cancel it for callers that joined it.
func (s *Service) inspectState(ctx context.Context, st domain.ServerState, actor, causation string) (domain.InspectionOutcome, error) {
	key := domain.ServerStream(st.Scope, st.Name) + "@" + strconv.FormatUint(st.Version, 10)
	ch := s.inspections.DoChan(key, func() (any, error) {
		done, ok := s.begin()
		if !ok {
			return flightResult{err: ErrClosed}, nil
		}
		defer done()
		out, err := s.inspectClaimed(st, actor, causation)
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

// runInspector calls the InspectFunc under the config's initTimeout.
func (s *Service) runInspector(st domain.ServerState) domain.InspectionOutcome {
	return s.runInspectorWith(st, nil)
}

// runInspectorWith is runInspector with the HTTP transport wrapped by wrap.
func (s *Service) runInspectorWith(st domain.ServerState, wrap func(http.RoundTripper) http.RoundTripper) domain.InspectionOutcome {
	timeout := time.Duration(st.Config.InitTimeout()) * time.Millisecond
	ctx, cancel := context.WithTimeout(s.bgCtx, timeout)
	defer cancel()
	req := InspectRequest{Scope: st.Scope, Name: st.Name, Config: st.Config.Clone(),
		Secret: s.secretResolver(ctx), MaxMessageBytes: s.opts.MaxMessageBytes, WrapHTTP: wrap}
	if st.Scope.IsApp() {
		req.LookupEnv = s.opts.LookupEnv
	} else {
		req.Guard = s.guard
	}
	start := time.Now()
	out := s.opts.Inspector(ctx, req)
	if out.Duration == 0 {
		out.Duration = time.Since(start)
	}
	if !out.OK && out.Class == "" {
		out.Class = domain.FailureProtocol
	}
	out.Message = domain.TidyMessage(out.Message)
	s.log.Info("server inspected", "scope", st.Scope, "server", st.Name, "version", st.Version,
		"ok", out.OK, "class", out.Class, "oauth", out.RequiresOAuth, "duration", out.Duration)
	return out
}

// record appends the facts of an inspection of version, re-reading the projection on
// version conflicts. An inspection of a config that changed or was removed meanwhile
// is dropped: it describes a config that no longer exists.
func (s *Service) record(ctx context.Context, scope domain.Scope, name string, version uint64,
	out domain.InspectionOutcome, actor, causation string) error {
	_, err := s.update(ctx, scope, name, meta{actor: actor, causation: causation}, func(st domain.ServerState) ([]any, error) {
		return domain.DecideRecordInspection(st, domain.RecordInspection{Scope: scope, Name: name,
			InspectedVersion: version, Outcome: out})
	})
	if errors.Is(err, domain.ErrServerNotFound) {
		return nil
	}
	return err
}

// inspectAfterPut inspects a server Put just registered or changed, as
// Options.InspectOnPut says. Failures are recorded as outcomes and logged.
func (s *Service) inspectAfterPut(ctx context.Context, scope domain.Scope, name, causation string) {
	run := func(ctx context.Context) {
		st := s.state(scope, name)
		if !st.Exists || domain.OnDemand(st.Config) {
			return // on-demand servers are inspected by an owner's connect, not here
		}
		if _, err := s.inspectState(ctx, st, "system", causation); err != nil {
			s.log.Warn("inspection after put", "scope", scope, "server", name, "err", err)
		}
	}
	switch s.opts.InspectOnPut {
	case InspectSync:
		run(ctx)
	case InspectAsync:
		if done, ok := s.begin(); ok {
			go func() {
				defer done()
				run(s.bgCtx)
			}()
		}
	}
}

// StartupInspect inspects every app server that is not on demand (domain.OnDemand)
// concurrently, at most concurrency at once
// (Options.StartupConcurrency when <= 0), each under its own initTimeout, so one slow
// or dead server delays no other beyond its own timeout. progress, when not nil, is
// called once per server as its outcome is recorded (calls are serialised). It returns
// when every inspection finished or timed out, and then closes Ready. Returns ctx's
// error (and leaves Ready open) when ctx ends first.
func (s *Service) StartupInspect(ctx context.Context, concurrency int, progress func(name string, outcome domain.InspectionOutcome)) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	if concurrency <= 0 {
		concurrency = s.opts.StartupConcurrency
	}
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	var progMu sync.Mutex
	var errMu sync.Mutex
	var firstErr error
	for _, name := range s.appNames() {
		if domain.OnDemand(s.state(domain.AppScope, name).Config) {
			continue // not connected at startup (as in LibreChat): on demand
		}
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			out, err := s.Inspect(ctx, domain.AppScope, name)
			if err != nil {
				if !errors.Is(err, domain.ErrServerNotFound) { // removed meanwhile
					errMu.Lock()
					firstErr = cmpErr(firstErr, fmt.Errorf("inspect %s: %w", name, err))
					errMu.Unlock()
				}
				return
			}
			if progress != nil {
				progMu.Lock()
				progress(name, out)
				progMu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	s.readyOnce.Do(func() { close(s.ready) })
	return firstErr
}

func cmpErr(first, next error) error {
	if first != nil {
		return first
	}
	return next
}

// Reinspect reinspects a failed server. Returns domain.ErrServerNotFound ("server X
// not found") for an unknown server and domain.ErrNotFailed ("server X is not in a
// failed state") for one that is not failed, both as *domain.ServerError. Otherwise it
// records ServerReinspectionRequested and the outcome: a server still unreachable
// gives {OK: false, Reason} and no error; a reachable one is recorded as recovered,
// which moves its config version on (existing connections become stale).
// Concurrent reinspections of one server run one inspection: callers that arrive
// while it runs get its result, callers after it succeeded get ErrNotFailed.
func (s *Service) Reinspect(ctx context.Context, actor string, scope domain.Scope, name string) (ReinspectResult, error) {
	if err := s.checkOpen(); err != nil {
		return ReinspectResult{}, err
	}
	if err := checkCommand(actor, scope); err != nil {
		return ReinspectResult{}, err
	}
	if _, err := domain.DecideRequestReinspection(s.state(scope, name),
		domain.RequestReinspection{Scope: scope, Name: name}); err != nil {
		return ReinspectResult{}, err
	}
	ch := s.reinspects.DoChan(domain.ServerStream(scope, name), func() (any, error) {
		done, ok := s.begin()
		if !ok {
			return ReinspectResult{}, ErrClosed
		}
		defer done()
		return s.reinspect(actor, scope, name)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return ReinspectResult{}, r.Err
		}
		return r.Val.(ReinspectResult), nil
	case <-ctx.Done():
		return ReinspectResult{}, ctx.Err()
	}
}

// reinspect is the one flight of Reinspect for a server: it re-checks the state (a
// flight that ended just before this one may have recovered it), records the request,
// inspects and records the outcome.
func (s *Service) reinspect(actor string, scope domain.Scope, name string) (ReinspectResult, error) {
	ctx := s.bgCtx
	up, err := s.update(ctx, scope, name, meta{actor: actor}, func(st domain.ServerState) ([]any, error) {
		return domain.DecideRequestReinspection(st, domain.RequestReinspection{Scope: scope, Name: name})
	})
	if err != nil {
		return ReinspectResult{}, err
	}
	out, err := s.inspectState(ctx, up.before, actor, up.ids[0])
	if err != nil {
		return ReinspectResult{}, err
	}
	res := ReinspectResult{Server: name, OK: out.OK || out.RequiresOAuth, State: domain.StatusReady}
	switch {
	case out.RequiresOAuth:
		res.State, res.Reason = domain.StatusRequiresOAuth, domain.ServerState{OAuthDetected: true, Inspected: true}.Reason()
	case !out.OK:
		res.State, res.Reason = domain.StatusFailed, domain.ServerState{InspectionFailed: true,
			FailureClass: out.Class, FailureMessage: out.Message}.Reason()
	}
	return res, nil
}

// secretResolver resolves secret references from the store. Placeholders inside a
// resolved app-scope value ("Bearer ${TOKEN}") are upstream's to expand.
func (s *Service) secretResolver(ctx context.Context) func(string) (string, error) {
	return func(ref string) (string, error) {
		b, err := s.store.Secret(ctx, ref)
		if err != nil {
			return "", fmt.Errorf("secret %s: %w", ref, err)
		}
		return string(b), nil
	}
}
