package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpes/mcpes/connections"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/handlers"
	"github.com/mcpes/mcpes/handlers/gateway"
	"github.com/mcpes/mcpes/internal/testsvc"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/registry"
	"github.com/mcpes/mcpes/store/bolt"
)

// Tokens of the test service.
const (
	adminToken = testsvc.AdminToken
	aliceToken = testsvc.AliceToken
	bobToken   = testsvc.BobToken
)

// clockBin is the clock example built once for the package's tests.
var clockBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gateway-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	clockBin = filepath.Join(dir, "clock")
	build := exec.Command("go", "build", "-o", clockBin, "github.com/mcpes/mcpes/examples/servers/clock")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build clock: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// env is the real service: a bbolt store in a temporary directory, the projections,
// the registry (synchronous inspection on put), the connection manager, the API with
// the gateway mounted at /mcp, on a loopback listener.
type env struct {
	tb      testing.TB
	st      *bolt.Store
	servers *projections.Servers
	reg     *registry.Service
	mgr     *connections.Manager
	gw      *gateway.Gateway
	ts      *httptest.Server
	once    sync.Once
}

type envOption func(*gateway.Deps)

func newEnv(tb testing.TB, opts ...envOption) *env {
	tb.Helper()
	return newEnvWith(tb, nil, opts...)
}

// newEnvWith is newEnv whose connection manager options conn may change.
func newEnvWith(tb testing.TB, conn func(*connections.Options), opts ...envOption) *env {
	tb.Helper()
	st, err := bolt.Open(filepath.Join(tb.TempDir(), "mcpes.db"), bolt.Options{NoSync: true})
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	core := testsvc.New(tb, st, func(o *connections.Options) {
		o.BackoffBase, o.BackoffMax = time.Millisecond, 5*time.Millisecond
		if conn != nil {
			conn(o)
		}
	})
	servers, reg, mgr, auth := core.Servers, core.Registry, core.Manager, core.Auth
	deps := gateway.Deps{Store: st, Servers: servers, Manager: mgr, Inspector: reg, Source: "mcpes://test"}
	for _, o := range opts {
		o(&deps)
	}
	gw := gateway.New(deps)
	api := handlers.New(handlers.Deps{Store: st, Servers: servers, Registry: reg, Manager: mgr, Auth: auth, Gateway: gw})
	e := &env{tb: tb, st: st, servers: servers, reg: reg, mgr: mgr, gw: gw, ts: httptest.NewServer(api)}
	tb.Cleanup(e.close)
	return e
}

func (e *env) close() {
	e.once.Do(func() {
		e.ts.CloseClientConnections()
		e.ts.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := e.gw.Close(ctx); err != nil {
			e.tb.Errorf("close gateway: %v", err)
		}
		if err := e.mgr.Close(ctx); err != nil {
			e.tb.Errorf("close manager: %v", err)
		}
		_ = e.reg.Close()
		_ = e.st.Close()
	})
}

// URL is the gateway endpoint.
func (e *env) URL() string { return e.ts.URL + "/mcp" }

// put registers (or changes) a server as the admin and fails the test on error.
func (e *env) put(scope domain.Scope, name string, cfg domain.ServerConfig) {
	e.tb.Helper()
	if _, err := e.reg.Put(context.Background(), "admin", scope, name, cfg); err != nil {
		e.tb.Fatalf("put %s/%s: %v", scope, name, err)
	}
}

func httpCfg(url string) domain.ServerConfig {
	return domain.ServerConfig{Type: "streamable-http", URL: url, InitTimeoutMS: 5000}
}

func ptr[T any](v T) *T { return &v }

// clockProc is the clock example serving streamable HTTP in its own process.
type clockProc struct {
	cmd  *exec.Cmd
	URL  string
	done chan struct{}
}

// startClock starts the clock on addr ("127.0.0.1:0" for a free port) and waits
// until it listens; it is killed at cleanup.
func startClock(tb testing.TB, addr string) *clockProc {
	tb.Helper()
	cmd := exec.Command(clockBin, "-http", addr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start clock: %v", err)
	}
	p := &clockProc{cmd: cmd, done: make(chan struct{})}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		for sc.Scan() {
		}
	}()
	go func() { _ = cmd.Wait(); close(p.done) }()
	tb.Cleanup(p.kill)
	select {
	case l := <-line:
		u, ok := strings.CutPrefix(l, "listening on ")
		if !ok {
			tb.Fatalf("clock said %q", l)
		}
		p.URL = u
	case <-time.After(10 * time.Second):
		tb.Fatal("clock did not start")
	}
	return p
}

// kill kills the process and waits until it is reaped.
func (p *clockProc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// hostPort returns the host:port of the clock's URL.
func (p *clockProc) hostPort() string {
	rest := strings.TrimPrefix(p.URL, "http://")
	return strings.TrimSuffix(rest, "/mcp")
}

// goClient connects an mcp-go client to url with token; pin selects the protocol
// version ("" = the default 2026-07-28 era). Closed at cleanup.
func goClient(tb testing.TB, url, token, pin string) *client.Client {
	tb.Helper()
	var opts []transport.StreamableHTTPCOption
	if token != "" {
		opts = append(opts, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token}))
	}
	if pin != "" {
		opts = append(opts, transport.WithContinuousListening())
	}
	tr, err := transport.NewStreamableHTTP(url, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	var copts []client.ClientOption
	if pin != "" {
		copts = append(copts, client.WithProtocolVersion(pin))
	}
	c := client.NewClient(tr, copts...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Start's context bounds the client's GET listening stream: it must outlive
	// this function.
	if err := c.Start(context.Background()); err != nil {
		tb.Fatalf("start client: %v", err)
	}
	var in mcp.InitializeRequest
	in.Params.ClientInfo = mcp.Implementation{Name: "gateway-test", Version: "0"}
	if pin != "" {
		in.Params.ProtocolVersion = pin
	}
	if _, err := c.Initialize(ctx, in); err != nil {
		tb.Fatalf("initialize: %v", err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

func toolNames(tb testing.TB, c *client.Client) []string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		tb.Fatalf("list tools: %v", err)
	}
	out := make([]string, 0, len(res.Tools))
	for _, t := range res.Tools {
		out = append(out, t.Name)
	}
	return out
}

func callTool(ctx context.Context, c *client.Client, name string, args map[string]any) (*mcp.CallToolResult, error) {
	var req mcp.CallToolRequest
	req.Params.Name, req.Params.Arguments = name, args
	return c.CallTool(ctx, req)
}

func text(res *mcp.CallToolResult) string {
	if res == nil || len(res.Content) == 0 {
		return ""
	}
	return mcp.GetTextFromContent(res.Content[0])
}

// api sends one API request with token and a JSON body ("" for none) and returns
// the status.
func (e *env) api(tb testing.TB, method, path, token, body string) int {
	tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := e.ts.Client().Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		tb.Logf("%s %s: %d %s", method, path, res.StatusCode, b)
	}
	return res.StatusCode
}

// waitFor polls cond every 20 ms until it holds or timeout passes.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func has(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func hasPrefix(list []string, p string) bool {
	for _, v := range list {
		if strings.HasPrefix(v, p) {
			return true
		}
	}
	return false
}

// rawPost sends one JSON-RPC body to the gateway with extra headers.
func rawPost(tb testing.TB, url, token string, body string, hdr map[string]string) *http.Response {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("post: %v", err)
	}
	tb.Cleanup(func() { _ = res.Body.Close() })
	return res
}
