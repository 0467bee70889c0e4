package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Hasher is the RFC 6962 hasher of the log's Merkle tree.
var Hasher = rfc6962.DefaultHasher

// LeafHash is the Merkle leaf of the event whose chain hash is eventHash: leaf i of
// the tree is the event at position i+1. The chain hash covers the event's bytes and
// the previous hash, so a leaf commits to the event and, through the tree, to its
// place in the log.
func LeafHash(eventHash [32]byte) [32]byte {
	// Hasher.HashLeaf, hashed on the stack: SHA-256 of the leaf prefix and the hash.
	var in [1 + sha256.Size]byte
	in[0] = rfc6962.RFC6962LeafHashPrefix
	copy(in[1:], eventHash[:])
	return sha256.Sum256(in[:])
}

// hashChildren is Hasher.HashChildren (SHA-256 of the node prefix, l and r) with one
// allocation, for the writer's path; it defers to Hasher for other sizes.
func hashChildren(l, r []byte) []byte {
	if len(l) != sha256.Size || len(r) != sha256.Size {
		return Hasher.HashChildren(l, r)
	}
	var in [1 + 2*sha256.Size]byte
	in[0] = rfc6962.RFC6962NodeHashPrefix
	copy(in[1:], l)
	copy(in[1+sha256.Size:], r)
	sum := sha256.Sum256(in[:])
	return sum[:]
}

var rangeFactory = compact.RangeFactory{Hash: hashChildren}

// Tree is the RFC 6962 Merkle tree over the log, kept as its compact range (the
// roots of the perfect subtrees covering [0, size): at most 64 hashes), which is
// enough to append and to compute the root. A Tree is not safe for concurrent use;
// stores hand out copies.
type Tree struct {
	r *compact.Range
}

// NewTree returns the empty tree.
func NewTree() *Tree { return &Tree{r: rangeFactory.NewEmptyRange(0)} }

// Append adds the leaf of the event whose chain hash is eventHash.
func (t *Tree) Append(eventHash [32]byte) {
	leaf := LeafHash(eventHash)
	// Append fails only for a hash of the wrong size or a range not starting at 0.
	if err := t.r.Append(leaf[:], nil); err != nil {
		panic(fmt.Sprintf("merkle append: %v", err))
	}
}

// Size is the number of leaves (the log position of the last event in the tree).
func (t *Tree) Size() uint64 { return t.r.End() }

// Root is the tree's RFC 6962 root hash (SHA-256 of the empty string when empty).
func (t *Tree) Root() [32]byte {
	var out [32]byte
	if t.r.End() == 0 {
		return sha256.Sum256(nil)
	}
	h, err := t.r.GetRootHash(nil)
	if err != nil {
		panic(fmt.Sprintf("merkle root: %v", err))
	}
	copy(out[:], h)
	return out
}

// Clone returns an independent copy.
func (t *Tree) Clone() *Tree {
	hs := t.r.Hashes()
	cp := make([][]byte, len(hs))
	for i, h := range hs {
		cp[i] = append([]byte(nil), h...)
	}
	r, err := rangeFactory.NewRange(0, t.r.End(), cp)
	if err != nil {
		panic(fmt.Sprintf("merkle clone: %v", err))
	}
	return &Tree{r: r}
}

// MarshalBinary encodes the tree: its size (8 bytes, big-endian) and its compact
// range hashes (32 bytes each).
func (t *Tree) MarshalBinary() ([]byte, error) {
	hs := t.r.Hashes()
	out := binary.BigEndian.AppendUint64(make([]byte, 0, 8+32*len(hs)), t.r.End())
	for _, h := range hs {
		out = append(out, h...)
	}
	return out, nil
}

// UnmarshalTree decodes MarshalBinary's bytes. Returns an error wrapping ErrInvalid
// when they are not a compact range of their size.
func UnmarshalTree(b []byte) (*Tree, error) {
	if len(b) < 8 || (len(b)-8)%32 != 0 {
		return nil, fmt.Errorf("%w: merkle tree of %d bytes", ErrInvalid, len(b))
	}
	size := binary.BigEndian.Uint64(b[:8])
	var hs [][]byte
	for rest := b[8:]; len(rest) > 0; rest = rest[32:] {
		hs = append(hs, append([]byte(nil), rest[:32]...))
	}
	r, err := rangeFactory.NewRange(0, size, hs)
	if err != nil {
		return nil, fmt.Errorf("%w: merkle tree of size %d: %v", ErrInvalid, size, err)
	}
	return &Tree{r: r}, nil
}

// InclusionProofs returns the RFC 6962 inclusion proofs of the events at positions
// (1-based, each <= size) in the tree of the first size events, and that tree's root,
// computed in one pass over the records' hashes up to size. Returns an error wrapping
// ErrInvalid for a position outside 1..size or a size beyond the head.
func InclusionProofs(ctx context.Context, st Store, size uint64, positions []uint64) (map[uint64][][32]byte, [32]byte, error) {
	var root [32]byte
	head, _, err := st.Head(ctx)
	if err != nil {
		return nil, root, err
	}
	if size == 0 || size > head {
		return nil, root, fmt.Errorf("%w: tree size %d (head %d)", ErrInvalid, size, head)
	}
	plans := make(map[uint64]proof.Nodes, len(positions))
	want := map[compact.NodeID][]byte{}
	for _, p := range positions {
		if p == 0 || p > size {
			return nil, root, fmt.Errorf("%w: position %d outside the tree of size %d", ErrInvalid, p, size)
		}
		n, err := proof.Inclusion(p-1, size)
		if err != nil {
			return nil, root, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		plans[p] = n
		for _, id := range n.IDs {
			want[id] = nil
		}
	}
	r := rangeFactory.NewEmptyRange(0)
	visit := func(id compact.NodeID, h []byte) {
		if _, ok := want[id]; ok {
			want[id] = append([]byte(nil), h...)
		}
	}
	err = st.ReadRecords(ctx, 1, func(pos uint64, rec []byte) error {
		if pos > size {
			return errStop
		}
		if len(rec) < 33 {
			return fmt.Errorf("record %d: %d bytes", pos, len(rec))
		}
		leaf := Hasher.HashLeaf(rec[1:33]) // events.EncodeRecord: format byte, then the hash
		return r.Append(leaf, visit)
	})
	if err != nil && err != errStop {
		return nil, root, fmt.Errorf("inclusion proofs: %w", err)
	}
	rh, err := r.GetRootHash(nil)
	if err != nil || r.End() != size {
		return nil, root, fmt.Errorf("inclusion proofs: tree of %d leaves, want %d: %v", r.End(), size, err)
	}
	copy(root[:], rh)
	out := make(map[uint64][][32]byte, len(plans))
	for p, n := range plans {
		hs := make([][]byte, len(n.IDs))
		for i, id := range n.IDs {
			hs[i] = want[id]
		}
		rehashed, err := n.Rehash(hs, Hasher.HashChildren)
		if err != nil {
			return nil, root, fmt.Errorf("inclusion proof %d: %w", p, err)
		}
		pr := make([][32]byte, len(rehashed))
		for i, h := range rehashed {
			copy(pr[i][:], h)
		}
		out[p] = pr
	}
	return out, root, nil
}

// VerifyInclusion checks that the event whose chain hash is eventHash is at position
// pos of the tree of size with root. Returns an error when it is not.
func VerifyInclusion(pos, size uint64, eventHash [32]byte, hashes [][32]byte, root [32]byte) error {
	if pos == 0 {
		return fmt.Errorf("%w: position 0", ErrInvalid)
	}
	leaf := LeafHash(eventHash)
	pr := make([][]byte, len(hashes))
	for i := range hashes {
		pr[i] = hashes[i][:]
	}
	return proof.VerifyInclusion(Hasher, pos-1, size, leaf[:], pr, root[:])
}

var errStop = errors.New("stop")

// TailHash returns the chain hash of the event at position t.Size(), after checking
// that the events at the tree's right edge are the ones t covers: the hashes of the
// last 2^k records (k the trailing zero bits of the size) must give t's last subtree
// root. A walk that trusts t (a signed checkpoint's tree) resumes from there. Returns
// an error wrapping ErrInvalid when they do not.
func TailHash(ctx context.Context, st Store, t *Tree) ([32]byte, error) {
	var last [32]byte
	size := t.Size()
	if size == 0 {
		return last, nil
	}
	span := uint64(1) << bits.TrailingZeros64(size)
	r := rangeFactory.NewEmptyRange(size - span)
	err := st.ReadRecords(ctx, size-span+1, func(pos uint64, rec []byte) error {
		if pos > size {
			return errStop
		}
		if len(rec) < 33 || pos != r.End()+1 {
			return fmt.Errorf("%w: record %d", ErrInvalid, pos)
		}
		copy(last[:], rec[1:33])
		return r.Append(Hasher.HashLeaf(rec[1:33]), nil)
	})
	if err != nil && err != errStop {
		return last, fmt.Errorf("tail of the tree at %d: %w", size, err)
	}
	hs, got := t.r.Hashes(), r.Hashes() // [size-span, size) is one perfect subtree: one hash
	if r.End() != size || len(got) != 1 || len(hs) == 0 || !bytes.Equal(got[0], hs[len(hs)-1]) {
		return last, fmt.Errorf("%w: events %d to %d are not those of the tree of size %d", ErrInvalid, size-span+1, size, size)
	}
	return last, nil
}
