package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mcpes/mcpes/cluster"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/internal/testnats"
)

// BenchmarkReplicaCatchUp measures how fast a node that joins late rebuilds its
// replica from the stream: MCPES_CATCHUP_EVENTS (default 20,000) appends are published
// to a three-server cluster, then a fresh node opens and applies them all.
//
//	MCPES_CATCHUP_EVENTS=100000 go test -run '^$' -bench ReplicaCatchUp -benchtime 1x ./cluster/
func BenchmarkReplicaCatchUp(b *testing.B) {
	n := 20_000
	if v, err := strconv.Atoi(os.Getenv("MCPES_CATCHUP_EVENTS")); err == nil && v > 0 {
		n = v
	}
	dir := b.TempDir()
	nc := testnats.StartCluster(b, 3, filepath.Join(dir, "nats"))
	clk := newClock()
	// the stream exists once a node has opened
	first := openNode(b, filepath.Join(dir, "first"), nc.URL(0), clk)
	first.close()
	conn, err := nats.Connect(nc.URL(0))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	js, err := jetstream.New(conn)
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		env := registered(b, fmt.Sprintf("s%d", i))
		body, _ := json.Marshal([]events.Envelope{env})
		if _, err := js.PublishAsync(cluster.Subject(env.Subject), body); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		b.Fatal("publishing timed out")
	}
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		late := openNode(b, filepath.Join(dir, fmt.Sprintf("late%d", i)), nc.URL(1), clk)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		if err := late.st.CatchUp(ctx); err != nil {
			b.Fatal(err)
		}
		cancel()
		el := time.Since(start)
		b.ReportMetric(float64(late.st.Applied())/el.Seconds(), "events/s")
		late.close()
	}
}
