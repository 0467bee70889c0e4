package events

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// The canonical bytes are encoding/json's encoding of the envelope (see Canonical).
// Every append encodes one, so they are written here field by field; a string or a
// payload that is not already in the form encoding/json would write (plain ASCII,
// compact JSON without HTML characters) goes through encoding/json itself, so the
// bytes never differ from json.Marshal's. FuzzCanonical checks that.

// appendCanonical appends e's canonical bytes (Hash left out) to dst.
func appendCanonical(dst []byte, e *Envelope) ([]byte, error) {
	var err error
	dst = append(dst, `{"specversion":`...)
	dst = appendString(dst, e.SpecVersion)
	dst = append(dst, `,"id":`...)
	dst = appendString(dst, e.ID)
	dst = append(dst, `,"source":`...)
	dst = appendString(dst, e.Source)
	dst = append(dst, `,"type":`...)
	dst = appendString(dst, e.Type)
	dst = append(dst, `,"subject":`...)
	dst = appendString(dst, e.Subject)
	dst = append(dst, `,"time":`...)
	if dst, err = e.Time.AppendText(append(dst, '"')); err != nil {
		return nil, err
	}
	dst = append(dst, `","datacontenttype":`...)
	dst = appendString(dst, e.DataContentType)
	dst = append(dst, `,"sequence":"`...)
	var num [20]byte
	n := strconv.AppendUint(num[:0], uint64(e.Sequence), 10)
	for range 20 - len(n) {
		dst = append(dst, '0')
	}
	dst = append(dst, n...)
	dst = append(dst, `","streamversion":`...)
	dst = strconv.AppendUint(dst, e.StreamVersion, 10)
	dst = append(dst, `,"actor":`...)
	dst = appendString(dst, e.Actor)
	for _, f := range [...]struct{ key, v string }{{`,"reason":`, e.Reason},
		{`,"correlationid":`, e.CorrelationID}, {`,"causationid":`, e.CausationID}} {
		if f.v != "" {
			dst = append(dst, f.key...)
			dst = appendString(dst, f.v)
		}
	}
	dst = append(dst, `,"prevhash":`...)
	dst = appendString(dst, e.PrevHash)
	dst = append(dst, `,"data":`...)
	if len(e.Data) > 0 && compactPlain(e.Data) {
		dst = append(dst, e.Data...)
	} else {
		b, err := json.Marshal(e.Data) // validates, compacts and escapes as Marshal does
		if err != nil {
			return nil, err
		}
		dst = append(dst, b...)
	}
	return append(dst, '}'), nil
}

// appendString appends s as a JSON string, as encoding/json writes it.
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always marshals
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// maxPlainDepth bounds the nesting compactPlain follows; deeper values go through
// encoding/json.
const maxPlainDepth = 64

// compactPlain reports whether b is one JSON value that encoding/json would write
// unchanged: valid, without whitespace, and with strings of printable ASCII only
// (escapes allowed) so that nothing needs HTML or line-separator escaping. It may
// say false for such a value; it never says true for another.
func compactPlain(b []byte) bool {
	end, ok := plainValue(b, 0, 0)
	return ok && end == len(b)
}

func plainValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) || depth > maxPlainDepth {
		return i, false
	}
	switch c := b[i]; {
	case c == '{':
		i++
		if i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		for {
			var ok bool
			if i >= len(b) || b[i] != '"' {
				return i, false
			}
			if i, ok = plainString(b, i); !ok || i >= len(b) || b[i] != ':' {
				return i, false
			}
			if i, ok = plainValue(b, i+1, depth+1); !ok || i >= len(b) {
				return i, false
			}
			switch b[i] {
			case ',':
				i++
			case '}':
				return i + 1, true
			default:
				return i, false
			}
		}
	case c == '[':
		i++
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = plainValue(b, i, depth+1); !ok || i >= len(b) {
				return i, false
			}
			switch b[i] {
			case ',':
				i++
			case ']':
				return i + 1, true
			default:
				return i, false
			}
		}
	case c == '"':
		return plainString(b, i)
	case c == '-' || (c >= '0' && c <= '9'):
		return plainNumber(b, i)
	default:
		for _, lit := range [...]string{"true", "false", "null"} {
			if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
				return i + len(lit), true
			}
		}
		return i, false
	}
}

// plainString scans the string starting at b[i] == '"' and returns the index after it.
func plainString(b []byte, i int) (int, bool) {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c == '\\':
			i++
			if i >= len(b) {
				return i, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-i < 5 {
					return i, false
				}
				for _, h := range b[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return i, false
					}
				}
				i += 4
			default:
				return i, false
			}
		case c < 0x20 || c >= utf8.RuneSelf || c == '<' || c == '>' || c == '&':
			return i, false
		}
	}
	return i, false
}

// plainNumber scans a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func plainNumber(b []byte, i int) (int, bool) {
	digits := func(i int) int {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i
	}
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(i)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}
