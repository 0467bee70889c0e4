package domain

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Witness kinds: where signed checkpoints are published (audit.witness).
const (
	WitnessFile      = "file" // file://PATH: JSON Lines, appended and synced
	WitnessHTTP      = "http" // http(s)://URL: each checkpoint note POSTed
	WitnessJetStream = "nats" // nats://HOST:PORT/SUBJECT: each checkpoint a JetStream message
)

// ErrWitness is returned by ParseWitness for a witness URL it cannot use.
var ErrWitness = errors.New("invalid witness")

// WitnessTarget is a parsed witness URL.
type WitnessTarget struct {
	Kind string
	// Addr is the file path (file), the whole URL (http) or nats://HOST:PORT (nats).
	Addr string
	// Subject is the JetStream subject (nats only).
	Subject string
}

// ParseWitness reads an audit.witness URL: file://PATH, http(s)://URL or
// nats://HOST:PORT/SUBJECT (a subject of dot-separated tokens, no wildcards).
// Errors wrap ErrWitness and name what is wrong.
func ParseWitness(raw string) (WitnessTarget, error) {
	bad := func(format string, a ...any) (WitnessTarget, error) {
		return WitnessTarget{}, fmt.Errorf("%w %q: %s", ErrWitness, raw, fmt.Sprintf(format, a...))
	}
	switch {
	case strings.HasPrefix(raw, "file://"):
		if len(raw) == len("file://") {
			return bad("file:// needs a path")
		}
		return WitnessTarget{Kind: WitnessFile, Addr: strings.TrimPrefix(raw, "file://")}, nil
	case strings.HasPrefix(raw, "http://"), strings.HasPrefix(raw, "https://"):
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return bad("not an http(s) URL with a host")
		}
		return WitnessTarget{Kind: WitnessHTTP, Addr: raw}, nil
	case strings.HasPrefix(raw, "nats://"):
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return bad("want nats://HOST:PORT/SUBJECT (no user, query or fragment)")
		}
		subject := strings.TrimPrefix(u.Path, "/")
		if !validSubject(subject) {
			return bad("the subject %q must be dot-separated tokens of letters, digits, '-' and '_'", subject)
		}
		return WitnessTarget{Kind: WitnessJetStream, Addr: "nats://" + u.Host, Subject: subject}, nil
	}
	return bad("want file://PATH, http(s)://URL or nats://HOST:PORT/SUBJECT")
}

// validSubject reports whether s is a plain NATS subject (no wildcards), at most 255
// bytes.
func validSubject(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" {
			return false
		}
		for _, r := range tok {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}
