package domain

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// HostPattern is one mcpSettings.allowedDomains entry: a host ("example.com", which
// also matches its subdomains when written "*.example.com"), optionally pinned to a
// scheme and a port ("https://api.example.com", "localhost:8080").
type HostPattern struct {
	Scheme   string // "" = any
	Host     string // lower case, without the "*." prefix
	Wildcard bool
	Port     int // 0 = any
}

// ParseHostPattern parses "host", "*.host", "host:port" or "scheme://host[:port]". A
// scheme without a port pins the scheme's default port. Returns an error saying what
// is wrong for anything else ("*", "http://", "[::1", a path, a bad port), so a typo
// is a config error rather than an entry silently dropped.
func ParseHostPattern(p string) (HostPattern, error) {
	orig := p
	p = strings.TrimSpace(strings.ToLower(p))
	var hp HostPattern
	if scheme, rest, ok := strings.Cut(p, "://"); ok {
		switch scheme {
		case "http", "https", "ws", "wss":
		default:
			return hp, fmt.Errorf("%q: scheme %q, want http, https, ws or wss", orig, scheme)
		}
		hp.Scheme = scheme
		p = rest
	}
	p = strings.TrimSuffix(p, "/")
	if strings.ContainsAny(p, "/?#@ ") {
		return hp, fmt.Errorf("%q: want a host pattern, not a URL with a path, query or user", orig)
	}
	if h, portStr, err := net.SplitHostPort(p); err == nil {
		port, err := strconv.Atoi(portStr)
		if err != nil || port <= 0 || port > 65535 {
			return hp, fmt.Errorf("%q: port %q, want 1 to 65535", orig, portStr)
		}
		hp.Port, p = port, h
	} else if hp.Scheme != "" {
		hp.Port = DefaultPort(hp.Scheme)
	}
	if strings.Count(p, "[") != strings.Count(p, "]") || strings.Count(p, "[") > 1 ||
		(strings.Contains(p, "[") && !(strings.HasPrefix(p, "[") && strings.HasSuffix(p, "]"))) {
		return hp, fmt.Errorf("%q: unbalanced brackets", orig)
	}
	p = strings.Trim(p, "[]")
	if rest, ok := strings.CutPrefix(p, "*."); ok {
		hp.Wildcard, p = true, rest
	}
	p = strings.TrimSuffix(p, ".")
	switch {
	case p == "":
		return hp, fmt.Errorf("%q: no host", orig)
	case strings.Contains(p, "*"):
		return hp, fmt.Errorf("%q: a wildcard may only lead as \"*.\" before a domain", orig)
	case strings.Contains(p, ":") && net.ParseIP(p) == nil:
		return hp, fmt.Errorf("%q: not a host, host:port or IPv6 address", orig)
	}
	hp.Host = p
	return hp, nil
}

// Matches reports whether scheme://host:port is covered by the pattern. An empty
// scheme (dial time) matches any pinned scheme; port 0 means unknown. host must be
// lower case without brackets or a trailing dot.
func (hp HostPattern) Matches(scheme, host string, port int) bool {
	if hp.Scheme != "" && scheme != "" && !sameWebScheme(hp.Scheme, scheme) {
		return false
	}
	if hp.Port != 0 && port != 0 && hp.Port != port {
		return false
	}
	if host == hp.Host {
		return true
	}
	return hp.Wildcard && strings.HasSuffix(host, "."+hp.Host)
}

// sameWebScheme treats ws as http and wss as https.
func sameWebScheme(a, b string) bool {
	norm := func(s string) string {
		switch s {
		case "ws":
			return "http"
		case "wss":
			return "https"
		}
		return s
	}
	return norm(a) == norm(b)
}

// DefaultPort is the port a URL of scheme uses when it names none (0 if unknown).
func DefaultPort(scheme string) int {
	switch scheme {
	case "https", "wss":
		return 443
	case "http", "ws":
		return 80
	}
	return 0
}
