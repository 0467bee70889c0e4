package projections

import (
	"errors"
	"maps"
	"slices"
	"strings"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
)

// Per-owner values (names only: the values are secrets in the store). An owner's
// view of a server that needs per-owner values names the ones still missing, and
// its Version moves with the owner's values, so setting or clearing one makes
// that owner's open connection stale (and no one else's).

// nameSet is the set of names an owner set, and the log position of the last
// change. Stored values are replaced, never changed in place.
type nameSet struct {
	names map[string]bool
	pos   uint64
}

func (n nameSet) apply(set, cleared []string, pos uint64) nameSet {
	out := nameSet{names: maps.Clone(n.names), pos: pos}
	if out.names == nil {
		out.names = map[string]bool{}
	}
	for _, k := range set {
		out.names[k] = true
	}
	for _, k := range cleared {
		delete(out.names, k)
	}
	return out
}

// foldOwner folds an owner-area event (vars or profile changed).
func (s *Servers) foldOwner(ev *rawEvent) error {
	fact, err := events.Decode(events.Envelope{Type: ev.typ, Data: ev.data, Sequence: events.Sequence(ev.pos)})
	if errors.Is(err, events.ErrUnknownType) {
		return nil
	}
	if err != nil {
		return err
	}
	var touched []string
	switch f := fact.(type) {
	case domain.UserVarsChanged:
		sh := s.shardFor(f.Server)
		sh.mu.Lock()
		k := userKey{f.Owner, f.Server}
		sh.vars[k] = sh.vars[k].apply(f.Set, f.Cleared, ev.pos)
		s.pos.Store(ev.pos)
		sh.mu.Unlock()
		touched = []string{f.Server}
	case domain.OwnerInspected:
		s.setOwnerInspection(f.Owner, f.Inspection.Name, OwnerInspection{Inspected: &f.Inspection, Pos: ev.pos})
		touched = []string{f.Inspection.Name}
	case domain.OwnerInspectionFailed:
		failure := f.Failure
		s.setOwnerInspection(f.Owner, f.Failure.Name, OwnerInspection{Failed: &failure, Pos: ev.pos})
		touched = []string{f.Failure.Name}
	case domain.OwnerProfileChanged:
		s.profileMu.Lock()
		s.profiles[f.Owner] = s.profiles[f.Owner].apply(f.Set, f.Cleared, ev.pos)
		s.pos.Store(ev.pos)
		s.profileMu.Unlock()
		touched = s.namesVisibleTo(f.Owner)
	default:
		return nil
	}
	s.hookMu.RLock()
	hooks := s.hooks
	s.hookMu.RUnlock()
	for _, name := range touched {
		for _, fn := range hooks {
			fn(domain.AppScope, name)
		}
	}
	return nil
}

// namesVisibleTo lists the app servers and owner's private servers.
func (s *Servers) namesVisibleTo(owner string) []string {
	s.idxMu.RLock()
	defer s.idxMu.RUnlock()
	names := slices.Collect(maps.Keys(s.names[key{}]))
	names = append(names, slices.Collect(maps.Keys(s.names[key{user: true, owner: owner}]))...)
	slices.Sort(names)
	return slices.Compact(names)
}

// withUserVars completes an owner's view of a server that needs per-owner values:
// the missing names, and a Version that is the latest of the config's and the
// owner's values'. Called with sh.mu read-locked; allocates only when a value is
// missing.
func (s *Servers) withUserVars(sh *shard, owner, name string, v domain.ConfigView, required []string) domain.ConfigView {
	if owner == "" || !v.CustomUserVars {
		return v
	}
	vars := sh.vars[userKey{owner, name}]
	var prof nameSet
	for _, r := range required {
		if strings.HasPrefix(r, domain.UserPlaceholderPrefix) {
			s.profileMu.RLock()
			prof = s.profiles[owner]
			s.profileMu.RUnlock()
			break
		}
	}
	v.MissingUserVars = strings.Join(domain.MissingUserVars(required, vars.names, prof.names), ", ")
	v.Version = max(v.Version, vars.pos, prof.pos)
	return v
}

// UserVarsSet returns the names owner has set for server (sorted).
func (s *Servers) UserVarsSet(owner, server string) []string {
	sh := s.shardFor(server)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return slices.Sorted(maps.Keys(sh.vars[userKey{owner, server}].names))
}

// ProfileSet returns the profile attribute names set for owner (sorted).
func (s *Servers) ProfileSet(owner string) []string {
	s.profileMu.RLock()
	defer s.profileMu.RUnlock()
	return slices.Sorted(maps.Keys(s.profiles[owner].names))
}

// ownerNames is one nameSet in a snapshot (Server empty for a profile).
type ownerNames struct {
	Owner  string   `json:"owner"`
	Server string   `json:"server,omitempty"`
	Names  []string `json:"names"`
	Pos    uint64   `json:"pos"`
}

// ownerNames lists the per-owner value and profile names, sorted, for a snapshot.
func (s *Servers) ownerNames() (vars, profiles []ownerNames) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for k, n := range sh.vars {
			vars = append(vars, ownerNames{Owner: k.owner, Server: k.name, Names: slices.Sorted(maps.Keys(n.names)), Pos: n.pos})
		}
		sh.mu.RUnlock()
	}
	slices.SortFunc(vars, func(a, b ownerNames) int {
		return strings.Compare(a.Owner+"\x00"+a.Server, b.Owner+"\x00"+b.Server)
	})
	s.profileMu.RLock()
	for o, n := range s.profiles {
		profiles = append(profiles, ownerNames{Owner: o, Names: slices.Sorted(maps.Keys(n.names)), Pos: n.pos})
	}
	s.profileMu.RUnlock()
	slices.SortFunc(profiles, func(a, b ownerNames) int { return strings.Compare(a.Owner, b.Owner) })
	return vars, profiles
}

func (s *Servers) restoreOwnerNames(vars, profiles []ownerNames) {
	for _, v := range vars {
		s.shardFor(v.Server).vars[userKey{v.Owner, v.Server}] = nameSet{}.apply(v.Names, nil, v.Pos)
	}
	for _, p := range profiles {
		s.profiles[p.Owner] = nameSet{}.apply(p.Names, nil, p.Pos)
	}
}

// OwnerInspection is the last inspection of a server for one owner (one of
// Inspected and Failed is set). Its ConfigVersion says which config it read.
type OwnerInspection struct {
	Inspected *domain.ServerInspected        `json:"inspected,omitempty"`
	Failed    *domain.ServerInspectionFailed `json:"failed,omitempty"`
	Pos       uint64                         `json:"pos"`
}

// ConfigVersion returns the config version the inspection read.
func (o OwnerInspection) ConfigVersion() uint64 {
	if o.Inspected != nil {
		return o.Inspected.ConfigVersion
	}
	if o.Failed != nil {
		return o.Failed.ConfigVersion
	}
	return 0
}

func (s *Servers) setOwnerInspection(owner, server string, oi OwnerInspection) {
	sh := s.shardFor(server)
	sh.mu.Lock()
	if sh.owned == nil {
		sh.owned = map[userKey]OwnerInspection{}
	}
	sh.owned[userKey{owner, server}] = oi
	sh.mu.Unlock()
}

// OwnerInspection returns owner's last inspection of server, and false when there
// is none. The gateway offers an on-demand server's tools to an owner from it
// (when its ConfigVersion is the server's current Version).
func (s *Servers) OwnerInspection(owner, server string) (OwnerInspection, bool) {
	sh := s.shardFor(server)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	oi, ok := sh.owned[userKey{owner, server}]
	return oi, ok
}

// ownedInspection is one per-owner inspection in a snapshot.
type ownedInspection struct {
	Owner      string          `json:"owner"`
	Server     string          `json:"server"`
	Inspection OwnerInspection `json:"inspection"`
}

func (s *Servers) ownedInspections() []ownedInspection {
	var out []ownedInspection
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for k, oi := range sh.owned {
			out = append(out, ownedInspection{Owner: k.owner, Server: k.name, Inspection: oi})
		}
		sh.mu.RUnlock()
	}
	slices.SortFunc(out, func(a, b ownedInspection) int {
		return strings.Compare(a.Owner+"\x00"+a.Server, b.Owner+"\x00"+b.Server)
	})
	return out
}

// Catalogue returns the inspection whose tools owner's /mcp offers for the server
// (scope, name): for an on-demand server (domain.OnDemand) and an owner, that
// owner's own successful inspection of the server's current config version; else
// the server's last successful inspection. Nil when there is none (an on-demand
// server has none for an owner until that owner's first connect inspects it).
func (s *Servers) Catalogue(owner string, scope domain.Scope, name string) *domain.ServerInspected {
	st, ok := s.State(scope, name)
	if !ok || !st.Exists {
		return nil
	}
	if owner == "" || !domain.OnDemand(st.Config) {
		return st.LastSuccess
	}
	oi, ok := s.OwnerInspection(owner, name)
	if !ok || oi.Inspected == nil || oi.Inspected.ConfigVersion != st.Version {
		return nil
	}
	return oi.Inspected
}
