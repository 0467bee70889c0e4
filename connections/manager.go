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
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/store"
)

// Manager holds the repositories of every owner. All methods are safe for concurrent
// use.
type Manager struct {
	st      store.Store
	servers *projections.Servers
	opts    Options

	mu    sync.RWMutex
	repos map[string]*Repository

	// life guards closed and the goroutine group: goroutines are only started while
	// the manager is open, so Close can wait for all of them.
	life   sync.Mutex
	closed atomic.Bool
	wg     sync.WaitGroup

	shared atomic.Uint64
	// gens counts, per server name, the server events the projection applied since
	// the manager started (*atomic.Uint64), fed by the projection's OnChange hook.
	gens sync.Map
	// tick advances every TickInterval; a reuse reads the clock only when it moved.
	tick      atomic.Uint64
	stop      chan struct{}
	decMu     sync.Mutex
	decisions map[string]uint64

	// toSweep holds the servers changed since the sweeper last looked.
	sweepMu   sync.Mutex
	toSweep   map[string]struct{}
	sweepKick chan struct{}
}

// NewManager returns a manager whose repositories read servers (which must follow st,
// e.g. projections.Load, or Apply registered with st.Observe) and append their
// decisions to st. It panics on a nil store or projection.
func NewManager(st store.Store, servers *projections.Servers, opts Options) *Manager {
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
	if opts.UserValues != nil {
		opts.Dial = WithUserValues(opts.Dial, opts.UserValues)
	}
	if opts.InspectOwner != nil {
		opts.Dial = WithOwnerInspection(opts.Dial, opts.InspectOwner)
	}
	if opts.Classify == nil {
		opts.Classify = defaultClassify
	}
	m := &Manager{st: st, servers: servers, opts: opts, stop: make(chan struct{}),
		repos: map[string]*Repository{}, decisions: map[string]uint64{},
		toSweep: map[string]struct{}{}, sweepKick: make(chan struct{}, 1)}
	servers.OnChange(func(_ domain.Scope, name string) {
		m.changeCounter(name).Add(1)
		m.queueSweep(name)
	})
	if m.begin() {
		go m.ticker()
	}
	if m.begin() {
		go m.sweeper()
	}
	return m
}

// GrantChanged tells the manager that an owner's grant for server changed (new,
// refreshed into a new grant, or dropped), so the next decision about it reads the
// grant again: the hot path does not reuse a connection on the old grant.
func (m *Manager) GrantChanged(server string) { m.changeCounter(server).Add(1) }

// changeCounter returns the counter of the server events of name that the projection
// applied since the manager started.
func (m *Manager) changeCounter(name string) *atomic.Uint64 {
	v, ok := m.gens.Load(name)
	if !ok {
		v, _ = m.gens.LoadOrStore(name, new(atomic.Uint64))
	}
	return v.(*atomic.Uint64)
}

func (m *Manager) ticker() {
	defer m.end()
	t := time.NewTicker(min(time.Second, m.opts.IdleCheck))
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.tick.Add(1)
		}
	}
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
	close(m.stop)
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
	s := Stats{Reuses: m.Reuses(), Shared: m.shared.Load()}
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
func (m *Manager) Reuses() uint64 {
	var n uint64
	for _, r := range m.repositories() {
		n += r.reuses.Load()
	}
	return n
}

// names lists the servers visible to owner (shadowed private ones excluded).
func (m *Manager) names(owner string) []string {
	list := m.servers.List(owner)
	out := make([]string, 0, len(list))
	for _, e := range list {
		if !e.Shadowed {
			out = append(out, e.Name)
		}
	}
	return out
}
