package store

import (
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
)

// mth is RFC 6962's Merkle Tree Hash of leaves, computed by its definition with the
// library's hasher.
func mth(leaves [][]byte) []byte {
	h := rfc6962.DefaultHasher
	switch len(leaves) {
	case 0:
		return h.EmptyRoot()
	case 1:
		return h.HashLeaf(leaves[0])
	}
	k := 1 << (bits.Len(uint(len(leaves)-1)) - 1) // the largest power of two below n
	return h.HashChildren(mth(leaves[:k]), mth(leaves[k:]))
}

func TestTree_RootsAreRFC6962(t *testing.T) {
	// given the library's RFC 6962 hasher as the reference
	var leaves [][]byte
	tree := NewTree()
	for i := range uint64(130) {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], i)
		ev := sha256.Sum256(b[:])

		// when the tree takes one more event hash
		tree.Append(ev)
		leaves = append(leaves, ev[:])

		// then its leaf and root are the ones the definition gives
		if leaf := LeafHash(ev); string(leaf[:]) != string(rfc6962.DefaultHasher.HashLeaf(ev[:])) {
			t.Fatalf("leaf %d: %x", i, leaf)
		}
		if root := tree.Root(); string(root[:]) != string(mth(leaves)) {
			t.Fatalf("size %d: root %x, want %x", i+1, root, mth(leaves))
		}
	}
}
