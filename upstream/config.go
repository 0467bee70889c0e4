package upstream

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/mcpes/mcpes/domain"
)

// resolved is a config with its secret references and placeholders replaced by
// values, plus the values that must never appear in a message.
type resolved struct {
	url     string
	args    []string
	env     []string // KEY=VALUE, sorted by key
	headers map[string]string
	secrets []string
}

// resolveConfig turns cfg into values. First, secret references in env and header
// values come from opts.Secrets; then, for the app scope only, ${VAR} placeholders
// in url, header and env values (including inside a resolved secret, such as
// "Bearer ${TOKEN}") come from opts.Env via domain.ExpandVars. User-scope values
// are taken literally. Errors wrap ErrConfig and name the field or variable, never
// a value.
func resolveConfig(cfg domain.ServerConfig, opts Options) (resolved, error) {
	var r resolved
	cfg = cfg.Clone()
	for _, m := range []struct {
		field string
		vals  map[string]string
	}{{"env", cfg.Env}, {"headers", cfg.Headers}} {
		for _, k := range slices.Sorted(maps.Keys(m.vals)) {
			v := m.vals[k]
			if !domain.IsSecretRef(v) {
				continue
			}
			if opts.Secrets == nil {
				return r, fmt.Errorf("%w: %s.%s: secret reference but no secret store", ErrConfig, m.field, k)
			}
			s, err := opts.Secrets(v)
			if err != nil {
				return r, fmt.Errorf("%w: %s.%s: resolve %s: %v", ErrConfig, m.field, k, v, err)
			}
			r.secrets = append(r.secrets, s)
			m.vals[k] = s
		}
	}
	if opts.Scope.IsApp() {
		lookup := opts.Env
		if lookup == nil {
			lookup = func(string) (string, bool) { return "", false }
		}
		expanded, err := domain.ExpandVars(cfg, func(name string) (string, bool) {
			v, ok := lookup(name)
			if ok {
				r.secrets = append(r.secrets, v)
			}
			return v, ok
		})
		if err != nil {
			return r, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		cfg = expanded
	}
	r.url, r.args, r.headers = cfg.URL, cfg.Args, map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(cfg.Env)) {
		r.env = append(r.env, k+"="+cfg.Env[k])
	}
	for k, v := range cfg.Headers {
		r.headers[k] = v
		// Header values are credentials more often than not; hide them all.
		r.secrets = append(r.secrets, v)
	}
	return r, nil
}

// redactor replaces secret values in messages with [REDACTED]. Values shorter than
// four bytes are left alone: hiding "1" would mangle every message.
type redactor struct{ r *strings.Replacer }

func newRedactor(secrets []string) redactor {
	var pairs []string
	// Longest first, so a secret containing another is replaced whole.
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	for _, s := range secrets {
		if len(s) >= 4 {
			pairs = append(pairs, s, "[REDACTED]")
		}
	}
	if len(pairs) == 0 {
		return redactor{}
	}
	return redactor{strings.NewReplacer(pairs...)}
}

func (rd redactor) string(s string) string {
	if rd.r == nil {
		return s
	}
	return rd.r.Replace(s)
}

// err returns err with its message redacted, keeping its chain.
func (rd redactor) err(err error) error {
	if err == nil || rd.r == nil {
		return err
	}
	msg := err.Error()
	if red := rd.r.Replace(msg); red != msg {
		return &redactedError{msg: red, err: err}
	}
	return err
}
