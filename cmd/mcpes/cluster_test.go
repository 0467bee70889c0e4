package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpes/mcpes/audit"
	"github.com/mcpes/mcpes/config"
	"github.com/mcpes/mcpes/credentials"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/examples/servers/clock/clockserver"
	"github.com/mcpes/mcpes/internal/testnats"
)

func TestServe_ClusterNodesShareTheConfigLog(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server nats cluster")
	}
	// given three nats servers and three mcpes nodes, the third one reaching the
	// cluster only through its own server
	dir := t.TempDir()
	nc := testnats.StartCluster(t, 3, filepath.Join(dir, "nats"))
	urls := []string{nc.URL(0) + "," + nc.URL(1), nc.URL(1) + "," + nc.URL(0), nc.URL(2)}
	var mains []*Main
	var bases []string
	var dataDirs []string
	for i, u := range urls {
		data := filepath.Join(dir, fmt.Sprintf("node%d", i))
		m, base := runService(t, &config.Config{DataDir: data, Listen: "127.0.0.1:0", NodeID: fmt.Sprintf("node%d", i),
			Cluster: config.Cluster{URL: u, MaxStaleness: config.Duration(config.MinMaxStaleness)}})
		mains, bases, dataDirs = append(mains, m), append(bases, base), append(dataDirs, data)
	}

	// when the admin registers a server on node 0, then every node serves it
	putCreated(t, bases[0]+"/v1/servers/shared", `{"type":"sse","url":"http://127.0.0.1:1/sse","startup":false}`)
	for i, base := range bases {
		eventually(t, fmt.Sprintf("node %d serves the server", i), func() bool { return get(t, base+"/v1/servers/shared") == 200 })
		if ready := getBody(t, base+"/readyz"); !strings.Contains(ready, `"cluster":"fresh"`) {
			t.Errorf("node %d readyz: %s", i, ready)
		}
	}

	// when node 2's nats server stops, then past cluster.maxStaleness node 2 is not
	// ready and says stale_node; when it is back, node 2 is ready again
	nc.Stop(2)
	eventually(t, "node 2 stale", func() bool { return strings.Contains(getBody(t, bases[2]+"/readyz"), `"cluster":"stale_node"`) })
	if code := get(t, bases[2]+"/readyz"); code == 200 {
		t.Fatalf("stale node 2 answers readyz %d", code)
	}
	// and refuses a connect (unavailable, so a balancer tries another node), recording
	// the refusal in its own log at once
	if code, body := post(t, bases[2]+"/v1/connections/shared?owner=alice"); code != http.StatusBadGateway || !strings.Contains(body, `"rule":"stale_node"`) {
		t.Fatalf("connect on stale node 2: %d %s", code, body)
	}
	nc.Start(2)
	eventually(t, "node 2 fresh again", func() bool { return get(t, bases[2]+"/readyz") == 200 })
	// when node 0 tries the (dead) server, then that failure is node 0's decision
	if code, body := post(t, bases[0]+"/v1/connections/shared?owner=alice"); code != http.StatusBadGateway {
		t.Fatalf("connect on node 0: %d %s", code, body)
	}

	// then every node reports the same shared log head (their own logs may differ by
	// the decisions each made) and, once stopped, every node's log verifies
	clusterHead := func(i int) string {
		var ready struct {
			Detail struct {
				ClusterHead *struct {
					Seq   uint64 `json:"seq"`
					Chain string `json:"chain"`
					Root  string `json:"root"`
				} `json:"clusterHead"`
			} `json:"detail"`
		}
		if err := json.Unmarshal([]byte(getBody(t, bases[i]+"/readyz")), &ready); err != nil || ready.Detail.ClusterHead == nil {
			t.Fatalf("node %d readyz has no clusterHead: %v", i, err)
		}
		return fmt.Sprint(*ready.Detail.ClusterHead)
	}
	eventually(t, "the same shared head on every node", func() bool {
		h := clusterHead(0)
		return !strings.HasPrefix(h, "{0 ") && h == clusterHead(1) && h == clusterHead(2)
	})
	// and the service's verify (the console's integrity view) reads every node's
	// decisions
	eventually(t, "verify on node 1 to count both nodes' decisions", func() bool {
		code, body := post(t, bases[1]+"/v1/audit/verify")
		var rep struct {
			OK               bool           `json:"ok"`
			ClusterDecisions map[string]int `json:"clusterDecisions"`
		}
		if code != http.StatusOK || json.Unmarshal([]byte(body), &rep) != nil || !rep.OK {
			t.Fatalf("verify on node 1: %d %s", code, body)
		}
		return rep.ClusterDecisions["node0"] == 1 && rep.ClusterDecisions["node2"] == 1
	})
	// and lists them (the console's Cluster view): node 2's stale_node refusal and
	// node 0's failure, each as its node sealed it
	var page struct {
		Decisions []struct {
			Node  string          `json:"node"`
			Event events.Envelope `json:"event"`
		} `json:"decisions"`
	}
	if err := json.Unmarshal([]byte(getBody(t, bases[1]+"/v1/cluster/decisions")), &page); err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, d := range page.Decisions {
		listed = append(listed, d.Node+" "+d.Event.Type)
	}
	slices.Sort(listed)
	if want := []string{"node0 " + events.TypeConnectionOpenFailed, "node2 " + events.TypeConnectionRefused}; fmt.Sprint(listed) != fmt.Sprint(want) {
		t.Fatalf("node 1 lists the cluster's decisions %v, want %v", listed, want)
	}
	if code := get(t, bases[1]+"/v1/cluster/decisions?limit=0"); code != http.StatusBadRequest {
		t.Fatalf("limit=0: %d", code)
	}
	ctx := context.Background()
	for i, m := range mains {
		if err := m.Close(ctx); err != nil {
			t.Fatalf("close node %d: %v", i, err)
		}
		st, err := openData(dataDirs[i])
		if err != nil {
			t.Fatal(err)
		}
		rep, err := audit.VerifyAll(ctx, st, nil)
		if err != nil || !rep.OK {
			t.Errorf("node %d verify: %+v %v", i, rep, err)
		}
		st.Close()
	}
	// and verify --cluster reads every node's decisions and finds each node's own
	// shipped as its log holds them
	wantOwn := []string{"", "", "node2 1 (this log's)"}
	wantOwn[0] = "node0 1 (this log's)"
	for i, data := range dataDirs {
		out, errOut, code := runArgs(t, "", "verify", "--data", data, "--cluster", nc.URL(0))
		if code != 0 || !strings.Contains(errOut, "node0 1") || !strings.Contains(errOut, "node2 1") {
			t.Fatalf("node %d verify --cluster: exit %d\n%s%s", i, code, out, errOut)
		}
		if wantOwn[i] != "" && !strings.Contains(errOut, wantOwn[i]) {
			t.Fatalf("node %d verify --cluster does not name its own decisions %q:\n%s", i, wantOwn[i], errOut)
		}
	}
}

// putCreated PUTs the JSON body to url and fails the test unless it answers 201.
func putCreated(t *testing.T, url, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("put %s: %d", url, res.StatusCode)
	}
}

// post sends an empty POST and returns the status and body.
func post(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Post(url, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestServe_ClusterNodesStartingTogetherApplyTheFileAndInspectOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server nats cluster")
	}
	// given three nodes sharing one encryption key, starting at the same moment with
	// the same config file of two live app servers, one behind a secret header
	key, err := credentials.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(credentials.EnvKeys, key)
	clock := server.NewStreamableHTTPServer(clockserver.New())
	mcp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/guarded") && r.Header.Get("X-Key") != "s3cret" {
			http.Error(w, "no key", http.StatusUnauthorized)
			return
		}
		clock.ServeHTTP(w, r)
	}))
	t.Cleanup(mcp.Close) // after the nodes, which hold streams open to it
	dir := t.TempDir()
	nc := testnats.StartCluster(t, 3, filepath.Join(dir, "nats"))
	mains := make([]*Main, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range mains {
		cfg := &config.Config{DataDir: filepath.Join(dir, fmt.Sprintf("node%d", i)), Listen: "127.0.0.1:0",
			NodeID: fmt.Sprintf("node%d", i), Cluster: config.Cluster{URL: nc.URL(i)},
			MCPServers: map[string]domain.ServerConfig{
				"clock": {Type: "streamable-http", URL: mcp.URL, InitTimeoutMS: 10000},
				"time": {Type: "streamable-http", URL: mcp.URL + "/guarded", InitTimeoutMS: 10000,
					Headers: map[string]string{"X-Key": "s3cret"}},
			}}
		cfg.SetDefaults()
		mains[i] = &Main{Config: cfg, Logger: discardLogger()}
		// when they start together
		wg.Go(func() { errs[i] = mains[i].Run(context.Background()) })
	}
	wg.Wait()
	for i, m := range mains {
		if errs[i] != nil {
			t.Fatalf("node %d: %v", i, errs[i])
		}
		t.Cleanup(func() { _ = m.Close(context.Background()) })
		eventually(t, fmt.Sprintf("node %d ready", i), func() bool { return get(t, "http://"+m.Addr()+"/readyz") == 200 })
	}

	// then the shared log registers each server once and records one startup
	// inspection of each: one node inspected it, the others took its outcome
	count := map[string]int{}
	err = mains[0].store.ReadRecords(context.Background(), 1, func(_ uint64, rec []byte) error {
		env, err := events.DecodeRecord(rec)
		count[env.Type+" "+env.Subject]++
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"clock", "time"} {
		stream := domain.ServerStream(domain.AppScope, name)
		if n := count[events.TypeServerRegistered+" "+stream]; n != 1 {
			t.Errorf("%s registered %d times, want once: %v", name, n, count)
		}
		if n := count[events.TypeServerInspected+" "+stream]; n != 1 {
			t.Errorf("%s inspected %d times, want once: %v", name, n, count)
		}
		// (the nodes seal the secret header to the same reference: no node sees a change)
		if n := count[events.TypeServerConfigChanged+" "+stream]; n != 0 {
			t.Errorf("%s changed %d times, want never: %v", name, n, count)
		}
	}
	// when an admin registers another server with a secret header on node 0, then an
	// owner connects to it through node 2, which reads the secret node 0 stored
	putCreated(t, "http://"+mains[0].Addr()+"/v1/servers/api-guarded",
		fmt.Sprintf(`{"type":"streamable-http","url":%q,"headers":{"X-Key":"s3cret"},"startup":false}`, mcp.URL+"/guarded/api"))
	base2 := "http://" + mains[2].Addr()
	eventually(t, "node 2 knows the server", func() bool { return get(t, base2+"/v1/servers/api-guarded") == 200 })
	if code, body := post(t, base2+"/v1/connections/api-guarded?owner=alice"); code != http.StatusOK {
		t.Fatalf("connect through node 2: %d %s", code, body)
	}
	// and every node serves the servers as inspected
	for i, m := range mains {
		if body := getBody(t, "http://"+m.Addr()+"/v1/servers/clock"); !strings.Contains(body, `"inspected":true`) {
			t.Errorf("node %d: %s", i, body)
		}
	}
}
