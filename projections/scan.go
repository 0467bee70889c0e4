package projections

import (
	"bytes"
	"encoding/json"
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

// scanEnvelope reads type, subject, time, sequence and data from canonical envelope
// JSON without decoding the rest. Returns an error wrapping events.ErrCorrupt for
// bytes that are not a JSON object.
// maxInterned bounds the subject cache of one scan.
const maxInterned = 1 << 16

// subjects, when not nil, interns subject strings across a scan (streams repeat).
func scanEnvelope(b []byte, ev *rawEvent, subjects map[string]string) error {
	var seen int
	err := eachFieldOpt(b, true, func(key, val []byte) bool {
		switch string(key) {
		case "type":
			ev.typ = internType(unquote(val))
			seen++
		case "subject":
			raw := unquote(val)
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
			ev.timeRaw = unquote(val)
			seen++
		case "sequence":
			ev.pos = parseUint(unquote(val))
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

// eachField calls fn with every top-level key and raw value of a JSON object until fn
// returns false. Keys with escapes are passed still escaped (no envelope key has one).
func eachField(b []byte, fn func(key, val []byte) bool) error { return eachFieldOpt(b, false, fn) }

// eachFieldOpt is eachField; with dataLast it takes the value of a "data" key to run
// to the end of the object (see lastObjectValueEnd).
func eachFieldOpt(b []byte, dataLast bool, fn func(key, val []byte) bool) error {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return fmt.Errorf("%w: not a JSON object", events.ErrCorrupt)
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil
	}
	for i < len(b) {
		if b[i] != '"' {
			return fmt.Errorf("%w: want a key at byte %d", events.ErrCorrupt, i)
		}
		end := skipString(b, i)
		if end < 0 {
			return fmt.Errorf("%w: unterminated key", events.ErrCorrupt)
		}
		key := b[i+1 : end-1]
		i = skipWS(b, end)
		if i >= len(b) || b[i] != ':' {
			return fmt.Errorf("%w: want ':' at byte %d", events.ErrCorrupt, i)
		}
		i = skipWS(b, i+1)
		vend := -1
		if dataLast && string(key) == "data" {
			vend = lastObjectValueEnd(b, i)
		}
		if vend < 0 {
			vend = skipValue(b, i)
		}
		if vend < 0 {
			return fmt.Errorf("%w: bad value of %q", events.ErrCorrupt, key)
		}
		if !fn(key, b[i:vend]) {
			return nil
		}
		i = skipWS(b, vend)
		if i >= len(b) {
			break
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return nil
		default:
			return fmt.Errorf("%w: want ',' or '}' at byte %d", events.ErrCorrupt, i)
		}
	}
	return fmt.Errorf("%w: unterminated object", events.ErrCorrupt)
}

// field returns the raw value of a top-level key of a JSON object (nil if absent).
func field(obj []byte, key string) []byte {
	var out []byte
	_ = eachField(obj, func(k, v []byte) bool {
		if string(k) == key {
			out = v
			return false
		}
		return true
	})
	return out
}

// lastObjectValueEnd returns the end of the object value at b[i] when it is the last
// member of the enclosing object, without scanning it: the codec writes "data" last
// (Envelope's field order; hash is not in the canonical bytes), so its value ends
// right before the envelope's closing brace. It returns -1 when the bytes do not have
// that shape, and the caller scans properly. scan_test.go pins the field order.
func lastObjectValueEnd(b []byte, i int) int {
	end := len(b)
	for end > i && (b[end-1] == ' ' || b[end-1] == '\n' || b[end-1] == '\t' || b[end-1] == '\r') {
		end--
	}
	if end-i < 3 || b[i] != '{' || b[end-1] != '}' || b[end-2] != '}' {
		return -1
	}
	// The value is b[i:end-1]; it must itself end with '}' and nothing may follow.
	return end - 1
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"', or -1.
func skipString(b []byte, i int) int {
	i++
	// Most strings here are short: look at a few bytes before calling IndexByte.
	for n := 0; n < 24 && i < len(b); n++ {
		switch b[i] {
		case '"':
			return i + 1
		case '\\':
			return skipStringSlow(b, i)
		}
		i++
	}
	return skipStringSlow(b, i)
}

func skipStringSlow(b []byte, i int) int {
	for {
		if i >= len(b) {
			return -1
		}
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return -1
		}
		i += j
		// An odd run of backslashes before the quote escapes it.
		n := 0
		for k := i - 1; k >= 0 && b[k] == '\\'; k-- {
			n++
		}
		i++
		if n%2 == 0 {
			return i
		}
	}
}

// skipValue returns the index after the JSON value starting at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				if i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	}
	start := i
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\n', '\t', '\r':
			if i == start {
				return -1
			}
			return i
		}
		i++
	}
	if i == start {
		return -1
	}
	return i
}

// unquote returns the content of a JSON string value; escaped strings are decoded
// properly (a rare, slower path). Non-strings are returned unchanged.
func unquote(v []byte) []byte {
	if len(v) < 2 || v[0] != '"' {
		return v
	}
	inner := v[1 : len(v)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return inner
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return inner
	}
	return []byte(s)
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

// internType returns the catalogue constant equal to b, so replay does not allocate
// a string per event for the type.
func internType(b []byte) string {
	switch string(b) {
	case events.TypeServerRegistered:
		return events.TypeServerRegistered
	case events.TypeServerConfigChanged:
		return events.TypeServerConfigChanged
	case events.TypeServerRemoved:
		return events.TypeServerRemoved
	case events.TypeServerInspected:
		return events.TypeServerInspected
	case events.TypeServerInspectionFailed:
		return events.TypeServerInspectionFailed
	case events.TypeServerToolsChanged:
		return events.TypeServerToolsChanged
	case events.TypeServerReinspectionRequested:
		return events.TypeServerReinspectionRequested
	case events.TypeConnectionOpened:
		return events.TypeConnectionOpened
	case events.TypeConnectionOpenFailed:
		return events.TypeConnectionOpenFailed
	case events.TypeConnectionRefused:
		return events.TypeConnectionRefused
	case events.TypeConnectionEvicted:
		return events.TypeConnectionEvicted
	case events.TypeConnectionLost:
		return events.TypeConnectionLost
	case events.TypeToolCalled:
		return events.TypeToolCalled
	}
	return string(b)
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
