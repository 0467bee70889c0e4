package gateway

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// admit applies the standard protections before a request reaches an MCP server: a
// body limit (413 when the declared length is over it; a longer body is cut and
// fails to parse), an Origin allow-list (403; loopback origins are allowed), and a
// Host allow-list on non-loopback listeners when one is configured (403). Requests
// on loopback listeners with a non-loopback Host are refused by mcp-go's
// DNS-rebinding protection. It writes the refusal and returns false.
func (g *Gateway) admit(w http.ResponseWriter, r *http.Request) bool {
	if r.ContentLength > g.d.MaxBodyBytes {
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return false
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, g.d.MaxBodyBytes)
	}
	if origin := r.Header.Get("Origin"); origin != "" && !g.originAllowed(origin) {
		http.Error(w, ErrForbiddenOrigin.Error()+": "+origin, http.StatusForbidden)
		return false
	}
	if len(g.d.AllowedHosts) > 0 && !onLoopback(r) && !g.hostAllowed(r.Host) {
		http.Error(w, ErrForbiddenOrigin.Error()+": host "+r.Host, http.StatusForbidden)
		return false
	}
	return true
}

func (g *Gateway) originAllowed(origin string) bool {
	for _, a := range g.d.AllowedOrigins {
		if strings.EqualFold(strings.TrimRight(a, "/"), origin) {
			return true
		}
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	return isLoopbackName(u.Hostname())
}

func (g *Gateway) hostAllowed(host string) bool {
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
	}
	for _, a := range g.d.AllowedHosts {
		if strings.EqualFold(a, host) || strings.EqualFold(a, name) {
			return true
		}
	}
	return false
}

// onLoopback reports whether the request came in on a loopback listener.
func onLoopback(r *http.Request) bool {
	a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok || a == nil {
		return false
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return false
	}
	return isLoopbackName(host)
}

func isLoopbackName(host string) bool {
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
