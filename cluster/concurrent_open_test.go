package cluster_test

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mcpes/mcpes/internal/testnats"
)

func TestNodesOpeningTogetherJoinOneLog(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server nats cluster")
	}
	// given a fresh cluster, when three nodes open at the same moment
	dir := t.TempDir()
	nc := testnats.StartCluster(t, 3, filepath.Join(dir, "nats"))
	clk := newClock()
	nodes := make([]*node, 3)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() { nodes[i] = openNode(t, filepath.Join(dir, fmt.Sprintf("node%d", i)), nc.URL(i), clk) })
	}
	wg.Wait()
	// then each can write and every node applies every write
	for i, n := range nodes {
		appendRetry(t, n.st, registered(t, fmt.Sprintf("s%d", i)))
	}
	last := nodes[2].st.Applied()
	for i, n := range nodes {
		waitFor(t, fmt.Sprintf("node %d to apply %d", i, last), func() bool { return n.st.Applied() >= last })
	}
}
