package upstream

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
)

func TestDial_StdioHangTimesOut_LeavesNothing(t *testing.T) {
	// given a stdio server that never answers initialize
	base := runtimeGoroutines()
	cfg := stdioCfg(badBin, "hang")
	cfg.InitTimeoutMS = 400
	pidFile := filepath.Join(t.TempDir(), "pid")
	cfg.Env = map[string]string{"PIDFILE": pidFile}
	opts := appOpts(t)
	// when Dial runs into the init timeout
	start := time.Now()
	c, err := Dial(ctxT(t, 10*time.Second), "hang", cfg, opts)
	took := time.Since(start)
	// then it fails with class timeout, promptly
	if c != nil || Classify(err) != domain.FailureTimeout {
		t.Fatalf("Dial = %v, %v (class %s)", c, err, Classify(err))
	}
	if took > 3*time.Second {
		t.Fatalf("Dial took %s", took)
	}
	var de *DialError
	if !errors.As(err, &de) || de.Server != "hang" || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("err = %v", err)
	}
	// and the child process is gone and reaped (not even a zombie)
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("child never started: %v", err)
	}
	pid, _ := strconv.Atoi(string(b))
	if pid == 0 || !processGone(pid) {
		t.Fatalf("child %d still exists", pid)
	}
	// and goroutines return to the baseline
	waitGoroutines(t, base, 5*time.Second)
}

// silentServer accepts TCP connections and never answers; it reports how many it
// accepted and how many the client closed.
type silentServer struct {
	ln     net.Listener
	mu     sync.Mutex
	open   int
	closed int
	wg     sync.WaitGroup
}

func newSilentServer(t *testing.T) *silentServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silentServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.open++
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						break
					}
				}
				c.Close()
				s.mu.Lock()
				s.closed++
				s.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *silentServer) counts() (open, closed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open, s.closed
}

func TestDial_HTTPSilentServerTimesOut_LeavesNothing(t *testing.T) {
	for _, typ := range []string{"streamable-http", "sse"} {
		t.Run(typ, func(t *testing.T) {
			// given a server that accepts connections and never answers
			s := newSilentServer(t)
			base := runtimeGoroutines()
			cfg := domain.ServerConfig{Type: typ, URL: "http://" + s.ln.Addr().String() + "/mcp", InitTimeoutMS: 400}
			// when Dial runs into the init timeout
			start := time.Now()
			_, err := Dial(ctxT(t, 10*time.Second), "silent", cfg, appOpts(t))
			// then it fails with class timeout
			if Classify(err) != domain.FailureTimeout || time.Since(start) > 3*time.Second {
				t.Fatalf("err = %v (class %s) after %s", err, Classify(err), time.Since(start))
			}
			// and the server sees every connection it accepted closed
			deadline := time.Now().Add(5 * time.Second)
			for {
				open, closed := s.counts()
				if open > 0 && open == closed {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("server: %d accepted, %d closed", open, closed)
				}
				time.Sleep(20 * time.Millisecond)
			}
			// and goroutines return to the baseline
			waitGoroutines(t, base, 5*time.Second)
		})
	}
}

func TestDial_Failures_Classified(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    domain.ServerConfig
		class  domain.FailureClass
		substr string
	}{
		{"garbage", stdioCfg(badBin, "garbage"), domain.FailureProtocol, "non-JSON-RPC line"},
		{"exit", stdioCfg(badBin, "exit"), domain.FailureUnreachable, "giving up"},
		{"initerr", stdioCfg(badBin, "initerr"), domain.FailureProtocol, "go away"},
		{"websocket-refused", domain.ServerConfig{Type: "websocket", URL: "ws://127.0.0.1:1/"}, domain.FailureUnreachable, "connection refused"},
		{"unknown-transport", domain.ServerConfig{Type: "carrier-pigeon", URL: "http://127.0.0.1:1/"}, domain.FailureUnsupported, "transport carrier-pigeon not supported"},
		{"refused", domain.ServerConfig{Type: "http", URL: "http://127.0.0.1:1/mcp"}, domain.FailureUnreachable, "connection refused"},
		{"sse-refused", domain.ServerConfig{Type: "sse", URL: "http://127.0.0.1:1/sse"}, domain.FailureUnreachable, "connection refused"},
		{"unset-var", domain.ServerConfig{Type: "http", URL: "http://127.0.0.1:1/mcp", Headers: map[string]string{"X": "${MCPES_TEST_UNSET_VAR}"}}, domain.FailureConfig, "MCPES_TEST_UNSET_VAR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := Dial(ctxT(t, 10*time.Second), tc.name, tc.cfg, appOpts(t))
			if Classify(err) != tc.class || !strings.Contains(err.Error(), tc.substr) {
				t.Fatalf("err = %v (class %s), want class %s containing %q", err, Classify(err), tc.class, tc.substr)
			}
			if errors.Is(err, ErrTransportUnsupported) != (tc.class == domain.FailureUnsupported) {
				t.Errorf("errors.Is(ErrTransportUnsupported) wrong for %v", err)
			}
			if time.Since(start) > 5*time.Second {
				t.Errorf("took %s", time.Since(start))
			}
		})
	}
}

func TestDial_ErrorsNeverContainSecrets(t *testing.T) {
	const token = "s3cr3t-t0ken-value"
	secrets := func(ref string) (string, error) { return token, nil }
	ref := "secret:0123456789abcdef0123456789abcdef"
	opts := appOpts(t)
	opts.Secrets = secrets
	opts.Env = func(k string) (string, bool) {
		if k == "MY_TOKEN" {
			return token, true
		}
		return "", false
	}
	// given a child that prints its secret env on stderr and exits
	cfg := stdioCfg(badBin, "secret")
	cfg.Env = map[string]string{"SECRET_TOKEN": ref}
	_, err := Dial(ctxT(t, 10*time.Second), "leaky", cfg, opts)
	if err == nil || strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "[REDACTED]") {
		t.Fatalf("stdio err = %v", err)
	}
	// given an HTTP server that echoes a header into its error body (via ${VAR})
	cfg = domain.ServerConfig{Type: "http", URL: "http://127.0.0.1:1/mcp?k=${MY_TOKEN}", Headers: map[string]string{"Authorization": ref}}
	_, err = Dial(ctxT(t, 10*time.Second), "leaky", cfg, opts)
	if err == nil || strings.Contains(err.Error(), token) {
		t.Fatalf("http err = %v", err)
	}
	t.Logf("redacted: %v", err)
}

func TestDial_HeadersFromSecretsAndVars(t *testing.T) {
	// given a server that records the Authorization header it receives
	var mu sync.Mutex
	var seen []string
	ts, _ := inProcessHTTP(t)
	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		proxyTo(t, ts.URL, w, r)
	}))
	t.Cleanup(rec.Close)
	ref := "secret:0123456789abcdef0123456789abcdef"
	opts := appOpts(t)
	opts.Secrets = func(r string) (string, error) {
		if r != ref {
			return "", errors.New("unknown ref")
		}
		return "Bearer ${MY_TOKEN}", nil
	}
	opts.Env = func(k string) (string, bool) { return "tok123", k == "MY_TOKEN" }
	cfg := domain.ServerConfig{Type: "http", URL: rec.URL, Headers: map[string]string{"Authorization": ref}}
	// when an app-scope config is dialled
	exercise(t, dialT(t, "clock", cfg, opts))
	// then the secret was resolved and its ${VAR} expanded
	mu.Lock()
	got := seen[0]
	mu.Unlock()
	if got != "Bearer tok123" {
		t.Fatalf("Authorization %q", got)
	}
	// and in the user scope ${VAR} is taken literally
	mu.Lock()
	seen = nil
	mu.Unlock()
	opts.Scope = domain.UserScope("bob")
	opts.Guard = &Guard{AllowedDomains: []string{"127.0.0.1"}}
	dialT(t, "clock", cfg, opts)
	mu.Lock()
	got = seen[0]
	mu.Unlock()
	if got != "Bearer ${MY_TOKEN}" {
		t.Fatalf("user scope Authorization %q", got)
	}
}

// proxyTo forwards one request to base (same path) and copies the answer back,
// streaming it.
func proxyTo(t *testing.T, base string, w http.ResponseWriter, r *http.Request) {
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, base+r.URL.Path, r.Body)
	req.Header = r.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			_, _ = w.Write(buf[:n])
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}
