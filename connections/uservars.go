package connections

import (
	"context"
	"fmt"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/upstream"
)

// UserValuesFunc returns owner's values for server's per-owner variables (name →
// value) and owner's profile attributes (ATTR → value, for
// {{LIBRECHAT_USER_<ATTR>}}). Values are secrets: they go into the dialled config
// and nowhere else.
type UserValuesFunc func(ctx context.Context, owner, server string) (values, profile map[string]string, err error)

// WithUserValues returns a DialFunc that, for an owner's dial of a config that
// needs per-owner values, substitutes them (domain.SubstituteUserVars) before
// calling dial. A value that is still missing (cleared between the decision and
// the dial) fails the dial with an error wrapping upstream.ErrConfig and
// domain.ErrUserVarsMissing that names it: a placeholder is never sent as is.
func WithUserValues(dial DialFunc, values UserValuesFunc) DialFunc {
	return func(ctx context.Context, req DialRequest) (Session, error) {
		if req.Owner == "" || !domain.NeedsUserValues(req.Config) {
			return dial(ctx, req)
		}
		vals, prof, err := values(ctx, req.Owner, req.Name)
		if err != nil {
			return nil, fmt.Errorf("%w: per-owner values of %s: %w", upstream.ErrConfig, req.Name, err)
		}
		cfg, err := domain.SubstituteUserVars(req.Config, req.Owner, vals, prof)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", upstream.ErrConfig, err)
		}
		req.Config = cfg
		return dial(upstream.WithSecretValues(ctx, sensitiveValues(req.Config, vals)...), req)
	}
}

// WithOwnerInspection returns a DialFunc that, after an owner's successful dial of
// an on-demand server (domain.OnDemand: never inspected at startup), calls
// inspect(owner, server) on its own goroutine: the lazy inspection that gives the
// owner a catalogue of the server. inspect is expected to skip a config version it
// already inspected for that owner.
func WithOwnerInspection(dial DialFunc, inspect func(owner, server string)) DialFunc {
	return func(ctx context.Context, req DialRequest) (Session, error) {
		sess, err := dial(ctx, req)
		if err == nil && req.Owner != "" && domain.OnDemand(req.Config) {
			go inspect(req.Owner, req.Name)
		}
		return sess, err
	}
}

// sensitiveValues returns the values of the variables marked sensitive (the
// default) and the user API key: they are redacted from every message of the dial.
func sensitiveValues(cfg domain.ServerConfig, vals map[string]string) []string {
	var out []string
	for name, v := range vals {
		cv, declared := cfg.CustomUserVars[name]
		if !declared || cv.Sensitive == nil || *cv.Sensitive {
			out = append(out, v)
		}
	}
	return out
}
