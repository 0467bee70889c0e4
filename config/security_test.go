package config_test

import (
	"strings"
	"testing"

	"github.com/mcpes/mcpes/config"
)

func TestParse_SecuritySettingsValidated(t *testing.T) {
	// given a file with bad allowedDomains entries, bad http lists and bad limits
	_, _, err := config.Parse([]byte(`
mcpSettings:
  allowedDomains: ["*", "http://", "[::1", "ok.example.com"]
http:
  allowedHosts: ["mcpes.example.com", "http://x", "*.example.com"]
  allowedOrigins: ["https://chat.example.com", "chat.example.com", "https://a.example/path"]
limits:
  owner: {rate: -1, burst: -2}
mcpServers:
  s:
    type: sse
    url: https://s.example.com/sse
    URL: http://127.0.0.1/sse
`), "mcpes.yaml")
	// when it is parsed, then every bad entry is a problem naming it, and no good one is
	ce := mustError(t, err)
	got := map[string]bool{}
	for _, p := range ce.Problems {
		got[p.Field] = true
	}
	for _, f := range []string{"mcpSettings.allowedDomains[0]", "mcpSettings.allowedDomains[1]", "mcpSettings.allowedDomains[2]",
		"http.allowedHosts[1]", "http.allowedHosts[2]", "http.allowedOrigins[1]", "http.allowedOrigins[2]",
		"limits.owner.rate", "limits.owner.burst", "URL"} {
		if !got[f] {
			t.Errorf("no problem for %s in %v", f, ce.Problems)
		}
	}
	for _, f := range []string{"mcpSettings.allowedDomains[3]", "http.allowedHosts[0]", "http.allowedOrigins[0]"} {
		if got[f] {
			t.Errorf("a good entry %s is a problem", f)
		}
	}
}

func TestParse_SecurityDefaults(t *testing.T) {
	cfg, _, err := config.Parse([]byte("mcpServers: {}\n"), "mcpes.yaml")
	if err != nil && !strings.Contains(err.Error(), "mcpServers") {
		t.Fatal(err)
	}
	if cfg == nil {
		cfg = &config.Config{}
		cfg.SetDefaults()
	}
	if cfg.Limits.Owner.Rate != config.DefaultOwnerRate || cfg.Limits.Owner.Burst != config.DefaultOwnerBurst {
		t.Fatalf("limits %+v", cfg.Limits)
	}
}

func TestRedactURLs_HidesPasswordsAndTokens(t *testing.T) {
	// given cluster URLs carrying a password, a token and nothing
	in := "nats://mcpes:hunter2@10.0.0.1:4222,nats://s3cr3t-token@10.0.0.2:4222,nats://10.0.0.3:4222"
	// when they are redacted for a log line
	got := config.RedactURLs(in)
	// then no secret is left and the hosts still are
	for _, secret := range []string{"hunter2", "s3cr3t-token"} {
		if strings.Contains(got, secret) {
			t.Fatalf("redacted %q still holds %q", got, secret)
		}
	}
	for _, host := range []string{"10.0.0.1:4222", "10.0.0.2:4222", "10.0.0.3:4222", "mcpes:"} {
		if !strings.Contains(got, host) {
			t.Fatalf("redacted %q lost %q", got, host)
		}
	}
}

func TestValidate_BadClusterURLDoesNotEchoItsPassword(t *testing.T) {
	// given a cluster URL with a password and a bad scheme
	c := &config.Config{Cluster: config.Cluster{URL: "http://mcpes:hunter2@10.0.0.1:4222"}}
	c.SetDefaults()
	// when the config is validated, then the error names the field, not the password
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "cluster.url") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("validate: %v", err)
	}
}
