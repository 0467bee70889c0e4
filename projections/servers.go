package projections

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
)

// numShards splits the server map so that readers of different servers do not share
// a lock word. A power of two.
const numShards = 64

// key identifies one server stream: the app scope (user == false) or one owner's scope.
// It is built without allocating from an owner and a name.
type key struct {
	user  bool
	owner string
	name  string
}

// userKey identifies a private server in a shard's user table.
type userKey struct{ owner, name string }

func (sh *shard) get(k key) (slot, bool) {
	if k.user {
		sl, ok := sh.user[userKey{k.owner, k.name}]
		return sl, ok
	}
	sl, ok := sh.app[k.name]
	return sl, ok
}

func (sh *shard) set(k key, sl slot) {
	if k.user {
		sh.user[userKey{k.owner, k.name}] = sl
		return
	}
	sh.app[k.name] = sl
}

func keyOf(scope domain.Scope, name string) key {
	if scope.IsApp() {
		return key{name: name}
	}
	return key{user: true, owner: scope.Owner(), name: name}
}

func (k key) scope() domain.Scope {
	if !k.user {
		return domain.AppScope
	}
	return domain.UserScope(k.owner)
}

// entry is one server's folded state; entries are immutable once stored (a fold
// stores a new one), so a reader may copy one after the lookup.
type entry struct {
	state domain.ServerState
}

// slot is a map value: the policy view of the state inline, so View reads one map
// slot and nothing else, and the full state behind a pointer.
type slot struct {
	view domain.ConfigView
	e    *entry
	// required lists the per-owner values the config needs (RequiredUserVars).
	required []string
}

func slotOf(st domain.ServerState) slot {
	sl := slot{view: st.View(), e: &entry{state: st}}
	if sl.view.CustomUserVars {
		sl.required = domain.RequiredUserVars(st.Config)
	}
	return sl
}

type shard struct {
	mu sync.RWMutex
	// app holds the app-scope servers by name and user the private ones by (owner,
	// name): the app table stays small and cache-resident, so Effective does at most
	// one lookup in the large table.
	app  map[string]slot
	user map[userKey]slot
	// vars holds the per-owner value names by (owner, server name).
	vars map[userKey]nameSet
	// owned holds per-owner inspections of on-demand servers by (owner, name).
	owned map[userKey]OwnerInspection
	_     [32]byte // keep neighbouring shards' lock words on separate cache lines
}

// Servers is the server-config projection: the folded state of every server stream,
// the effective config per (owner, name) and the tool catalogues. Reads are in memory
// and safe for concurrent use; Apply is the store.Observer that keeps it current.
type Servers struct {
	follower
	shards [numShards]shard

	idxMu sync.RWMutex
	// names lists the existing servers per scope key (name empty).
	names map[key]map[string]struct{}

	hookMu sync.RWMutex
	hooks  []func(scope domain.Scope, name string)

	profileMu sync.RWMutex
	profiles  map[string]nameSet // owner -> profile attribute names
}

// NewServers returns an empty projection at position 0.
func NewServers() *Servers {
	s := &Servers{names: map[key]map[string]struct{}{}, profiles: map[string]nameSet{}}
	for i := range s.shards {
		s.shards[i].app = map[string]slot{}
		s.shards[i].user = map[userKey]slot{}
		s.shards[i].vars = map[userKey]nameSet{}
	}
	s.fold = s.foldEvent
	return s
}

func (s *Servers) shardFor(name string) *shard {
	// FNV-1a over the name: every scope's server of one name lives in one shard, so
	// Effective reads the app and private states under one lock.
	h := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		h ^= uint32(name[i])
		h *= 16777619
	}
	return &s.shards[h&(numShards-1)]
}

// Apply folds committed events into the projection; it has the signature of a
// store.Observer. Events at or below Position are skipped (so overlapping deliveries
// are harmless); events beyond a gap are held until the gap is read from the store
// the projection was loaded from.
func (s *Servers) Apply(evs []events.Envelope) { s.applyEnvelopes(evs) }

// ApplySparse folds events of a chosen subset of the log in position order, as
// decision replay feeds it (it skips, by type, the events that change no server):
// a position that skips others is not a gap to wait for.
func (s *Servers) ApplySparse(evs []events.Envelope) { s.applySparse(evs) }

// OnChange registers fn to be called after every event that changed a server, with
// its scope and name, in log order. fn runs on the applying goroutine (the store's
// commit path): it must be fast and must not append to the store.
func (s *Servers) OnChange(fn func(scope domain.Scope, name string)) {
	s.hookMu.Lock()
	s.hooks = append(slices.Clip(s.hooks), fn)
	s.hookMu.Unlock()
}

// parseServerSubject splits "server/<scope>/<name>".
func parseServerSubject(subject string) (domain.Scope, string, bool) {
	rest, ok := strings.CutPrefix(subject, "server/")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 || i == len(rest)-1 {
		return "", "", false
	}
	return domain.Scope(rest[:i]), rest[i+1:], true
}

func (s *Servers) foldEvent(ev *rawEvent) error {
	switch events.Area(ev.typ) {
	case "server":
	case "owner":
		return s.foldOwner(ev)
	default:
		return nil
	}
	scope, name, ok := parseServerSubject(ev.subject)
	if !ok {
		return fmt.Errorf("%w: server event with subject %q", events.ErrCorrupt, ev.subject)
	}
	fact, err := events.Decode(events.Envelope{Type: ev.typ, Data: ev.data, Sequence: events.Sequence(ev.pos)})
	if errors.Is(err, events.ErrUnknownType) {
		return nil // a newer writer's type: it changes nothing this version knows
	}
	if err != nil {
		return err
	}
	k := keyOf(scope, name)
	sh := s.shardFor(name)
	sh.mu.Lock()
	var st domain.ServerState
	if old, ok := sh.get(k); ok {
		st = old.e.state
	}
	if st.Scope == "" {
		st.Scope, st.Name = scope, name
	}
	existed := st.Exists
	st = st.Apply(fact, ev.pos, ev.time())
	sh.set(k, slotOf(st))
	s.pos.Store(ev.pos)
	sh.mu.Unlock()

	if existed != st.Exists {
		s.index(k, st.Exists)
	}
	s.hookMu.RLock()
	hooks := s.hooks
	s.hookMu.RUnlock()
	for _, fn := range hooks {
		fn(scope, name)
	}
	return nil
}

func (s *Servers) index(k key, exists bool) {
	sk := key{user: k.user, owner: k.owner}
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	set := s.names[sk]
	if exists {
		if set == nil {
			set = map[string]struct{}{}
			s.names[sk] = set
		}
		set[k.name] = struct{}{}
		return
	}
	delete(set, k.name)
	if len(set) == 0 {
		delete(s.names, sk)
	}
}

// State returns the folded state of one server stream, and false when the stream has
// never had an event. A removed server is returned with Exists false. The returned
// state shares its maps and catalogue with the projection: treat it as read-only.
func (s *Servers) State(scope domain.Scope, name string) (domain.ServerState, bool) {
	sh := s.shardFor(name)
	sh.mu.RLock()
	sl, ok := sh.get(keyOf(scope, name))
	sh.mu.RUnlock()
	if !ok {
		return domain.ServerState{}, false
	}
	return sl.e.state, true
}

// Effective returns the effective config of (owner, name) — the app server of that
// name if there is one, else the owner's private one ("" = the shared repository,
// which sees app servers only) — with its policy view and the log position the two
// are consistent with. It is the connection repository's hot path: no allocation, one
// read lock. A missing server gives a zero state and a view with Found false.
func (s *Servers) Effective(owner, name string) (domain.ServerState, domain.ConfigView, uint64) {
	sh := s.shardFor(name)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	app, priv, pos := s.lookupLocked(sh, owner, name)
	switch {
	case app.view.Found:
		v := app.view
		v.Shadowed = priv.view.Found
		return app.e.state, s.withUserVars(sh, owner, name, v, app.required), pos
	case priv.view.Found:
		return priv.e.state, s.withUserVars(sh, owner, name, priv.view, priv.required), pos
	}
	return domain.ServerState{}, domain.ConfigView{}, pos
}

// View is Effective without the state: the policy inputs of (owner, name) and the
// position they are consistent with. It reads one or two map slots (three for a
// server that needs per-owner values) and nothing else.
func (s *Servers) View(owner, name string) (domain.ConfigView, uint64) {
	sh := s.shardFor(name)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	app, priv, pos := s.lookupLocked(sh, owner, name)
	switch {
	case app.view.Found:
		v := app.view
		v.Shadowed = priv.view.Found
		return s.withUserVars(sh, owner, name, v, app.required), pos
	case priv.view.Found:
		return s.withUserVars(sh, owner, name, priv.view, priv.required), pos
	}
	return domain.ConfigView{}, pos
}

func (s *Servers) lookupLocked(sh *shard, owner, name string) (app, priv slot, pos uint64) {
	app = sh.app[name]
	if owner != "" {
		priv = sh.user[userKey{owner, name}]
	}
	return app, priv, s.pos.Load()
}

// Tools returns the tool catalogue of the last successful inspection of a server
// (nil before the first). The slice is shared: treat it as read-only.
func (s *Servers) Tools(scope domain.Scope, name string) []domain.Tool {
	st, ok := s.State(scope, name)
	if !ok || st.LastSuccess == nil {
		return nil
	}
	return st.LastSuccess.Tools
}

// Entry is one line of List: a server visible to an owner, or a private server the
// app server of the same name hides (Shadowed).
type Entry struct {
	Scope            domain.Scope        `json:"scope"`
	Name             string              `json:"name"`
	Version          uint64              `json:"version"`
	UpdatedAt        time.Time           `json:"updatedAt"`
	Inspected        bool                `json:"inspected"`
	InspectionFailed bool                `json:"inspectionFailed"`
	RequiresOAuth    bool                `json:"requiresOAuth"`
	FailureClass     domain.FailureClass `json:"failureClass,omitempty"`
	FailureMessage   string              `json:"failureMessage,omitempty"`
	ToolCount        int                 `json:"toolCount"`
	// Shadowed marks a private server hidden by an app server of the same name.
	Shadowed bool `json:"shadowed,omitempty"`
	// View is the policy input the server gives this owner (zero for shadowed ones).
	View domain.ConfigView `json:"view"`
}

// List returns the servers visible to owner, sorted by name: every app server, the
// owner's private servers an app server does not hide, and, flagged Shadowed, the
// private ones it does hide (after the app one of the same name). Owner "" lists app
// servers only.
func (s *Servers) List(owner string) []Entry {
	s.idxMu.RLock()
	appNames := setKeys(s.names[key{}])
	var privNames []string
	if owner != "" {
		privNames = setKeys(s.names[key{user: true, owner: owner}])
	}
	s.idxMu.RUnlock()

	out := make([]Entry, 0, len(appNames)+len(privNames))
	isApp := map[string]bool{}
	for _, n := range appNames {
		st, view, _ := s.Effective(owner, n)
		if st.Exists && st.Scope.IsApp() {
			out = append(out, entryOf(st, view, false))
			isApp[n] = true
		}
	}
	for _, n := range privNames {
		st, ok := s.State(domain.UserScope(owner), n)
		if !ok || !st.Exists {
			continue
		}
		if isApp[n] {
			out = append(out, entryOf(st, domain.ConfigView{}, true))
			continue
		}
		out = append(out, entryOf(st, st.View(), false))
	}
	slices.SortStableFunc(out, func(a, b Entry) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		switch {
		case a.Shadowed == b.Shadowed:
			return 0
		case b.Shadowed:
			return -1
		}
		return 1
	})
	return out
}

func entryOf(st domain.ServerState, view domain.ConfigView, shadowed bool) Entry {
	e := Entry{Scope: st.Scope, Name: st.Name, Version: st.Version, UpdatedAt: st.UpdatedAt,
		Inspected: st.Inspected, InspectionFailed: st.InspectionFailed, RequiresOAuth: st.RequiresOAuth(),
		FailureClass: st.FailureClass, FailureMessage: st.FailureMessage, Shadowed: shadowed, View: view}
	if st.LastSuccess != nil {
		e.ToolCount = len(st.LastSuccess.Tools)
	}
	return e
}

func setKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Owners returns every owner that has at least one private server, sorted.
func (s *Servers) Owners() []string {
	s.idxMu.RLock()
	defer s.idxMu.RUnlock()
	var out []string
	for k := range s.names {
		if k.user {
			out = append(out, k.owner)
		}
	}
	slices.Sort(out)
	return out
}

// States returns every server stream's state (removed ones included), sorted by scope
// then name: the projection's full content, for snapshots and golden files.
func (s *Servers) States() []domain.ServerState {
	var out []domain.ServerState
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for _, sl := range sh.app {
			out = append(out, sl.e.state)
		}
		for _, sl := range sh.user {
			out = append(out, sl.e.state)
		}
		sh.mu.RUnlock()
	}
	slices.SortFunc(out, func(a, b domain.ServerState) int {
		if c := strings.Compare(string(a.Scope), string(b.Scope)); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}
