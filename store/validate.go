package store

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/mcpes/mcpes/events"
)

// Limits on what an Append may carry; they keep every index key well inside bbolt's
// key size limit.
const (
	MaxStreamLen = 1024
	MaxIDLen     = 256
)

// ValidateAppend checks the arguments of an Append before anything is stored: a
// non-empty stream without NUL bytes, at least one envelope, and for each envelope the
// CloudEvents spec version, an id, type, source, actor and time, valid UTF-8 in every
// string field (so that stored JSON reads back byte for byte), and a subject equal to
// stream. Returns an error wrapping ErrInvalid that names the first bad envelope.
// Implementations call it so that every store rejects the same inputs.
func ValidateAppend(stream string, evs []events.Envelope) error {
	switch {
	case stream == "":
		return fmt.Errorf("%w: empty stream", ErrInvalid)
	case len(stream) > MaxStreamLen:
		return fmt.Errorf("%w: stream longer than %d bytes", ErrInvalid, MaxStreamLen)
	case strings.IndexByte(stream, 0) >= 0:
		return fmt.Errorf("%w: stream %q contains a NUL byte", ErrInvalid, stream)
	case !utf8.ValidString(stream):
		return fmt.Errorf("%w: stream %q is not valid UTF-8", ErrInvalid, stream)
	case len(evs) == 0:
		return fmt.Errorf("%w: no events for stream %q", ErrInvalid, stream)
	}
	for i, e := range evs {
		var missing string
		switch {
		case e.ID == "":
			missing = "id"
		case e.Type == "":
			missing = "type"
		case e.Source == "":
			missing = "source"
		case e.Actor == "":
			missing = "actor"
		case e.Time.IsZero():
			missing = "time"
		}
		if missing != "" {
			return fmt.Errorf("%w: event %d (%s) of stream %q has no %s", ErrInvalid, i, e.ID, stream, missing)
		}
		if e.SpecVersion != events.SpecVersion {
			return fmt.Errorf("%w: event %s has specversion %q, want %q", ErrInvalid, e.ID, e.SpecVersion, events.SpecVersion)
		}
		if len(e.ID) > MaxIDLen {
			return fmt.Errorf("%w: event id longer than %d bytes", ErrInvalid, MaxIDLen)
		}
		for _, f := range [...]string{e.ID, e.Source, e.Type, e.Actor, e.Reason, e.CorrelationID, e.CausationID, e.DataContentType} {
			if !utf8.ValidString(f) {
				return fmt.Errorf("%w: event %q has a field that is not valid UTF-8", ErrInvalid, e.ID)
			}
		}
		if e.Subject != stream {
			return fmt.Errorf("%w: event %s has subject %q, appended to stream %q", ErrInvalid, e.ID, e.Subject, stream)
		}
	}
	return nil
}
