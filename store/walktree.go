package store

import (
	"crypto/sha256"
	"hash"
	"math/bits"
)

// walkTree is the Merkle tree Verify grows as it walks the log: the same RFC 6962
// tree as Tree, kept as the same compact range (the roots of the perfect subtrees
// covering [0, size), leftmost and largest first), but hashed with one reused hasher
// so that a walk over millions of records does not allocate per leaf.
type walkTree struct {
	size   uint64
	hashes [][32]byte
	h      hash.Hash
	buf    [1 + 2*sha256.Size]byte
	sum    []byte
}

// newWalkTree returns a walkTree holding t's leaves (nil: none).
func newWalkTree(t *Tree) *walkTree {
	w := &walkTree{h: sha256.New(), sum: make([]byte, 0, sha256.Size)}
	if t != nil {
		w.size = t.Size()
		for _, h := range t.r.Hashes() {
			w.hashes = append(w.hashes, [32]byte(h))
		}
	}
	return w
}

func (w *walkTree) digest(n int) [32]byte {
	w.h.Reset()
	w.h.Write(w.buf[:n])
	w.sum = w.h.Sum(w.sum[:0])
	return [32]byte(w.sum)
}

// node is RFC 6962's SHA-256(0x01 || l || r).
func (w *walkTree) node(l, r [32]byte) [32]byte {
	w.buf[0] = 1
	copy(w.buf[1:], l[:])
	copy(w.buf[1+sha256.Size:], r[:])
	return w.digest(len(w.buf))
}

// append adds the leaf SHA-256(0x00 || eventHash) of the event whose chain hash is
// eventHash, merging the perfect subtrees it completes.
func (w *walkTree) append(eventHash [32]byte) {
	w.buf[0] = 0
	copy(w.buf[1:], eventHash[:])
	w.hashes = append(w.hashes, w.digest(1+sha256.Size))
	w.size++
	for n := bits.TrailingZeros64(w.size); n > 0; n-- {
		last := len(w.hashes) - 1
		w.hashes[last-1] = w.node(w.hashes[last-1], w.hashes[last])
		w.hashes = w.hashes[:last]
	}
}

// root is the tree's root hash (SHA-256 of nothing when empty), as Tree.Root.
func (w *walkTree) root() [32]byte {
	if len(w.hashes) == 0 {
		return sha256.Sum256(nil)
	}
	h := w.hashes[len(w.hashes)-1]
	for i := len(w.hashes) - 2; i >= 0; i-- {
		h = w.node(w.hashes[i], h)
	}
	return h
}
