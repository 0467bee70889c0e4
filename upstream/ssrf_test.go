package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
)

// fakeResolver answers from a table; a name with two answers gives the first on
// the first lookup and the second afterwards (DNS rebinding).
type fakeResolver struct {
	table map[string][]string
	calls atomic.Int32
}

func (f *fakeResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	n := f.calls.Add(1)
	ans, ok := f.table[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	a := ans[0]
	if n > 1 && len(ans) > 1 {
		a = ans[1]
	}
	return []net.IPAddr{{IP: net.ParseIP(a)}}, nil
}

func TestGuard_CheckURL_BlocksEveryClass(t *testing.T) {
	g := &Guard{Resolver: &fakeResolver{table: map[string][]string{"public.example": {"93.184.216.34"}}}}
	blocked := map[string]string{
		"http://127.0.0.1/":                "loopback",
		"http://127.9.9.9:8080/":           "loopback",
		"http://[::1]/":                    "loopback",
		"http://10.1.2.3/":                 "private",
		"http://172.16.0.1/":               "private",
		"http://172.31.255.255/":           "private",
		"http://192.168.1.1/":              "private",
		"http://169.254.169.254/latest":    "link-local",
		"http://100.64.0.1/":               "carrier-grade NAT",
		"http://0.0.0.0/":                  "unspecified",
		"http://[::]/":                     "unspecified",
		"http://224.0.0.1/":                "multicast",
		"http://[ff02::1]/":                "multicast",
		"http://255.255.255.255/":          "broadcast",
		"http://[fd00::1]/":                "unique local",
		"http://[fe80::1]/":                "link-local IPv6",
		"http://[::ffff:127.0.0.1]/":       "IPv4-mapped loopback",
		"http://[::ffff:169.254.169.254]/": "IPv4-mapped link-local",
		"http://[::ffff:10.0.0.1]/":        "IPv4-mapped private",
		"http://[::127.0.0.1]/":            "IPv4-compatible loopback",
		"http://[64:ff9b::10.0.0.1]/":      "NAT64 of private",
		"http://[64:ff9b::7f00:1]/":        "NAT64 of loopback",
		"http://[2002:c0a8:101::1]/":       "6to4 of private",
		"http://localhost:8080/":           "localhost",
		"http://LOCALHOST./":               "localhost",
		"http://api.localhost/":            "localhost",
		"http://printer.local/":            "local",
		"http://metadata.google.internal/": "internal",
		"file:///etc/passwd":               "scheme",
		"gopher://public.example/":         "scheme",
	}
	for raw, reason := range blocked {
		err := g.CheckURL(context.Background(), raw)
		var be *BlockedError
		if !errors.Is(err, ErrBlockedAddress) || !errors.As(err, &be) || !strings.Contains(err.Error(), reason) {
			t.Errorf("%s: err = %v, want blocked (%s)", raw, err, reason)
		}
	}
	for _, raw := range []string{"https://public.example/mcp", "http://93.184.216.34:8080/", "wss://[2606:4700::1111]/"} {
		if err := g.CheckURL(context.Background(), raw); err != nil {
			t.Errorf("%s: %v, want allowed", raw, err)
		}
	}
	if err := g.CheckURL(context.Background(), "https://nowhere.example/"); !errors.Is(err, ErrUnresolvable) {
		t.Errorf("unresolvable: %v", err)
	}
}

func TestGuard_CheckURL_NameResolvingPrivate(t *testing.T) {
	// given a public-looking name that resolves to a private address
	g := &Guard{Resolver: &fakeResolver{table: map[string][]string{"evil.example": {"10.0.0.7"}}}}
	err := g.CheckURL(context.Background(), "https://evil.example/mcp")
	// then registration is refused, naming host and address
	if !errors.Is(err, ErrBlockedAddress) || !strings.Contains(err.Error(), "evil.example") || !strings.Contains(err.Error(), "10.0.0.7") {
		t.Fatalf("err = %v", err)
	}
}

func TestGuard_AllowedDomains(t *testing.T) {
	res := &fakeResolver{table: map[string][]string{
		"api.corp.example": {"10.0.0.5"}, "corp.example": {"10.0.0.6"}, "other.example": {"10.0.0.8"},
	}}
	g := &Guard{Resolver: res, AllowedDomains: []string{"*.corp.example", "https://pinned.example:8443", "127.0.0.1"}}
	for raw, want := range map[string]bool{
		"https://api.corp.example/mcp":      true, // wildcard
		"https://corp.example/mcp":          true, // *.x also matches x
		"https://other.example/mcp":         false,
		"https://pinned.example:8443/mcp":   true,
		"http://pinned.example:8443/mcp":    false, // scheme pinned
		"https://pinned.example/mcp":        false, // port pinned
		"http://127.0.0.1:9/mcp":            true,  // an address may be allowed
		"http://localhost/mcp":              false,
		"https://evilcorp.example/mcp":      false, // suffix without the dot
		"https://api.corp.example.evil/mcp": false,
	} {
		err := g.CheckURL(context.Background(), raw)
		if (err == nil) != want {
			t.Errorf("%s: err = %v, want allowed=%v", raw, err, want)
		}
	}
}

func TestGuard_Client_DNSRebinding(t *testing.T) {
	// given a server on loopback and a name that resolves public first, loopback after
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "secret metadata") }))
	defer ts.Close()
	_, port, _ := net.SplitHostPort(ts.Listener.Addr().String())
	g := &Guard{Resolver: &fakeResolver{table: map[string][]string{"rebind.example": {"93.184.216.34", "127.0.0.1"}}}}
	u := "http://rebind.example:" + port + "/"
	if err := g.CheckURL(context.Background(), u); err != nil {
		t.Fatalf("registration: %v", err)
	}
	// when the client dials it later
	_, err := g.Client().Get(u)
	// then the dial-time check refuses the resolved loopback address
	var be *BlockedError
	if !errors.As(err, &be) || be.Addr != "127.0.0.1" {
		t.Fatalf("dial: %v", err)
	}
}

func TestGuard_Client_NoRedirects(t *testing.T) {
	// given an allowed server that redirects to the cloud metadata address
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
	}))
	defer ts.Close()
	g := &Guard{AllowedDomains: []string{"127.0.0.1"}}
	// when the guarded client requests it
	resp, err := g.Client().Get(ts.URL)
	// then the 302 comes back as is, not followed
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Request.URL.Host != ts.Listener.Addr().String() {
		t.Fatalf("status %d for %s", resp.StatusCode, resp.Request.URL)
	}
}

func TestGuard_DialContext_RefusesLiteralPrivate(t *testing.T) {
	g := &Guard{}
	// a literal private address never reaches connect()
	_, err := g.DialContext(context.Background(), "tcp", "192.168.0.1:80")
	if !errors.Is(err, ErrBlockedAddress) {
		t.Fatalf("err = %v", err)
	}
}

func TestControlFor_ChecksDialledAddress(t *testing.T) {
	hook := controlFor("name.example")
	for addr, want := range map[string]bool{
		"127.0.0.1:80": false, "[::1]:443": false, "[::ffff:10.0.0.1]:80": false, "10.1.1.1:80": false,
		"93.184.216.34:443": true, "[2606:4700::1111]:443": true,
	} {
		err := hook("tcp", addr, nil)
		if (err == nil) != want {
			t.Errorf("%s: err = %v, want allowed=%v", addr, err, want)
		}
	}
}

func TestDial_UserScope_Guarded(t *testing.T) {
	// given a clock server on 127.0.0.1
	ts, _ := inProcessHTTP(t)
	sseURL, _ := clockProcess(t, "-sse")
	for _, tc := range []struct{ typ, url string }{{"streamable-http", ts.URL}, {"sse", sseURL}} {
		t.Run(tc.typ, func(t *testing.T) {
			cfg := domain.ServerConfig{Type: tc.typ, URL: tc.url, InitTimeoutMS: 5000}
			// when a user-scope config points at it (registration bypassed)
			opts := appOpts(t)
			opts.Scope = domain.UserScope("alice")
			_, err := Dial(ctxT(t, 10*time.Second), "clock", cfg, opts)
			// then the dial is refused by the guard
			if Classify(err) != domain.FailureRefused || !errors.Is(err, ErrBlockedAddress) {
				t.Fatalf("user scope: %v (class %s)", err, Classify(err))
			}
			// and the dialer itself refuses the address when the name check is skipped
			u := strings.Replace(tc.url, "127.0.0.1", "loop.example", 1)
			opts.Guard = &Guard{Resolver: &fakeResolver{table: map[string][]string{"loop.example": {"127.0.0.1"}}}}
			_, err = Dial(ctxT(t, 10*time.Second), "clock", domain.ServerConfig{Type: tc.typ, URL: u, InitTimeoutMS: 5000}, opts)
			if !errors.Is(err, ErrBlockedAddress) || Classify(err) != domain.FailureRefused {
				t.Fatalf("user scope via name: %v (class %s)", err, Classify(err))
			}
			// and with 127.0.0.1 in allowedDomains it works
			opts.Guard = &Guard{AllowedDomains: []string{"127.0.0.1"}}
			exercise(t, dialT(t, "clock", cfg, opts))
			// and the same config in the app scope works
			exercise(t, dialT(t, "clock", cfg, appOpts(t)))
		})
	}
	// and user scope may not start processes
	opts := appOpts(t)
	opts.Scope = domain.UserScope("alice")
	if _, err := Dial(ctxT(t, 5*time.Second), "clock", stdioCfg(clockBin), opts); Classify(err) != domain.FailureRefused {
		t.Fatalf("user stdio: %v", err)
	}
}
