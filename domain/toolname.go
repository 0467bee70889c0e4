package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrToolPrefixTaken is wrapped when a server name maps to the same ToolPrefix as
// another server the same owners see.
var ErrToolPrefixTaken = errors.New("tool name prefix already used by another server")

// Bounds of a tool name prefix.
const (
	MaxPlainPrefixLen = 64 // a name this short made only of tool-name characters is kept as is
	maxSlugLen        = 48
)

// ToolPrefix maps a server name to the prefix of its tools in the /mcp aggregate
// ("<prefix>__<tool>"), so that every aggregate tool name stays a valid MCP tool
// name (letters, digits, "_", "-", "."). The mapping is deterministic and
// documented in the README:
//
//   - a name of at most 64 bytes made of letters, digits, "-", "." and single "_"
//     (no "__", not starting or ending with "_") is its own prefix: "github" →
//     "github";
//   - any other name becomes a slug (every run of other characters, "_" included,
//     turns into one "_", trimmed, at most 48 bytes, "s" if nothing is left), "-",
//     and the first 8 hex digits of the SHA-256 of the name: "google calendar" →
//     "google_calendar-" + 8 hex digits; "日本語" → "s-" + 8 hex digits.
//
// The first "__" of an aggregate tool name therefore always ends the prefix. Two
// names can still map to one prefix (a name spelled like another's mapped form);
// CheckToolPrefix refuses the second at registration.
func ToolPrefix(name string) string {
	if plainPrefix(name) {
		return name
	}
	var b strings.Builder
	under := false
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' {
			b.WriteByte(c)
			under = false
			continue
		}
		if !under {
			b.WriteByte('_')
			under = true
		}
	}
	slug := strings.Trim(b.String(), "_")
	if len(slug) > maxSlugLen {
		slug = strings.TrimRight(slug[:maxSlugLen], "_")
	}
	if slug == "" {
		slug = "s"
	}
	sum := sha256.Sum256([]byte(name))
	return slug + "-" + hex.EncodeToString(sum[:4])
}

func plainPrefix(name string) bool {
	if name == "" || len(name) > MaxPlainPrefixLen || strings.Contains(name, "__") ||
		strings.HasPrefix(name, "_") || strings.HasSuffix(name, "_") {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// MayCollide reports whether another server name can have name's ToolPrefix. A
// plain name is its own prefix, and every mapped prefix ends in "-" and 8 lower-case
// hex digits, so a plain name without that ending collides with no other name: the
// check over every owner's servers can be skipped for it (the common case).
func MayCollide(name string) bool {
	return !plainPrefix(name) || looksMapped(name)
}

// looksMapped reports whether name ends like a mapped prefix: "-" and 8 hex digits.
func looksMapped(name string) bool {
	if len(name) < 9 || name[len(name)-9] != '-' {
		return false
	}
	for i := len(name) - 8; i < len(name); i++ {
		if c := name[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// CheckToolPrefix returns an error wrapping ErrToolPrefixTaken when name's
// ToolPrefix equals that of one of others (the other servers the same owners see;
// name itself is skipped), naming both servers and the prefix.
func CheckToolPrefix(name string, others []string) error {
	p := ToolPrefix(name)
	for _, o := range others {
		if o != name && ToolPrefix(o) == p {
			return fmt.Errorf("server %q: %w: %q maps to tool prefix %q too; rename one of them", name, ErrToolPrefixTaken, o, p)
		}
	}
	return nil
}
