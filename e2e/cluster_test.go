package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// clusterHead is the shared log head a node reports in GET /readyz.
type clusterHead struct {
	Seq   uint64 `json:"seq"`
	Chain string `json:"chain"`
	Root  string `json:"root"`
}

type readiness struct {
	Ready  bool `json:"ready"`
	Detail struct {
		Cluster     string       `json:"cluster"`
		ClusterHead *clusterHead `json:"clusterHead"`
	} `json:"detail"`
}

func readyOf(s *service) (readiness, bool) {
	var r readiness
	resp, err := httpClient.Get(s.url + "/readyz")
	if err != nil {
		return r, false
	}
	defer resp.Body.Close()
	return r, json.NewDecoder(resp.Body).Decode(&r) == nil && r.Detail.ClusterHead != nil
}

// putServer registers (or changes) an on-demand app server; hdr adds preconditions.
func putServer(s *service, name string, hdr http.Header) (int, error) {
	body := fmt.Sprintf(`{"type":"streamable-http","url":"https://%s.example.com/mcp","startup":false}`, name)
	req, err := newRequest(s.url+"/v1/servers/"+name, "PUT", adminToken, []byte(body))
	if err != nil {
		return 0, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// servedNames lists the app servers a node serves, with their URLs.
func servedNames(tb testing.TB, s *service) map[string]string {
	tb.Helper()
	var list struct {
		Servers []struct {
			Name   string `json:"name"`
			Config struct {
				URL string `json:"url"`
			} `json:"config"`
		} `json:"servers"`
	}
	if err := json.Unmarshal(s.mustCall(200, "GET", "/v1/servers", adminToken, nil), &list); err != nil {
		tb.Fatal(err)
	}
	out := map[string]string{}
	for _, sv := range list.Servers {
		out[sv.Name] = sv.Config.URL
	}
	return out
}

// streamLeader returns the index of the server leading the log stream, asked
// through server via.
func streamLeader(tb testing.TB, nc *natsCluster, via int) int {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if i, ok := askLeader(nc, via); ok {
			return i
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.Fatal("no stream leader")
	return -1
}

func askLeader(nc *natsCluster, via int) (int, bool) {
	conn, err := nats.Connect(nc.url(via))
	if err != nil {
		return 0, false
	}
	defer conn.Close()
	js, err := jetstream.New(conn)
	if err != nil {
		return 0, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "MCPES_LOG")
	if err != nil || st.CachedInfo().Cluster == nil {
		return 0, false
	}
	var i int
	if _, err := fmt.Sscanf(st.CachedInfo().Cluster.Leader, "n%d", &i); err != nil {
		return 0, false
	}
	return i, true
}

// writer keeps registering servers through one node and records every write the
// node acknowledged, with when.
type writer struct {
	mu    sync.Mutex
	acked []string
	times []time.Time
	lat   []time.Duration
	stop  chan struct{}
	done  chan struct{}
}

func startWriter(node *service, prefix string) *writer {
	w := &writer{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			name := fmt.Sprintf("%s%d", prefix, i)
			start := time.Now()
			code, err := putServer(node, name, nil)
			if err == nil && code == http.StatusCreated {
				w.mu.Lock()
				w.acked, w.times, w.lat = append(w.acked, name), append(w.times, time.Now()), append(w.lat, time.Since(start))
				w.mu.Unlock()
			} else {
				time.Sleep(20 * time.Millisecond) // unavailable meanwhile: try the next name
			}
		}
	}()
	return w
}

// halt stops the writer and returns the longest gap between acknowledged writes.
func (w *writer) halt() time.Duration {
	close(w.stop)
	<-w.done
	var gap time.Duration
	for i := 1; i < len(w.times); i++ {
		gap = max(gap, w.times[i].Sub(w.times[i-1]))
	}
	return gap
}

func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

func pct(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

func TestCluster_ThreeProcessesShareOneLog(t *testing.T) {
	// given three nats-server processes and three mcpes nodes, each on its own server
	nc := startNATSCluster(t, 3)
	nodes := make([]*service, 3)
	for i := range nodes {
		cfg := writeConfig(t, fmt.Sprintf(`nodeID: node%d
cluster:
  url: %s
  maxStaleness: 2s
mcpServers:
  dead:
    type: sse
    url: http://127.0.0.1:1/sse
    startup: false
auth:
  tokens:
    - {sha256: %s, role: admin}
`, i, nc.url(i), hashOf(adminToken)))
		nodes[i] = startService(t, serveOpts{config: cfg})
	}
	for _, n := range nodes {
		n.waitReady()
	}
	var acked []string

	t.Run("two writers racing on one config: exactly one wins", func(t *testing.T) {
		for round := range 10 {
			name := fmt.Sprintf("race%d", round)
			codes := make([]int, 2)
			var wg sync.WaitGroup
			for w := range 2 {
				wg.Go(func() {
					codes[w], _ = putServer(nodes[w], name, http.Header{"If-None-Match": {"*"}})
				})
			}
			wg.Wait()
			slices.Sort(codes)
			if codes[0] != http.StatusCreated || codes[1] != http.StatusPreconditionFailed {
				t.Fatalf("round %d: statuses %v, want one 201 and one 412", round, codes)
			}
			acked = append(acked, name)
		}
	})

	lat := []time.Duration{}
	for _, victim := range []string{"follower", "leader"} {
		t.Run("SIGKILL of the stream's "+victim+" loses no acknowledged write", func(t *testing.T) {
			leader := streamLeader(t, nc, 0)
			v := leader
			if victim == "follower" {
				v = (leader + 1) % 3
			}
			// the writer's node stays on a live server
			w := startWriter(nodes[(v+1)%3], victim+"-")
			eventually(t, "writes before the kill", func() bool { return w.count() >= 20 })
			nc.kill(v)
			before := w.count()
			deadline := time.Now().Add(90 * time.Second)
			for w.count() < before+20 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			nc.start(v)
			gap := w.halt()
			if w.count() < before+20 {
				t.Fatalf("writes did not resume after the %s was killed (%d before, %d after)", victim, before, w.count())
			}
			t.Logf("SIGKILL %s (n%d): %d acknowledged writes, longest pause %v", victim, v, len(w.acked), gap)
			acked = append(acked, w.acked...)
			lat = append(lat, w.lat...)
			for _, n := range nodes {
				n.waitReady()
			}
		})
	}
	if len(lat) > 0 {
		t.Logf("append through the API (PUT, R3, read-your-writes): p50 %v p99 %v over %d writes", pct(lat, 0.5), pct(lat, 0.99), len(lat))
	}

	t.Run("a partitioned node goes stale, refuses connects, and catches up after healing", func(t *testing.T) {
		cut := time.Now()
		nc.partition(2, false)
		eventually(t, "node 2 to say stale_node", func() bool {
			r, ok := readyOf(nodes[2])
			return ok && r.Detail.Cluster == "stale_node" && !r.Ready
		})
		t.Logf("partitioned node stale after %v (cluster.maxStaleness 2s)", time.Since(cut).Round(time.Millisecond))
		code, body := nodes[2].call("POST", "/v1/connections/dead?owner=alice", adminToken, nil)
		if code != http.StatusBadGateway || !strings.Contains(string(body), `"rule":"stale_node"`) {
			t.Fatalf("connect on the stale node: %d %s", code, body)
		}
		// writes go on through the majority meanwhile (once it has a stream leader: it
		// may have to elect one, when node 2's server led)
		const missed = 1500
		var mu sync.Mutex
		var wg sync.WaitGroup
		n := 0
		deadline := time.Now().Add(2 * time.Minute)
		for g := range 6 {
			wg.Go(func() {
				for i := g; time.Now().Before(deadline); i += 6 {
					mu.Lock()
					done := n >= missed
					mu.Unlock()
					if done {
						return
					}
					name := fmt.Sprintf("p%d", i)
					if code, err := putServer(nodes[i%2], name, nil); err == nil && code == http.StatusCreated {
						mu.Lock()
						acked, n = append(acked, name), n+1
						mu.Unlock()
					} else {
						time.Sleep(20 * time.Millisecond)
					}
				}
			})
		}
		wg.Wait()
		if n < missed {
			t.Fatalf("only %d writes acknowledged by the majority while node 2 was cut off", n)
		}
		r0, _ := readyOf(nodes[0])
		healed := time.Now()
		nc.partition(2, true)
		// the first message applied after healing (the nats route and stream recover
		// first), then the rest of the backlog
		var moved time.Duration
		var movedAt uint64
		first, _ := readyOf(nodes[2])
		eventually(t, "node 2 to catch up", func() bool {
			r, ok := readyOf(nodes[2])
			if ok && moved == 0 && r.Detail.ClusterHead.Seq > first.Detail.ClusterHead.Seq {
				moved, movedAt = time.Since(healed), r.Detail.ClusterHead.Seq
			}
			return ok && r.Ready && r.Detail.ClusterHead.Seq >= r0.Detail.ClusterHead.Seq
		})
		el := time.Since(healed)
		rest := r0.Detail.ClusterHead.Seq - movedAt
		t.Logf("catch-up after healing: %d writes missed; first applied %v after healing, all %v after (the last %d at %.0f messages/s)",
			missed, moved.Round(time.Millisecond), el.Round(time.Millisecond), rest, float64(rest)/(el-moved).Seconds())
		// the refusal reaches the decisions stream once node 2 can ship it again
		eventually(t, "node 2's refusal to be shipped", func() bool {
			code, body := nodes[2].call("POST", "/v1/audit/verify", adminToken, nil)
			return code == http.StatusOK && strings.Contains(string(body), `"node2":1`)
		})
	})

	t.Run("the console of one node shows every node's decisions", func(t *testing.T) {
		b := requireBrowser(t)
		// given node 0's own decision beside node 2's stale_node refusal
		if code, body := nodes[0].call("POST", "/v1/connections/dead?owner=bob", adminToken, nil); code != http.StatusBadGateway {
			t.Fatalf("connect on node 0: %d %s", code, body)
		}
		eventually(t, "node 0's failure to be shipped", func() bool {
			code, body := nodes[1].call("POST", "/v1/audit/verify", adminToken, nil)
			return code == http.StatusOK && strings.Contains(string(body), `"node0":1`)
		})
		// when the admin opens node 1's Cluster view, and then asks for node 2's only
		res := b.run(t, "cluster", "MCPES_URL="+nodes[1].url, "ADMIN_TOKEN="+adminToken, "CLUSTER_NODE=node2")
		// then it lists both nodes' decisions, and node 2's refusal alone for node 2
		want := []clusterRow{{"node0", "connection.open_failed", ""}, {"node2", "connection.refused", "stale_node"}}
		slices.SortFunc(res.ClusterRows, func(a, b clusterRow) int { return strings.Compare(a.Node, b.Node) })
		if !slices.Equal(res.ClusterRows, want) {
			t.Fatalf("Cluster view rows %+v, want %+v", res.ClusterRows, want)
		}
		if !slices.Equal(res.ClusterNodeRows, want[1:]) {
			t.Fatalf("Cluster view rows for node2 %+v, want %+v", res.ClusterNodeRows, want[1:])
		}
	})

	t.Run("every node ends with the same shared head and every acknowledged write", func(t *testing.T) {
		var heads []clusterHead
		eventually(t, "the same shared head on every node", func() bool {
			heads = heads[:0]
			for _, n := range nodes {
				r, ok := readyOf(n)
				if !ok {
					return false
				}
				heads = append(heads, *r.Detail.ClusterHead)
			}
			return heads[0] == heads[1] && heads[0] == heads[2]
		})
		t.Logf("shared head on every node: seq %d root %s", heads[0].Seq, heads[0].Root[:16])
		for i, n := range nodes {
			names := servedNames(t, n)
			for _, a := range acked {
				if _, ok := names[a]; !ok {
					t.Fatalf("node %d lost acknowledged write %s", i, a)
				}
			}
		}
	})

	t.Run("mcpes verify passes on every node", func(t *testing.T) {
		for _, n := range nodes {
			n.stop(syscall.SIGTERM)
		}
		for i, n := range nodes {
			res := runCLI(t, nil, "", "verify", "--data", n.data, "--cluster", nc.url(0))
			if res.code != 0 || !strings.Contains(res.stdout+res.stderr, "verify ok") {
				t.Fatalf("node %d: %s", i, res)
			}
			if i == 2 && !strings.Contains(res.stderr, "node2 1 (this log's)") {
				t.Fatalf("node 2's stale_node refusal is not among the shipped decisions: %s", res)
			}
		}
	})
}
