package cluster_test

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

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

func TestCloseWithEveryServerGoneDoesNotHang(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server nats cluster")
	}
	// given a node that applied a write, failed over from its first nats server to
	// another, and then lost every server
	dir := t.TempDir()
	nc := testnats.StartCluster(t, 3, filepath.Join(dir, "nats"))
	clk := newClock()
	n := openNode(t, filepath.Join(dir, "node"), nc.URL(0)+","+nc.URL(1), clk)
	appendRetry(t, n.st, registered(t, "before"))
	head := n.st.SharedHead()
	nc.Stop(0)
	waitFor(t, "the client to fail over", func() bool { return n.nc.ConnectedUrl() == nc.URL(1) })
	appendRetry(t, n.st, registered(t, "after failover"))
	waitFor(t, "the write to apply", func() bool { return n.st.SharedHead().Seq == head.Seq+1 })
	head = n.st.SharedHead()
	nc.Stop(1)
	nc.Stop(2)
	waitFor(t, "the client to notice", func() bool { return n.nc.Status() != nats.CONNECTED })
	// when it is closed, then it returns within its bound
	start := time.Now()
	n.close()
	if el := time.Since(start); el > 15*time.Second {
		t.Fatalf("close took %v", el)
	} else {
		t.Logf("close with every server gone took %v", el)
	}
	// and when the servers and the node come back, the node resumes the same head
	for i := range 3 {
		nc.Start(i)
	}
	n = openNode(t, n.path, nc.URL(0), clk)
	if got := n.st.SharedHead(); got != head {
		t.Fatalf("head after reopening %+v, before %+v", got, head)
	}
}
