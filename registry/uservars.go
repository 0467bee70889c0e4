package registry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// Per-owner values: an owner's values for a server's customUserVars (and a
// source: user apiKey, under domain.APIKeyVar), and the owner profile attributes
// behind {{LIBRECHAT_USER_<ATTR>}}. Values are secrets: stored through the store's
// secret interface under references fixed per (owner, server, name), never in an
// event or a response; the events carry the names only.

// UserVar is one per-owner variable of a server, as listed to its owner.
type UserVar struct {
	Name        string `json:"name"`
	Title       string `json:"title,omitempty"`
	Description string `json:"description,omitempty"`
	Sensitive   bool   `json:"sensitive"`
	Set         bool   `json:"set"`
}

// effective returns the config owner sees under name, or a *domain.ServerError
// wrapping domain.ErrServerNotFound.
func (s *Service) effective(owner, name string) (domain.ServerConfig, error) {
	if st := s.state(domain.AppScope, name); st.Exists {
		return st.Config, nil
	}
	if st := s.state(domain.UserScope(owner), name); st.Exists {
		return st.Config, nil
	}
	return domain.ServerConfig{}, &domain.ServerError{Name: name, Err: domain.ErrServerNotFound}
}

// UserVars lists the variables owner may set for server and whether each is set.
// Returns a *domain.ServerError (ErrServerNotFound) for a server owner cannot see.
func (s *Service) UserVars(owner, server string, set []string) ([]UserVar, error) {
	if err := domain.ValidateOwner(owner); err != nil {
		return nil, err
	}
	cfg, err := s.effective(owner, server)
	if err != nil {
		return nil, err
	}
	var out []UserVar
	for _, n := range domain.UserVarNames(cfg) {
		cv, declared := cfg.CustomUserVars[n]
		v := UserVar{Name: n, Title: cv.Title, Description: cv.Description, Sensitive: true, Set: slices.Contains(set, n)}
		if declared && cv.Sensitive != nil {
			v.Sensitive = *cv.Sensitive
		}
		if n == domain.APIKeyVar && !declared {
			v.Title = "API key"
		}
		out = append(out, v)
	}
	return out, nil
}

// SetUserVars stores values (name → value) as owner's for server and records
// their names. Returns a *domain.ValidationError for names the server does not
// declare or unsafe values, a *domain.ServerError for an unknown server.
func (s *Service) SetUserVars(ctx context.Context, actor, owner, server string, values map[string]string) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	if err := domain.ValidateOwner(owner); err != nil {
		return err
	}
	cfg, err := s.effective(owner, server)
	if err != nil {
		return err
	}
	if err := domain.ValidateUserValues(server, cfg, values); err != nil {
		return err
	}
	key, err := s.key(ctx)
	if err != nil {
		return err
	}
	names := slices.Sorted(maps.Keys(values))
	for _, n := range names {
		if err := s.store.PutSecret(ctx, domain.UserVarRef(key, owner, server, n), []byte(values[n])); err != nil {
			return fmt.Errorf("store value: %w", err)
		}
	}
	return s.appendOwner(ctx, actor, domain.UserVarsStream(owner, server), domain.UserVarsChanged{Owner: owner, Server: server, Set: names})
}

// ClearUserVars clears owner's values of names for server (every set one when names
// is empty) and records it. Clearing is recorded even for a server since removed.
func (s *Service) ClearUserVars(ctx context.Context, actor, owner, server string, names, set []string) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	if err := domain.ValidateOwner(owner); err != nil {
		return err
	}
	if len(names) == 0 {
		names = set
	}
	if len(names) == 0 {
		return nil
	}
	key, err := s.key(ctx)
	if err != nil {
		return err
	}
	names = slices.Sorted(slices.Values(names))
	for _, n := range names {
		// The store has no delete: an empty value is "not set" to the dialer.
		if err := s.store.PutSecret(ctx, domain.UserVarRef(key, owner, server, n), nil); err != nil {
			return fmt.Errorf("clear value: %w", err)
		}
	}
	return s.appendOwner(ctx, actor, domain.UserVarsStream(owner, server), domain.UserVarsChanged{Owner: owner, Server: server, Cleared: names})
}

// SetProfile stores owner profile attributes (ATTR → value, ATTR as in
// {{LIBRECHAT_USER_<ATTR>}}: EMAIL, NAME, USERNAME, ...) and records their names.
// "ID" is the owner itself and cannot be set.
func (s *Service) SetProfile(ctx context.Context, actor, owner string, attrs map[string]string) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	if err := domain.ValidateOwner(owner); err != nil {
		return err
	}
	if err := validateProfile(attrs); err != nil {
		return err
	}
	key, err := s.key(ctx)
	if err != nil {
		return err
	}
	names := slices.Sorted(maps.Keys(attrs))
	for _, n := range names {
		if err := s.store.PutSecret(ctx, domain.ProfileRef(key, owner, n), []byte(attrs[n])); err != nil {
			return fmt.Errorf("store profile: %w", err)
		}
	}
	return s.appendOwner(ctx, actor, domain.OwnerProfileStream(owner), domain.OwnerProfileChanged{Owner: owner, Set: names})
}

func validateProfile(attrs map[string]string) error {
	var probs []domain.Problem
	if len(attrs) == 0 || len(attrs) > domain.MaxProfileAttrs {
		probs = append(probs, domain.Problem{Reason: fmt.Sprintf("want 1 to %d attributes", domain.MaxProfileAttrs)})
	}
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		v := attrs[k]
		switch {
		case k == "ID" || k == "" || strings.ToUpper(k) != k || strings.ContainsAny(k, "{} \t\r\n"):
			probs = append(probs, domain.Problem{Field: k, Reason: "attribute names are upper case (EMAIL, NAME, ...); ID is the owner itself"})
		case len(v) > domain.MaxUserVarValueLen || strings.ContainsAny(v, "\r\n\x00"):
			probs = append(probs, domain.Problem{Field: k, Reason: "value too long or contains CR, LF or NUL"})
		}
	}
	if len(probs) > 0 {
		return &domain.ValidationError{Problems: probs}
	}
	return nil
}

// UserValues returns owner's set values for server (only the names in set) and
// owner's profile attributes (only those in profile), for the dialer. Values never
// leave through any other path.
func (s *Service) UserValues(ctx context.Context, owner, server string, set, profile []string) (map[string]string, map[string]string, error) {
	key, err := s.key(ctx)
	if err != nil {
		return nil, nil, err
	}
	read := func(ref string) (string, error) {
		b, err := s.store.Secret(ctx, ref)
		if errors.Is(err, store.ErrNotFound) {
			return "", nil
		}
		return string(b), err
	}
	values, attrs := map[string]string{}, map[string]string{}
	for _, n := range set {
		v, err := read(domain.UserVarRef(key, owner, server, n))
		if err != nil {
			return nil, nil, fmt.Errorf("read value %s: %w", n, err)
		}
		values[n] = v
	}
	for _, n := range profile {
		v, err := read(domain.ProfileRef(key, owner, n))
		if err != nil {
			return nil, nil, fmt.Errorf("read profile %s: %w", n, err)
		}
		attrs[n] = v
	}
	return values, attrs, nil
}

// appendOwner appends one owner-area fact (no concurrency check: set and clear
// commute per name, and the projection folds them in log order).
func (s *Service) appendOwner(ctx context.Context, actor, stream string, fact any) error {
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("event id: %w", err)
	}
	env, err := events.New(fact, events.Meta{ID: id.String(), Source: "mcpes://" + s.opts.NodeID,
		Time: s.opts.Now(), Actor: actor})
	if err != nil {
		return err
	}
	if _, err := s.store.Append(ctx, stream, store.AnyVersion, env); err != nil {
		return fmt.Errorf("append %s: %w", stream, err)
	}
	return nil
}

// SetNames says which per-owner names are set (*projections.Servers implements it).
type SetNames interface {
	UserVarsSet(owner, server string) []string
	ProfileSet(owner string) []string
}

// OwnerValues returns the function the connection manager substitutes per-owner
// values with (connections.Options.UserValues): the values names says are set.
func (s *Service) OwnerValues(names SetNames) func(ctx context.Context, owner, server string) (map[string]string, map[string]string, error) {
	return func(ctx context.Context, owner, server string) (map[string]string, map[string]string, error) {
		return s.UserValues(ctx, owner, server, names.UserVarsSet(owner, server), names.ProfileSet(owner))
	}
}
