package domain

import "testing"

func TestParseHostPattern_RefusesWhatItCannotMatch(t *testing.T) {
	for _, p := range []string{"*", "http://", "[::1", "::1]", "ftp://example.com", "example.com/path",
		"example.com:0", "example.com:99999", "*.*.example.com", "ex*ample.com", "user@example.com", "", "  "} {
		if _, err := ParseHostPattern(p); err == nil {
			t.Errorf("ParseHostPattern(%q) = nil error, want one", p)
		}
	}
}

func TestParseHostPattern_Matches(t *testing.T) {
	cases := []struct {
		pattern, scheme, host string
		port                  int
		want                  bool
	}{
		{"example.com", "https", "example.com", 443, true},
		{"*.example.com", "https", "api.example.com", 443, true},
		{"*.example.com", "https", "example.com", 443, true}, // the spec: *.example.com also matches example.com
		{"*.example.com", "https", "badexample.com", 443, false},
		{"https://api.example.com", "http", "api.example.com", 80, false},
		{"https://api.example.com", "wss", "api.example.com", 443, true},
		{"localhost:8080", "http", "localhost", 8080, true},
		{"localhost:8080", "http", "localhost", 8081, false},
		{"[::1]:80", "http", "::1", 80, true},
		{"Example.COM.", "http", "example.com", 80, true},
	}
	for _, c := range cases {
		hp, err := ParseHostPattern(c.pattern)
		if err != nil {
			t.Fatalf("ParseHostPattern(%q): %v", c.pattern, err)
		}
		if got := hp.Matches(c.scheme, c.host, c.port); got != c.want {
			t.Errorf("%q matches %s://%s:%d = %v, want %v", c.pattern, c.scheme, c.host, c.port, got, c.want)
		}
	}
}

// FuzzParseHostPattern: parsing never panics and a parsed pattern matches its own host.
func FuzzParseHostPattern(f *testing.F) {
	for _, s := range []string{"example.com", "*.example.com", "https://api.example.com:8443", "10.0.0.5", "[::1]:80", "*.", "http://", "a:0", "[::1", "*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		hp, err := ParseHostPattern(p)
		if err != nil {
			return
		}
		if !hp.Matches(hp.Scheme, hp.Host, hp.Port) {
			t.Fatalf("pattern %q (%+v) does not match its own host", p, hp)
		}
	})
}
