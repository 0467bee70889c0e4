// Package oauth is mcpes's OAuth 2.1 client of upstream MCP servers, following the
// MCP authorization spec (2025-06-18, 2025-11-25, 2026-07-28, with the 2025-03-26
// fallbacks): discovery from the 401 challenge, client registration (pre-registered,
// client ID metadata document, dynamic), PKCE S256 authorization with the resource
// indicator, code exchange, refresh and revocation. golang.org/x/oauth2 does the PKCE
// and code exchange steps; the MCP logic is here. Tokens never leave this package
// except towards the token's own resource.
package oauth

import (
	"strings"
)

// Challenge is the Bearer challenge of a WWW-Authenticate header (RFC 6750, RFC 9728).
type Challenge struct {
	// ResourceMetadata is the protected-resource metadata URL, if given.
	ResourceMetadata string
	// Scope is the space-separated scope the resource asks for, if given.
	Scope string
	// Error is the error code, e.g. "invalid_token" or "insufficient_scope".
	Error string
}

// maxChallenge bounds the header length parsed.
const maxChallenge = 8 << 10

// ParseChallenge returns the Bearer challenge among the WWW-Authenticate values, and
// whether there was one. Unknown parameters and other schemes are ignored.
func ParseChallenge(values []string) (Challenge, bool) {
	for _, v := range values {
		if len(v) > maxChallenge {
			v = v[:maxChallenge]
		}
		for _, ch := range splitChallenges(v) {
			scheme, params, _ := strings.Cut(strings.TrimSpace(ch), " ")
			if !strings.EqualFold(scheme, "Bearer") {
				continue
			}
			var c Challenge
			for k, val := range parseParams(params) {
				switch strings.ToLower(k) {
				case "resource_metadata":
					c.ResourceMetadata = val
				case "scope":
					c.Scope = val
				case "error":
					c.Error = val
				}
			}
			return c, true
		}
	}
	return Challenge{}, false
}

// splitChallenges splits a header value into challenges: a new one starts at a
// token followed by a space (a scheme) after a comma outside quotes.
func splitChallenges(v string) []string {
	var out []string
	start, inQ := 0, false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && inQ:
			i++
		case c == '"':
			inQ = !inQ
		case c == ',' && !inQ:
			rest := strings.TrimLeft(v[i+1:], " ")
			tok := strings.IndexAny(rest, " =,")
			if tok > 0 && rest[tok] == ' ' && !strings.HasPrefix(strings.TrimLeft(rest[tok:], " "), "=") {
				out = append(out, v[start:i])
				start = i + 1
			}
		}
	}
	return append(out, v[start:])
}

// parseParams reads comma-separated k=v or k="quoted" auth-params.
func parseParams(s string) map[string]string {
	out := map[string]string{}
	for s = strings.TrimSpace(s); s != ""; {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			break
		}
		k := strings.TrimSpace(s[:eq])
		s = strings.TrimLeft(s[eq+1:], " ")
		var val string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b.WriteByte(s[i])
			}
			val, s = b.String(), s[min(i+1, len(s)):]
		} else {
			end := strings.IndexByte(s, ',')
			if end < 0 {
				end = len(s)
			}
			val, s = strings.TrimSpace(s[:end]), s[end:]
		}
		if _, dup := out[k]; !dup {
			out[k] = val
		}
		s = strings.TrimLeft(strings.TrimSpace(s), ",")
		s = strings.TrimSpace(s)
	}
	return out
}
