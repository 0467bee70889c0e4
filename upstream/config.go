package upstream

import (
	"crypto/tls"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/mcpes/mcpes/domain"
)

// resolved is a config with its secret references and placeholders replaced by
// values, plus the values that must never appear in a message.
type resolved struct {
	url     string
	args    []string
	env     []string          // KEY=VALUE, sorted by key
	headers map[string]string // headers and requestHeaders, plus an admin apiKey's header
	cwd     string
	stderr  string
	proxy   *url.URL
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
	}{{"env", cfg.Env}, {"headers", cfg.Headers}, {"requestHeaders", cfg.RequestHeaders}} {
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
	if k := cfg.APIKey; k != nil && domain.IsSecretRef(k.Key) {
		if opts.Secrets == nil {
			return r, fmt.Errorf("%w: apiKey.key: secret reference but no secret store", ErrConfig)
		}
		v, err := opts.Secrets(k.Key)
		if err != nil {
			return r, fmt.Errorf("%w: apiKey.key: resolve %s: %v", ErrConfig, k.Key, err)
		}
		r.secrets = append(r.secrets, v)
		k.Key = v
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
	if left := domain.UserPlaceholders(cfg); len(left) > 0 {
		// Per-owner values are substituted before Dial (connections); one left here
		// would be sent literally.
		return r, fmt.Errorf("%w: %w: %s", ErrConfig, domain.ErrUserVarsMissing, strings.Join(left, ", "))
	}
	r.url, r.args, r.headers, r.cwd = cfg.URL, cfg.Args, map[string]string{}, cfg.Cwd
	if cfg.Stderr != nil {
		r.stderr = cfg.Stderr.Mode
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Env)) {
		r.env = append(r.env, k+"="+cfg.Env[k])
	}
	for _, m := range []map[string]string{cfg.RequestHeaders, cfg.Headers} {
		for k, v := range m {
			r.headers[k] = v
			// Header values are credentials more often than not; hide them all.
			r.secrets = append(r.secrets, v)
		}
	}
	if k := cfg.APIKey; k != nil && k.Source == domain.APIKeySourceAdmin && k.Key != "" {
		h, v := k.APIKeyHeader(k.Key)
		r.headers[h] = v
		r.secrets = append(r.secrets, v, k.Key)
	}
	if cfg.Proxy != "" && opts.Scope.IsApp() {
		p, err := url.Parse(cfg.Proxy)
		if err != nil || p.Host == "" {
			return r, fmt.Errorf("%w: proxy: not a valid URL", ErrConfig)
		}
		if strings.EqualFold(p.Scheme, "socks") {
			p.Scheme = "socks5" // LibreChat's socks:// is SOCKS5, the only SOCKS Go speaks
		}
		r.proxy = p
	}
	return r, nil
}

// proxyTransport returns an app-scope transport that goes through proxy.
func proxyTransport(proxy *url.URL) *http.Transport {
	t := appTransport.Clone()
	t.Proxy = http.ProxyURL(proxy)
	return t
}

// http1Only returns a transport for a WebSocket handshake, which needs HTTP/1.1
// (an HTTP/2 connection cannot be upgraded). Keep-alives are off: a handshake
// connection is either upgraded (and owned by the socket) or done with.
func http1Only(rt http.RoundTripper) http.RoundTripper {
	t, ok := rt.(*http.Transport)
	if !ok {
		return rt
	}
	t = t.Clone()
	t.ForceAttemptHTTP2 = false
	t.DisableKeepAlives = true
	t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	return t
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
