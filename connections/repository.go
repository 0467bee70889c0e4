package connections

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpes/mcpes/domain"
)

// Repository holds one owner's connections ("" = the shared app-level repository).
// It reads only the config projection and never writes configs. All methods are safe
// for concurrent use.
type Repository struct {
	m     *Manager
	owner string

	// entries maps server names to *entry; the hot path reads it without a lock.
	entries sync.Map
	reuses  atomic.Uint64
	unknown unknownRefusals

	idleStop chan struct{}
	idleOnce sync.Once
}

// entry is the per-server state of a repository. conn is read lock-free by the hot
// path; everything else is guarded by mu, which serialises the decisions about this
// server (and so the order of its decision events).
type entry struct {
	name       string
	gen        *atomic.Uint64 // the manager's change counter of name
	conn       atomic.Pointer[Connection]
	connecting atomic.Bool

	mu     sync.Mutex
	call   *connectCall // the connect in flight, shared by concurrent Gets
	br     breaker
	ref    refusals
	pruned bool // removed from the map: callers holding it must look again
}

// connectCall is one connect attempt; done is closed after its result (and its event)
// is recorded.
type connectCall struct {
	done chan struct{}
	conn *Connection
	err  error
}

func newRepository(m *Manager, owner string) *Repository {
	r := &Repository{m: m, owner: owner, idleStop: make(chan struct{})}
	if m.begin() {
		go r.janitor()
	}
	return r
}

// Owner returns the repository's owner ("" for the shared one).
func (r *Repository) Owner() string { return r.owner }

func (r *Repository) lookup(name string) *entry {
	if v, ok := r.entries.Load(name); ok {
		return v.(*entry)
	}
	return nil
}

// lockEntry returns name's entry, created if needed, with its mutex held.
func (r *Repository) lockEntry(name string) *entry {
	for {
		e := r.lookup(name)
		if e == nil {
			v, _ := r.entries.LoadOrStore(name, &entry{name: name, gen: r.m.changeCounter(name)})
			e = v.(*entry)
		}
		e.mu.Lock()
		if !e.pruned {
			return e
		}
		e.mu.Unlock()
	}
}

func (r *Repository) snapshot() []*entry {
	var out []*entry
	r.entries.Range(func(_, v any) bool {
		out = append(out, v.(*entry))
		return true
	})
	return out
}

// Get returns a connection to name, connecting when needed:
//   - not allowed (section 4 rules) → any existing connection is evicted (disallowed or
//     removed) and a *RefusedError names the rule (ErrNotFound for no_config);
//   - the breaker of (owner, name) is open → *RefusedError with rule breaker_open
//     (ErrUnavailable), at once;
//   - existing connection alive and built from the current config version → it is
//     returned without touching disk or network and without allocating;
//   - existing connection stale or dead → it is evicted and a new one is built;
//   - a failed connect → *ConnectError (ErrUnavailable) with its class.
//
// Concurrent Gets of one server share one connect. A caller whose ctx ends returns
// ctx.Err() early; the connect goes on for the others. Returns ErrClosed after the
// manager was closed, and an ErrRecord error when a decision could not be logged.
func (r *Repository) Get(ctx context.Context, name string) (*Connection, error) {
	if e := r.lookup(name); e != nil && !r.m.closed.Load() {
		if c := e.conn.Load(); c != nil && c.alive() {
			// No event of a server of this name was applied since the connection was
			// last found fresh (the projection's change hook counts them, in the commit
			// path): every input of the decision is what it was, so is the decision.
			gen := e.gen.Load()
			if c.checkedGen.Load() == gen+1 {
				r.used(c)
				return c, nil
			}
			_, view, pos := r.m.servers.Effective(r.owner, name)
			in := domain.DecisionInputs{Owner: r.owner, Server: name, Position: pos, Config: view,
				ExistingVersion: c.ConfigVersion, ExistingState: domain.ConnAlive, OAuth: r.grantInputs(name, view, c)}
			if domain.DecideGet(in).Action == domain.ActionReuse {
				c.checkedGen.Store(gen + 1)
				r.used(c)
				return c, nil
			}
		}
	}
	return r.getSlow(ctx, name)
}

func (r *Repository) getSlow(ctx context.Context, name string) (*Connection, error) {
	if r.m.closed.Load() {
		return nil, ErrClosed
	}
	if in, ok := r.isUnknown(name); ok {
		if err := r.refuseUnknown(ctx, in); err != nil {
			return nil, err
		}
		return nil, &RefusedError{Owner: r.owner, Server: name, Rule: domain.RuleNoConfig}
	}
	r.flushUnknown(ctx) // its decisions came first
	e := r.lockEntry(name)
	if call := e.call; call != nil {
		e.mu.Unlock()
		r.m.shared.Add(1)
		return r.await(ctx, call)
	}
	now := r.m.opts.Clock()
	st, in := r.inputs(ctx, e, now)
	d := domain.DecideGet(in)
	if d.Action == domain.ActionReuse {
		c := e.conn.Load()
		e.mu.Unlock()
		r.used(c)
		return c, nil
	}
	if d.Evict != "" {
		if err := r.evict(ctx, e, e.conn.Load(), d.Evict, d.Rule, in); err != nil {
			e.mu.Unlock()
			return nil, err
		}
	}
	if d.Action == domain.ActionRefuse {
		err := r.refuse(ctx, e, in, d.Rule)
		e.mu.Unlock()
		if err != nil {
			return nil, err
		}
		return nil, &RefusedError{Owner: r.owner, Server: name, Rule: d.Rule}
	}
	if !r.m.begin() {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	call := &connectCall{done: make(chan struct{})}
	e.call = call
	e.connecting.Store(true)
	e.mu.Unlock()
	go r.connect(originOf(ctx), e, call, st, in, d.Evict)
	return r.await(ctx, call)
}

// used counts a reuse of c and refreshes its last use, reading the clock at most
// once per manager tick (so LastUsed is exact to within a tick).
func (r *Repository) used(c *Connection) {
	r.reuses.Add(1)
	if tick := r.m.tick.Load(); c.usedTick.Load() != tick {
		c.usedTick.Store(tick)
		c.touch(r.m.opts.Clock())
	}
}

func (r *Repository) await(ctx context.Context, call *connectCall) (*Connection, error) {
	select {
	case <-call.done:
		return call.conn, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// inputs reads the projection and the existing connection of e (mutex held) into the
// decision inputs. A connection whose upstream died unnoticed is recorded as lost
// first, so the inputs say dead.
func (r *Repository) inputs(ctx context.Context, e *entry, now time.Time) (domain.ServerState, domain.DecisionInputs) {
	st, view, pos := r.m.servers.Effective(r.owner, e.name)
	in := domain.DecisionInputs{Owner: r.owner, Server: e.name, Position: pos, Config: view,
		ExistingState: domain.ConnNone, BreakerOpen: e.br.isOpen(now), StaleNode: r.m.opts.StaleNode != nil && r.m.opts.StaleNode()}
	if c := e.conn.Load(); c != nil {
		if !c.alive() {
			r.markLost(ctx, e, c)
		}
		in.ExistingVersion = c.ConfigVersion
		in.ExistingState = domain.ConnAlive
		if c.state.Load() != stateAlive {
			in.ExistingState = domain.ConnDead
		}
	}
	in.OAuth = r.grantInputs(e.name, view, e.conn.Load())
	return st, in
}

// grantInputs are the OAuth inputs of a decision: set for an owner's repository
// and a server that requires OAuth when the manager has grants.
func (r *Repository) grantInputs(name string, view domain.ConfigView, c *Connection) domain.GrantInputs {
	if r.owner == "" || !view.RequiresOAuth || r.m.opts.Grants == nil {
		return domain.GrantInputs{}
	}
	g := domain.GrantInputs{Checked: true, Grant: r.m.opts.Grants.GrantID(r.owner, name)}
	if c != nil {
		g.Existing = c.Grant
	}
	return g
}

// connect runs one connect attempt for call and records its outcome before releasing
// the callers waiting on it.
func (r *Repository) connect(o origin, e *entry, call *connectCall, st domain.ServerState, in domain.DecisionInputs, replaced domain.EvictReason) {
	defer r.m.end()
	opts := &r.m.opts
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(st.Config.InitTimeout())*time.Millisecond)
	start := opts.Clock()
	sess, err := opts.Dial(ctx, DialRequest{Owner: r.owner, Name: e.name, Scope: st.Scope, Config: st.Config,
		OAuth: in.OAuth.Checked})
	cancel()
	now := opts.Clock()
	dur := now.Sub(start).Milliseconds()

	bg := context.Background()
	e.mu.Lock()
	defer func() {
		e.call = nil
		e.connecting.Store(false)
		close(call.done)
		e.mu.Unlock()
	}()
	if err != nil {
		class := opts.Classify(err)
		attempt := e.br.failure(now, opts)
		msg := domain.TidyMessage(err.Error())
		if shown := domain.FailureMessageFor(r.owner, st.Scope, class, msg); shown != msg {
			msg, err = shown, errors.New(shown) // the owner's stream and answer never carry an app server's stderr
		}
		fact := domain.ConnectionOpenFailed{Inputs: in, Class: class, Message: msg, DurationMS: dur, Attempt: attempt}
		if rerr := r.record(bg, e, o, fact, string(class)); rerr != nil {
			call.err = errors.Join(&ConnectError{Server: e.name, Class: class, Err: err}, rerr)
			return
		}
		call.err = &ConnectError{Server: e.name, Class: class, Err: err}
		return
	}
	c := &Connection{ConnID: opts.NewID(), Server: e.name, Owner: r.owner, ConfigScope: st.Scope,
		ConfigVersion: in.Config.Version, Grant: in.OAuth.Grant, OpenedAt: now, sess: sess, stop: make(chan struct{})}
	c.touch(now)
	fact := domain.ConnectionOpened{Inputs: in, Replaced: replaced, ConnID: c.ConnID, DurationMS: dur}
	if pv, ok := sess.(interface{ ProtocolVersion() string }); ok {
		fact.ProtocolVersion = pv.ProtocolVersion()
	}
	if rerr := r.record(bg, e, o, fact, string(replaced)); rerr != nil {
		c.closeSession()
		call.err = rerr
		return
	}
	e.br.success()
	e.conn.Store(c)
	call.conn = c
	if r.m.closed.Load() {
		// Close ran while this connect was in flight: it does not outlive the manager.
		_ = r.evict(bg, e, c, domain.EvictShutdown, "", in)
		call.conn, call.err = nil, ErrClosed
		return
	}
	if r.m.begin() {
		go r.watch(e, c)
	}
}

// watch records the loss of c as soon as its upstream dies, without waiting for a
// request; it ends when c is evicted.
func (r *Repository) watch(e *entry, c *Connection) {
	defer r.m.end()
	select {
	case <-c.sess.Done():
	case <-c.stop:
		return
	}
	e.mu.Lock()
	r.markLost(context.Background(), e, c)
	e.mu.Unlock()
}

// markLost (e.mu held) marks c dead and records connection.lost, once.
func (r *Repository) markLost(ctx context.Context, e *entry, c *Connection) {
	if !c.state.CompareAndSwap(stateAlive, stateDead) {
		return
	}
	msg := "connection closed"
	if err := c.sess.Err(); err != nil {
		msg = err.Error()
	}
	fact := domain.ConnectionLost{Owner: r.owner, Server: e.name, ConnID: c.ConnID,
		ConfigVersion: c.ConfigVersion, Error: msg}
	if err := r.record(ctx, e, origin{actor: "system"}, fact, ""); err != nil {
		r.m.opts.Logger.Error("record connection lost", "owner", r.owner, "server", e.name, "err", err)
	}
	c.closeSession()
}

// evict (e.mu held) records the eviction of c and then closes and removes it. When the
// event cannot be recorded nothing is evicted and the error is returned.
func (r *Repository) evict(ctx context.Context, e *entry, c *Connection, reason domain.EvictReason, rule domain.Rule, in domain.DecisionInputs) error {
	if c == nil {
		return nil
	}
	fact := domain.ConnectionEvicted{Inputs: in, Reason: reason, Rule: rule, ConnID: c.ConnID}
	if err := r.record(ctx, e, originOf(ctx), fact, string(reason)); err != nil {
		return err
	}
	c.state.Store(stateClosed)
	e.conn.CompareAndSwap(c, nil)
	c.stopWatch()
	c.closeSession()
	return nil
}

// Has reports whether this repository may connect name now (the section 4 rules; the
// breaker does not count). When it may not, a leftover connection is evicted
// (disallowed or removed). It never connects. The answer for an allowed server with a
// live connection is found without allocating.
func (r *Repository) Has(ctx context.Context, name string) bool {
	ok, err := r.evictDisallowed(ctx, name)
	if err != nil {
		r.m.opts.Logger.Error("evict", "owner", r.owner, "server", name, "err", err)
	}
	return ok
}

// evictDisallowed is Has returning the error of recording an eviction.
func (r *Repository) evictDisallowed(ctx context.Context, name string) (bool, error) {
	_, view, _ := r.m.servers.Effective(r.owner, name)
	e := r.lookup(name)
	// The may-connect rules, with the owner's grant for an OAuth server.
	ok := domain.DecideHas(domain.DecisionInputs{Owner: r.owner, Server: name, Config: view,
		OAuth: r.grantInputs(name, view, nil)}).Action != domain.ActionRefuse
	if e == nil || e.conn.Load() == nil || ok || r.m.closed.Load() {
		return ok, nil
	}
	e = r.lockEntry(name)
	defer e.mu.Unlock()
	_, in := r.inputs(ctx, e, r.m.opts.Clock())
	d := domain.DecideHas(in)
	var err error
	if d.Evict != "" {
		err = r.evict(ctx, e, e.conn.Load(), d.Evict, d.Rule, in)
	}
	return d.Action != domain.ActionRefuse, err
}

// GetMany gets every named server, at most MaxConcurrentConnects at once. One failing
// server does not fail the others: it returns the connections that worked and the
// errors (as from Get) of those that did not; every name is in exactly one map.
func (r *Repository) GetMany(ctx context.Context, names []string) (map[string]*Connection, map[string]error) {
	conns := map[string]*Connection{}
	errs := map[string]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, r.m.opts.MaxConcurrentConnects)
	for _, name := range slices.Compact(slices.Sorted(slices.Values(names))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				mu.Lock()
				errs[name] = ctx.Err()
				mu.Unlock()
				return
			}
			c, err := r.Get(ctx, name)
			<-sem
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[name] = err
			} else {
				conns[name] = c
			}
		}()
	}
	wg.Wait()
	return conns, errs
}

// GetAll is GetMany over every server visible to this owner in the projection.
func (r *Repository) GetAll(ctx context.Context) (map[string]*Connection, map[string]error) {
	return r.GetMany(ctx, r.m.names(r.owner))
}

// GetLoaded returns the alive connections already open, sorted by server name. It
// never connects and does not count as use.
func (r *Repository) GetLoaded() []*Connection {
	var out []*Connection
	for _, e := range r.snapshot() {
		if c := e.conn.Load(); c != nil && c.alive() {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b *Connection) int { return cmp.Compare(a.Server, b.Server) })
	return out
}

// Count returns the number of alive connections.
func (r *Repository) Count() int {
	n := 0
	for _, e := range r.snapshot() {
		if c := e.conn.Load(); c != nil && c.alive() {
			n++
		}
	}
	return n
}

// Disconnect closes and removes the connection to name (evicted: explicit). It is not
// an error when there is none. Returns an ErrRecord error when the eviction could not
// be logged (the connection then stays).
func (r *Repository) Disconnect(ctx context.Context, name string) error {
	return r.disconnect(ctx, name, domain.EvictExplicit)
}

func (r *Repository) disconnect(ctx context.Context, name string, reason domain.EvictReason) error {
	e := r.lookup(name)
	if e == nil || e.conn.Load() == nil {
		return nil
	}
	e = r.lockEntry(name)
	defer e.mu.Unlock()
	c := e.conn.Load()
	if c == nil {
		return nil
	}
	_, in := r.inputs(ctx, e, r.m.opts.Clock())
	return r.evict(ctx, e, c, reason, "", in)
}

// DisconnectAll evicts every connection with reason (explicit, idle or shutdown), one
// server at a time, and returns the recording errors joined.
func (r *Repository) DisconnectAll(ctx context.Context, reason domain.EvictReason) error {
	var errs []error
	entries := r.snapshot()
	slices.SortFunc(entries, func(a, b *entry) int { return cmp.Compare(a.name, b.name) })
	for _, e := range entries {
		errs = append(errs, r.disconnect(ctx, e.name, reason))
	}
	return errors.Join(errs...)
}

// waitConnects waits for the connects in flight to finish (Close), or for ctx.
func (r *Repository) waitConnects(ctx context.Context) {
	for _, e := range r.snapshot() {
		e.mu.Lock()
		call := e.call
		e.mu.Unlock()
		if call != nil {
			select {
			case <-call.done:
			case <-ctx.Done():
				return
			}
		}
	}
}
