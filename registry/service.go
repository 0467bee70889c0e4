// Package registry is the command side of server configs: it registers, changes and
// removes servers (from the API and from the operator's config file), inspects them at
// startup and on request, and records every outcome as an event. It decides with the
// pure functions of package domain on the state the config projection reads, and
// appends with optimistic concurrency, so two writers never both win.
package registry

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/google/uuid"
	"golang.org/x/sync/singleflight"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/upstream"
)

// Projection is the server-config read model the service decides on. It must be fed
// by the store's observer, so that it reflects an Append as soon as the Append
// returns (a writer reads its own write).
// *projections.Servers implements it.
type Projection interface {
	// State returns the folded state of one server stream (Exists false when absent).
	State(scope domain.Scope, name string) (domain.ServerState, bool)
	// List returns the servers visible to owner; owner "" lists the app servers.
	List(owner string) []projections.Entry
}

var _ Projection = (*projections.Servers)(nil)

// URLChecker is the SSRF guard for user-scope URLs. *upstream.Guard implements it;
// an error wrapping upstream.ErrUnresolvable lets the registration through (the
// dial-time check still applies), any other error refuses it.
type URLChecker interface {
	// CheckURL returns an error when url may not be reached from the user scope.
	CheckURL(ctx context.Context, url string) error
}

// HMACKeySecret is the store secret holding the key of the deterministic secret
// references (32 random bytes, created on first use).
const HMACKeySecret = "_hmac_key"

// Service is the registry. It is safe for concurrent use.
type Service struct {
	store store.Store
	proj  Projection
	guard URLChecker
	opts  Options
	log   *slog.Logger

	keyMu   sync.Mutex
	hmacKey []byte

	inspections singleflight.Group // key: stream@version; one inspection per config version
	reinspects  singleflight.Group // key: stream; one reinspection per server

	bgCtx    context.Context
	bgCancel context.CancelFunc
	bg       sync.WaitGroup

	readyOnce sync.Once
	ready     chan struct{}

	closeMu sync.RWMutex
	closed  bool

	fileMu sync.RWMutex
	file   ConfigFile // the config file last reconciled, for messages
}

// New returns a Service over st, deciding on proj, guarding user-scope URLs with guard.
// It panics on a nil dependency and returns an error for bad options.
func New(st store.Store, proj Projection, guard URLChecker, opts Options) (*Service, error) {
	if st == nil || proj == nil || guard == nil {
		panic("registry.New: nil store, projection or guard")
	}
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{store: st, proj: proj, guard: guard, opts: opts, log: opts.Logger,
		bgCtx: ctx, bgCancel: cancel, ready: make(chan struct{})}, nil
}

// Close cancels running inspections (background ones and those callers wait for)
// and waits until they have ended. Commands after Close return ErrClosed. Close does
// not close the store.
func (s *Service) Close() error {
	s.closeMu.Lock()
	s.closed = true
	s.closeMu.Unlock()
	s.bgCancel()
	s.bg.Wait()
	return nil
}

// Wait blocks until every inspection started so far has finished.
func (s *Service) Wait() { s.bg.Wait() }

// begin registers one inspection with Close and returns its done function; ok is
// false once Close has begun, so Close never waits on work it did not see start.
func (s *Service) begin() (done func(), ok bool) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return nil, false
	}
	s.bg.Add(1)
	return s.bg.Done, true
}

func (s *Service) checkOpen() error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return nil
}

// PutResult says what Put did. Version is the server's config version after the call
// (unchanged when the config was identical).
type PutResult struct {
	Created  bool
	Changed  []string
	Version  uint64
	Warnings []domain.Problem
}

// Put registers name in scope with cfg, or changes it when it exists. Nothing is
// written on any error: a bad config returns a *domain.ValidationError listing every
// problem; a user-scope URL the SSRF guard refuses returns an error wrapping
// ErrBlockedURL; a change of an app server that comes from the config file returns a
// *FileSourcedError (a new app server is recorded with source api). An identical
// config writes nothing. After a registration or a change
// the server is inspected as Options.InspectOnPut says; the inspection's outcome is
// recorded, never returned as an error.
func (s *Service) Put(ctx context.Context, actor string, scope domain.Scope, name string, cfg domain.ServerConfig) (PutResult, error) {
	return s.PutIf(ctx, actor, scope, name, cfg, domain.Precondition{})
}

// PutIf is Put when the server meets cond, checked against the state each attempt
// decides on: of two writers racing with the same precondition exactly one wins and
// the other gets an error wrapping domain.ErrPreconditionFailed.
func (s *Service) PutIf(ctx context.Context, actor string, scope domain.Scope, name string, cfg domain.ServerConfig,
	cond domain.Precondition) (PutResult, error) {
	if err := s.checkOpen(); err != nil {
		return PutResult{}, err
	}
	if err := checkCommand(actor, scope); err != nil {
		return PutResult{}, err
	}
	if err := domain.ValidateConfig(scope, name, cfg); err != nil {
		return PutResult{}, err
	}
	if err := s.checkToolPrefix(scope, name); err != nil {
		return PutResult{}, err
	}
	if !scope.IsApp() {
		if probs := foreignRefs(name, cfg, s.state(scope, name)); len(probs) > 0 {
			return PutResult{}, &domain.ValidationError{Problems: probs}
		}
	}
	if !scope.IsApp() && cfg.URL != "" {
		err := s.guard.CheckURL(ctx, cfg.URL)
		switch {
		case errors.Is(err, upstream.ErrUnresolvable):
			// A name that does not resolve yet is checked again on every dial.
			s.log.Info("user-scope url does not resolve yet", "scope", scope, "server", name, "err", err)
		case err != nil:
			return PutResult{}, &domain.ServerError{Name: name,
				Err: fmt.Errorf("%w: %w", ErrBlockedURL, err)}
		}
	}
	sealed, err := s.seal(ctx, cfg)
	if err != nil {
		return PutResult{}, err
	}
	var source domain.Source
	if scope.IsApp() {
		source = domain.SourceAPI
	}
	out, err := s.putSealed(ctx, meta{actor: actor}, scope, name, sealed, source, cond)
	if err != nil {
		return PutResult{}, err
	}
	res := PutResult{Created: out.created, Changed: out.changed, Version: out.version,
		Warnings: domain.ConfigWarnings(name, cfg)}
	if out.eventID != "" {
		s.inspectAfterPut(ctx, scope, name, out.eventID)
	}
	return res, nil
}

// Remove removes name from scope. Returns domain.ErrServerNotFound (as a
// *domain.ServerError) when it does not exist, and a *FileSourcedError for an app
// server that comes from the config file.
func (s *Service) Remove(ctx context.Context, actor string, scope domain.Scope, name string) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	if err := checkCommand(actor, scope); err != nil {
		return err
	}
	_, err := s.update(ctx, scope, name, meta{actor: actor}, func(st domain.ServerState) ([]any, error) {
		if err := s.checkAPISource(st); err != nil {
			return nil, err
		}
		return domain.DecideRemoveServer(st, domain.RemoveServer{Scope: scope, Name: name})
	})
	return err
}

// checkAPISource refuses an API command on an app server that comes from the config
// file: the file is where it changes.
func (s *Service) checkAPISource(st domain.ServerState) error {
	if !st.Exists || st.AppSource() != domain.SourceFile {
		return nil
	}
	s.fileMu.RLock()
	defer s.fileMu.RUnlock()
	return &FileSourcedError{Server: st.Name, File: s.file.Path, Line: s.file.Lines[st.Name]}
}

// append writes facts to the server's stream at expected version and returns the
// append result and the event ids. A conflict is returned wrapping
// store.ErrVersionConflict.
func (s *Service) append(ctx context.Context, scope domain.Scope, name string, expected uint64,
	actor, reason, causation string, facts ...any) (store.AppendResult, []string, error) {
	stream := domain.ServerStream(scope, name)
	envs := make([]events.Envelope, 0, len(facts))
	ids := make([]string, 0, len(facts))
	now := s.opts.Now()
	for _, f := range facts {
		id, err := uuid.NewV7()
		if err != nil {
			return store.AppendResult{}, nil, fmt.Errorf("event id: %w", err)
		}
		env, err := events.New(f, events.Meta{ID: id.String(), Source: s.opts.Source,
			Time: now, Actor: actor, Reason: reason, CausationID: causation})
		if err != nil {
			return store.AppendResult{}, nil, err
		}
		envs = append(envs, env)
		ids = append(ids, env.ID)
	}
	ar, err := s.store.Append(ctx, stream, int64(expected), envs...)
	if err != nil {
		return ar, nil, fmt.Errorf("append %s: %w", stream, err)
	}
	return ar, ids, nil
}

// key returns the HMAC key of secret references, creating it on first use. When two
// processes race to create it, the one the store kept wins (PutSecret of an existing
// ref is a no-op), so the key is read back.
func (s *Service) key(ctx context.Context) ([]byte, error) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if s.hmacKey != nil {
		return s.hmacKey, nil
	}
	k, err := s.store.Secret(ctx, HMACKeySecret)
	if errors.Is(err, store.ErrNotFound) {
		fresh := make([]byte, 32)
		if _, err := rand.Read(fresh); err != nil {
			return nil, fmt.Errorf("hmac key: %w", err)
		}
		if err := s.store.PutSecret(ctx, HMACKeySecret, fresh); err != nil {
			return nil, fmt.Errorf("store hmac key: %w", err)
		}
		k, err = s.store.Secret(ctx, HMACKeySecret)
	}
	if err != nil {
		return nil, fmt.Errorf("hmac key: %w", err)
	}
	s.hmacKey = k
	return k, nil
}

// state reads one server's state from the projection (zero when never seen).
func (s *Service) state(scope domain.Scope, name string) domain.ServerState {
	st, _ := s.proj.State(scope, name)
	return st
}

// appNames lists the app servers that exist now.
func (s *Service) appNames() []string {
	var out []string
	for _, e := range s.proj.List("") {
		if e.Scope.IsApp() && !e.Shadowed {
			out = append(out, e.Name)
		}
	}
	return out
}

// checkCommand refuses a command without an actor or with a malformed scope, before
// anything (a secret included) is stored.
func checkCommand(actor string, scope domain.Scope) error {
	if actor == "" {
		return ErrNoActor
	}
	if _, err := domain.ParseScope(string(scope)); err != nil {
		return &domain.ValidationError{Problems: []domain.Problem{{Field: "scope", Reason: err.Error()}}}
	}
	return nil
}
