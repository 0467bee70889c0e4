package domain

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"
)

// Per-owner values. A server's customUserVars (and a source: user apiKey, under the
// name APIKeyVar) are set by each owner; at connect the owner's repository replaces
// every {{NAME}} in url, headers, requestHeaders, env and args with that owner's
// value, and {{LIBRECHAT_USER_<ATTR>}} with the owner's id (ATTR = ID) or an
// attribute of the owner's profile. A placeholder without a value refuses the
// connect (rule RuleUserVarsMissing); it is never sent literally.

// ErrUserVarsMissing is wrapped by SubstituteUserVars when a placeholder has no value.
var ErrUserVarsMissing = errors.New("per-owner values missing")

// UserPlaceholderPrefix starts the owner attribute placeholders: {{LIBRECHAT_USER_ID}}.
const UserPlaceholderPrefix = "LIBRECHAT_USER_"

// Bounds of per-owner values.
const (
	MaxUserVarValueLen = 8192
	MaxProfileAttrs    = 32
)

// MissingUserVarsError names the placeholders that had no value (never a value).
type MissingUserVarsError struct{ Names []string }

func (e *MissingUserVarsError) Error() string {
	return fmt.Sprintf("%v: %s", ErrUserVarsMissing, strings.Join(e.Names, ", "))
}

func (e *MissingUserVarsError) Unwrap() error { return ErrUserVarsMissing }

// NeedsUserValues reports whether cfg cannot connect without an owner: it declares
// customUserVars, a source: user apiKey, or uses a {{...}} placeholder.
func NeedsUserValues(cfg ServerConfig) bool {
	return len(UserPlaceholders(cfg)) > 0 || len(cfg.CustomUserVars) > 0 ||
		cfg.APIKey != nil && cfg.APIKey.Source == APIKeySourceUser
}

// UserVarNames returns the names an owner may set for cfg: its customUserVars and,
// for a source: user apiKey, APIKeyVar; sorted.
func UserVarNames(cfg ServerConfig) []string {
	names := slices.Collect(maps.Keys(cfg.CustomUserVars))
	if cfg.APIKey != nil && cfg.APIKey.Source == APIKeySourceUser && !slices.Contains(names, APIKeyVar) {
		names = append(names, APIKeyVar)
	}
	slices.Sort(names)
	return names
}

// UserPlaceholders returns the distinct {{NAME}} placeholders cfg uses in url,
// headers, requestHeaders, env and args, sorted.
func UserPlaceholders(cfg ServerConfig) []string {
	var names []string
	collect := func(s string) {
		replaceUserPlaceholders(s, func(n string) string {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
			return ""
		})
	}
	forEachUserField(cfg, func(_ string, s string) { collect(s) })
	slices.Sort(names)
	return names
}

// forEachUserField calls f with every value that may carry {{NAME}} placeholders.
func forEachUserField(cfg ServerConfig, f func(field, s string)) {
	f("url", cfg.URL)
	for i, a := range cfg.Args {
		f(fmt.Sprintf("args[%d]", i), a)
	}
	for _, m := range []struct {
		name string
		vals map[string]string
	}{{"headers", cfg.Headers}, {"requestHeaders", cfg.RequestHeaders}, {"env", cfg.Env}} {
		for _, k := range slices.Sorted(maps.Keys(m.vals)) {
			f(m.name+"."+k, m.vals[k])
		}
	}
}

// SubstituteUserVars returns a copy of cfg for one owner: every {{NAME}} in url,
// headers, requestHeaders, env and args replaced by values[NAME] (NAME a
// customUserVars name) or by the owner attribute ({{LIBRECHAT_USER_ID}} is owner,
// {{LIBRECHAT_USER_EMAIL}} is profile["EMAIL"], ...), and a source: user apiKey
// turned into its header from values[APIKeyVar]. Returns a *MissingUserVarsError
// (wrapping ErrUserVarsMissing) naming every placeholder without a value; cfg is
// not changed. It is pure: values and profile come from the caller.
func SubstituteUserVars(cfg ServerConfig, owner string, values, profile map[string]string) (ServerConfig, error) {
	out := cfg.Clone()
	var missing []string
	lookup := func(name string) string {
		if attr, ok := strings.CutPrefix(name, UserPlaceholderPrefix); ok {
			v := profile[attr]
			if attr == "ID" {
				v = owner
			}
			if v != "" {
				return v
			}
		} else if _, declared := cfg.CustomUserVars[name]; declared || name == APIKeyVar {
			if v, ok := values[name]; ok && v != "" {
				return v
			}
		}
		if !slices.Contains(missing, name) {
			missing = append(missing, name)
		}
		return ""
	}
	sub := func(s string) string { return replaceUserPlaceholders(s, lookup) }
	out.URL = sub(cfg.URL)
	for i, a := range cfg.Args {
		out.Args[i] = sub(a)
	}
	for _, m := range []map[string]string{out.Headers, out.RequestHeaders, out.Env} {
		for k, v := range m {
			m[k] = sub(v)
		}
	}
	if k := cfg.APIKey; k != nil && k.Source == APIKeySourceUser {
		if key := lookup(APIKeyVar); key != "" {
			if out.Headers == nil {
				out.Headers = map[string]string{}
			}
			h, v := k.APIKeyHeader(key)
			out.Headers[h] = v
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return cfg, &MissingUserVarsError{Names: missing}
	}
	return out, nil
}

// ValidateUserValues checks values an owner sets for cfg: every name must be one
// of UserVarNames(cfg), every value at most MaxUserVarValueLen bytes without CR,
// LF or NUL (they end up in headers and arguments). Returns a *ValidationError.
func ValidateUserValues(server string, cfg ServerConfig, values map[string]string) error {
	v := validator{server: server}
	allowed := UserVarNames(cfg)
	if len(values) == 0 {
		v.add("", "no values given")
	}
	for _, k := range slices.Sorted(maps.Keys(values)) {
		switch val := values[k]; {
		case !slices.Contains(allowed, k):
			v.add(k, "not a variable of this server (it has: %s)", strings.Join(allowed, ", "))
		case len(val) > MaxUserVarValueLen:
			v.add(k, "value longer than %d bytes", MaxUserVarValueLen)
		case strings.ContainsAny(val, "\r\n\x00"):
			v.add(k, "value contains CR, LF or NUL")
		}
	}
	if len(v.problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: v.problems}
}

// validUserVarName reports whether s can name a customUserVars entry: 1 to
// MaxEnvNameLen bytes, no braces, spaces or control characters.
func validUserVarName(s string) bool {
	if s == "" || len(s) > MaxEnvNameLen {
		return false
	}
	for _, r := range s {
		if r == '{' || r == '}' || unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// isUserPlaceholder reports whether s is exactly one {{NAME}}.
func isUserPlaceholder(s string) bool {
	name, ok := strings.CutPrefix(s, "{{")
	if !ok {
		return false
	}
	name, ok = strings.CutSuffix(name, "}}")
	return ok && validUserVarName(name)
}

// replaceUserPlaceholders replaces every {{NAME}} (NAME a valid user variable name)
// in s by repl(NAME); anything else is left as is.
func replaceUserPlaceholders(s string, repl func(name string) string) string {
	if !strings.Contains(s, "{{") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "{{")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		end := strings.Index(s[i+2:], "}}")
		if end < 0 || !validUserVarName(s[i+2:i+2+end]) {
			b.WriteString(s[:i+2])
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		b.WriteString(repl(s[i+2 : i+2+end]))
		s = s[i+2+end+2:]
	}
}

// RequiredUserVars returns the per-owner names cfg cannot connect without (sorted):
// every {{NAME}} placeholder it uses except {{LIBRECHAT_USER_ID}} (always known),
// and APIKeyVar for a source: user apiKey. Profile attributes are named with their
// placeholder name ("LIBRECHAT_USER_EMAIL").
func RequiredUserVars(cfg ServerConfig) []string {
	var out []string
	for _, n := range UserPlaceholders(cfg) {
		if n != UserPlaceholderPrefix+"ID" {
			out = append(out, n)
		}
	}
	if cfg.APIKey != nil && cfg.APIKey.Source == APIKeySourceUser && !slices.Contains(out, APIKeyVar) {
		out = append(out, APIKeyVar)
		slices.Sort(out)
	}
	return out
}

// MissingUserVars returns the names of required (sorted) that neither vars (the
// names the owner set for the server) nor profile (the owner's profile attribute
// names, "EMAIL" for {{LIBRECHAT_USER_EMAIL}}) provide; nil when none is missing.
func MissingUserVars(required []string, vars, profile map[string]bool) []string {
	var out []string
	for _, n := range required {
		if attr, ok := strings.CutPrefix(n, UserPlaceholderPrefix); ok {
			if !profile[attr] {
				out = append(out, n)
			}
		} else if !vars[n] {
			out = append(out, n)
		}
	}
	return out
}

// UserVarsChanged records that an owner set or cleared per-owner values of a
// server. It carries names only, never values (those are secrets in the store).
type UserVarsChanged struct {
	Owner   string   `json:"owner"`
	Server  string   `json:"server"`
	Set     []string `json:"set,omitempty"`
	Cleared []string `json:"cleared,omitempty"`
}

// OwnerProfileChanged records that an admin set or cleared attributes of an
// owner's profile (the {{LIBRECHAT_USER_<ATTR>}} values). Names only.
type OwnerProfileChanged struct {
	Owner   string   `json:"owner"`
	Set     []string `json:"set,omitempty"`
	Cleared []string `json:"cleared,omitempty"`
}

// UserVarsStream is the stream of an owner's values for one server:
// "owner/<owner>/vars/<server>".
func UserVarsStream(owner, server string) string { return "owner/" + owner + "/vars/" + server }

// OwnerProfileStream is the stream of an owner's profile: "owner/<owner>/profile".
func OwnerProfileStream(owner string) string { return "owner/" + owner + "/profile" }

// UserVarRef returns the secret reference an owner's value of name for server is
// stored under: fixed per (owner, server, name), so setting again overwrites and
// the dialer finds it without any event carrying the value.
func UserVarRef(key []byte, owner, server, name string) string {
	return SecretRef(key, "uservar\x00"+owner+"\x00"+server+"\x00"+name)
}

// ProfileRef returns the secret reference of an owner's profile attribute.
func ProfileRef(key []byte, owner, attr string) string {
	return SecretRef(key, "profile\x00"+owner+"\x00"+attr)
}

// OnDemand reports whether cfg is connected only for an owner, never at startup
// nor by the shared repository: startup: false, requiresOAuth: true, or per-owner
// values (customUserVars, a user apiKey, {{...}} placeholders). Such a server is not
// inspected at startup; it is "on demand" until an owner connects it.
func OnDemand(cfg ServerConfig) bool {
	return !cfg.StartupEnabled() || cfg.OAuthDeclared() || NeedsUserValues(cfg)
}
