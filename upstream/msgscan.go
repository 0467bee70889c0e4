package upstream

import (
	"bytes"
	"encoding/json"
)

// maxScannedID bounds the raw JSON of an id kept from an oversized message; a
// longer id is not matched to a request.
const maxScannedID = 256

// msgScan follows one JSON message as it streams by and keeps only what a
// replacement needs: the raw top-level "id" (bounded) and whether there is a
// top-level "method" (a request or notification, which gets no replacement). It
// holds a few bytes whatever the message's size. Keys are compared as written: an
// id key spelled with escapes is not seen, and that message is only dropped.
type msgScan struct {
	depth     int
	inStr     bool
	esc       bool
	expectKey bool // at depth 1, the next string is a key
	inKey     bool
	key       [8]byte
	keyLen    int // may exceed len(key): then the key is none we look for
	valueOf   string
	inID      bool
	id        []byte
	idBad     bool
	method    bool
}

func (s *msgScan) reset() {
	id := s.id[:0]
	*s = msgScan{id: id}
}

func (s *msgScan) feed(b []byte) {
	for i := 0; i < len(b); i++ {
		if s.inStr && !s.inKey && !s.inID && !s.esc {
			// The body of a string nobody keeps (most of a large message): skip
			// to its next quote or backslash.
			n := stringStop(b[i:])
			if n < 0 {
				return
			}
			i += n
		}
		c := b[i]
		if s.inStr {
			if s.inKey {
				if s.keyLen < len(s.key) {
					s.key[s.keyLen] = c
				}
				s.keyLen++
			} else if s.inID {
				s.addID(c)
			}
			switch {
			case s.esc:
				s.esc = false
			case c == '\\':
				s.esc = true
			case c == '"':
				s.inStr = false
				if s.inKey {
					s.inKey = false
					s.keyLen-- // the closing quote
				}
				s.inID = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\r', '\n':
			s.inID = false
		case '"':
			s.inStr = true
			if s.depth == 1 && s.expectKey {
				s.inKey, s.keyLen = true, 0
			} else {
				s.startValue(c)
			}
		case '{', '[':
			s.startValue(c)
			if s.inID {
				s.inID, s.idBad = false, true // an id is a string or a number
			}
			s.depth++
			s.expectKey = s.depth == 1 && c == '{'
		case '}', ']':
			s.inID = false
			s.depth--
		case ':':
			if s.depth == 1 && s.expectKey {
				s.expectKey, s.valueOf = false, s.keyName()
			}
		case ',':
			s.inID = false
			if s.depth == 1 {
				s.expectKey, s.valueOf = true, ""
			}
		default:
			if s.inID {
				s.addID(c)
			} else {
				s.startValue(c)
			}
		}
	}
}

func (s *msgScan) keyName() string {
	if s.keyLen > len(s.key) {
		return "other"
	}
	switch k := string(s.key[:s.keyLen]); k {
	case "id", "method":
		return k
	}
	return "other"
}

// startValue notes the first byte of a value at depth 1.
func (s *msgScan) startValue(c byte) {
	if s.depth != 1 || s.valueOf == "" {
		return
	}
	switch s.valueOf {
	case "id":
		s.id, s.idBad, s.inID = append(s.id[:0], c), false, true
	case "method":
		s.method = true
	}
	s.valueOf = ""
}

func (s *msgScan) addID(c byte) {
	if len(s.id) >= maxScannedID {
		s.idBad, s.inID = true, false
		return
	}
	s.id = append(s.id, c)
}

// response returns the id of the scanned message when it is a response with a
// string or number id, else nil.
func (s *msgScan) response() json.RawMessage {
	if s.method || s.idBad || len(s.id) == 0 || !json.Valid(s.id) {
		return nil
	}
	if c := s.id[0]; c != '"' && c != '-' && (c < '0' || c > '9') {
		return nil
	}
	return bytes.Clone(s.id)
}

// stringStop returns the index of the first quote or backslash in b, or -1.
func stringStop(b []byte) int {
	q := bytes.IndexByte(b, '"')
	if q < 0 {
		q = len(b)
	}
	if e := bytes.IndexByte(b[:q], '\\'); e >= 0 {
		return e
	}
	if q == len(b) {
		return -1
	}
	return q
}
