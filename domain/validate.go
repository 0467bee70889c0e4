package domain

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"
)

// Size bounds of one server config. They keep one config (and so one event) small,
// and they stop an API caller from storing megabytes per server.
const (
	MaxTimeoutMS        = 365 * 24 * 3_600_000 // one year: far above any real use, far below a time.Duration overflow
	MaxArgs             = 256
	MaxArgLen           = 4096
	MaxCommandLen       = 4096
	MaxURLLen           = 4096
	MaxHeaders          = 64
	MaxHeaderValueLen   = 8192
	MaxEnv              = 256
	MaxEnvNameLen       = 256
	MaxEnvValueLen      = 32 * 1024
	MaxTitleLen         = 256
	MaxDescriptionLen   = 4096
	MaxIconPathLen      = 2048
	MaxInstructionsLen  = 64 * 1024
	MaxCustomUserVars   = 64
	MaxExtraFields      = 64
	MaxExtraValueLen    = 64 * 1024
	maxHeaderNameLength = 256
)

// ValidateConfig checks one server config for scope and returns a *ValidationError
// (which wraps ErrInvalidConfig) listing every problem (server, field, reason), or
// nil. Unknown fields are not errors; see ConfigWarnings. User scopes (anything but
// AppScope) may not use stdio and may not contain ${VAR} placeholders anywhere.
func ValidateConfig(scope Scope, name string, cfg ServerConfig) error {
	v := validator{server: name}
	if err := ValidateServerName(name); err != nil {
		v.add("name", "%s", err.Error())
	}
	if _, err := ParseScope(string(scope)); err != nil {
		v.add("scope", "%s", err.Error())
	}
	user := !scope.IsApp()
	v.foldedKeys(cfg)
	v.transport(cfg, user)
	v.sizes(cfg)
	v.headers("headers", cfg.Headers, user)
	v.env(cfg.Env, user)
	v.libreChat(cfg, cfg.TransportType(), user)
	if user {
		v.noPlaceholders(cfg)
	}
	if len(v.problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: v.problems}
}

// ConfigWarnings returns one warning Problem per field its transport does not use
// (LibreChat ignores them too), then one per unknown field of cfg (kept in Extra),
// sorted by field name. Warnings never make a config invalid.
func ConfigWarnings(name string, cfg ServerConfig) []Problem {
	out := ignoredFieldWarnings(name, cfg)
	for _, k := range slices.Sorted(maps.Keys(cfg.Extra)) {
		field := k
		if field == "oauth" {
			continue // kept in Extra, read by OAuthClient
		}
		if field == "" {
			field = `""` // still name the field when its name is empty
		}
		out = append(out, Problem{Server: name, Field: field, Reason: "unknown field (kept, not used)", Warning: true})
	}
	return out
}

// foldedKeys refuses keys that differ from a known field only in case: they are a
// way to smuggle a second value of that field past the checks.
func (v *validator) foldedKeys(cfg ServerConfig) {
	for _, k := range slices.Sorted(maps.Keys(cfg.Extra)) {
		if f := FoldedKey(k); f != "" {
			v.add(k, "differs from the field %q only in case; write %q", f, f)
		}
	}
}

type validator struct {
	server   string
	problems []Problem
}

func (v *validator) add(field, format string, args ...any) {
	reason := format
	if len(args) > 0 {
		reason = fmt.Sprintf(format, args...)
	}
	v.problems = append(v.problems, Problem{Server: v.server, Field: field, Reason: reason})
}

func (v *validator) transport(cfg ServerConfig, user bool) {
	t := cfg.TransportType()
	switch t {
	case "":
		v.add("type", "no transport: set command (stdio) or url (sse, streamable-http, websocket)")
		return
	case TransportStdio:
		if user {
			v.add("type", "stdio is not allowed for user-scope servers (an owner may not start processes on the host)")
		}
		if strings.TrimSpace(cfg.Command) == "" {
			v.add("command", "stdio needs a command")
		}
	case TransportSSE, TransportStreamableHTTP, TransportWebsocket:
		v.url(cfg.URL, t, user)
	default:
		v.add("type", "unknown transport type %q (want stdio, sse, streamable-http, http or websocket)", cfg.Type)
	}
}

func (v *validator) url(raw, transport string, user bool) {
	if raw == "" {
		v.add("url", "%s needs a url", transport)
		return
	}
	if len(raw) > MaxURLLen {
		v.add("url", "longer than %d bytes", MaxURLLen)
		return
	}
	check := replaceUserPlaceholders(raw, func(string) string { return "x" })
	if !user {
		// App configs may name hosts or paths through ${VAR}; check the shape around them.
		var bad string
		check, bad = replacePlaceholders(check, func(string) string { return "x" })
		if bad != "" {
			v.add("url", "malformed placeholder %q (want ${NAME})", bad)
			return
		}
	}
	if t := strings.TrimSpace(raw); IsPlaceholder(t) || isUserPlaceholder(t) {
		return // the whole url comes from a variable: checked at connect, once known
	}
	u, err := url.Parse(check)
	if err != nil {
		v.add("url", "not a valid URL: %v", unwrapURLError(err))
		return
	}
	schemes := []string{"http", "https"}
	if transport == TransportWebsocket {
		schemes = []string{"ws", "wss"}
	}
	switch {
	case !u.IsAbs() || u.Host == "":
		v.add("url", "must be an absolute %s URL with a host", strings.Join(schemes, "/"))
	case !slices.Contains(schemes, strings.ToLower(u.Scheme)):
		v.add("url", "scheme %q not allowed for %s (want %s)", u.Scheme, transport, strings.Join(schemes, " or "))
	case u.User != nil:
		v.add("url", "credentials in the URL are not allowed; use headers")
	}
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

func (v *validator) sizes(cfg ServerConfig) {
	if len(cfg.Command) > MaxCommandLen {
		v.add("command", "longer than %d bytes", MaxCommandLen)
	}
	if strings.ContainsRune(cfg.Command, 0) {
		v.add("command", "contains a NUL byte")
	}
	if len(cfg.Args) > MaxArgs {
		v.add("args", "more than %d arguments", MaxArgs)
	}
	for i, a := range cfg.Args {
		if len(a) > MaxArgLen {
			v.add(fmt.Sprintf("args[%d]", i), "longer than %d bytes", MaxArgLen)
		}
		if strings.ContainsRune(a, 0) {
			v.add(fmt.Sprintf("args[%d]", i), "contains a NUL byte")
		}
	}
	v.millis("timeout", cfg.TimeoutMS)
	v.millis("initTimeout", cfg.InitTimeoutMS)
	v.text("title", cfg.Title, MaxTitleLen)
	v.text("description", cfg.Description, MaxDescriptionLen)
	v.text("iconPath", cfg.IconPath, MaxIconPathLen)
	if cfg.ServerInstructions != nil {
		v.text("serverInstructions", cfg.ServerInstructions.Text, MaxInstructionsLen)
	}
	if len(cfg.CustomUserVars) > MaxCustomUserVars {
		v.add("customUserVars", "more than %d variables", MaxCustomUserVars)
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.CustomUserVars)) {
		field := "customUserVars." + k
		if !validUserVarName(k) {
			v.add(field, "variable name must be 1 to %d bytes without braces, spaces or control characters", MaxEnvNameLen)
		}
		cv := cfg.CustomUserVars[k]
		v.text(field+".title", cv.Title, MaxTitleLen)
		v.text(field+".description", cv.Description, MaxDescriptionLen)
	}
	if len(cfg.Extra) > MaxExtraFields {
		v.add("", "more than %d unknown fields", MaxExtraFields)
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Extra)) {
		if len(cfg.Extra[k]) > MaxExtraValueLen {
			v.add(k, "unknown field larger than %d bytes", MaxExtraValueLen)
		}
	}
}

func (v *validator) millis(field string, ms int64) {
	switch {
	case ms < 0:
		v.add(field, "must not be negative (milliseconds), got %d", ms)
	case ms > MaxTimeoutMS:
		v.add(field, "at most %d ms (one year), got %d", MaxTimeoutMS, ms)
	}
}

func (v *validator) text(field, s string, limit int) {
	if len(s) > limit {
		v.add(field, "longer than %d bytes", limit)
	}
	if !utf8.ValidString(s) {
		v.add(field, "not valid UTF-8")
	}
}

func (v *validator) headers(name string, h map[string]string, user bool) {
	if len(h) > MaxHeaders {
		v.add(name, "more than %d headers", MaxHeaders)
	}
	for _, k := range slices.Sorted(maps.Keys(h)) {
		field := name + "." + k
		if !validHeaderName(k) {
			v.add(field, "header name must be a non-empty HTTP token of at most %d bytes", maxHeaderNameLength)
		}
		val := h[k]
		if len(val) > MaxHeaderValueLen {
			v.add(field, "value longer than %d bytes", MaxHeaderValueLen)
		}
		if strings.ContainsAny(val, "\r\n\x00") {
			v.add(field, "value contains CR, LF or NUL")
		}
		if !user {
			if _, bad := replacePlaceholders(val, func(string) string { return "" }); bad != "" {
				v.add(field, "malformed placeholder %q (want ${NAME})", bad)
			}
		}
	}
}

func (v *validator) env(env map[string]string, user bool) {
	if len(env) > MaxEnv {
		v.add("env", "more than %d variables", MaxEnv)
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		field := "env." + k
		if !validEnvName(k) {
			v.add(field, "variable name must be 1 to %d bytes without '=' or NUL", MaxEnvNameLen)
		}
		val := env[k]
		if len(val) > MaxEnvValueLen {
			v.add(field, "value longer than %d bytes", MaxEnvValueLen)
		}
		if strings.ContainsRune(val, 0) {
			v.add(field, "value contains a NUL byte")
		}
		if !user {
			if _, bad := replacePlaceholders(val, func(string) string { return "" }); bad != "" {
				v.add(field, "malformed placeholder %q (want ${NAME})", bad)
			}
		}
	}
}

const placeholderReason = "${VAR} placeholders are not allowed in user-scope configs (no reading the host environment)"

func (v *validator) noPlaceholders(cfg ServerConfig) {
	has := func(s string) bool { return strings.Contains(s, "${") }
	if has(cfg.URL) {
		v.add("url", placeholderReason)
	}
	if has(cfg.Command) {
		v.add("command", placeholderReason)
	}
	for i, a := range cfg.Args {
		if has(a) {
			v.add(fmt.Sprintf("args[%d]", i), placeholderReason)
		}
	}
	for _, hs := range []struct {
		name string
		h    map[string]string
	}{{"headers", cfg.Headers}, {"requestHeaders", cfg.RequestHeaders}, {"oauth_headers", cfg.OAuthHeaders}} {
		for _, k := range slices.Sorted(maps.Keys(hs.h)) {
			if has(k) || has(hs.h[k]) {
				v.add(hs.name+"."+k, placeholderReason)
			}
		}
	}
	if cfg.APIKey != nil && has(cfg.APIKey.Key) {
		v.add("apiKey.key", placeholderReason)
	}
	if o := cfg.OAuth; o != nil {
		for _, f := range []struct{ name, val string }{
			{"oauth.authorization_url", o.AuthorizationURL}, {"oauth.token_url", o.TokenURL},
			{"oauth.redirect_uri", o.RedirectURI}, {"oauth.revocation_endpoint", o.RevocationEndpoint},
			{"oauth.client_id", o.ClientID}, {"oauth.client_secret", o.ClientSecret},
		} {
			if has(f.val) {
				v.add(f.name, placeholderReason)
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Env)) {
		if has(k) || has(cfg.Env[k]) {
			v.add("env."+k, placeholderReason)
		}
	}
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" || len(s) > maxHeaderNameLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// validEnvName reports whether s can name a process environment variable: not
// empty, bounded, and without '=' or NUL (LibreChat accepts any other name, "MY-VAR"
// included, and so does execve).
func validEnvName(s string) bool {
	return s != "" && len(s) <= MaxEnvNameLen && !strings.ContainsAny(s, "=\x00")
}

// validVarName reports whether s is a portable environment variable name.
func validVarName(s string) bool {
	if s == "" || len(s) > MaxEnvNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// IsPlaceholder reports whether v is exactly one ${NAME} placeholder.
func IsPlaceholder(v string) bool {
	name, ok := strings.CutPrefix(v, "${")
	if !ok {
		return false
	}
	name, ok = strings.CutSuffix(name, "}")
	return ok && validVarName(name)
}

// replacePlaceholders replaces every ${NAME} in s by repl(NAME). It returns the first
// malformed "${..." it meets (and stops there) as bad.
func replacePlaceholders(s string, repl func(name string) string) (out, bad string) {
	if !strings.Contains(s, "${") {
		return s, ""
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), ""
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 || !validVarName(s[i+2:i+end]) {
			bad = s[i:]
			if end >= 0 {
				bad = s[i : i+end+1]
			}
			return b.String(), bad
		}
		b.WriteString(repl(s[i+2 : i+end]))
		s = s[i+end+1:]
	}
}

// ExpandVars returns a copy of an app config with every ${NAME} in its url, proxy,
// cwd, args, header, requestHeaders and env values and apiKey.key replaced by
// lookup(NAME). It is pure: the caller passes the
// environment (os.LookupEnv in production). Returns an error wrapping ErrMissingVar
// naming every variable lookup does not know, or ErrInvalidConfig for a malformed
// placeholder; cfg is not changed.
func ExpandVars(cfg ServerConfig, lookup func(string) (string, bool)) (ServerConfig, error) {
	out := cfg.Clone()
	var missing []string
	var malformed []string
	expand := func(field, s string) string {
		r, bad := replacePlaceholders(s, func(name string) string {
			val, ok := lookup(name)
			if !ok {
				if !slices.Contains(missing, name) {
					missing = append(missing, name)
				}
				return ""
			}
			return val
		})
		if bad != "" {
			malformed = append(malformed, fmt.Sprintf("%s: %q", field, bad))
		}
		return r
	}
	out.URL = expand("url", cfg.URL)
	out.Proxy = expand("proxy", cfg.Proxy)
	out.Cwd = expand("cwd", cfg.Cwd)
	for i, a := range cfg.Args {
		out.Args[i] = expand(fmt.Sprintf("args[%d]", i), a)
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Headers)) {
		out.Headers[k] = expand("headers."+k, cfg.Headers[k])
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.RequestHeaders)) {
		out.RequestHeaders[k] = expand("requestHeaders."+k, cfg.RequestHeaders[k])
	}
	if out.APIKey != nil {
		out.APIKey.Key = expand("apiKey.key", cfg.APIKey.Key)
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Env)) {
		out.Env[k] = expand("env."+k, cfg.Env[k])
	}
	switch {
	case len(malformed) > 0:
		return cfg, fmt.Errorf("%w: malformed placeholder in %s", ErrInvalidConfig, strings.Join(malformed, ", "))
	case len(missing) > 0:
		return cfg, fmt.Errorf("%w: %s", ErrMissingVar, strings.Join(missing, ", "))
	}
	return out, nil
}

// ValidateDomainPattern returns ParseHostPattern's error for a bad
// mcpSettings.allowedDomains entry.
func ValidateDomainPattern(p string) error {
	_, err := ParseHostPattern(p)
	return err
}
