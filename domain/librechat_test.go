package domain

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestValidateServerName_AcceptsWhatLibreChatAccepts(t *testing.T) {
	for _, name := range []string{"google calendar", "日本語サーバー", "my__server", strings.Repeat("a", 70), "123", "Bob's tools"} {
		if err := ValidateConfig(AppScope, name, ServerConfig{URL: "https://a.example.com/sse"}); err != nil {
			t.Errorf("%q refused: %v", name, err)
		}
	}
	for _, name := range []string{"", "a/b", "tab\there", strings.Repeat("x", MaxServerNameLen+1), "bad\xffutf8"} {
		if ValidateServerName(name) == nil {
			t.Errorf("%q accepted", name)
		}
	}
}

var toolName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

func TestToolPrefix_ValidDeterministicAndStableForPlainNames(t *testing.T) {
	// given names LibreChat accepts, plain and not
	for _, name := range []string{"github", "my-server.v2", "a_b", "google calendar", "日本語サーバー", "my__server",
		strings.Repeat("long", 60), "__", "_x", "x_", "a  b", "ünïcode name"} {
		// when mapped twice
		p, again := ToolPrefix(name), ToolPrefix(name)
		// then the prefix is a valid tool name, stable, and "__" never occurs in it
		if p != again || !toolName.MatchString(p+"__tool") || strings.Contains(p, "__") || len(p) > 64 {
			t.Errorf("ToolPrefix(%q) = %q", name, p)
		}
	}
	if ToolPrefix("github") != "github" || ToolPrefix("a_b") != "a_b" {
		t.Error("plain names must be their own prefix")
	}
	if p := ToolPrefix("google calendar"); !regexp.MustCompile(`^google_calendar-[0-9a-f]{8}$`).MatchString(p) {
		t.Errorf("ToolPrefix(google calendar) = %q", p)
	}
	if ToolPrefix("a b") == ToolPrefix("a  b") {
		t.Error("different names share a prefix without a hash")
	}
}

func TestCheckToolPrefix_RefusesACollision(t *testing.T) {
	// given a server whose plain name is another's mapped form
	mapped := ToolPrefix("google calendar")
	// when the second registers, then it is refused naming both
	err := CheckToolPrefix(mapped, []string{"github", "google calendar"})
	if !errors.Is(err, ErrToolPrefixTaken) || !strings.Contains(err.Error(), "google calendar") {
		t.Fatalf("err = %v", err)
	}
	if err := CheckToolPrefix("google calendar", []string{"google calendar", "github"}); err != nil {
		t.Fatalf("itself counted as a collision: %v", err)
	}
}

func TestTransportType_InfersWebsocketFromURL(t *testing.T) {
	for url, want := range map[string]string{"ws://a/mcp": TransportWebsocket, "WSS://a/mcp": TransportWebsocket, "https://a/sse": TransportSSE} {
		if got := (ServerConfig{URL: url}).TransportType(); got != want {
			t.Errorf("%s: %s, want %s", url, got, want)
		}
	}
	if got := (ServerConfig{Command: "npx", URL: "ws://a"}).TransportType(); got != TransportStdio {
		t.Errorf("command+url: %s, want stdio", got)
	}
}

func TestSubstituteUserVars_ReplacesEveryPlaceholderForTheOwner(t *testing.T) {
	// given a config with per-owner placeholders in url, headers, env and args
	cfg := ServerConfig{Type: "http", URL: "https://a.example.com/s/{{KEY}}/mcp",
		Headers:        map[string]string{"X-User": "{{LIBRECHAT_USER_ID}}", "X-Mail": "{{LIBRECHAT_USER_EMAIL}}"},
		Env:            map[string]string{"T": "{{KEY}}"},
		Args:           []string{"--token={{KEY}}", "{{not a var}}"},
		CustomUserVars: map[string]CustomUserVar{"KEY": {Title: "k", Description: "d"}},
		APIKey:         &APIKey{Source: APIKeySourceUser, AuthorizationType: APIKeyBearer}}
	// when substituted for alice
	got, err := SubstituteUserVars(cfg, "alice", map[string]string{"KEY": "k-77", APIKeyVar: "api-9"}, map[string]string{"EMAIL": "a@x"})
	if err != nil {
		t.Fatal(err)
	}
	// then each is her value, the api key is a bearer header, and the input is unchanged
	if got.URL != "https://a.example.com/s/k-77/mcp" || got.Headers["X-User"] != "alice" || got.Headers["X-Mail"] != "a@x" ||
		got.Env["T"] != "k-77" || got.Args[0] != "--token=k-77" || got.Args[1] != "{{not a var}}" || got.Headers["Authorization"] != "Bearer api-9" {
		t.Fatalf("substituted: %+v", got)
	}
	if cfg.Headers["X-User"] != "{{LIBRECHAT_USER_ID}}" {
		t.Fatal("input changed")
	}
}

func TestSubstituteUserVars_MissingValuesAreNamedNeverSent(t *testing.T) {
	cfg := ServerConfig{URL: "https://a/{{KEY}}", Headers: map[string]string{"X": "{{LIBRECHAT_USER_EMAIL}}", "Y": "{{UNDECLARED}}"},
		CustomUserVars: map[string]CustomUserVar{"KEY": {}}}
	_, err := SubstituteUserVars(cfg, "bob", map[string]string{"UNDECLARED": "sneaky"}, nil)
	var me *MissingUserVarsError
	if !errors.As(err, &me) || !errors.Is(err, ErrUserVarsMissing) {
		t.Fatalf("err = %v", err)
	}
	if strings.Join(me.Names, ",") != "KEY,LIBRECHAT_USER_EMAIL,UNDECLARED" {
		t.Fatalf("names = %v", me.Names)
	}
	if strings.Contains(err.Error(), "sneaky") {
		t.Fatal("a value leaked into the error")
	}
}

func TestValidateUserValues_OnlyDeclaredNamesAndSafeValues(t *testing.T) {
	cfg := ServerConfig{CustomUserVars: map[string]CustomUserVar{"KEY": {}}, APIKey: &APIKey{Source: APIKeySourceUser, AuthorizationType: APIKeyCustom}}
	if err := ValidateUserValues("s", cfg, map[string]string{"KEY": "v", APIKeyVar: "k"}); err != nil {
		t.Fatal(err)
	}
	ps := problemsOf(t, ValidateUserValues("s", cfg, map[string]string{"OTHER": "v", "KEY": "a\nb"}))
	if !hasProblem(ps, "OTHER", "not a variable") || !hasProblem(ps, "KEY", "CR, LF") {
		t.Fatalf("problems: %+v", ps)
	}
}

func TestLibreChatFields_RoundTripSealAndRedact(t *testing.T) {
	// given a config with every LibreChat field
	in := `{"type":"http","url":"https://a","cwd":"/x","stderr":"inherit","sseReadTimeout":5,"proxy":"http://p:1",` +
		`"requestHeaders":{"R":"rv"},"oauth":{"client_id":"i","client_secret":"cs","token_url":"https://t","authorization_url":"https://u"},` +
		`"oauth_headers":{"O":"ov"},"apiKey":{"key":"ak","source":"admin","authorization_type":"bearer"},"obo":{"scopes":"s"},` +
		`"customUserVars":{"K":{"title":"t","description":"d","sensitive":false}}}`
	var cfg ServerConfig
	if err := json.Unmarshal([]byte(in), &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Extra) != 0 || cfg.Stderr.Mode != "inherit" || cfg.OAuth.ClientSecret != "cs" || *cfg.CustomUserVars["K"].Sensitive {
		t.Fatalf("decoded: %+v", cfg)
	}
	out, _ := json.Marshal(cfg)
	var back ServerConfig
	_ = json.Unmarshal(out, &back)
	if !back.Equal(cfg) {
		t.Fatalf("round trip: %s", out)
	}
	// when sealed and redacted, then no secret value remains
	sealed, secrets := SealSecrets(cfg, func(v string) string { return SecretRef([]byte("k"), v) })
	red, _ := json.Marshal(RedactSecrets(cfg))
	sb, _ := json.Marshal(sealed)
	for _, secret := range []string{"rv", "cs", "ov", "ak"} {
		if strings.Contains(string(sb), `"`+secret+`"`) || strings.Contains(string(red), `"`+secret+`"`) {
			t.Errorf("secret %q left in %s / %s", secret, sb, red)
		}
	}
	if len(secrets) != 4 {
		t.Errorf("secrets to store: %d, want 4", len(secrets))
	}
	// and a clone shares nothing
	c := cfg.Clone()
	c.OAuth.ClientSecret, c.APIKey.Key = "changed", "changed"
	if cfg.OAuth.ClientSecret != "cs" || cfg.APIKey.Key != "ak" {
		t.Fatal("Clone shares the oauth or apiKey block")
	}
}

func FuzzUserPlaceholders(f *testing.F) {
	for _, s := range []string{"{{A}}", "x{{B}}y{{", "{{}}", "{{a b}}", "{{{{C}}}}", "}}{{", "{{LIBRECHAT_USER_ID}}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cfg := ServerConfig{URL: s, Args: []string{s}, CustomUserVars: map[string]CustomUserVar{"A": {}}}
		got, err := SubstituteUserVars(cfg, "o", map[string]string{"A": "v"}, map[string]string{"EMAIL": "e"})
		if err == nil && len(UserPlaceholders(got)) > 0 && !strings.Contains(s, "{{{") {
			// a value of "v", "o" or "e" cannot form a new placeholder
			t.Fatalf("placeholder left after substitution: %q -> %q", s, got.URL)
		}
		_ = ToolPrefix(s)
		if p := ToolPrefix(s); s != "" && !toolName.MatchString(p) {
			t.Fatalf("ToolPrefix(%q) = %q", s, p)
		}
	})
}

func FuzzValidateUserValues(f *testing.F) {
	f.Add("KEY", "value")
	f.Add("MCP_API_KEY", "a\r\nInjected: yes")
	f.Add("{{X}}", "")
	f.Fuzz(func(t *testing.T, name, value string) {
		cfg := ServerConfig{URL: "https://a/{{KEY}}", CustomUserVars: map[string]CustomUserVar{"KEY": {}},
			APIKey: &APIKey{Source: APIKeySourceUser, AuthorizationType: APIKeyCustom, CustomHeader: "X-Key"}}
		if ValidateUserValues("s", cfg, map[string]string{name: value}) != nil {
			return
		}
		// an accepted value never breaks a header or the request line
		got, err := SubstituteUserVars(cfg, "o", map[string]string{name: value, "KEY": value}, nil)
		if err == nil && strings.ContainsAny(got.URL+got.Headers["X-Key"], "\r\n\x00") {
			t.Fatalf("CR/LF/NUL passed: %q", value)
		}
	})
}
