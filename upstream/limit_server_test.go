package upstream

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpes/mcpes/domain"
)

var builds sync.Map // package path -> func() (string, error)

// testBin builds the command at pkg (once per test binary, next to the binaries
// TestMain builds, so it is removed with them) and returns its path. Built without
// the race detector: the RSS figures are the program's own.
func testBin(tb testing.TB, pkg string) string {
	tb.Helper()
	f, _ := builds.LoadOrStore(pkg, sync.OnceValues(func() (string, error) {
		out := filepath.Join(filepath.Dir(clockBin), filepath.Base(pkg))
		b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput()
		if err != nil {
			return "", &buildError{pkg: pkg, out: string(b), err: err}
		}
		return out, nil
	}))
	bin, err := f.(func() (string, error))()
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

type buildError struct {
	pkg, out string
	err      error
}

func (e *buildError) Error() string { return "build " + e.pkg + ": " + e.err.Error() + "\n" + e.out }

// serverProcess starts bin with args (an HTTP mode printing "listening on URL")
// and returns its URL; the process is killed at cleanup.
func serverProcess(tb testing.TB, bin string, args ...string) string {
	tb.Helper()
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	tb.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	buf := make([]byte, 256)
	n, err := out.Read(buf)
	line := strings.TrimSpace(string(buf[:n]))
	u, ok := strings.CutPrefix(line, "listening on ")
	if err != nil || !ok {
		tb.Fatalf("%s %v printed %q (%v)", bin, args, line, err)
	}
	return u
}

// bigServers are bigserver on every transport, as configs, with the arguments of
// tool "big" that make it answer in that framing.
func bigServers(t *testing.T) map[string]struct {
	cfg    domain.ServerConfig
	notify bool
} {
	bin := testBin(t, "./testdata/bigserver")
	httpURL := serverProcess(t, bin, "-http", "127.0.0.1:0")
	sseURL := serverProcess(t, bin, "-sse", "127.0.0.1:0")
	type srv = struct {
		cfg    domain.ServerConfig
		notify bool
	}
	return map[string]srv{
		"stdio line":                {cfg: stdioCfg(bin)},
		"streamable-http JSON body": {cfg: domain.ServerConfig{Type: domain.TransportStreamableHTTP, URL: httpURL}},
		"streamable-http SSE event": {cfg: domain.ServerConfig{Type: domain.TransportStreamableHTTP, URL: httpURL}, notify: true},
		"legacy SSE event":          {cfg: domain.ServerConfig{Type: domain.TransportSSE, URL: sseURL}},
	}
}

func TestCallTool_AnswerOverTheLimitFailsThatCallNamingTheLimit(t *testing.T) {
	for name, srv := range bigServers(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// given a connection with the default limit to a server that answers as
			// much as asked
			opts := appOpts(t)
			opts.ProtocolVersion = mcp.ProtocolVersion20251125
			c := dialT(t, "big", srv.cfg, opts)
			call := func(n int) (*mcp.CallToolResult, error) {
				return c.CallTool(ctxT(t, time.Minute), "big", map[string]any{"bytes": n, "notify": srv.notify}, nil)
			}
			// when a call's answer is 50 MB
			res, err := call(50_000_000)
			// then that call fails naming the limit, classified as protocol
			want := "upstream message exceeds connections.maxMessageBytes (16777216 bytes)"
			if err == nil || !strings.Contains(err.Error(), want) || Classify(err) != domain.FailureProtocol {
				t.Fatalf("50 MB answer: res %v, err %v (class %s); want %q", res != nil, err, Classify(err), want)
			}
			// and an answer just under the limit still comes through whole
			n := domain.DefaultMaxMessageBytes - 4096
			res, err = call(n)
			if err != nil {
				t.Fatalf("answer of %d bytes: %v", n, err)
			}
			if text := mcp.GetTextFromContent(res.Content[0]); len(text) != n {
				t.Fatalf("answer of %d bytes came back with %d", n, len(text))
			}
			if !c.Alive() {
				t.Fatalf("connection lost: %v", c.Err())
			}
		})
	}
}

func TestInspect_CatalogueOverTheLimitIsAProtocolFailure(t *testing.T) {
	t.Parallel()
	// given a server whose tools/list answer is 2 MB and a limit of 1 MiB
	opts := appOpts(t)
	opts.MaxMessageBytes = 1 << 20
	cfg := stdioCfg(testBin(t, "./testdata/bigserver"), "-tooldesc", "2000000")
	// when it is inspected
	out := Inspect(ctxT(t, time.Minute), "big", cfg, opts)
	// then the inspection fails as a protocol failure naming the limit
	if out.OK || out.Class != domain.FailureProtocol ||
		!strings.Contains(out.Message, "upstream message exceeds connections.maxMessageBytes (1048576 bytes)") {
		t.Fatalf("outcome: ok %v class %s message %q", out.OK, out.Class, out.Message)
	}
}

// rssReport is what testdata/rssclient prints.
type rssReport struct {
	Calls       int      `json:"calls"`
	LimitErrors int      `json:"limitErrors"`
	Protocol    int      `json:"protocolClass"`
	Other       []string `json:"other"`
	BaselineKiB int      `json:"baselineRSSKiB"`
	PeakKiB     int      `json:"peakRSSKiB"`
	ElapsedMs   int64    `json:"elapsedMs"`
}

// maxPeakRSS is the bound of issue 9: six concurrent 50 MB answers must keep the
// process under 400 MB.
const maxPeakRSS = 400 << 10 // KiB

func TestMessageLimit_SixConcurrent50MBAnswersKeepRSSUnder400MB(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 300 MB per transport")
	}
	client := testBin(t, "./testdata/rssclient")
	bin := testBin(t, "./testdata/bigserver")
	httpURL := serverProcess(t, bin, "-http", "127.0.0.1:0")
	sseURL := serverProcess(t, bin, "-sse", "127.0.0.1:0")
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"stdio", []string{"-server", bin}},
		{"streamable-http JSON", []string{"-transport", "streamable-http", "-url", httpURL}},
		{"streamable-http SSE", []string{"-transport", "streamable-http", "-url", httpURL, "-notify"}},
		{"legacy SSE", []string{"-transport", "sse", "-url", sseURL}},
	} {
		args := tc.args
		// given a process with six connections (one transport), the default limit
		// when each gets a 50 MB answer at the same time
		out, err := exec.Command(client, append(args, "-n", "6", "-bytes", "50000000")...).Output()
		if err != nil {
			t.Fatalf("rssclient %v: %v\n%s", args, err, errText(err))
		}
		var rep rssReport
		if err := json.Unmarshal(out, &rep); err != nil {
			t.Fatalf("rssclient %v printed %q: %v", args, out, err)
		}
		t.Logf("%s: 6 x 50 MB answers: peak RSS %d MiB (baseline %d MiB), %d ms",
			tc.name, rep.PeakKiB>>10, rep.BaselineKiB>>10, rep.ElapsedMs)
		// then every call failed naming the limit, as a protocol failure
		if rep.LimitErrors != 6 || rep.Protocol != 6 {
			t.Errorf("%s: %d of 6 calls failed naming the limit (%d protocol); others: %q",
				tc.name, rep.LimitErrors, rep.Protocol, rep.Other)
		}
		// and the process stayed under 400 MB
		if rep.PeakKiB > maxPeakRSS {
			t.Errorf("%s: peak RSS %d MiB, want under %d MiB", tc.name, rep.PeakKiB>>10, maxPeakRSS>>10)
		}
	}
}

func errText(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
