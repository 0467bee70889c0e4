package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mcpes/mcpes/store"
)

// Head is the shared log's head as every node computes it over stream order: each
// stream message extends a hash chain and the chain hash is a leaf of an RFC 6962
// Merkle tree (store.Tree), so two nodes that applied the same messages in the same
// order hold the same Head, whatever node-local decisions their own logs interleave.
type Head struct {
	// Seq is the last stream sequence applied (0 before the first).
	Seq uint64 `json:"seq"`
	// Size is the number of messages applied: the tree's size.
	Size uint64 `json:"size"`
	// Chain is the chain hash after message Seq.
	Chain Hash `json:"chain"`
	// Root is the Merkle root over the chain hashes of the Size messages.
	Root Hash `json:"root"`
}

// Hash is a SHA-256 hash written as lowercase hex.
type Hash [32]byte

// String returns the hash as hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText implements encoding.TextMarshaler.
func (h Hash) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h[:])), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *Hash) UnmarshalText(b []byte) error {
	if hex.DecodedLen(len(b)) != len(h) {
		return fmt.Errorf("hash: want %d hex digits, got %d", 2*len(h), len(b))
	}
	_, err := hex.Decode(h[:], b)
	return err
}

// headSnapshot is the replica snapshot holding the shared log's head and tree as of
// the last saved stream sequence: a restart resumes applying after it.
const headSnapshot = "cluster/head"

// chainDomain separates the shared log's chain hashes from every other hash.
const chainDomain = "mcpes-cluster-log-v1\x00"

// nextChain returns the chain hash after the stream message seq on subject with body
// data, following prev.
func nextChain(prev [32]byte, seq uint64, subject string, data []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(chainDomain))
	h.Write(prev[:])
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], seq)
	h.Write(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(len(subject)))
	h.Write(n[:])
	h.Write([]byte(subject))
	h.Write(data)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// tracker follows the shared log's head as messages are applied, and remembers the
// chain hash of the last ringSize sequences for the cross-check of other nodes' heads.
// It is used by the apply goroutine; Store copies its head under its mutex.
type tracker struct {
	seq   uint64
	chain [32]byte
	tree  *store.Tree
	ring  [ringSize]ringEntry
}

type ringEntry struct {
	seq   uint64
	chain [32]byte
}

// ringSize bounds how far back a node can check another node's reported head.
const ringSize = 4096

func newTracker() *tracker { return &tracker{tree: store.NewTree()} }

// add extends the head by the stream message seq.
func (t *tracker) add(seq uint64, subject string, data []byte) {
	t.chain = nextChain(t.chain, seq, subject, data)
	t.seq = seq
	t.tree.Append(t.chain)
	t.ring[seq%ringSize] = ringEntry{seq: seq, chain: t.chain}
}

// head returns the current head.
func (t *tracker) head() Head {
	return Head{Seq: t.seq, Size: t.tree.Size(), Chain: t.chain, Root: t.tree.Root()}
}

// chainAt returns the chain hash after sequence seq, when it is still remembered.
func (t *tracker) chainAt(seq uint64) ([32]byte, bool) {
	e := t.ring[seq%ringSize]
	return e.chain, e.seq == seq && seq != 0
}

// save stores the head and tree in the replica.
func (t *tracker) save(ctx context.Context, st store.Store) error {
	tree, err := t.tree.MarshalBinary()
	if err != nil {
		return err
	}
	data := make([]byte, 0, 40+len(tree))
	data = binary.BigEndian.AppendUint64(data, t.seq)
	data = append(data, t.chain[:]...)
	data = append(data, tree...)
	return st.SaveSnapshot(ctx, headSnapshot, t.seq, data)
}

// loadTracker restores the head saved in the replica (the empty head when none).
func loadTracker(ctx context.Context, st store.Store) (*tracker, error) {
	_, data, err := st.LoadSnapshot(ctx, headSnapshot)
	if errors.Is(err, store.ErrNotFound) {
		return newTracker(), nil
	}
	if err != nil {
		return nil, err
	}
	if len(data) < 40 {
		return nil, fmt.Errorf("%s: %d bytes: %w", headSnapshot, len(data), store.ErrInvalid)
	}
	tree, err := store.UnmarshalTree(data[40:])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", headSnapshot, err)
	}
	t := &tracker{seq: binary.BigEndian.Uint64(data), tree: tree}
	copy(t.chain[:], data[8:40])
	t.ring[t.seq%ringSize] = ringEntry{seq: t.seq, chain: t.chain}
	return t, nil
}

// headReport is what a node publishes about its head for the others to cross-check.
type headReport struct {
	Node  string `json:"node"`
	Seq   uint64 `json:"seq"`
	Chain Hash   `json:"chain"`
}

// maxReport bounds a head report read from the wire.
const maxReport = 1024

func decodeReport(b []byte) (headReport, error) {
	var r headReport
	if len(b) > maxReport {
		return r, fmt.Errorf("head report: %d bytes", len(b))
	}
	err := json.Unmarshal(b, &r)
	return r, err
}
