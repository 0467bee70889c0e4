package events

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// This file is the one JSON scanner of the module: it walks the top-level members of
// an object (an envelope, or an event's data) without decoding them, for the hot
// paths that read a few fields of every record (projection replay, the relay).

// EachField calls fn with every top-level key and raw value of a JSON object until fn
// returns false. Keys with escapes are passed still escaped (no envelope key has one).
func EachField(b []byte, fn func(key, val []byte) bool) error { return eachField(b, false, fn) }

// EachEnvelopeField is EachField for the canonical bytes of an envelope: the value of
// its "data" key is taken to run to the end of the object without being scanned (see
// lastObjectValueEnd). Use it only on bytes Envelope.Canonical wrote.
func EachEnvelopeField(b []byte, fn func(key, val []byte) bool) error { return eachField(b, true, fn) }

func eachField(b []byte, dataLast bool, fn func(key, val []byte) bool) error {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return fmt.Errorf("%w: not a JSON object", ErrCorrupt)
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil
	}
	for i < len(b) {
		if b[i] != '"' {
			return fmt.Errorf("%w: want a key at byte %d", ErrCorrupt, i)
		}
		end := skipString(b, i)
		if end < 0 {
			return fmt.Errorf("%w: unterminated key", ErrCorrupt)
		}
		key := b[i+1 : end-1]
		i = skipWS(b, end)
		if i >= len(b) || b[i] != ':' {
			return fmt.Errorf("%w: want ':' at byte %d", ErrCorrupt, i)
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
			return fmt.Errorf("%w: bad value of %q", ErrCorrupt, key)
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
			return fmt.Errorf("%w: want ',' or '}' at byte %d", ErrCorrupt, i)
		}
	}
	return fmt.Errorf("%w: unterminated object", ErrCorrupt)
}

// Field returns the raw value of a top-level key of a JSON object (nil if absent).
func Field(obj []byte, key string) []byte {
	var out []byte
	_ = EachField(obj, func(k, v []byte) bool {
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

// Unquote returns the content of a JSON string value; escaped strings are decoded
// properly (a rare, slower path). Non-strings are returned unchanged.
func Unquote(v []byte) []byte {
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

// InternType returns the catalogue's type name equal to b, so a scan does not
// allocate a string per event for the type; names outside the catalogue are copied.
func InternType(b []byte) string {
	if k, ok := byName[string(b)]; ok {
		return k.name
	}
	return string(b)
}
