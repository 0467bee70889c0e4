package events

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// recordFormat is the first byte of every stored record.
const recordFormat = 1

// ErrCorrupt is wrapped by every error about stored bytes that do not decode or verify.
var ErrCorrupt = errors.New("corrupt event record")

// EncodeRecord lays out a stored record: one format byte, the 32-byte hash, then the
// canonical JSON the hash covers.
func EncodeRecord(canonical []byte, hash [32]byte) []byte {
	out := make([]byte, 0, 1+32+len(canonical))
	out = append(out, recordFormat)
	out = append(out, hash[:]...)
	return append(out, canonical...)
}

// SplitRecord returns the hash and canonical bytes of a stored record without
// decoding the JSON. The returned slices alias rec.
func SplitRecord(rec []byte) (hash [32]byte, canonical []byte, err error) {
	if len(rec) < 1+32+2 || rec[0] != recordFormat {
		return hash, nil, fmt.Errorf("%w: bad header (%d bytes)", ErrCorrupt, len(rec))
	}
	copy(hash[:], rec[1:33])
	return hash, rec[33:], nil
}

// CheckRecord verifies that rec chains to prev: its hash equals SHA-256(prev ||
// canonical). It returns the record's hash, which the next record must chain to.
// It does not decode the JSON; DecodeRecord checks that the envelope agrees.
func CheckRecord(prev [32]byte, rec []byte) ([32]byte, error) {
	hash, canon, err := SplitRecord(rec)
	if err != nil {
		return hash, err
	}
	if ChainHash(prev, canon) != hash {
		return hash, fmt.Errorf("%w: hash does not match content and previous hash", ErrCorrupt)
	}
	return hash, nil
}

// DecodeRecord decodes a stored record into its envelope, with Hash set, and checks
// that the envelope's own prevhash field matches the stored header. It does not check
// the chain; see CheckRecord.
func DecodeRecord(rec []byte) (Envelope, error) {
	hash, canon, err := SplitRecord(rec)
	if err != nil {
		return Envelope{}, err
	}
	var e Envelope
	if err := json.Unmarshal(canon, &e); err != nil {
		return Envelope{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if e.Hash != "" {
		return Envelope{}, fmt.Errorf("%w: hash inside canonical bytes", ErrCorrupt)
	}
	e.Hash = hex.EncodeToString(hash[:])
	return e, nil
}
