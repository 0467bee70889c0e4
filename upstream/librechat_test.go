package upstream

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/examples/servers/clock/clockserver"
)

func TestDial_SSEReadTimeout_SilentStreamIsLost(t *testing.T) {
	// given an SSE server that sends nothing after the handshake
	ts := httptest.NewServer(server.NewSSEServer(clockserver.New()))
	t.Cleanup(func() { ts.CloseClientConnections(); ts.Close() })
	cfg := domain.ServerConfig{Type: "sse", URL: ts.URL + "/sse", InitTimeoutMS: 5000}

	// when connected with sseReadTimeout 300 ms, then the silence counts as loss
	cut := cfg
	cut.SSEReadTimeoutMS = 300
	c := dialT(t, "sse-cut", cut, appOpts(t))
	waitDone(t, c, 10*time.Second)
	if !errors.Is(c.Err(), ErrConnLost) {
		t.Fatalf("Err = %v", c.Err())
	}
	// and without it the same stream stays open
	keep := dialT(t, "sse-keep", cfg, appOpts(t))
	time.Sleep(time.Second)
	if !keep.Alive() {
		t.Fatalf("lost without sseReadTimeout: %v", keep.Err())
	}
}

func TestDial_Proxy_AppHTTPGoesThroughIt(t *testing.T) {
	// given a streamable-HTTP server and a forward proxy that counts what it relays
	target, _ := inProcessHTTP(t)
	var relayed atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		relayed.Add(1)
		r.RequestURI = ""
		resp, err := http.DefaultTransport.RoundTrip(r)
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
				w.(http.Flusher).Flush()
			}
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(func() { proxy.CloseClientConnections(); proxy.Close() })

	// when an app config names the proxy, then its requests go through it
	cfg := domain.ServerConfig{Type: "streamable-http", URL: target.URL + "/mcp", Proxy: proxy.URL, InitTimeoutMS: 5000}
	c := dialT(t, "via-proxy", cfg, appOpts(t))
	if _, err := c.ListTools(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if relayed.Load() == 0 {
		t.Fatal("nothing went through the proxy")
	}
}

func TestDial_StdioCwd_RelativeCommandAndWorkingDirectory(t *testing.T) {
	// given the clock binary named relative to a working directory
	cfg := domain.ServerConfig{Command: "./" + filepath.Base(clockBin), Cwd: filepath.Dir(clockBin),
		Stderr: &domain.Stderr{Mode: domain.StderrIgnore}, InitTimeoutMS: 10000}
	// when dialled, then it starts there and answers
	c := dialT(t, "cwd", cfg, appOpts(t))
	if _, err := c.ListTools(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
}

func TestDial_SecretValuesFromContext_NeverInErrors(t *testing.T) {
	// given a url that carries an owner's key, on a port where nothing listens
	const key = "k-owner-secret-9931"
	cfg := domain.ServerConfig{Type: "streamable-http", URL: "http://127.0.0.1:1/s/" + key + "/mcp", InitTimeoutMS: 2000}
	// when dialled with the key marked secret, then the error never shows it
	_, err := Dial(WithSecretValues(ctxT(t, 10*time.Second), key), "keyed", cfg, appOpts(t))
	if err == nil || strings.Contains(err.Error(), key) {
		t.Fatalf("err = %v", err)
	}
}
