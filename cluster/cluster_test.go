package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/mcpes/mcpes/cluster"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/internal/testnats"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/bolt"
)

// wait bounds every wait of these tests generously: the machine is shared.
const wait = 60 * time.Second

// clock is a settable lease clock.
type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }
func newClock() *clock                   { c := &clock{}; c.ns.Store(time.Now().UnixNano()); return c }

// node is one mcpes node: a bbolt replica joined to the cluster through one nats
// connection.
type node struct {
	path string
	nc   *nats.Conn
	st   *cluster.Store
}

func openNode(t testing.TB, path, urls string, clk *clock) *node {
	t.Helper()
	nc, err := nats.Connect(urls, nats.DontRandomize(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("connect %s: %v", urls, err)
	}
	replica, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatalf("replica: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	st, err := cluster.Open(ctx, nc, replica, cluster.Options{MaxStaleness: time.Second, Now: clk.now, Node: filepath.Base(path)})
	if err != nil {
		t.Fatalf("cluster open: %v", err)
	}
	n := &node{path: path, nc: nc, st: st}
	t.Cleanup(n.close)
	return n
}

func (n *node) close() {
	if n.st != nil {
		n.st.Close()
		n.nc.Close()
		n.st = nil
	}
}

// registered returns an envelope registering server name.
func registered(t testing.TB, name string) events.Envelope {
	t.Helper()
	env, err := events.New(domain.ServerRegistered{Scope: domain.AppScope, Name: name,
		Config: domain.ServerConfig{URL: "https://" + name + ".example.com/mcp"}},
		events.Meta{ID: uuid.Must(uuid.NewV7()).String(), Source: "mcpes://test", Time: time.Now(), Actor: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// appendRetry appends env until it is acknowledged, returning how long it took; a
// retry reuses the event id, so the stream dedupes a publish that did land.
func appendRetry(t *testing.T, st store.Store, env events.Envelope) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := st.Append(ctx, env.Subject, store.AnyVersion, env)
		cancel()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > wait {
			t.Fatalf("append %s: %v (%s)", env.ID, err, cluster.DebugInfo(st.(*cluster.Store)))
		}
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func streamLeader(t *testing.T, st *cluster.Store) string {
	t.Helper()
	var leader string
	waitFor(t, "a stream leader", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		leader, _ = st.Leader(ctx)
		return leader != ""
	})
	return leader
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

func TestThreeNodesShareOneLog(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server nats cluster")
	}
	dir := t.TempDir()
	nc := testnats.StartCluster(t, 3, filepath.Join(dir, "nats"))
	clk := newClock()
	nodes := make([]*node, 3)
	for i := range nodes {
		// each node talks to its own server first and fails over to the others
		urls := nc.URL(i)
		for j := range 3 {
			if j != i {
				urls += "," + nc.URL(j)
			}
		}
		nodes[i] = openNode(t, filepath.Join(dir, fmt.Sprintf("node%d.db", i)), urls, clk)
	}
	ctx := context.Background()
	var acked []events.Envelope

	// given two writers racing to register the same server, when both append at
	// NoStream, then exactly one wins and the other gets a version conflict
	for r := range 10 {
		envs := []events.Envelope{registered(t, fmt.Sprintf("race%d", r)), registered(t, fmt.Sprintf("race%d", r))}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for w := range 2 {
			wg.Go(func() {
				_, errs[w] = nodes[w].st.Append(ctx, envs[w].Subject, store.NoStream, envs[w])
			})
		}
		wg.Wait()
		var conflicts, wins int
		for w, err := range errs {
			switch {
			case err == nil:
				wins++
				acked = append(acked, envs[w])
			case errors.Is(err, store.ErrVersionConflict):
				conflicts++
			default:
				t.Fatalf("race %d writer %d: %v", r, w, err)
			}
		}
		if wins != 1 || conflicts != 1 {
			t.Fatalf("race %d: %d wins, %d conflicts; want exactly one of each", r, wins, conflicts)
		}
	}

	// when one node appends, then it reads its own write at once
	var lat []time.Duration
	for i := range 200 {
		env := registered(t, fmt.Sprintf("s%d", i))
		start := time.Now()
		res, err := nodes[0].st.Append(ctx, env.Subject, store.NoStream, env)
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		lat = append(lat, time.Since(start))
		acked = append(acked, env)
		got, err := nodes[0].st.ReadAll(ctx, res.Positions[0], 1)
		if err != nil || len(got) != 1 || got[0].ID != env.ID {
			t.Fatalf("read own write %d: %v %v", i, got, err)
		}
	}
	t.Logf("append (CAS, R3, read-your-writes): p50 %v p99 %v", percentile(lat, 0.5), percentile(lat, 0.99))

	// when a follower's server is hard-stopped, then writes go on and none is lost
	leader := streamLeader(t, nodes[0].st)
	follower := -1
	for i := range 3 {
		if nc.Name(i) != leader {
			follower = i
			break
		}
	}
	nc.Stop(follower)
	for i := range 50 {
		env := registered(t, fmt.Sprintf("f%d", i))
		appendRetry(t, nodes[(follower+1)%3].st, env)
		acked = append(acked, env)
	}
	nc.Start(follower)

	// when the stream leader's server is hard-stopped, then writes pause until a new
	// leader is elected and none is lost
	leader = streamLeader(t, nodes[0].st)
	li := slices.IndexFunc([]int{0, 1, 2}, func(i int) bool { return nc.Name(i) == leader })
	writer := nodes[(li+1)%3].st
	nc.Stop(li)
	var pause time.Duration
	for i := range 50 {
		env := registered(t, fmt.Sprintf("l%d", i))
		d := appendRetry(t, writer, env)
		pause = max(pause, d)
		acked = append(acked, env)
	}
	t.Logf("leader loss: longest append pause %v", pause)
	nc.Start(li)

	// when a node is closed while others write, then on reopening it catches up
	nodes[2].close()
	const missed = 1000
	for i := range missed {
		env := registered(t, fmt.Sprintf("c%d", i))
		appendRetry(t, nodes[0].st, env)
		acked = append(acked, env)
	}
	head := nodes[0].st.Applied()
	start := time.Now()
	nodes[2] = openNode(t, nodes[2].path, nc.URL(2)+","+nc.URL(0)+","+nc.URL(1), clk)
	waitFor(t, "node 2 to catch up", func() bool { return nodes[2].st.Applied() >= head })
	el := time.Since(start)
	t.Logf("catch-up: %d events in %v (%.0f events/s, including open)", missed, el, missed/el.Seconds())

	// then every replica has every acknowledged write, the same chain head and Merkle
	// root, and verifies
	last := nodes[0].st.Applied()
	for i, n := range nodes {
		waitFor(t, fmt.Sprintf("node %d to apply %d", i, last), func() bool { return n.st.Applied() >= last })
	}
	h0, hash0, _ := nodes[0].st.Head(ctx)
	tree0, _ := nodes[0].st.Tree(ctx)
	for i, n := range nodes {
		h, hash, err := n.st.Head(ctx)
		if err != nil || h != h0 || hash != hash0 {
			t.Fatalf("node %d head %d %x, node 0 %d %x (%v)", i, h, hash, h0, hash0, err)
		}
		tree, err := n.st.Tree(ctx)
		if err != nil || tree.Root() != tree0.Root() {
			t.Fatalf("node %d tree root differs (%v)", i, err)
		}
		rep, err := store.Verify(ctx, n.st)
		if err != nil || !rep.OK {
			t.Fatalf("node %d verify: %+v %v", i, rep, err)
		}
		ids := map[string]bool{}
		err = n.st.ReadRecords(ctx, 1, func(_ uint64, rec []byte) error {
			env, err := events.DecodeRecord(rec)
			ids[env.ID] = true
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, env := range acked {
			if !ids[env.ID] {
				t.Fatalf("node %d lost acknowledged event %s (%s)", i, env.ID, env.Subject)
			}
		}
	}
	if int(h0) != len(acked) {
		t.Fatalf("log has %d events, %d were acknowledged", h0, len(acked))
	}
}
