package projections

import (
	"fmt"
	"strconv"
	"time"

	"github.com/mcpes/mcpes/events"
)

// rawEvent is the part of an envelope the projections read. Replay fills it from the
// stored record by scanning the canonical JSON (no full decode); Apply fills it from
// an already decoded envelope. data and timeRaw may alias a record that is valid only
// during the fold.
type rawEvent struct {
	pos     uint64
	typ     string
	subject string
	t       time.Time
	timeRaw []byte
	data    []byte
}

// time returns the event time, parsing it on first use.
func (ev *rawEvent) time() time.Time {
	if ev.t.IsZero() && len(ev.timeRaw) > 0 {
		ev.t = parseTime(ev.timeRaw)
	}
	return ev.t
}

func rawFromEnvelope(e *events.Envelope) rawEvent {
	return rawEvent{pos: uint64(e.Sequence), typ: e.Type, subject: e.Subject, t: e.Time, data: e.Data}
}

// maxInterned bounds the subject cache of one scan.
const maxInterned = 1 << 16

// scanEnvelope reads type, subject, time, sequence and data from canonical envelope
// JSON without decoding the rest. Returns an error wrapping events.ErrCorrupt for
// bytes that are not a JSON object. subjects, when not nil, interns subject strings
// across a scan (streams repeat).
func scanEnvelope(b []byte, ev *rawEvent, subjects map[string]string) error {
	var seen int
	err := events.EachEnvelopeField(b, func(key, val []byte) bool {
		switch string(key) {
		case "type":
			ev.typ = events.InternType(events.Unquote(val))
			seen++
		case "subject":
			raw := events.Unquote(val)
			if sub, ok := subjects[string(raw)]; ok {
				ev.subject = sub
			} else {
				ev.subject = string(raw)
				if subjects != nil && len(subjects) < maxInterned {
					subjects[ev.subject] = ev.subject
				}
			}
			seen++
		case "time":
			ev.timeRaw = events.Unquote(val)
			seen++
		case "sequence":
			ev.pos = parseUint(events.Unquote(val))
			seen++
		case "data":
			ev.data = val
			seen++
		}
		return seen < 5
	})
	if err != nil {
		return err
	}
	if seen < 5 {
		return fmt.Errorf("%w: envelope misses type, subject, time, sequence or data", events.ErrCorrupt)
	}
	return nil
}

func parseUint(b []byte) uint64 {
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}

// parseTime parses the UTC RFC 3339 times the envelope codec writes
// ("2026-01-02T15:04:05.123456789Z") by hand, falling back to time.Parse.
func parseTime(b []byte) time.Time {
	if len(b) >= 20 && b[4] == '-' && b[7] == '-' && b[10] == 'T' && b[13] == ':' && b[16] == ':' && b[len(b)-1] == 'Z' {
		d := func(s []byte) (int, bool) {
			n := 0
			for _, c := range s {
				if c < '0' || c > '9' {
					return 0, false
				}
				n = n*10 + int(c-'0')
			}
			return n, true
		}
		y, ok1 := d(b[0:4])
		mo, ok2 := d(b[5:7])
		dd, ok3 := d(b[8:10])
		h, ok4 := d(b[11:13])
		mi, ok5 := d(b[14:16])
		s, ok6 := d(b[17:19])
		ns, okN := 0, true
		if rest := b[19 : len(b)-1]; len(rest) > 0 {
			if rest[0] != '.' || len(rest) < 2 || len(rest) > 10 {
				okN = false
			} else {
				ns, okN = d(rest[1:])
				for range 10 - len(rest) {
					ns *= 10
				}
			}
		}
		if ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && okN && mo >= 1 && mo <= 12 {
			return time.Date(y, time.Month(mo), dd, h, mi, s, ns, time.UTC)
		}
	}
	t, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// atoi formats a position for error messages.
func atoi(v uint64) string { return strconv.FormatUint(v, 10) }
