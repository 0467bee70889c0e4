package upstream

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/mcpes/mcpes/domain"
)

// resolved is a config with its placeholders and secret references replaced by
// values, plus the values that must never appear in a message.
type resolved struct {
	url     string
	args    []string
	env     []string // KEY=VALUE, sorted by key
	headers map[string]string
	secrets []string
}

var varPattern = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandVars replaces every ${NAME} in s with lookup(NAME) and returns the values
// it substituted. Returns an error wrapping ErrConfig naming the first variable
// that is not set.
func expandVars(s string, lookup func(string) (string, bool)) (string, []string, error) {
	var missing string
	var values []string
	out := varPattern.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		v, ok := lookup(name)
		if !ok && missing == "" {
			missing = name
		}
		values = append(values, v)
		return v
	})
	if missing != "" {
		return "", nil, fmt.Errorf("%w: environment variable %s is not set", ErrConfig, missing)
	}
	return out, values, nil
}

// isSecretRef reports whether v is a secret reference: "secret:" and 32 hex digits.
func isSecretRef(v string) bool {
	hex, ok := strings.CutPrefix(v, "secret:")
	if !ok || len(hex) != 32 {
		return false
	}
	for _, r := range hex {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// resolveConfig turns cfg into values: secret references in env and header values
// come from opts.Secrets; ${VAR} placeholders (app scope only) in url, args, env
// and headers come from opts.Env. Errors wrap ErrConfig and name the field, never a
// value.
func resolveConfig(cfg domain.ServerConfig, opts Options) (resolved, error) {
	r := resolved{url: cfg.URL, args: slices.Clone(cfg.Args), headers: map[string]string{}}
	expand := func(field, v string) (string, error) {
		if !opts.Scope.IsApp() || !strings.Contains(v, "${") {
			return v, nil
		}
		lookup := opts.Env
		if lookup == nil {
			lookup = func(string) (string, bool) { return "", false }
		}
		out, values, err := expandVars(v, lookup)
		if err != nil {
			return "", fmt.Errorf("%s: %w", field, err)
		}
		r.secrets = append(r.secrets, values...)
		return out, nil
	}
	value := func(field, v string) (string, error) {
		if isSecretRef(v) {
			if opts.Secrets == nil {
				return "", fmt.Errorf("%w: %s: secret reference but no secret store", ErrConfig, field)
			}
			s, err := opts.Secrets(v)
			if err != nil {
				return "", fmt.Errorf("%w: %s: resolve %s: %v", ErrConfig, field, v, err)
			}
			r.secrets = append(r.secrets, s)
			return s, nil
		}
		return expand(field, v)
	}
	var err error
	if r.url, err = expand("url", r.url); err != nil {
		return r, err
	}
	for i, a := range r.args {
		if r.args[i], err = expand(fmt.Sprintf("args[%d]", i), a); err != nil {
			return r, err
		}
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Env)) {
		v, err := value("env."+k, cfg.Env[k])
		if err != nil {
			return r, err
		}
		r.env = append(r.env, k+"="+v)
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Headers)) {
		v, err := value("headers."+k, cfg.Headers[k])
		if err != nil {
			return r, err
		}
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
