package relay

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mcpes/mcpes/events"
)

// scanHead reads the top-level id, type, subject, sequence and correlationid of a
// JSON object without decoding the rest (the event data is skipped byte by byte). It
// reports false for anything it does not read exactly as encoding/json would (a key
// that differs only in case, an escape it leaves to encoding/json, malformed input),
// and the caller falls back to json.Unmarshal. It checks the structure of the object,
// not the syntax of every scalar.
func scanHead(b []byte) (recordHead, bool) {
	var h recordHead
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return h, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return h, true
	}
	for i < len(b) {
		if b[i] != '"' {
			return h, false
		}
		end := stringEnd(b, i)
		if end < 0 {
			return h, false
		}
		key := b[i+1 : end-1]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return h, false
		}
		i = skipSpace(b, i+1)
		vEnd := valueEnd(b, i)
		if vEnd < 0 {
			return h, false
		}
		if !h.set(key, b[i:vEnd]) {
			return h, false
		}
		i = skipSpace(b, vEnd)
		if i >= len(b) {
			return h, false
		}
		if b[i] == '}' {
			return h, true
		}
		if b[i] != ',' {
			return h, false
		}
		i = skipSpace(b, i+1)
	}
	return h, false
}

var headKeys = []string{"id", "type", "subject", "sequence", "correlationid"}

// set stores one member if it is a head field. It reports false when the member
// cannot be read the way encoding/json would.
func (h *recordHead) set(key, val []byte) bool {
	if bytes.IndexByte(key, '\\') >= 0 {
		return false
	}
	k := string(key)
	var dst *string
	switch k {
	case "id":
		dst = &h.ID
	case "type":
		dst = &h.Type
	case "subject":
		dst = &h.Subject
	case "correlationid":
		dst = &h.CorrelationID
	case "sequence":
		s := val
		if len(s) >= 2 && s[0] == '"' {
			s = s[1 : len(s)-1]
		}
		n, err := strconv.ParseUint(string(s), 10, 64)
		if err != nil {
			return false
		}
		h.Sequence = events.Sequence(n)
		return true
	default:
		for _, hk := range headKeys {
			if strings.EqualFold(k, hk) {
				return false
			}
		}
		return true
	}
	if string(val) == "null" {
		return true
	}
	if len(val) < 2 || val[0] != '"' {
		return false
	}
	raw := val[1 : len(val)-1]
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		*dst = string(raw)
		return true
	}
	return json.Unmarshal(val, dst) == nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the closing quote of the string at b[i], or -1.
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// valueEnd returns the index after the JSON value starting at b[i], or -1.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				e := stringEnd(b, j)
				if e < 0 {
					return -1
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\t' && b[j] != '\r' {
		j++
	}
	if j == i {
		return -1
	}
	return j
}
