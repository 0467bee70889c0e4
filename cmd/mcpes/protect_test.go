package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpes/mcpes/config"
)

func TestMain_RequestOriginPolicyFromConfig(t *testing.T) {
	// given the service without tokens (loopback callers are admin) and one extra host
	m, base := runService(t, &config.Config{DataDir: filepath.Join(t.TempDir(), "data"), Listen: "127.0.0.1:0",
		HTTP: config.HTTP{AllowedHosts: []string{"mcpes.internal"}}})
	marker := filepath.Join(t.TempDir(), "pwned")
	send := func(host, origin, ctype string) int {
		req, _ := http.NewRequest(http.MethodPut, base+"/v1/servers/pwn",
			strings.NewReader(`{"command":"/bin/touch","args":["`+marker+`"]}`))
		req.Host, req.Header["Origin"], req.Header["Content-Type"] = host, []string{origin}, []string{ctype}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	port := m.Addr()[strings.LastIndex(m.Addr(), ":"):]

	// when a rebinding page PUTs a stdio server, then it is refused and nothing runs
	if code := send("attacker.example"+port, "http://attacker.example"+port, "text/plain"); code != http.StatusForbidden {
		t.Fatalf("rebinding PUT: %d", code)
	}
	// and a cross-site page with the right Host is refused for its Origin
	if code := send("127.0.0.1"+port, "http://evil.example", "application/json"); code != http.StatusForbidden {
		t.Fatalf("cross-site PUT: %d", code)
	}
	time.Sleep(100 * time.Millisecond)
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the command ran")
	}
	// and the configured host is served
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/servers", nil)
	req.Host = "mcpes.internal" + port
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("allowed host: %d", res.StatusCode)
	}
}

func TestAllowedHosts_IncludeThePublicURLsHost(t *testing.T) {
	cfg := &config.Config{HTTP: config.HTTP{AllowedHosts: []string{"a.example"}},
		OAuth: config.OAuth{PublicURL: "https://mcpes.example.com:8443/base"}}
	got := allowedHosts(cfg)
	if len(got) != 2 || got[0] != "a.example" || got[1] != "mcpes.example.com:8443" {
		t.Fatalf("allowedHosts = %v", got)
	}
	if got := allowedHosts(&config.Config{}); len(got) != 0 {
		t.Fatalf("no settings: %v", got)
	}
}
