// Package connections is the connection repository: one Repository per owner scope
// (owner "" is the shared app-level one) that decides, from the config projection
// alone, whether a server may be connected, reuses live fresh connections, replaces
// stale and dead ones, shares concurrent connects, backs off failing servers behind a
// circuit breaker, closes idle connections, and appends every decision with its
// inputs to the log before the caller sees its effect.
package connections

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/store"
)

// configs is what the repository reads from the server-config projection.
type configs interface {
	// Effective returns the effective state and policy view of (owner, name) and the
	// log position they were read at, without allocating.
	Effective(owner, name string) (domain.ServerState, domain.ConfigView, uint64)
	// Names returns the names of every server visible to owner.
	Names(owner string) []string
}

// Manager holds the repositories of every owner. All methods are safe for concurrent
// use.
type Manager struct {
	st      store.Store
	servers configs
	opts    Options

	mu    sync.RWMutex
	repos map[string]*Repository

	// life guards closed and the goroutine group: goroutines are only started while
	// the manager is open, so Close can wait for all of them.
	life   sync.Mutex
	closed atomic.Bool
	wg     sync.WaitGroup

	reuses    atomic.Uint64
	shared    atomic.Uint64
	decMu     sync.Mutex
	decisions map[string]uint64
}

func newManager(st store.Store, servers configs, opts Options) *Manager {
	if st == nil {
		panic("connections: nil store")
	}
	if servers == nil {
		panic("connections: nil server projection")
	}
	opts.setDefaults()
	if opts.Dial == nil {
		opts.Dial = defaultDial(opts)
	}
	if opts.Classify == nil {
		opts.Classify = defaultClassify
	}
	return &Manager{st: st, servers: servers, opts: opts,
		repos: map[string]*Repository{}, decisions: map[string]uint64{}}
}

// Repo returns owner's repository ("" for the shared app-level one), creating it on
// first use. Repositories of a closed manager answer every call with ErrClosed.
func (m *Manager) Repo(owner string) *Repository {
	m.mu.RLock()
	r := m.repos[owner]
	m.mu.RUnlock()
	if r != nil {
		return r
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r = m.repos[owner]; r != nil {
		return r
	}
	r = newRepository(m, owner)
	m.repos[owner] = r
	return r
}

// Close evicts every connection of every repository (evicted: shutdown), flushes
// coalesced refusals and waits for connects in flight and watchers to end, or for ctx.
// Returns the errors of recording the evictions, joined.
func (m *Manager) Close(ctx context.Context) error {
	m.life.Lock()
	already := m.closed.Swap(true)
	m.life.Unlock()
	if already {
		return nil
	}
	var errs []error
	for _, r := range m.repositories() {
		r.stopIdle()
		r.waitConnects(ctx)
		errs = append(errs, r.DisconnectAll(ctx, domain.EvictShutdown))
		r.flushAll(ctx)
	}
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, ctx.Err())
	}
	return errors.Join(errs...)
}

func (m *Manager) repositories() []*Repository {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Collect(maps.Values(m.repos))
}

// begin registers a goroutine; it returns false once the manager is closed.
func (m *Manager) begin() bool {
	m.life.Lock()
	defer m.life.Unlock()
	if m.closed.Load() {
		return false
	}
	m.wg.Add(1)
	return true
}

func (m *Manager) end() { m.wg.Done() }

func (m *Manager) count(kind string) {
	m.decMu.Lock()
	m.decisions[kind]++
	m.decMu.Unlock()
}

// Stats is a snapshot of the manager's counters, for metrics.
type Stats struct {
	// Reuses counts Gets answered by an alive, fresh connection (not events).
	Reuses uint64
	// Shared counts Gets that waited for a connect another Get started.
	Shared uint64
	// Decisions counts recorded decision events by kind: "opened", "open_failed",
	// "lost", "refused/<rule>" and "evicted/<reason>". A coalesced refusal event
	// counts once.
	Decisions map[string]uint64
	// Alive, Dead and Connecting count connections by state across repositories.
	Alive, Dead, Connecting int
	// Repositories is the number of owner repositories created.
	Repositories int
}

// Stats returns a snapshot of the counters.
func (m *Manager) Stats() Stats {
	s := Stats{Reuses: m.reuses.Load(), Shared: m.shared.Load()}
	m.decMu.Lock()
	s.Decisions = maps.Clone(m.decisions)
	m.decMu.Unlock()
	repos := m.repositories()
	s.Repositories = len(repos)
	for _, r := range repos {
		for _, e := range r.snapshot() {
			if c := e.conn.Load(); c != nil {
				if c.alive() {
					s.Alive++
				} else {
					s.Dead++
				}
			}
			if e.connecting.Load() {
				s.Connecting++
			}
		}
	}
	return s
}

// Reuses returns the number of Gets answered by an alive, fresh connection.
func (m *Manager) Reuses() uint64 { return m.reuses.Load() }
