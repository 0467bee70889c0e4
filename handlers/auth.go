package handlers

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/mcpes/mcpes/domain"
)

// Roles a token may have.
const (
	RoleAdmin = "admin"
	RoleOwner = "owner"
)

// TokenConfig is one entry of the config file's auth.tokens: the hex SHA-256 of a
// bearer token (never the token itself), its role, and for role owner the owner id.
type TokenConfig struct {
	SHA256 string `json:"sha256" yaml:"sha256"`
	Role   string `json:"role" yaml:"role"`
	Owner  string `json:"owner,omitempty" yaml:"owner,omitempty"`
}

// Identity is who makes a request: the admin, or one owner.
type Identity struct {
	Admin bool
	// Owner is the owner id of an owner token ("" for the admin).
	Owner string
}

// Actor is the identity as recorded in events: "admin" or "owner:<id>".
func (id Identity) Actor() string {
	if id.Admin {
		return "admin"
	}
	return "owner:" + id.Owner
}

// AdminIdentity is the identity of an admin token.
var AdminIdentity = Identity{Admin: true}

type tokenEntry struct {
	sum [32]byte
	id  Identity
}

// Auth checks bearer tokens against configured SHA-256 hashes. A nil *Auth, or one
// with no tokens, authenticates nobody by token: see Authenticate for loopback access.
type Auth struct {
	tokens []tokenEntry
}

// HashToken returns the hex SHA-256 of a token, the form auth.tokens stores
// (`mcpes token hash` prints it). Surrounding white space is not trimmed.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// NewAuth builds an Auth from the config file's tokens plus, when adminToken is not
// empty (the MCPES_ADMIN_TOKEN environment variable), one admin token given in clear.
// Returns an error wrapping ErrInvalidAuth that lists every bad entry: a hash that is
// not 64 hex characters, an unknown role, an owner token without a valid owner id, or
// an admin token with one.
func NewAuth(tokens []TokenConfig, adminToken string) (*Auth, error) {
	a := &Auth{}
	var probs []string
	for i, t := range tokens {
		raw, err := hex.DecodeString(strings.ToLower(strings.TrimSpace(t.SHA256)))
		if err != nil || len(raw) != sha256.Size {
			probs = append(probs, fmt.Sprintf("auth.tokens[%d].sha256: want 64 hex characters (mcpes token hash prints it)", i))
			continue
		}
		var e tokenEntry
		copy(e.sum[:], raw)
		switch t.Role {
		case RoleAdmin:
			if t.Owner != "" {
				probs = append(probs, fmt.Sprintf("auth.tokens[%d].owner: an admin token has no owner", i))
				continue
			}
			e.id = AdminIdentity
		case RoleOwner:
			if err := domain.ValidateOwner(t.Owner); err != nil {
				probs = append(probs, fmt.Sprintf("auth.tokens[%d].owner: %v", i, err))
				continue
			}
			e.id = Identity{Owner: t.Owner}
		default:
			probs = append(probs, fmt.Sprintf("auth.tokens[%d].role: %q, want admin or owner", i, t.Role))
			continue
		}
		a.tokens = append(a.tokens, e)
	}
	if adminToken != "" {
		a.tokens = append(a.tokens, tokenEntry{sum: sha256.Sum256([]byte(adminToken)), id: AdminIdentity})
	}
	if len(probs) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrInvalidAuth, strings.Join(probs, "; "))
	}
	return a, nil
}

// Configured reports whether at least one token is configured.
func (a *Auth) Configured() bool { return a != nil && len(a.tokens) > 0 }

// Authenticate returns the identity of the request's bearer token. When no token is
// configured at all, every request from a loopback address is the admin (the serve
// wiring refuses to listen elsewhere without tokens, see RequireTokensFor). Returns
// ErrUnauthorized for a missing or unknown token.
func (a *Auth) Authenticate(r *http.Request) (Identity, error) {
	if !a.Configured() {
		if isLoopbackRemote(r.RemoteAddr) {
			return AdminIdentity, nil
		}
		return Identity{}, fmt.Errorf("%w: no tokens are configured and the request is not from loopback", ErrUnauthorized)
	}
	tok, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		return Identity{}, fmt.Errorf("%w: missing bearer token", ErrUnauthorized)
	}
	sum := sha256.Sum256([]byte(tok))
	var (
		found Identity
		match int
	)
	// Compare against every entry, in constant time each, so the time taken does not
	// say which entry (or how much of one) matched.
	for _, e := range a.tokens {
		if subtle.ConstantTimeCompare(sum[:], e.sum[:]) == 1 && match == 0 {
			found, match = e.id, 1
		}
	}
	if match == 0 {
		return Identity{}, fmt.Errorf("%w: unknown token", ErrUnauthorized)
	}
	return found, nil
}

func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

func isLoopbackRemote(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// RequireTokensFor returns an error wrapping ErrNoTokens when listenAddr is not a
// loopback address and auth has no token: without tokens every caller is the admin,
// which is only acceptable when nobody else can connect. "localhost", 127.0.0.0/8 and
// ::1 are loopback; an empty host (":7300") or 0.0.0.0 listens everywhere.
func RequireTokensFor(listenAddr string, auth *Auth) error {
	if auth.Configured() {
		return nil
	}
	host, _, err := net.SplitHostPort(listenAddr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", listenAddr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%w: listen address %q is not loopback; configure auth.tokens or MCPES_ADMIN_TOKEN", ErrNoTokens, listenAddr)
}

type identityKey struct{}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the identity the auth middleware stored in ctx.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// RequestOwner is the owner a request by id acts for: an owner token's own owner
// always; for the admin the ?owner= parameter, or "" (the app scope, the shared
// repository) without it or for "_" or "app". Returns domain.ValidateOwner's error, as is, for
// a malformed ?owner=.
func RequestOwner(r *http.Request, id Identity) (string, error) {
	if !id.Admin {
		return id.Owner, nil
	}
	owner := r.URL.Query().Get("owner")
	if domain.IsSharedOwner(owner) {
		return "", nil
	}
	if err := domain.ValidateOwner(owner); err != nil {
		return "", err
	}
	return owner, nil
}

// targetOwner is RequestOwner for the API handlers: it returns ErrInvalidRequest for
// a bad owner id.
func targetOwner(r *http.Request, id Identity) (string, error) {
	owner, err := RequestOwner(r, id)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	return owner, nil
}

// scopeOf is the scope an owner's writes go to: the app scope for "" (the admin
// without ?owner), else the owner's own.
func scopeOf(owner string) domain.Scope {
	if owner == "" {
		return domain.AppScope
	}
	return domain.UserScope(owner)
}
