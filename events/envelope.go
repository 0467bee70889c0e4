// Package events defines the CloudEvents envelope every mcpes fact is stored in, the
// v1 event catalogue, the codec with its upcasters, and the SHA-256 hash chain.
package events

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// SpecVersion is the CloudEvents version of every envelope.
const SpecVersion = "1.0"

// Envelope is one stored event: a CloudEvents 1.0 structured JSON object with the
// mcpes extensions. The store assigns Sequence, StreamVersion, PrevHash and Hash at
// append time; everything else comes from the writer.
type Envelope struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	Subject         string    `json:"subject"`
	Time            time.Time `json:"time"`
	DataContentType string    `json:"datacontenttype"`
	// Sequence is the global log position (1-based, gap-free), written zero padded.
	Sequence      Sequence `json:"sequence"`
	StreamVersion uint64   `json:"streamversion"`
	Actor         string   `json:"actor"`
	Reason        string   `json:"reason,omitempty"`
	CorrelationID string   `json:"correlationid,omitempty"`
	CausationID   string   `json:"causationid,omitempty"`
	// PrevHash is the hex SHA-256 of the event before (64 zeros for the first).
	PrevHash string          `json:"prevhash"`
	Data     json.RawMessage `json:"data"`
	// Hash is the hex SHA-256(prevhash bytes || canonical bytes). It is not part of the
	// canonical bytes and is written last in exported JSON.
	Hash string `json:"hash,omitempty"`
}

// Sequence is a log position that marshals as a 20-digit zero-padded string, as
// CloudEvents extension values sort best as strings.
type Sequence uint64

// MarshalJSON writes the zero-padded decimal string.
func (s Sequence) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf("\"%020d\"", uint64(s))), nil
}

// UnmarshalJSON accepts the padded string or a bare number.
func (s *Sequence) UnmarshalJSON(b []byte) error {
	str := string(b)
	if len(str) >= 2 && str[0] == '"' && str[len(str)-1] == '"' {
		str = str[1 : len(str)-1]
	}
	v, err := strconv.ParseUint(str, 10, 64)
	if err != nil {
		return fmt.Errorf("sequence %s: %w", b, err)
	}
	*s = Sequence(v)
	return nil
}

// ZeroHash is the PrevHash of the first event.
var ZeroHash = [32]byte{}

// Canonical returns the bytes the hash covers: the envelope's JSON without Hash, as
// encoding/json writes it (see appendCanonical).
func (e Envelope) Canonical() ([]byte, error) {
	b, err := appendCanonical(make([]byte, 0, 512+len(e.Data)), &e)
	if err != nil {
		return nil, fmt.Errorf("canonical %s: %w", e.ID, err)
	}
	return b, nil
}

// ChainHash computes SHA-256(prev || canonical).
func ChainHash(prev [32]byte, canonical []byte) [32]byte {
	h := sha256.New()
	h.Write(prev[:])
	h.Write(canonical)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// ParseHash decodes a 64-character hex hash.
func ParseHash(s string) ([32]byte, error) {
	var out [32]byte
	if len(s) != 64 {
		return out, fmt.Errorf("hash %q: want 64 hex characters", s)
	}
	if _, err := hex.Decode(out[:], []byte(s)); err != nil {
		return out, fmt.Errorf("hash %q: %w", s, err)
	}
	return out, nil
}

// Seal fills Sequence, StreamVersion and PrevHash, and returns the canonical bytes and
// the hash; Hash is set on the returned envelope.
func Seal(e Envelope, seq, streamVersion uint64, prev [32]byte) (Envelope, []byte, [32]byte, error) {
	e.Time = e.Time.UTC()
	e.Sequence = Sequence(seq)
	e.StreamVersion = streamVersion
	e.PrevHash = hex.EncodeToString(prev[:])
	canon, err := e.Canonical()
	if err != nil {
		return e, nil, [32]byte{}, err
	}
	sum := ChainHash(prev, canon)
	e.Hash = hex.EncodeToString(sum[:])
	return e, canon, sum, nil
}
