// Command gateway measures tool-call latency of the clock example's echo tool over
// N calls (p50, p99), these ways in one run:
//
//   - direct:        the client talks to the clock serving streamable HTTP (-http);
//   - floor:         through one plain Go httputil.ReverseProxy hop (in process, on
//     loopback) to the same clock: the least any HTTP gateway adds;
//   - mcpes:         through mcpes /mcp/clock (the per-server relay) and /mcp (the
//     aggregate) (the real service parts in process: bbolt store, projections,
//     registry, connection manager, API + gateway, on a loopback listener), the clock
//     registered as an app server at the same HTTP endpoint;
//   - supergateway:  `supergateway --stdio CLOCK --outputTransport streamableHttp
//     --stateful`, wrapping its own clock over stdio;
//   - mcp-proxy:     `mcp-proxy --server stream -- CLOCK`, wrapping its own clock over
//     stdio.
//
// Every row uses the same mcp-go client over streamable HTTP with keep-alive, pinned
// to protocol 2025-11-25 (the peers do not speak 2026-07-28); -modern adds direct and
// mcpes rows on 2026-07-28. "mcpes /mcp" dials the clock as `mcpes serve` does by
// default (connections.protocolVersion 2025-11-25); with -modern, "upstream latest" is a second
// service set to `latest`, which dials 2026-07-28 first (the newer revision,
// whose calls cost mcp-go about 0.2 ms more per hop). The rows' calls are interleaved (20 rounds rotating over
// the rows), so that noise from other work on the machine falls on all rows alike.
// The npm peers come from testdata/npm (run `npm ci` there);
// a missing one is reported and skipped.
//
//	go run ./bench/gateway [-n 1000] [-warmup 200] [-modern] [-cpuprofile FILE]
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpes/mcpes/config"
	"github.com/mcpes/mcpes/connections"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/handlers"
	"github.com/mcpes/mcpes/handlers/gateway"
	"github.com/mcpes/mcpes/internal/testnpm"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/registry"
	"github.com/mcpes/mcpes/store/bolt"
	"github.com/mcpes/mcpes/upstream"
)

const ownerToken = "bench-owner-token"

func main() {
	exit := 0
	defer func() { os.Exit(exit) }()
	n := flag.Int("n", 1000, "measured calls per row")
	warmup := flag.Int("warmup", 200, "unmeasured calls before each row")
	modern := flag.Bool("modern", false, "also measure direct and mcpes on protocol 2026-07-28")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of this process (clients and in-process mcpes) to the file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := run(*n, *warmup, *modern); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		exit = 1
	}
}

type row struct {
	name     string
	p50, p99 time.Duration
	err      error
}

func run(n, warmup int, modern bool) error {
	root, err := testnpm.ModuleRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "bench-gateway")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	clockBin := filepath.Join(tmp, "clock")
	if out, err := exec.Command("go", "build", "-o", clockBin, "./examples/servers/clock").CombinedOutput(); err != nil {
		return fmt.Errorf("build clock: %v: %s", err, out)
	}

	clock, clockURL, err := startClock(clockBin)
	if err != nil {
		return err
	}
	defer stop(clock)

	// Two services: one as `mcpes serve` dials upstreams by default
	// (connections.protocolVersion 2025-11-25), one set to `latest` (mcp-go's newest
	// revision, 2026-07-28, first).
	mcpesURL, closeMcpes, err := startMcpes(filepath.Join(tmp, "default"), clockURL, config.ProtocolStable)
	if err != nil {
		return err
	}
	defer closeMcpes()
	floorURL, closeFloor, err := startFloor(clockURL)
	if err != nil {
		return err
	}
	defer closeFloor()

	legacy := mcp.ProtocolVersion20251125
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var rows []row
	var ks []*caller
	var live []int // rows index of each caller
	add := func(name, url, token, tool, pin string) {
		k, err := connect(ctx, url, token, tool, pin)
		rows = append(rows, row{name: name, err: err})
		if err == nil {
			ks = append(ks, k)
			live = append(live, len(rows)-1)
		}
	}
	add("direct (clock -http)", clockURL, "", "echo", legacy)
	add("floor: Go reverse proxy", floorURL, "", "echo", legacy)
	add("mcpes /mcp/clock", mcpesURL+"/clock", ownerToken, "echo", legacy)
	add("mcpes /mcp", mcpesURL, ownerToken, "clock__echo", legacy)

	npmDir := filepath.Join(root, "testdata", "npm")
	if url, cmd, err := startPeer(npmDir, "supergateway", func(port int) []string {
		return []string{"--stdio", clockBin, "--outputTransport", "streamableHttp", "--stateful",
			"--port", strconv.Itoa(port), "--logLevel", "none"}
	}); err != nil {
		rows = append(rows, row{name: "supergateway --stateful", err: err})
	} else {
		defer stop(cmd)
		add("supergateway --stateful", url, "", "echo", legacy)
	}
	if url, cmd, err := startPeer(npmDir, "mcp-proxy", func(port int) []string {
		return []string{"--port", strconv.Itoa(port), "--host", "127.0.0.1", "--server", "stream", "--", clockBin}
	}); err != nil {
		rows = append(rows, row{name: "mcp-proxy", err: err})
	} else {
		defer stop(cmd)
		add("mcp-proxy", url, "", "echo", legacy)
	}
	if modern {
		latestURL, closeLatest, err := startMcpes(filepath.Join(tmp, "latest"), clockURL, "")
		if err != nil {
			return err
		}
		defer closeLatest()
		add("mcpes /mcp, upstream latest", latestURL, ownerToken, "clock__echo", legacy)
		add("direct, 2026-07-28", clockURL, "", "echo", "")
		add("mcpes /mcp, 2026-07-28", mcpesURL, ownerToken, "clock__echo", "")
	}
	defer func() {
		for _, k := range ks {
			_ = k.c.Close()
		}
	}()
	if err := interleave(ks, n, warmup, 20); err != nil {
		return err
	}
	for i, k := range ks {
		rows[live[i]].p50, rows[live[i]].p99 = percentiles(k.d)
	}
	printTable(rows, n)
	return nil
}

func printTable(rows []row, n int) {
	fmt.Printf("tool-call latency, clock echo, %d calls per row; client pinned to 2025-11-25 unless noted;\n"+
		"mcpes dials the clock as `mcpes serve` does by default (2025-11-25) unless \"upstream latest\" (2026-07-28 first)\n\n", n)
	fmt.Printf("| %-28s | %9s | %9s | %13s | %13s | %9s |\n", "path", "p50", "p99", "added p50", "added p99", "× floor")
	fmt.Printf("|%s|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 30), strings.Repeat("-", 11), strings.Repeat("-", 11),
		strings.Repeat("-", 15), strings.Repeat("-", 15), strings.Repeat("-", 11))
	var base, baseModern, floor row
	for _, r := range rows {
		if r.err != nil {
			fmt.Printf("| %-28s | error: %v\n", r.name, r.err)
			continue
		}
		ref := base
		switch {
		case strings.HasPrefix(r.name, "direct, "):
			baseModern = r
			ref = r
		case strings.HasPrefix(r.name, "direct"):
			base = r
			ref = r
		case strings.HasPrefix(r.name, "floor"):
			floor = r
		case strings.Contains(r.name, "2026-07-28"):
			ref = baseModern
		}
		ratio := "–"
		if fa := floor.p50 - base.p50; fa > 0 && ref == base && r.name != base.name {
			ratio = fmt.Sprintf("%.2f", float64(r.p50-base.p50)/float64(fa))
		}
		fmt.Printf("| %-28s | %9s | %9s | %13s | %13s | %9s |\n", r.name, ms(r.p50), ms(r.p99),
			ms(r.p50-ref.p50), ms(r.p99-ref.p99), ratio)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }

// caller is one connected client making the row's call.
type caller struct {
	c    *client.Client
	call func() error
	d    []time.Duration
}

// connect connects one client for a row and checks one call.
func connect(ctx context.Context, url, token, tool, pin string) (*caller, error) {
	var opts []transport.StreamableHTTPCOption
	if token != "" {
		opts = append(opts, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token}))
	}
	tr, err := transport.NewStreamableHTTP(url, opts...)
	if err != nil {
		return nil, err
	}
	var copts []client.ClientOption
	if pin != "" {
		copts = append(copts, client.WithProtocolVersion(pin))
	}
	c := client.NewClient(tr, copts...)
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	var in mcp.InitializeRequest
	in.Params.ClientInfo = mcp.Implementation{Name: "bench", Version: "0"}
	in.Params.ProtocolVersion = pin
	if _, err := c.Initialize(ctx, in); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("initialize: %w", err)
	}
	var req mcp.CallToolRequest
	req.Params.Name, req.Params.Arguments = tool, map[string]any{"text": "ping"}
	k := &caller{c: c}
	k.call = func() error {
		res, err := c.CallTool(ctx, req)
		if err != nil {
			return err
		}
		if res.IsError || len(res.Content) == 0 || mcp.GetTextFromContent(res.Content[0]) != "ping" {
			return fmt.Errorf("unexpected result %+v", res)
		}
		return nil
	}
	if err := k.call(); err != nil {
		_ = c.Close()
		return nil, err
	}
	return k, nil
}

// interleave warms every caller up, then times n sequential calls of each, in
// rounds that rotate over the callers, so that machine noise falls on every row
// alike.
func interleave(ks []*caller, n, warmup, rounds int) error {
	for _, k := range ks {
		for range warmup {
			if err := k.call(); err != nil {
				return err
			}
		}
		k.d = make([]time.Duration, 0, n)
	}
	per := max(1, n/rounds)
	for r := 0; len(ks) > 0 && len(ks[0].d) < n; r++ {
		for i := range ks {
			k := ks[(i+r)%len(ks)]
			for j := 0; j < per && len(k.d) < n; j++ {
				start := time.Now()
				if err := k.call(); err != nil {
					return err
				}
				k.d = append(k.d, time.Since(start))
			}
		}
	}
	return nil
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2], s[min(len(s)-1, len(s)*99/100)]
}

// startClock runs the clock on a free loopback port and returns its /mcp URL.
func startClock(bin string) (*exec.Cmd, string, error) {
	cmd := exec.Command(bin, "-http", "127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		stop(cmd)
		return nil, "", errors.New("clock printed nothing")
	}
	url, ok := strings.CutPrefix(sc.Text(), "listening on ")
	if !ok {
		stop(cmd)
		return nil, "", fmt.Errorf("clock said %q", sc.Text())
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return cmd, url, nil
}

// startFloor runs one plain Go reverse-proxy hop to the clock on loopback.
func startFloor(clockURL string) (string, func(), error) {
	u, err := url.Parse(clockURL)
	if err != nil {
		return "", nil, err
	}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	rp.FlushInterval = -1
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: rp}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String() + u.Path, func() { _ = srv.Close() }, nil
}

// startMcpes wires the service's parts in process on a loopback listener, registers
// the clock's HTTP endpoint as the app server "clock" and returns the /mcp URL.
func startMcpes(dir, clockURL, upstreamPin string) (string, func(), error) {
	ctx := context.Background()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, err
	}
	st, err := bolt.Open(filepath.Join(dir, "mcpes.db"), bolt.Options{})
	if err != nil {
		return "", nil, err
	}
	servers, err := projections.Load(ctx, st, projections.Options{NoSnapshot: true})
	if err != nil {
		return "", nil, err
	}
	reg, err := registry.New(st, servers, &upstream.Guard{}, registry.Options{InspectOnPut: registry.InspectSync, NodeID: "bench"})
	if err != nil {
		return "", nil, err
	}
	mgr := connections.NewManager(st, servers, connections.Options{Source: "mcpes://bench",
		Upstream: upstream.Options{ProtocolVersion: upstreamPin}})
	gw := gateway.New(gateway.Deps{Store: st, Servers: servers, Manager: mgr, Inspector: reg})
	auth, err := handlers.NewAuth([]handlers.TokenConfig{
		{SHA256: handlers.HashToken(ownerToken), Role: handlers.RoleOwner, Owner: "bench"}}, "")
	if err != nil {
		return "", nil, err
	}
	if _, err := reg.Put(ctx, "admin", domain.AppScope, "clock",
		domain.ServerConfig{Type: "streamable-http", URL: clockURL}); err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: handlers.New(handlers.Deps{Store: st, Servers: servers, Registry: reg,
		Manager: mgr, Auth: auth, Gateway: gw}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	closeAll := func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(cctx)
		_ = gw.Close(cctx)
		_ = mgr.Close(cctx)
		_ = reg.Close()
		_ = st.Close()
	}
	return "http://" + ln.Addr().String() + "/mcp", closeAll, nil
}

// startPeer starts an npm gateway with node on a free port and waits until it
// accepts connections.
func startPeer(npmDir, bin string, args func(port int) []string) (string, *exec.Cmd, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return "", nil, fmt.Errorf("node not found: %w", err)
	}
	entry, err := filepath.EvalSymlinks(filepath.Join(npmDir, "node_modules", ".bin", bin))
	if err != nil {
		return "", nil, fmt.Errorf("%s not installed (npm ci in %s): %w", bin, npmDir, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(node, append([]string{entry}, args(port)...)...)
	cmd.Dir = npmDir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return "http://" + addr + "/mcp", cmd, nil
		}
		if time.Now().After(deadline) {
			stop(cmd)
			return "", nil, fmt.Errorf("%s not listening on %s", bin, addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop kills a started process (and its process group) and reaps it.
func stop(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	if cmd.SysProcAttr != nil && cmd.SysProcAttr.Setpgid {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	} else {
		_ = cmd.Process.Kill()
	}
	_ = cmd.Wait()
}
