package handlers

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// Protection is the request-origin policy every route shares (the API, /mcp, /ui):
// it stops a web page from driving the service through the browser of someone who
// can reach it, by DNS rebinding (a foreign Host) or by a cross-site request (a
// foreign Origin), and stops form posts that need no CORS preflight (a body that is
// not JSON). Plain CLI and curl calls send no Origin and a loopback or configured
// Host, and pass.
type Protection struct {
	// ListenHost is the host part of the listen address; a request may name it in
	// Host. An unspecified address (0.0.0.0, ::, "") adds nothing.
	ListenHost string
	// AllowedHosts are further Host values (host or host:port), from http.allowedHosts.
	AllowedHosts []string
	// AllowedOrigins are browser origins (scheme://host[:port]) allowed besides the
	// same origin, from http.allowedOrigins.
	AllowedOrigins []string
}

// Check returns nil when r may proceed, else an error wrapping ErrForbiddenHost,
// ErrForbiddenOrigin or ErrUnsupportedMediaType that names the offending value and
// the setting that would admit it.
func (p *Protection) Check(r *http.Request) error {
	if !p.hostAllowed(r.Host) {
		return fmt.Errorf("%w: Host %q is not this service's; add it to http.allowedHosts if it is", ErrForbiddenHost, r.Host)
	}
	if origin := r.Header.Get("Origin"); origin != "" && !p.originAllowed(origin, r.Host) {
		return fmt.Errorf("%w: Origin %q is not this service's and not in http.allowedOrigins", ErrForbiddenOrigin, origin)
	}
	if r.Method == http.MethodPut || r.Method == http.MethodPost {
		ct := r.Header.Get("Content-Type")
		if ct == "" && r.ContentLength == 0 {
			return nil // a command without a body (POST /v1/connections/NAME)
		}
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return fmt.Errorf("%w: Content-Type %q, want application/json", ErrUnsupportedMediaType, ct)
		}
	}
	return nil
}

// hostAllowed: a loopback literal, localhost, the listen host, or an allowed host.
func (p *Protection) hostAllowed(host string) bool {
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
	}
	name = strings.Trim(name, "[]")
	if name == "" {
		return false
	}
	if isLoopbackHost(name) {
		return true
	}
	if lh := strings.Trim(p.ListenHost, "[]"); lh != "" && !isUnspecified(lh) && strings.EqualFold(lh, name) {
		return true
	}
	for _, a := range p.AllowedHosts {
		if strings.EqualFold(a, host) || strings.EqualFold(a, name) {
			return true
		}
	}
	return false
}

// originAllowed: the same origin as the request's Host (either scheme, since TLS may
// end at a proxy in front), or an allowed origin. "null" (sandboxed pages, file://)
// is never allowed.
func (p *Protection) originAllowed(origin, host string) bool {
	for _, a := range p.AllowedOrigins {
		if strings.EqualFold(strings.TrimRight(a, "/"), origin) {
			return true
		}
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
		return false
	}
	return strings.EqualFold(u.Host, host) || strings.EqualFold(withDefaultPort(u), host)
}

// withDefaultPort writes u's host with the scheme's port made explicit, so that
// Origin "http://h" matches Host "h:80".
func withDefaultPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

func isLoopbackHost(name string) bool {
	if strings.EqualFold(name, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(name)
	return err == nil && ip.IsLoopback()
}

func isUnspecified(name string) bool {
	ip, err := netip.ParseAddr(name)
	return err == nil && ip.IsUnspecified()
}
