package upstream

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mcpes/mcpes/domain"
)

// Resolver resolves host names for the Guard; *net.Resolver implements it.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// Guard keeps user-scope URLs away from the host's own network: loopback, private,
// link-local (cloud metadata), CGNAT, multicast and reserved addresses, and the
// names localhost, *.localhost, *.local and *.internal. It checks at registration
// (CheckURL) and again at dial time on the address actually dialled (Client), so a
// name that resolves elsewhere later (DNS rebinding) is still refused, and redirects
// are never followed. Hosts matching AllowedDomains bypass every check.
//
// The zero Guard blocks everything non-public and uses the system resolver. A Guard
// must not be copied after first use.
type Guard struct {
	// AllowedDomains are host patterns that bypass the guard: "example.com",
	// "*.example.com" (which also matches example.com), "10.0.0.5", optionally with
	// a scheme and port: "https://api.example.com:8443".
	AllowedDomains []string
	// Resolver resolves names; nil means net.DefaultResolver.
	Resolver Resolver

	once      sync.Once
	patterns  []domain.HostPattern
	transport *http.Transport
}

// CheckURL checks a URL at registration time: the scheme must be http, https, ws
// or wss; unless the host is allowed, it must not be a blocked name and every
// address it resolves to must be public. Returns a *BlockedError (wrapping
// ErrBlockedAddress) naming the host and the reason, an error wrapping
// ErrUnresolvable when the name does not resolve, or an error for a malformed URL.
func (g *Guard) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("url: %w", err)
	}
	if err := g.checkURLName(u); err != nil {
		return err
	}
	host := u.Hostname()
	if g.allowed(u.Scheme, host, portOf(u)) {
		return nil
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		return checkAddr(host, addr)
	}
	addrs, err := g.resolver().LookupIPAddr(ctx, host)
	if err != nil || len(addrs) == 0 {
		return fmt.Errorf("%w: %s: %v", ErrUnresolvable, host, err)
	}
	for _, a := range addrs {
		addr, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			return &BlockedError{Host: host, Addr: a.IP.String(), Reason: "unparsable address"}
		}
		if err := checkAddr(host, addr); err != nil {
			return err
		}
	}
	return nil
}

// checkURLName checks scheme and host name without resolving: the part of CheckURL
// that Dial repeats for every user-scope connect.
func (g *Guard) checkURLName(u *url.URL) error {
	switch strings.ToLower(u.Scheme) {
	case "http", "https", "ws", "wss":
	default:
		return &BlockedError{Host: u.Host, Reason: fmt.Sprintf("scheme %q not allowed", u.Scheme)}
	}
	host := u.Hostname()
	if host == "" {
		return &BlockedError{Host: u.Host, Reason: "no host"}
	}
	if g.allowed(u.Scheme, host, portOf(u)) {
		return nil
	}
	if reason := blockedName(host); reason != "" {
		return &BlockedError{Host: host, Reason: reason}
	}
	return nil
}

// Client returns an http.Client whose connections go through the guard's dialer
// and that never follows redirects (the 3xx response is returned as is). It has no
// overall timeout, so long-lived event streams are not cut; use request contexts.
func (g *Guard) Client() *http.Client {
	return &http.Client{Transport: g.Transport(), CheckRedirect: noRedirects}
}

// Transport returns the guard's shared http.Transport: no proxy, and a dialer that
// resolves with the guard's resolver and checks every resolved address, then checks
// the address actually connected to in a net.Dialer Control hook.
func (g *Guard) Transport() *http.Transport {
	g.init()
	return g.transport
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func (g *Guard) init() {
	g.once.Do(func() {
		for _, p := range g.AllowedDomains {
			// Config validation refuses bad entries; one that reaches here anyway
			// (a Guard built by hand) admits nothing.
			if hp, err := domain.ParseHostPattern(p); err == nil {
				g.patterns = append(g.patterns, hp)
			}
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = nil
		tr.DialContext = g.DialContext
		g.transport = tr
	})
}

func (g *Guard) resolver() Resolver {
	if g.Resolver != nil {
		return g.Resolver
	}
	return net.DefaultResolver
}

type allowedKey struct{}

// DialContext dials addr ("host:port") unless the guard refuses it: an allowed
// host is dialled as is; any other host is resolved with the guard's resolver,
// every address is checked, and each connection attempt is checked again on the
// address actually dialled. Returns a *BlockedError for a refused host or address.
func (g *Guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	g.init()
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, _ := strconv.Atoi(portStr)
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	if g.allowed("", host, port) {
		return d.DialContext(ctx, network, addr)
	}
	if reason := blockedName(host); reason != "" {
		return nil, &BlockedError{Host: host, Reason: reason}
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		ips, err := g.resolver().LookupIPAddr(ctx, host)
		if err != nil {
			return nil, err
		}
		for _, ip := range ips {
			if a, ok := netip.AddrFromSlice(ip.IP); ok {
				addrs = append(addrs, a.Unmap())
			}
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrUnresolvable, host)
	}
	for _, a := range addrs {
		if err := checkAddr(host, a); err != nil {
			return nil, err
		}
	}
	d.Control = controlFor(host)
	var firstErr error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, network, netip.AddrPortFrom(a, uint16(port)).String())
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}

// controlFor returns a net.Dialer Control hook that refuses a connection to a
// non-public address: the last check, on the address connect() is called with.
func controlFor(host string) func(network, address string, c syscall.RawConn) error {
	return func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return &BlockedError{Host: host, Addr: address, Reason: "unparsable dial address"}
		}
		return checkAddr(host, ap.Addr())
	}
}

// allowed reports whether scheme://host:port matches an AllowedDomains entry. An
// empty scheme (dial time) matches any pinned scheme; port 0 means unknown.
func (g *Guard) allowed(scheme, host string, port int) bool {
	g.init()
	host = normHost(host)
	for _, p := range g.patterns {
		if p.Matches(strings.ToLower(scheme), host, port) {
			return true
		}
	}
	return false
}

func portOf(u *url.URL) int {
	if p := u.Port(); p != "" {
		n, _ := strconv.Atoi(p)
		return n
	}
	return domain.DefaultPort(strings.ToLower(u.Scheme))
}

func normHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
}

// blockedName returns why a host name is refused without resolving it, or "".
func blockedName(host string) string {
	h := normHost(host)
	switch {
	case h == "localhost" || strings.HasSuffix(h, ".localhost"):
		return "localhost name"
	case h == "local" || strings.HasSuffix(h, ".local"):
		return "mDNS .local name"
	case h == "internal" || strings.HasSuffix(h, ".internal"):
		return ".internal name"
	}
	if a, err := netip.ParseAddr(h); err == nil {
		if r := blockedAddrReason(a); r != "" {
			return r
		}
	}
	return ""
}

func checkAddr(host string, a netip.Addr) error {
	if r := blockedAddrReason(a); r != "" {
		return &BlockedError{Host: host, Addr: a.String(), Reason: r}
	}
	return nil
}

type blockedPrefix struct {
	p      netip.Prefix
	reason string
}

func mustPrefixes(pairs ...string) []blockedPrefix {
	out := make([]blockedPrefix, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, blockedPrefix{netip.MustParsePrefix(pairs[i]), pairs[i+1]})
	}
	return out
}

var blocked4 = mustPrefixes(
	"0.0.0.0/8", "unspecified or this-network address",
	"127.0.0.0/8", "loopback",
	"10.0.0.0/8", "private network",
	"172.16.0.0/12", "private network",
	"192.168.0.0/16", "private network",
	"169.254.0.0/16", "link-local (cloud metadata)",
	"100.64.0.0/10", "carrier-grade NAT",
	"192.0.0.0/24", "IETF protocol assignment",
	"192.0.2.0/24", "documentation range",
	"198.18.0.0/15", "benchmarking range",
	"198.51.100.0/24", "documentation range",
	"203.0.113.0/24", "documentation range",
	"224.0.0.0/4", "multicast",
	"240.0.0.0/4", "reserved or broadcast",
)

var blocked6 = mustPrefixes(
	"::/128", "unspecified",
	"::1/128", "loopback",
	"fc00::/7", "unique local (private) IPv6",
	"fe80::/10", "link-local IPv6",
	"fec0::/10", "site-local IPv6",
	"ff00::/8", "multicast",
	"100::/64", "discard prefix",
	"2001:db8::/32", "documentation range",
	"2001::/32", "Teredo tunnel",
	"64:ff9b:1::/48", "local-use NAT64",
)

var (
	compat6   = netip.MustParsePrefix("::/96")
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// blockedAddrReason returns why an address is not public, or "". IPv4-mapped,
// IPv4-compatible, NAT64 (64:ff9b::/96) and 6to4 (2002::/16) addresses are judged
// by the IPv4 address they embed.
func blockedAddrReason(a netip.Addr) string {
	if !a.IsValid() {
		return "invalid address"
	}
	a = a.WithZone("")
	if a.Is4In6() {
		if r := blockedAddrReason(a.Unmap()); r != "" {
			return "IPv4-mapped " + r
		}
		return ""
	}
	if a.Is4() {
		for _, b := range blocked4 {
			if b.p.Contains(a) {
				return b.reason
			}
		}
		return ""
	}
	for _, b := range blocked6 {
		if b.p.Contains(a) {
			return b.reason
		}
	}
	b := a.As16()
	embedded := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{b[i], b[i+1], b[i+2], b[i+3]}) }
	switch {
	case compat6.Contains(a): // IPv4-compatible (deprecated)
		if r := blockedAddrReason(embedded(12)); r != "" {
			return "IPv4-compatible " + r
		}
	case nat64.Contains(a):
		if r := blockedAddrReason(embedded(12)); r != "" {
			return "NAT64 of " + r
		}
	case sixToFour.Contains(a):
		if r := blockedAddrReason(embedded(2)); r != "" {
			return "6to4 of " + r
		}
	}
	return ""
}
