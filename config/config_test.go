package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpes/mcpes/config"
	"github.com/mcpes/mcpes/domain"
)

func writeFile(tb testing.TB, body string) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "mcpes.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

func mustError(tb testing.TB, err error) *config.Error {
	tb.Helper()
	var ce *config.Error
	if !errors.As(err, &ce) {
		tb.Fatalf("want *config.Error, got %v", err)
	}
	if !errors.Is(err, config.ErrInvalid) || !errors.Is(err, domain.ErrInvalidConfig) {
		tb.Fatalf("error does not wrap ErrInvalid and domain.ErrInvalidConfig: %v", err)
	}
	return ce
}

func TestLoad_LibreChatServersAndDefaults(t *testing.T) {
	// given a LibreChat-style file with two servers and no mcpes settings
	path := writeFile(t, `
mcpServers:
  clock:
    command: ./bin/clock
    args: ["-v"]
    env:
      TZ: "${TZ}"
    initTimeout: 90000
  remote:
    type: streamable-http
    url: https://mcp.example.com/mcp
    headers:
      Authorization: "Bearer ${API_KEY}"
    startup: false
    serverInstructions: "Use it wisely."
    x-custom: {a: 1}
mcpSettings:
  allowedDomains: ["*.example.com"]
`)
	// when it is loaded
	cfg, warns, err := config.Load(path)
	// then both servers are decoded, defaults applied, and the unknown field warned
	if err != nil {
		t.Fatal(err)
	}
	clock := cfg.MCPServers["clock"]
	if clock.Command != "./bin/clock" || clock.TransportType() != domain.TransportStdio || clock.InitTimeoutMS != 90000 || clock.Env["TZ"] != "${TZ}" {
		t.Errorf("clock = %+v", clock)
	}
	remote := cfg.MCPServers["remote"]
	if remote.StartupEnabled() || remote.ServerInstructions == nil || remote.ServerInstructions.Text != "Use it wisely." {
		t.Errorf("remote = %+v", remote)
	}
	if string(remote.Extra["x-custom"]) != `{"a":1}` {
		t.Errorf("extra = %s", remote.Extra["x-custom"])
	}
	if cfg.DataDir != config.DefaultDataDir || cfg.Listen != config.DefaultListen || cfg.PubSub != "" ||
		cfg.Inspection.Concurrency != 8 || cfg.Connections.MaxConcurrentConnects != 3 ||
		cfg.Connections.IdleTimeout.D() != 15*time.Minute || cfg.Audit.ToolCalls != "off" {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	if len(cfg.MCPSettings.AllowedDomains) != 1 {
		t.Errorf("allowedDomains = %v", cfg.MCPSettings.AllowedDomains)
	}
	if len(warns) != 1 || warns[0].Server != "remote" || warns[0].Field != "x-custom" || warns[0].Line != 16 {
		t.Errorf("warnings = %+v", warns)
	}
}

func TestLoad_OwnSettings(t *testing.T) {
	// given every mcpes setting set
	path := writeFile(t, `
auth:
  tokens:
    - sha256: "`+strings.Repeat("ab", 32)+`"
      role: admin
    - sha256: "`+strings.Repeat("CD", 32)+`"
      role: owner
      owner: alice
dataDir: /var/lib/mcpes
listen: 0.0.0.0:8080
pubsub: nats://127.0.0.1:4222
nodeID: node-1
inspection: {concurrency: 2}
connections:
  maxConcurrentConnects: 5
  idleTimeout: 2m
  breaker: {failures: 4, openDuration: 10s}
audit: {toolCalls: metadata}
`)
	// when loaded
	cfg, warns, err := config.Load(path)
	// then every value is kept (hashes lower-cased)
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	if len(cfg.Auth.Tokens) != 2 || cfg.Auth.Tokens[1].SHA256 != strings.Repeat("cd", 32) || cfg.Auth.Tokens[1].Owner != "alice" || !cfg.HasAdminToken() {
		t.Errorf("tokens = %+v", cfg.Auth.Tokens)
	}
	if cfg.DataDir != "/var/lib/mcpes" || cfg.Listen != "0.0.0.0:8080" || cfg.PubSub != "nats://127.0.0.1:4222" || cfg.NodeID != "node-1" {
		t.Errorf("cfg = %+v", cfg)
	}
	if cfg.Inspection.Concurrency != 2 || cfg.Connections.MaxConcurrentConnects != 5 || cfg.Connections.IdleTimeout.D() != 2*time.Minute ||
		cfg.Connections.Breaker.Failures != 4 || cfg.Connections.Breaker.OpenDuration.D() != 10*time.Second || cfg.Audit.ToolCalls != "metadata" {
		t.Errorf("cfg = %+v", cfg)
	}
}

func TestLoad_EveryProblemListedWithLines(t *testing.T) {
	// given a file with problems in two servers and two settings
	path := writeFile(t, `mcpServers:
  nocmd:
    type: stdio
  badurl:
    url: ftp://example.com/x
    timeout: -5
  wrongtype:
    args: "not a list"
listen: 7
connections:
  idleTimeout: soon
auth:
  tokens:
    - sha256: nothex
      role: king
`)
	// when loaded
	cfg, _, err := config.Load(path)
	// then nothing is returned and every problem is named with its line
	if cfg != nil {
		t.Fatal("a bad file returned a config")
	}
	ce := mustError(t, err)
	want := []struct {
		server, field string
		line          int
	}{
		{"badurl", "url", 5}, {"badurl", "timeout", 6}, {"nocmd", "command", 2}, {"wrongtype", "args", 8},
		{"", "listen", 9}, {"", "connections.idleTimeout", 11}, {"", "auth.tokens[0].sha256", 14}, {"", "auth.tokens[0].role", 15},
	}
	for _, w := range want {
		found := false
		for _, p := range ce.Problems {
			if p.Server == w.server && p.Field == w.field {
				found = true
				if p.Line != w.line {
					t.Errorf("%s/%s at line %d, want %d", w.server, w.field, p.Line, w.line)
				}
			}
		}
		if !found {
			t.Errorf("no problem for server %q field %q in:\n%v", w.server, w.field, err)
		}
	}
	if !strings.Contains(err.Error(), "line 5:") || !strings.Contains(err.Error(), "server badurl, field url") {
		t.Errorf("message lacks position or names: %v", err)
	}
}

func TestParse_SyntaxErrorHasPosition(t *testing.T) {
	// given YAML that does not parse
	_, _, err := config.Parse([]byte("mcpServers:\n  a: [1, 2\n  b: {\n"), "bad.yaml")
	// then the error names a line
	ce := mustError(t, err)
	if len(ce.Problems) != 1 || ce.Problems[0].Line == 0 {
		t.Errorf("problems = %+v", ce.Problems)
	}
}

func TestParse_DuplicateKeyRefused(t *testing.T) {
	_, _, err := config.Parse([]byte("mcpServers:\n  a: {command: x}\n  a: {command: y}\n"), "dup.yaml")
	ce := mustError(t, err)
	if ce.Problems[0].Line != 3 {
		t.Errorf("problems = %+v", ce.Problems)
	}
}

func TestParse_UnknownTopLevelKeyIsWarning(t *testing.T) {
	cfg, warns, err := config.Parse([]byte("version: 1.2\nendpoints: {}\nmcpSettings: {allowedDomains: [], foo: 1}\n"), "lc.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg == nil || len(warns) != 3 {
		t.Fatalf("warnings = %+v", warns)
	}
	// sorted by line
	if warns[0].Field != "version" || warns[1].Field != "endpoints" || warns[1].Line != 2 || warns[2].Field != "mcpSettings.foo" {
		t.Errorf("warnings = %+v", warns)
	}
}

func TestParse_EmptyFileIsRefused(t *testing.T) {
	// given files without content, when parsed, then they are refused: applying one
	// would remove every server the file registered
	for _, body := range []string{"", "# nothing\n", "---\n", "\n\n"} {
		cfg, _, err := config.Parse([]byte(body), "empty")
		if !errors.Is(err, config.ErrEmpty) || cfg != nil {
			t.Errorf("%q: cfg=%+v err=%v, want ErrEmpty", body, cfg, err)
		}
	}
	// and a file that says it has no servers is fine
	cfg, _, err := config.Parse([]byte("mcpServers: {}\n"), "none")
	if err != nil || len(cfg.MCPServers) != 0 || cfg.Listen != config.DefaultListen {
		t.Fatalf("mcpServers: {} = %+v, %v", cfg, err)
	}
}

func TestParse_ProblemsSortedByLineAndTypeErrorsHideNothing(t *testing.T) {
	// given a file whose problems are spread over lines, out of name order, with a
	// type error next to other bad fields of the same entry
	body := "mcpServers:\n" +
		"  zeta:\n" +
		"    url: 42\n" + // line 3: type error
		"    timeout: -5\n" + // line 4: invalid value of the same entry
		"  alpha:\n" +
		"    type: carrier-pigeon\n" + // line 6
		"    command: x\n" +
		"listen: [1]\n" // line 8
	// when it is parsed
	_, _, err := config.Parse([]byte(body), "bad.yaml")
	// then every problem is reported, in line order
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v", err)
	}
	var lines []int
	for _, p := range ce.Problems {
		lines = append(lines, p.Line)
	}
	want := []int{3, 4, 6, 8}
	if !slices.Equal(lines, want) {
		t.Fatalf("problem lines = %v, want %v:\n%v", lines, want, err)
	}
}

func TestParse_ServerLines(t *testing.T) {
	cfg, _, err := config.Parse([]byte("mcpServers:\n  a: {command: x, args: []}\n\n  b:\n    command: y\n    args: []\n"), "lines.yaml")
	if err != nil || cfg.ServerLines["a"] != 2 || cfg.ServerLines["b"] != 4 {
		t.Fatalf("lines = %v, %v", cfg.ServerLines, err)
	}
}

func TestParse_RefusesNonMappingShapes(t *testing.T) {
	for _, body := range []string{"- a\n- b\n", "mcpServers: [a]\n", "mcpServers:\n  x:\n", "mcpServers:\n  x: 3\n", "a: 1\n---\nb: 2\n"} {
		_, _, err := config.Parse([]byte(body), "shape")
		mustError(t, err)
	}
}

func TestParse_TooLarge(t *testing.T) {
	_, _, err := config.Parse(make([]byte, config.MaxFileSize+1), "big")
	if !errors.Is(err, config.ErrTooLarge) {
		t.Fatalf("err = %v", err)
	}
}

func TestLoad_MissingFile(t *testing.T) {
	_, _, err := config.Load(filepath.Join(t.TempDir(), "none.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v", err)
	}
}

func TestParseServer_YAMLAndJSON(t *testing.T) {
	// given one server as YAML and the same as JSON
	y := "type: streamable-http\nurl: http://127.0.0.1:9/mcp\nheaders: {X-Key: v}\nfoo: bar\n"
	j := `{"type":"streamable-http","url":"http://127.0.0.1:9/mcp","headers":{"X-Key":"v"},"foo":"bar"}`
	a, warns, err := config.ParseServer([]byte(y), "a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := config.ParseServer([]byte(j), "a.json")
	if err != nil {
		t.Fatal(err)
	}
	// then they decode to the same config, with the unknown field kept and warned
	if !a.Equal(b) || a.Headers["X-Key"] != "v" || len(warns) != 1 || warns[0].Field != "foo" || warns[0].Line != 4 {
		t.Errorf("a=%+v b=%+v warns=%+v", a, b, warns)
	}
	_, _, err = config.ParseServer([]byte("timeout: soon\n"), "t.yaml")
	ce := mustError(t, err)
	if ce.Problems[0].Field != "timeout" || ce.Problems[0].Line != 1 {
		t.Errorf("problems = %+v", ce.Problems)
	}
}

func TestServerProblems_UserScopeRefusesStdio(t *testing.T) {
	probs := config.ServerProblems(domain.UserScope("alice"), "x", domain.ServerConfig{Command: "sh"})
	if len(probs) == 0 || !strings.Contains(probs[0].Reason, "stdio") {
		t.Errorf("problems = %+v", probs)
	}
}

func TestValidate_Settings(t *testing.T) {
	c := &config.Config{PubSub: "http://x", Audit: config.Audit{ToolCalls: "all"},
		Auth: config.Auth{Tokens: []config.Token{{SHA256: strings.Repeat("0", 64), Role: "owner"}}}}
	c.SetDefaults()
	err := c.Validate()
	ce := mustError(t, err)
	if len(ce.Problems) != 3 {
		t.Errorf("problems = %v", err)
	}
}

func mustRead(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestLoad_ProtocolVersion(t *testing.T) {
	for _, c := range []struct {
		yaml, want, problem string
	}{
		{"mcpServers: {}", "2025-11-25", ""},
		{"connections: {protocolVersion: latest}", "latest", ""},
		{"connections: {protocolVersion: \"2025-11-25\"}", "2025-11-25", ""},
		{"connections: {protocolVersion: \"1999-01-01\"}", "", "connections.protocolVersion"},
	} {
		// given a config with (or without) connections.protocolVersion
		path := writeFile(t, c.yaml+"\n")
		// when loaded
		cfg, _, err := config.Load(path)
		// then the default is the stable revision, and an unknown one names the field
		if c.problem != "" {
			if err == nil || !strings.Contains(err.Error(), c.problem) {
				t.Errorf("%q: err %v, want a problem naming %s", c.yaml, err, c.problem)
			}
			continue
		}
		if err != nil || cfg.Connections.ProtocolVersion != c.want {
			t.Errorf("%q: %v, %q", c.yaml, err, cfg.Connections.ProtocolVersion)
		}
	}
}

func TestLoad_AuditCheckpointSettings(t *testing.T) {
	cases := map[string]struct {
		yaml     string
		events   int
		interval time.Duration
		problem  string
	}{
		"defaults":       {"audit: {}", config.DefaultCheckpointEvents, config.DefaultCheckpointInterval, ""},
		"a count":        {"audit: {checkpointEvery: 500, witness: file:///tmp/w.jsonl, signingKeyFile: /k}", 500, config.DefaultCheckpointInterval, ""},
		"a duration":     {"audit: {checkpointEvery: 30s, witness: https://witness.example/add}", config.DefaultCheckpointEvents, 30 * time.Second, ""},
		"too often":      {"audit: {checkpointEvery: 10ms}", 0, 0, "audit.checkpointEvery"},
		"a bad witness":  {"audit: {witness: ftp://x}", 0, 0, "audit.witness"},
		"not a count":    {"audit: {checkpointEvery: true}", 0, 0, "audit.checkpointEvery"},
		"a bad duration": {"audit: {checkpointEvery: soon}", 0, 0, "audit.checkpointEvery"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			// given an audit block
			path := writeFile(t, tc.yaml+"\n")
			// when loaded
			cfg, _, err := config.Load(path)
			// then the checkpoint cadence, witness and key file are kept, or the field is named
			if tc.problem != "" {
				if err == nil || !strings.Contains(err.Error(), tc.problem) {
					t.Fatalf("err = %v, want a problem with %s", err, tc.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Audit.CheckpointEvery.Events != tc.events || cfg.Audit.CheckpointEvery.Interval.D() != tc.interval {
				t.Fatalf("checkpointEvery = %+v", cfg.Audit.CheckpointEvery)
			}
			if name == "a count" && (cfg.Audit.Witness != "file:///tmp/w.jsonl" || cfg.Audit.SigningKeyFile != "/k") {
				t.Fatalf("audit = %+v", cfg.Audit)
			}
		})
	}
}
