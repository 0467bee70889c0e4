package connections

import (
	"math/rand/v2"
	"testing"

	"github.com/mcpes/mcpes/domain"
)

func TestViewHeap_PopsInOrderOfTheReadPosition(t *testing.T) {
	// given decisions pushed in a random order, some popped along the way
	rng := rand.New(rand.NewPCG(1, 2))
	var h viewHeap
	var popped []uint64
	most := 0
	for i := range 5000 {
		h.push(laterView{pos: uint64(i), in: domain.DecisionInputs{Position: rng.Uint64N(1000)}})
		most = max(most, h.len())
		if rng.IntN(3) == 0 {
			popped = append(popped, h.pop().in.Position)
		}
	}
	// when the rest is popped
	var rest []uint64
	for h.len() > 0 {
		rest = append(rest, h.pop().in.Position)
	}
	// then the rest comes out in order, and the slab holds no more than the most ever
	// waiting at once
	for i := 1; i < len(rest); i++ {
		if rest[i] < rest[i-1] {
			t.Fatalf("popped %d after %d", rest[i], rest[i-1])
		}
	}
	if len(popped)+len(rest) != 5000 || len(h.slab) != most {
		t.Fatalf("%d popped along the way, %d at the end, slab %d", len(popped), len(rest), len(h.slab))
	}
}
