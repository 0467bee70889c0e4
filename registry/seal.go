package registry

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/mcpes/mcpes/domain"
)

// seal replaces the header and env values of cfg by deterministic secret references
// and stores every reference→value pair before it returns, so that the event that
// carries the references is never appended ahead of its secrets. Equal values give
// equal references (HMAC under the store key), so an unchanged config seals to the
// same bytes and writes no event.
func (s *Service) seal(ctx context.Context, cfg domain.ServerConfig) (domain.ServerConfig, error) {
	// Nothing to seal: no key needed (a ref function that names nothing finds out).
	if _, any := domain.SealSecrets(cfg, func(string) string { return "" }); len(any) == 0 {
		return cfg.Clone(), nil
	}
	key, err := s.key(ctx)
	if err != nil {
		return domain.ServerConfig{}, err
	}
	sealed, secrets := domain.SealSecrets(cfg, func(v string) string { return domain.SecretRef(key, v) })
	for _, ref := range slices.Sorted(maps.Keys(secrets)) {
		if err := s.store.PutSecret(ctx, ref, []byte(secrets[ref])); err != nil {
			return domain.ServerConfig{}, fmt.Errorf("store secret: %w", err)
		}
	}
	return sealed, nil
}

// foreignRefs lists, as problems, the header and env values of a user-scope config that
// already are secret references. SealSecrets keeps references as they are, and a
// dialer resolves any reference it is given, so an owner who could name a reference
// could make mcpes send someone else's secret to a server of their choosing. The one
// reference an owner may send back is the one their own server already holds under
// the same key.
func foreignRefs(name string, cfg domain.ServerConfig, current domain.ServerState) []domain.Problem {
	var out []domain.Problem
	check := func(field string, m, cur map[string]string) {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			v := m[k]
			if domain.IsSecretRef(v) && (!current.Exists || cur[k] != v) {
				out = append(out, domain.Problem{Server: name, Field: field + "." + k,
					Reason: "secret references are not accepted in user-scope configs; send the value"})
			}
		}
	}
	check("headers", cfg.Headers, current.Config.Headers)
	check("env", cfg.Env, current.Config.Env)
	check("requestHeaders", cfg.RequestHeaders, current.Config.RequestHeaders)
	check("oauth_headers", cfg.OAuthHeaders, current.Config.OAuthHeaders)
	one := func(field, v, cur string) {
		if domain.IsSecretRef(v) && (!current.Exists || cur != v) {
			out = append(out, domain.Problem{Server: name, Field: field,
				Reason: "secret references are not accepted in user-scope configs; send the value"})
		}
	}
	if cfg.APIKey != nil {
		cur := ""
		if current.Config.APIKey != nil {
			cur = current.Config.APIKey.Key
		}
		one("apiKey.key", cfg.APIKey.Key, cur)
	}
	if cfg.OAuth != nil {
		cur := ""
		if current.Config.OAuth != nil {
			cur = current.Config.OAuth.ClientSecret
		}
		one("oauth.client_secret", cfg.OAuth.ClientSecret, cur)
	}
	return out
}
