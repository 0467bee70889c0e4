package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
)

// logCheck looks at the lines of a log as the API serves them (in order; an owner
// sees only its own events, so positions may skip) for what an export must not pass
// over silently: a hash chain that does not hold (each line's hash is
// SHA-256(prevhash || the line without its hash member), and, where positions follow
// each other, its prevhash is the hash of the line before) and event types outside
// the catalogue.
type logCheck struct {
	last     uint64 // position of the line before
	lastHash string
	broken   bool   // the chain does not hold ...
	at       uint64 // ... from this position on
	why      string
	unknowns map[string]int
}

// line checks one line, decoded as ev.
func (c *logCheck) line(raw []byte, ev events.Envelope) {
	seq := uint64(ev.Sequence)
	if _, err := events.Decode(ev); errors.Is(err, events.ErrUnknownType) {
		if c.unknowns == nil {
			c.unknowns = map[string]int{}
		}
		c.unknowns[ev.Type]++
	}
	defer func() { c.last, c.lastHash = seq, ev.Hash }()
	if c.broken {
		return
	}
	fail := func(why string) { c.broken, c.at, c.why = true, seq, why }
	hash, herr := events.ParseHash(ev.Hash)
	prev, perr := events.ParseHash(ev.PrevHash)
	member, _ := json.Marshal(ev.Hash)
	canonical := bytes.Replace(raw, []byte(`,"hash":`+string(member)), nil, 1)
	switch {
	case seq == 0:
		fail("no sequence")
	case herr != nil || perr != nil:
		fail("hash or prevhash missing or malformed")
	case seq == c.last+1 && c.last > 0 && ev.PrevHash != c.lastHash:
		fail("prevhash is not the hash of the event before")
	case seq == 1 && prev != [32]byte{}:
		fail("the first event does not chain to zero")
	case events.ChainHash(prev, canonical) != hash:
		fail("hash does not match the event's content")
	}
}

// warnings says what was found, one sentence each.
func (c *logCheck) warnings() []string {
	var out []string
	if c.broken {
		out = append(out, fmt.Sprintf("the log's hash chain is broken at position %d (%s): it was changed after it was written; run 'mcpes verify'", c.at, c.why))
	}
	for _, t := range slices.Sorted(maps.Keys(c.unknowns)) {
		out = append(out, fmt.Sprintf("%d event(s) of unknown type %s (written by a newer mcpes?) exported as they are", c.unknowns[t], t))
	}
	return out
}

// checkTypes refuses --type patterns that match no event type of the catalogue (a
// typo would otherwise export nothing and succeed).
func checkTypes(patterns []string) error {
	known := events.Types()
	for _, p := range patterns {
		ok := slices.ContainsFunc(known, func(t string) bool {
			return t == p || strings.HasSuffix(p, "*") && strings.HasPrefix(t, strings.TrimSuffix(p, "*"))
		})
		if !ok {
			return usagef("--type %s matches no event type; known types: %s", strings.TrimSuffix(strings.TrimPrefix(p, "mcpes."), ".*"),
				strings.Join(known, ", "))
		}
	}
	return nil
}

// ownerArg maps the owner word of the shared repository ("app", or "_" as in stream
// names) to what the audit filters take.
func ownerArg(owner string) string {
	if owner == domain.ScopeWordApp {
		return domain.SharedOwner
	}
	return owner
}
