// Package domain holds mcpes's pure types and rules: server configs, scopes, the
// decide functions for server commands and the connection policies. It imports only
// the standard library and does no I/O; time and identifiers come in as arguments.
package domain

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Scope says who a server config belongs to: the operator's app scope, or one owner.
type Scope string

// AppScope is the scope of servers loaded from the operator's config file.
const AppScope Scope = "app"

const userPrefix = "user:"

// UserScope returns the scope of servers that belong to owner.
func UserScope(owner string) Scope { return Scope(userPrefix + owner) }

// IsApp reports whether s is the app scope.
func (s Scope) IsApp() bool { return s == AppScope }

// Owner returns the owner of a user scope, or "" for the app scope.
func (s Scope) Owner() string { return strings.TrimPrefix(string(s), userPrefix) }

// ParseScope parses "app" or "user:<owner>". Returns an error for anything else.
func ParseScope(v string) (Scope, error) {
	if v == string(AppScope) {
		return AppScope, nil
	}
	if owner, ok := strings.CutPrefix(v, userPrefix); ok {
		if err := ValidateOwner(owner); err != nil {
			return "", err
		}
		return Scope(v), nil
	}
	return "", fmt.Errorf("scope %q: want %q or %q", v, AppScope, userPrefix+"<owner>")
}

// ValidateOwner checks an owner identifier: 1–128 characters of letters, digits and
// "-_.@". Returns an error naming the reason otherwise.
func ValidateOwner(owner string) error {
	if owner == "" || len(owner) > 128 {
		return fmt.Errorf("owner %q: must be 1 to 128 characters", owner)
	}
	if owner == SharedOwner || owner == ScopeWordApp {
		return fmt.Errorf("owner %q: reserved for the shared repository", owner)
	}
	for _, r := range owner {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.@", r)) {
			return fmt.Errorf("owner %q: character %q not allowed (letters, digits, -_.@)", owner, r)
		}
	}
	return nil
}

// MaxServerNameLen bounds a server name in bytes. LibreChat sets no bound; names
// live in stream names, URLs and every event, so mcpes keeps them short.
const MaxServerNameLen = 256

// ValidateServerName checks a server name. Any name LibreChat accepts is accepted
// (spaces, non-ASCII, "__", more than 64 characters: the /mcp aggregate maps names
// to valid tool names with ToolPrefix), except, deliberately: the empty name, names
// longer than MaxServerNameLen bytes, invalid UTF-8, control characters, and "/"
// (which would split the stream and URL path the name is part of).
func ValidateServerName(name string) error {
	if name == "" || len(name) > MaxServerNameLen {
		return fmt.Errorf("server name %q: must be 1 to %d bytes", name, MaxServerNameLen)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("server name %q: may not be \".\" or \"..\" (path segments)", name)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("server name %q: not valid UTF-8", name)
	}
	for _, r := range name {
		if r == '/' || unicode.IsControl(r) {
			return fmt.Errorf("server name %q: character %q not allowed (no \"/\" or control characters)", name, r)
		}
	}
	return nil
}

// ServerStream is the event stream of one server config: "server/<scope>/<name>".
func ServerStream(scope Scope, name string) string { return "server/" + string(scope) + "/" + name }

// ConnStream is the event stream of one owner's connection to a server:
// "conn/<owner>/<server>", with "_" standing for the shared (app-level) repository.
func ConnStream(owner, server string) string {
	if owner == "" {
		owner = SharedOwner
	}
	return "conn/" + owner + "/" + server
}

// GrantStream is the stream of the metadata of one owner's OAuth grant for a server
// (authorized, refreshed, dropped): "owner/<owner>/grant/<server>". It is a shared fact,
// so that on a cluster every node knows the grants any node obtained. Logs written
// before it existed hold these facts on the connection stream (GrantStreams).
func GrantStream(owner, server string) string { return "owner/" + owner + "/grant/" + server }

// GrantStreams are the streams that may hold owner's grant facts for server, the
// current one first.
func GrantStreams(owner, server string) []string {
	return []string{GrantStream(owner, server), ConnStream(owner, server)}
}

// OwnerStreamPrefixes are the stream prefixes of what belongs to owner: its private
// server configs, its connections and its grants. App server streams belong to no
// owner.
func OwnerStreamPrefixes(owner string) []string {
	out := []string{"conn/" + owner + "/", "owner/" + owner + "/grant/"}
	if owner != SharedOwner {
		out = append(out, "server/"+string(UserScope(owner))+"/")
	}
	return out
}

// NodeLocal reports whether stream holds connection decisions, which stay
// authoritative on the node that made them: on a cluster they are appended to that
// node's own log (never waiting for a quorum) and shipped to its decisions stream,
// while every other stream is a config fact shared through the replicated log.
func NodeLocal(stream string) bool { return strings.HasPrefix(stream, "conn/") }

// SharedOwner names the shared app-level repository in stream names and output.
const SharedOwner = "_"

// OAuthRecordPrefix begins the refs of the credential records OAuth keeps (grants,
// flows in progress, dynamic client registrations): changed in place, and on a cluster
// shared by every node (SharedRecord).
const OAuthRecordPrefix = "oauth/"

// SharedRecord reports whether the credential record ref is one every cluster node
// reads and changes (compare-and-set), rather than a write-once secret.
func SharedRecord(ref string) bool { return strings.HasPrefix(ref, OAuthRecordPrefix) }
