package storetest

import (
	"crypto/sha256"
	"testing"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

func testMerkleTree(t *testing.T, open Opener, f Features) {
	// given events appended one by one and in batches
	s := open(t)
	if tr, err := s.Tree(ctxT(t)); err != nil || tr.Size() != 0 || tr.Root() != sha256.Sum256(nil) {
		t.Fatalf("empty store: tree %v, %v", tr, err)
	}
	for i := range 7 {
		mustAppend(t, s, "m", store.AnyVersion, Events(t, "m", i%3+1)...)
	}
	checkTree(t, s, 13)

	// then a reopened store keeps the tree and goes on from it
	if f.Reopen != nil {
		s = f.Reopen(t, s)
		checkTree(t, s, 13)
		mustAppend(t, s, "m", store.AnyVersion, Events(t, "m", 3)...)
		checkTree(t, s, 16)
	}
}

// checkTree compares the store's tree with RFC 6962's definition of the tree head,
// computed from scratch over the records' hashes.
func checkTree(t *testing.T, s store.Store, want uint64) {
	t.Helper()
	var leaves [][32]byte
	err := s.ReadRecords(ctxT(t), 1, func(_ uint64, rec []byte) error {
		h, _, err := events.SplitRecord(rec)
		leaves = append(leaves, h)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := s.Tree(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Size() != want || uint64(len(leaves)) != want {
		t.Fatalf("tree size %d, %d records, want %d", tr.Size(), len(leaves), want)
	}
	if got, ref := tr.Root(), mth(leaves); got != ref {
		t.Fatalf("tree root %x, RFC 6962 gives %x", got, ref)
	}
}

// mth is RFC 6962 section 2.1's Merkle Tree Hash, leaf data being an event's hash.
func mth(leaves [][32]byte) [32]byte {
	switch len(leaves) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return sha256.Sum256(append([]byte{0}, leaves[0][:]...))
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	l, r := mth(leaves[:k]), mth(leaves[k:])
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

func testInclusionProofs(t *testing.T, open Opener, _ Features) {
	// given a log of 37 events
	s := open(t)
	for i := range 37 {
		mustAppend(t, s, "p", store.AnyVersion, Event(t, "p", i))
	}
	evs := readAll(t, s)
	tr, err := s.Tree(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []uint64{1, 2, 20, 32, 37} {
		positions := []uint64{1, size, (size + 1) / 2}
		// when proofs of some events are asked for a tree size
		proofs, root, err := store.InclusionProofs(ctxT(t), s, size, positions)
		if err != nil {
			t.Fatal(err)
		}
		if size == 37 && root != tr.Root() {
			t.Fatalf("root at the head %x, tree says %x", root, tr.Root())
		}
		// then each verifies against that root, and not as another position
		for _, p := range positions {
			h, _ := events.ParseHash(evs[p-1].Hash)
			if err := store.VerifyInclusion(p, size, h, proofs[p], root); err != nil {
				t.Fatalf("size %d position %d: %v", size, p, err)
			}
			if size > 1 {
				other := p%size + 1
				if err := store.VerifyInclusion(other, size, h, proofs[p], root); err == nil {
					t.Fatalf("size %d: the proof of %d verified as %d", size, p, other)
				}
			}
		}
	}
	if _, _, err := store.InclusionProofs(ctxT(t), s, 38, []uint64{1}); err == nil {
		t.Fatal("a tree beyond the head gave proofs")
	}
}
