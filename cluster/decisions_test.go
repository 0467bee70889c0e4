package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/mcpes/mcpes/cluster"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/internal/testnats"
	"github.com/mcpes/mcpes/store"
)

// lost returns a decision envelope of node: a connection of owner to server lost.
func lost(t testing.TB, node, owner, server string) events.Envelope {
	t.Helper()
	env, err := events.New(domain.ConnectionLost{Owner: owner, Server: server, ConnID: uuid.NewString(), Error: "gone"},
		events.Meta{ID: uuid.Must(uuid.NewV7()).String(), Source: "mcpes://" + node, Time: time.Now(), Actor: "system"})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func has(t *testing.T, st store.Store, id string) bool {
	t.Helper()
	found := false
	err := st.ReadRecords(context.Background(), 1, func(_ uint64, rec []byte) error {
		env, err := events.DecodeRecord(rec)
		found = found || env.ID == id
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func TestDecisionsStayOnTheirNodeAndTheSharedHeadAgrees(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server nats cluster")
	}
	dir := t.TempDir()
	nc := testnats.StartCluster(t, 3, filepath.Join(dir, "nats"))
	clk := newClock()
	nodes := make([]*node, 3)
	for i := range nodes {
		nodes[i] = openNode(t, filepath.Join(dir, fmt.Sprintf("node%d", i)), nc.URL(i), clk)
	}
	ctx := context.Background()

	// given config facts written by every node and decisions made by each
	var decisions [3][]string
	for r := range 5 {
		for i, n := range nodes {
			appendRetry(t, n.st, registered(t, fmt.Sprintf("s%d-%d", r, i)))
			d := lost(t, filepath.Base(n.path), "alice", fmt.Sprintf("s%d-%d", r, i))
			start := time.Now()
			if _, err := n.st.Append(ctx, d.Subject, store.AnyVersion, d); err != nil {
				t.Fatalf("node %d decision: %v", i, err)
			}
			if el := time.Since(start); el > time.Second {
				t.Logf("node %d decision took %v", i, el)
			}
			decisions[i] = append(decisions[i], d.ID)
		}
	}
	last := nodes[2].st.Applied()
	for i, n := range nodes {
		waitFor(t, fmt.Sprintf("node %d to apply %d", i, last), func() bool { return n.st.Applied() >= last })
	}

	// then each decision is in the log of the node that made it and in no other
	for i, n := range nodes {
		for j, ids := range decisions {
			for _, id := range ids {
				if got := has(t, n.st, id); got != (i == j) {
					t.Fatalf("node %d has node %d's decision %s: %v", i, j, id, got)
				}
			}
		}
	}

	// and every node computes the same shared head over stream order, while their own
	// logs (holding different decisions) differ
	h0 := nodes[0].st.SharedHead()
	if h0.Seq != last || h0.Size != last {
		t.Fatalf("shared head %+v, want sequence and size %d", h0, last)
	}
	own := map[[32]byte]bool{}
	for i, n := range nodes {
		if h := n.st.SharedHead(); h != h0 {
			t.Fatalf("node %d shared head %+v, node 0 %+v", i, h, h0)
		}
		_, hash, err := n.st.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		own[hash] = true
		rep, err := store.Verify(ctx, n.st)
		if err != nil || !rep.OK {
			t.Fatalf("node %d verify: %+v %v", i, rep, err)
		}
	}
	if len(own) != 3 {
		t.Fatalf("%d distinct own chain heads, want 3", len(own))
	}

	// and every node's decisions reach the decisions stream, each node's in its order
	reader, err := nats.Connect(nc.URL(0))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	waitFor(t, "every decision shipped", func() bool {
		var got [3][]string
		err := cluster.ReadDecisions(ctx, reader, "", func(d cluster.Decision) error {
			var i int
			if _, err := fmt.Sscanf(d.Node, "node%d", &i); err != nil || i < 0 || i > 2 {
				return fmt.Errorf("decision of unknown node %q", d.Node)
			}
			got[i] = append(got[i], d.Event.ID)
			return nil
		})
		if err != nil {
			t.Fatalf("read decisions: %v", err)
		}
		return fmt.Sprint(got) == fmt.Sprint(decisions)
	})

	// and a node reads them back a page at a time, newest page first, of every node or
	// of one
	var all []cluster.Decision
	for before := uint64(0); ; {
		page, err := nodes[0].st.RecentDecisions(ctx, "", before, 4)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Decisions) == 0 || len(page.Decisions) > 4 {
			t.Fatalf("page before %d holds %d decisions", before, len(page.Decisions))
		}
		all = append(page.Decisions, all...)
		if page.Older == 0 {
			break
		}
		before = page.Older
	}
	var got [3][]string
	for i, d := range all {
		if d.Seq != uint64(i+1) {
			t.Fatalf("decision %d of the paged read has stream position %d", i, d.Seq)
		}
		n := 0
		fmt.Sscanf(d.Node, "node%d", &n)
		got[n] = append(got[n], d.Event.ID)
	}
	if fmt.Sprint(got) != fmt.Sprint(decisions) {
		t.Fatalf("paged decisions %v, shipped %v", got, decisions)
	}
	one, err := nodes[2].st.RecentDecisions(ctx, "node1", 0, cluster.MaxDecisionPage)
	if err != nil {
		t.Fatal(err)
	}
	var ones []string
	for _, d := range one.Decisions {
		ones = append(ones, d.Event.ID)
	}
	if fmt.Sprint(ones) != fmt.Sprint(decisions[1]) || one.Older != 0 {
		t.Fatalf("node1's decisions read on node 2: %v (older %d), want %v", ones, one.Older, decisions[1])
	}
	if _, err := nodes[0].st.RecentDecisions(ctx, "", 0, cluster.MaxDecisionPage+1); err == nil {
		t.Fatal("a page over the limit was read")
	}

	// and a page is read while the decisions stream changes leader (its consumers move,
	// and a fetch may reach nobody for a moment)
	for i := range 6 {
		if _, err := reader.Request("$JS.API.STREAM.LEADER.STEPDOWN."+cluster.DefaultStream+"_DECISIONS", nil, 5*time.Second); err != nil {
			t.Fatalf("step down %d: %v", i, err)
		}
		page, err := nodes[i%3].st.RecentDecisions(ctx, "", 0, cluster.MaxDecisionPage)
		if err != nil || len(page.Decisions) != len(all) {
			t.Fatalf("read %d after a leader change: %d decisions, %v", i, len(page.Decisions), err)
		}
	}

	// and the nodes cross-check each other's heads without finding a fork
	for i, n := range nodes {
		waitFor(t, fmt.Sprintf("node %d to cross-check", i), func() bool { return n.st.CrossChecks() > 0 })
		if err := n.st.Forked(); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}

	// when a node is closed and opened again, then it resumes the same shared head
	nodes[1].close()
	appendRetry(t, nodes[0].st, registered(t, "after-restart"))
	nodes[1] = openNode(t, nodes[1].path, nc.URL(1), clk)
	last = nodes[0].st.Applied()
	waitFor(t, "node 1 to catch up", func() bool { return nodes[1].st.Applied() >= last })
	if a, b := nodes[0].st.SharedHead(), nodes[1].st.SharedHead(); a != b {
		t.Fatalf("after restart node 1 shared head %+v, node 0 %+v", b, a)
	}

	// when a report names another chain at a sequence this node applied, then the
	// node says its shared log forked
	forged, _ := json.Marshal(map[string]any{"node": "intruder", "seq": last, "chain": fmt.Sprintf("%064x", 1)})
	if err := reader.Publish(cluster.HeadSubject("intruder"), forged); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the fork to be seen", func() bool { return errors.Is(nodes[0].st.Forked(), cluster.ErrForked) })
}

func TestSecretsAreSharedAndWrittenOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server nats cluster")
	}
	dir := t.TempDir()
	nc := testnats.StartCluster(t, 3, filepath.Join(dir, "nats"))
	clk := newClock()
	a := openNode(t, filepath.Join(dir, "a"), nc.URL(0), clk)
	b := openNode(t, filepath.Join(dir, "b"), nc.URL(1), clk)
	ctx := context.Background()

	// given a secret stored on node a
	if err := a.st.PutSecret(ctx, "ref-1", []byte("sealed-by-a")); err != nil {
		t.Fatal(err)
	}
	// when node b reads it, then it gets a's value
	if v, err := b.st.Secret(ctx, "ref-1"); err != nil || string(v) != "sealed-by-a" {
		t.Fatalf("node b reads %q, %v", v, err)
	}
	// when node b stores another value under the same ref, then the first stays,
	// on both nodes
	if err := b.st.PutSecret(ctx, "ref-1", []byte("sealed-by-b")); err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]*node{"a": a, "b": b} {
		if v, err := n.st.Secret(ctx, "ref-1"); err != nil || string(v) != "sealed-by-a" {
			t.Fatalf("node %s reads %q, %v", name, v, err)
		}
	}
	// and two nodes creating one ref at once agree on its value
	c := openNode(t, filepath.Join(dir, "c"), nc.URL(2), clk)
	for i := range 5 {
		ref := fmt.Sprintf("key-%d", i)
		var wg sync.WaitGroup
		for j, n := range []*node{b, c} {
			wg.Go(func() {
				if err := n.st.PutSecret(ctx, ref, []byte{byte(j)}); err != nil {
					t.Errorf("put %s: %v", ref, err)
				}
			})
		}
		wg.Wait()
		vb, err1 := b.st.Secret(ctx, ref)
		vc, err2 := c.st.Secret(ctx, ref)
		if err1 != nil || err2 != nil || string(vb) != string(vc) {
			t.Fatalf("%s: node b %v %v, node c %v %v", ref, vb, err1, vc, err2)
		}
	}
	// and a ref nobody stored is not found
	if _, err := a.st.Secret(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown ref: %v", err)
	}

	// given a shared record (an OAuth grant): when two nodes create it at once, then
	// exactly one wins and every node reads the winner's value
	rec := domain.OAuthRecordPrefix + "grant/alice/gh"
	won := make([]bool, 2)
	var wg sync.WaitGroup
	for j, n := range []*node{b, c} {
		wg.Go(func() {
			ok, err := n.st.SwapSecret(ctx, rec, nil, []byte{'v', byte('0' + j)})
			if err != nil {
				t.Errorf("swap on %d: %v", j, err)
			}
			won[j] = ok
		})
	}
	wg.Wait()
	if won[0] == won[1] {
		t.Fatalf("both or neither created the record: %v", won)
	}
	v1 := []byte{'v', '0'}
	if won[1] {
		v1 = []byte{'v', '1'}
	}
	for name, n := range map[string]*node{"a": a, "b": b, "c": c} {
		if v, err := n.st.Secret(ctx, rec); err != nil || string(v) != string(v1) {
			t.Fatalf("node %s reads the record as %q, %v; want %q", name, v, err, v1)
		}
	}
	// when two nodes change it from the current value at once, then exactly one wins,
	// a node swapping from the old value loses, and every node lists the winner's
	for round := range 5 {
		cur, _ := a.st.Secret(ctx, rec)
		next := []string{fmt.Sprintf("r%d-b", round), fmt.Sprintf("r%d-c", round)}
		for j, n := range []*node{b, c} {
			wg.Go(func() {
				ok, err := n.st.SwapSecret(ctx, rec, cur, []byte(next[j]))
				if err != nil {
					t.Errorf("swap on %d: %v", j, err)
				}
				won[j] = ok
			})
		}
		wg.Wait()
		if won[0] == won[1] {
			t.Fatalf("round %d: both or neither changed the record: %v", round, won)
		}
		if ok, err := a.st.SwapSecret(ctx, rec, cur, []byte("stale")); ok || err != nil {
			t.Fatalf("swap from a stale value: %v %v", ok, err)
		}
	}
	final, _ := a.st.Secret(ctx, rec)
	listed := map[string]string{}
	if err := c.st.RangeSecrets(ctx, func(ref string, v []byte) error { listed[ref] = string(v); return nil }); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(final), "r4-") || listed[rec] != string(final) {
		t.Fatalf("node a reads %q, node c lists %q for the record", final, listed[rec])
	}
	// when it is deleted, then no node finds it
	if ok, err := c.st.SwapSecret(ctx, rec, final, nil); !ok || err != nil {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if _, err := b.st.Secret(ctx, rec); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted record on node b: %v", err)
	}
	// and a swap of a write-once secret (re-sealing) stays on its node
	if ok, err := a.st.SwapSecret(ctx, "ref-1", []byte("sealed-by-a"), []byte("resealed")); !ok || err != nil {
		t.Fatalf("reseal on a: %v %v", ok, err)
	}
	if v, _ := b.st.Secret(ctx, "ref-1"); string(v) != "sealed-by-a" {
		t.Fatalf("node b reads the resealed secret as %q", v)
	}
}
