package store

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"
)

func TestWalkTree_SameRootsAsTree(t *testing.T) {
	// given the reference tree and a walkTree, the latter also started from a copy of
	// the reference at a few sizes
	ref, walk := NewTree(), newWalkTree(nil)
	resumed := map[uint64]*walkTree{}
	for i := range uint64(700) {
		// when both take the same leaves
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], i)
		leaf := sha256.Sum256(b[:])
		for _, w := range resumed {
			w.append(leaf)
		}
		ref.Append(leaf)
		walk.append(leaf)
		if i == 0 || i == 63 || i == 300 {
			resumed[ref.Size()] = newWalkTree(ref.Clone())
		}

		// then every root and size agrees
		if walk.size != ref.Size() || walk.root() != ref.Root() {
			t.Fatalf("size %d: walk root %x, tree root %x", ref.Size(), walk.root(), ref.Root())
		}
		for from, w := range resumed {
			if w.root() != ref.Root() {
				t.Fatalf("size %d, resumed at %d: root %x, tree root %x", ref.Size(), from, w.root(), ref.Root())
			}
		}
	}
	if newWalkTree(nil).root() != NewTree().Root() {
		t.Fatal("empty roots differ")
	}
}
