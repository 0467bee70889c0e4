package cluster_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/mcpes/mcpes/cluster"
	"github.com/mcpes/mcpes/internal/testnats"
)

func TestPartitionedNodeGoesStaleAndCatchesUp(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server nats cluster")
	}
	dir := t.TempDir()
	nc := testnats.StartCluster(t, 3, filepath.Join(dir, "nats"))
	clk := newClock()
	// node 2 reaches the cluster only through its own server, over a link the test cuts
	link := testnats.StartProxy(t, nc.Addr(2))
	writer := openNode(t, filepath.Join(dir, "node0.db"), nc.URL(0)+","+nc.URL(1), clk)
	n2 := openNode(t, filepath.Join(dir, "node2.db"), "nats://"+link.Addr(), clk)
	ctx := context.Background()
	waitFor(t, "node 2 fresh", n2.st.Fresh)

	for _, tc := range []struct {
		name      string
		cut, heal func()
	}{
		// the isolated server leads the stream: it keeps answering STREAM.INFO naming
		// itself leader, which must not renew the lease
		{"its nats server, the stream leader, is cut off from the others", func() {
			moveLeader(t, writer, nc.Name(2))
			nc.Isolate(2, false)
		}, func() { nc.Isolate(2, true) }},
		{"its link to its nats server is cut", link.Cut, link.Heal},
	} {
		// given a fresh node, when it is partitioned and the staleness bound passes,
		// then it is stale; when others write meanwhile and the partition heals, then
		// it is fresh again and has every write
		tc.cut()
		// past the bound in real time too: an isolated leader reports its peers as
		// seen a moment ago until then
		time.Sleep(1500 * time.Millisecond)
		clk.advance(2 * time.Second)
		if n2.st.Fresh() {
			t.Fatalf("%s: node 2 still fresh after the bound", tc.name)
		}
		for i := range 100 {
			appendRetry(t, writer.st, registered(t, fmt.Sprintf("%s-%d", tc.name[:3], i)))
		}
		time.Sleep(500 * time.Millisecond) // several lease rounds while partitioned
		clk.advance(2 * time.Second)
		if n2.st.Fresh() {
			t.Fatalf("%s: node 2 renewed its lease while partitioned: %s", tc.name, cluster.DebugInfo(n2.st))
		}
		tc.heal()
		waitFor(t, "node 2 fresh after healing", n2.st.Fresh)
		if got, want := n2.st.Applied(), writer.st.Applied(); got < want {
			t.Fatalf("%s: fresh node 2 applied %d, the log is at %d", tc.name, got, want)
		}
		h0, hash0, _ := writer.st.Head(ctx)
		h2, hash2, _ := n2.st.Head(ctx)
		if h0 != h2 || hash0 != hash2 {
			t.Fatalf("%s: heads differ: %d %x vs %d %x", tc.name, h0, hash0, h2, hash2)
		}
	}
}

// moveLeader asks the stream leader to step down in favour of server name until it
// leads.
func moveLeader(t *testing.T, n *node, name string) {
	t.Helper()
	waitFor(t, "stream leader "+name, func() bool {
		if streamLeader(t, n.st) == name {
			return true
		}
		_, _ = n.nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+cluster.DefaultStream,
			[]byte(`{"placement":{"preferred":"`+name+`"}}`), 5*time.Second)
		time.Sleep(500 * time.Millisecond)
		return false
	})
}
