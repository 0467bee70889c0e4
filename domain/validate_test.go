package domain

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func problemsOf(tb testing.TB, err error) []Problem {
	tb.Helper()
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, ErrInvalidConfig) {
		tb.Fatalf("error %v is not a *ValidationError wrapping ErrInvalidConfig", err)
	}
	return ve.Problems
}

func hasProblem(ps []Problem, field, reasonPart string) bool {
	for _, p := range ps {
		if p.Field == field && strings.Contains(p.Reason, reasonPart) {
			return true
		}
	}
	return false
}

func TestValidateConfig_AcceptsGoodConfigs(t *testing.T) {
	yes := true
	for name, tc := range map[string]struct {
		scope Scope
		cfg   ServerConfig
	}{
		"app stdio":              {AppScope, ServerConfig{Command: "npx", Args: []string{"-y", "server"}, Env: map[string]string{"TOKEN": "${TOKEN}"}}},
		"app sse by url":         {AppScope, ServerConfig{URL: "https://mcp.example.com/sse"}},
		"app http alias":         {AppScope, ServerConfig{Type: "http", URL: "http://127.0.0.1:8080/mcp", Headers: map[string]string{"Authorization": "Bearer ${API_KEY}"}}},
		"app url placeholder":    {AppScope, ServerConfig{Type: "streamable-http", URL: "https://${HOST}/mcp"}},
		"user streamable":        {UserScope("alice"), ServerConfig{Type: "streamable-http", URL: "https://mcp.example.com/mcp", Headers: map[string]string{"X-Api-Key": "k"}, TimeoutMS: 1000, InitTimeoutMS: MaxTimeoutMS}},
		"user websocket":         {UserScope("alice"), ServerConfig{Type: "websocket", URL: "wss://mcp.example.com/ws"}},
		"everything carried":     {AppScope, ServerConfig{URL: "https://a.example.com", Startup: &yes, ChatMenu: &yes, Title: "T", Description: "D", IconPath: "/i.png", ServerInstructions: &Instructions{Text: "be nice"}, CustomUserVars: map[string]CustomUserVar{"API_KEY": {Title: "key"}}}},
		"unknown field is fine":  {AppScope, ServerConfig{URL: "https://a.example.com", Extra: map[string]RawJSON{"zeta": RawJSON(`{"x":1}`)}}},
		"librechat names":        {AppScope, ServerConfig{URL: "https://a.example.com"}},
		"stdio url ignored":      {AppScope, ServerConfig{Command: "x", URL: "https://a"}},
		"remote command ignored": {AppScope, ServerConfig{Type: "sse", URL: "https://a", Command: "x"}},
		"whole url placeholder":  {AppScope, ServerConfig{Type: "http", URL: "${MCP_URL}"}},
		"user var url":           {UserScope("alice"), ServerConfig{Type: "http", URL: "https://a.example.com/s/{{KEY}}/mcp", CustomUserVars: map[string]CustomUserVar{"KEY": {Title: "k", Description: "d"}}}},
		"env dash name":          {AppScope, ServerConfig{Command: "x", Env: map[string]string{"MY-VAR": "v"}}},
		"url fragment":           {AppScope, ServerConfig{URL: "https://a.example.com/sse#x"}},
		"ws inferred":            {UserScope("alice"), ServerConfig{URL: "wss://a.example.com/ws"}},
		"long timeout":           {AppScope, ServerConfig{URL: "https://a", TimeoutMS: 7_200_000}},
		"librechat extras":       {AppScope, ServerConfig{Type: "http", URL: "https://a", Proxy: "${PROXY}", SSEReadTimeoutMS: 1, RequestHeaders: map[string]string{"X": "y"}, OAuthHeaders: map[string]string{"T": "a"}, APIKey: &APIKey{Source: "admin", AuthorizationType: "bearer", Key: "${K}"}, OBO: &OBO{Scopes: "s"}, OAuth: &OAuthConfig{AuthorizationURL: "https://a/auth", TokenURL: "${T}", ClientID: "i", ClientSecret: "s"}, Title: "Bob's Tools - v2"}},
		"stdio cwd stderr":       {AppScope, ServerConfig{Command: "x", Cwd: "/tmp", Stderr: &Stderr{Mode: "inherit"}}},
	} {
		t.Run(name, func(t *testing.T) {
			if err := ValidateConfig(tc.scope, "srv", tc.cfg); err != nil {
				t.Fatalf("rejected: %v", err)
			}
		})
	}
}

func TestValidateConfig_RejectsWithServerFieldAndReason(t *testing.T) {
	user := UserScope("alice")
	long := strings.Repeat("x", 5000)
	for name, tc := range map[string]struct {
		scope  Scope
		srv    string
		cfg    ServerConfig
		field  string
		reason string
	}{
		"name with slash":         {AppScope, "a/b", ServerConfig{Command: "x"}, "name", "\"/\""},
		"empty name":              {AppScope, "", ServerConfig{Command: "x"}, "name", "1 to 256"},
		"name with newline":       {AppScope, "a\nb", ServerConfig{Command: "x"}, "name", "control"},
		"bad scope":               {Scope("nobody"), "s", ServerConfig{Command: "x"}, "scope", "want"},
		"no transport":            {AppScope, "s", ServerConfig{}, "type", "no transport"},
		"unknown transport":       {AppScope, "s", ServerConfig{Type: "carrier-pigeon", URL: "https://a"}, "type", "unknown transport"},
		"stdio without command":   {AppScope, "s", ServerConfig{Type: "stdio"}, "command", "needs a command"},
		"remote without url":      {AppScope, "s", ServerConfig{Type: "sse"}, "url", "needs a url"},
		"relative url":            {AppScope, "s", ServerConfig{Type: "sse", URL: "/mcp"}, "url", "absolute"},
		"ftp url":                 {AppScope, "s", ServerConfig{Type: "sse", URL: "ftp://a/b"}, "url", "scheme"},
		"ws url for http":         {AppScope, "s", ServerConfig{Type: "http", URL: "ws://a/b"}, "url", "scheme"},
		"http url for websocket":  {AppScope, "s", ServerConfig{Type: "websocket", URL: "https://a/b"}, "url", "ws or wss"},
		"credentials in url":      {AppScope, "s", ServerConfig{URL: "https://u:p@a/b"}, "url", "credentials"},
		"unparsable url":          {AppScope, "s", ServerConfig{URL: "https://a b:x/"}, "url", "not a valid URL"},
		"malformed placeholder":   {AppScope, "s", ServerConfig{URL: "https://${1X}/"}, "url", "malformed placeholder"},
		"bad header name":         {AppScope, "s", ServerConfig{URL: "https://a", Headers: map[string]string{"Bad Header": "v"}}, "headers.Bad Header", "token"},
		"header value CRLF":       {AppScope, "s", ServerConfig{URL: "https://a", Headers: map[string]string{"X": "a\r\nb"}}, "headers.X", "CR, LF"},
		"bad env name":            {AppScope, "s", ServerConfig{Command: "x", Env: map[string]string{"A=B": "v"}}, "env.A=B", "variable name"},
		"env malformed":           {AppScope, "s", ServerConfig{Command: "x", Env: map[string]string{"A": "${B"}}, "env.A", "malformed"},
		"negative timeout":        {AppScope, "s", ServerConfig{Command: "x", TimeoutMS: -1}, "timeout", "negative"},
		"huge initTimeout":        {AppScope, "s", ServerConfig{Command: "x", InitTimeoutMS: MaxTimeoutMS + 1}, "initTimeout", "one year"},
		"too many args":           {AppScope, "s", ServerConfig{Command: "x", Args: make([]string, MaxArgs+1)}, "args", "more than"},
		"long arg":                {AppScope, "s", ServerConfig{Command: "x", Args: []string{long}}, "args[0]", "longer"},
		"long title":              {AppScope, "s", ServerConfig{Command: "x", Title: long}, "title", "longer"},
		"long description":        {AppScope, "s", ServerConfig{Command: "x", Description: strings.Repeat(long, 2)}, "description", "longer"},
		"bad custom var":          {AppScope, "s", ServerConfig{Command: "x", CustomUserVars: map[string]CustomUserVar{"a}b": {}}}, "customUserVars.a}b", "variable name"},
		"title punctuation":       {AppScope, "s", ServerConfig{Command: "x", Title: "Hi!"}, "title", "letter or number"},
		"stderr fd":               {AppScope, "s", ServerConfig{Command: "x", Stderr: &Stderr{FD: 2}}, "stderr", "file descriptor"},
		"stderr mode":             {AppScope, "s", ServerConfig{Command: "x", Stderr: &Stderr{Mode: "stdout"}}, "stderr", "pipe, ignore or inherit"},
		"sseReadTimeout negative": {AppScope, "s", ServerConfig{URL: "https://a", SSEReadTimeoutMS: -1}, "sseReadTimeout", "positive"},
		"proxy scheme":            {AppScope, "s", ServerConfig{Type: "http", URL: "https://a", Proxy: "ftp://p"}, "proxy", "http://"},
		"user proxy":              {user, "s", ServerConfig{Type: "http", URL: "https://a", Proxy: "http://p:1"}, "proxy", "user-scope"},
		"oauth secret without id": {AppScope, "s", ServerConfig{URL: "https://a", OAuth: &OAuthConfig{ClientSecret: "x"}}, "oauth.client_secret", "requires client_id"},
		"oauth id+secret no urls": {AppScope, "s", ServerConfig{URL: "https://a", OAuth: &OAuthConfig{ClientID: "i", ClientSecret: "x"}}, "oauth.client_secret", "both authorization_url"},
		"oauth bad url":           {AppScope, "s", ServerConfig{URL: "https://a", OAuth: &OAuthConfig{TokenURL: "not a url"}}, "oauth.token_url", "valid URL"},
		"apiKey source":           {AppScope, "s", ServerConfig{URL: "https://a", APIKey: &APIKey{Source: "all", AuthorizationType: "bearer"}}, "apiKey.source", "admin or user"},
		"apiKey type":             {AppScope, "s", ServerConfig{URL: "https://a", APIKey: &APIKey{Source: "user"}}, "apiKey.authorization_type", "bearer, basic or custom"},
		"user admin apiKey":       {user, "s", ServerConfig{Type: "http", URL: "https://a", APIKey: &APIKey{Source: "admin", AuthorizationType: "bearer", Key: "k"}}, "apiKey.source", "app config"},
		"obo on stdio":            {AppScope, "s", ServerConfig{Command: "x", OBO: &OBO{Scopes: "a"}}, "obo", "only for sse"},
		"obo empty scopes":        {AppScope, "s", ServerConfig{Type: "http", URL: "https://a", OBO: &OBO{}}, "obo.scopes", "empty"},
		"oauth wait cap":          {AppScope, "s", ServerConfig{URL: "https://a", OAuthPersistenceWaitTimeoutMS: MaxOAuthPersistenceWaitMS + 1}, "oauthPersistenceWaitTimeout", "at most"},
		"user requestHeaders var": {user, "s", ServerConfig{Type: "http", URL: "https://a/mcp", RequestHeaders: map[string]string{"X": "${HOME}"}}, "requestHeaders.X", "placeholders are not allowed"},
		"user stdio":              {user, "s", ServerConfig{Command: "rm", Args: []string{"-rf"}}, "type", "stdio is not allowed"},
		"user url placeholder":    {user, "s", ServerConfig{Type: "http", URL: "https://${HOST}/mcp"}, "url", "placeholders are not allowed"},
		"user header placeholder": {user, "s", ServerConfig{Type: "http", URL: "https://a/mcp", Headers: map[string]string{"Authorization": "Bearer ${OPENAI_API_KEY}"}}, "headers.Authorization", "placeholders are not allowed"},
		"user env placeholder":    {user, "s", ServerConfig{Type: "http", URL: "https://a/mcp", Env: map[string]string{"K": "${HOME}"}}, "env.K", "placeholders are not allowed"},
		"user arg placeholder":    {user, "s", ServerConfig{Type: "http", URL: "https://a/mcp", Args: []string{"${PATH}"}}, "args[0]", "placeholders are not allowed"},
	} {
		t.Run(name, func(t *testing.T) {
			// when validating, then the problem names the server, the field and the reason
			ps := problemsOf(t, ValidateConfig(tc.scope, tc.srv, tc.cfg))
			if !hasProblem(ps, tc.field, tc.reason) {
				t.Fatalf("want problem %s/%q, got %+v", tc.field, tc.reason, ps)
			}
			for _, p := range ps {
				if p.Server != tc.srv || p.Reason == "" || p.Warning {
					t.Fatalf("ill-formed problem %+v", p)
				}
			}
		})
	}
}

func TestValidateConfig_ListsEveryProblem(t *testing.T) {
	// given a user config with four independent problems
	cfg := ServerConfig{Command: "sh", TimeoutMS: -5, Headers: map[string]string{"Bad:Name": "${X}"}, Env: map[string]string{"OK": "${HOME}"}}
	// when validating
	ps := problemsOf(t, ValidateConfig(UserScope("bob"), "multi", cfg))
	// then each is listed
	for _, want := range [][2]string{{"type", "stdio is not allowed"}, {"timeout", "negative"}, {"headers.Bad:Name", "token"},
		{"headers.Bad:Name", "placeholders"}, {"env.OK", "placeholders"}} {
		if !hasProblem(ps, want[0], want[1]) {
			t.Errorf("missing %v in %+v", want, ps)
		}
	}
	if msg := ValidateConfig(UserScope("bob"), "multi", cfg).Error(); !strings.Contains(msg, "server multi, field timeout") {
		t.Errorf("message %q does not name server and field", msg)
	}
}

func TestConfigWarnings_ReportsUnknownFields(t *testing.T) {
	var cfg ServerConfig
	if err := json.Unmarshal([]byte(`{"url":"https://a","zeta":1,"alpha":{"b":2}}`), &cfg); err != nil {
		t.Fatal(err)
	}
	ws := ConfigWarnings("s", cfg)
	if len(ws) != 2 || ws[0].Field != "alpha" || ws[1].Field != "zeta" || !ws[0].Warning || ws[0].Server != "s" {
		t.Fatalf("warnings: %+v", ws)
	}
	if err := ValidateConfig(AppScope, "s", cfg); err != nil {
		t.Fatalf("unknown fields made it invalid: %v", err)
	}
}

func TestExpandVars_ExpandsUrlHeadersEnvAndArgs(t *testing.T) {
	env := map[string]string{"HOST": "mcp.example.com", "KEY": "k1", "TOKEN": "t0"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg := ServerConfig{URL: "https://${HOST}/mcp", Headers: map[string]string{"Authorization": "Bearer ${KEY}"},
		Env: map[string]string{"T": "${TOKEN}", "PLAIN": "x"}, Args: []string{"--header", "Authorization: Bearer ${TOKEN}"}}
	got, err := ExpandVars(cfg, lookup)
	if err != nil {
		t.Fatal(err)
	}
	if got.URL != "https://mcp.example.com/mcp" || got.Headers["Authorization"] != "Bearer k1" || got.Env["T"] != "t0" ||
		got.Env["PLAIN"] != "x" || got.Args[1] != "Authorization: Bearer t0" {
		t.Fatalf("expanded: %+v", got)
	}
	if cfg.Headers["Authorization"] != "Bearer ${KEY}" {
		t.Fatal("input changed")
	}
}

func TestExpandVars_MissingVariableIsNamed(t *testing.T) {
	cfg := ServerConfig{URL: "https://${HOST}/", Headers: map[string]string{"A": "${SECRET_A}", "B": "${SECRET_A}"}}
	_, err := ExpandVars(cfg, func(k string) (string, bool) { return "h", k == "HOST" })
	if !errors.Is(err, ErrMissingVar) || !strings.Contains(err.Error(), "SECRET_A") || strings.Count(err.Error(), "SECRET_A") != 1 {
		t.Fatalf("err = %v", err)
	}
	_, err = ExpandVars(ServerConfig{Env: map[string]string{"A": "${oops"}}, func(string) (string, bool) { return "", true })
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("malformed: err = %v", err)
	}
}

func TestIsPlaceholder(t *testing.T) {
	for v, want := range map[string]bool{"${A}": true, "${A_1}": true, "${1A}": false, "x${A}": false, "${A}x": false, "${}": false, "$A": false} {
		if IsPlaceholder(v) != want {
			t.Errorf("IsPlaceholder(%q) != %v", v, want)
		}
	}
}

// FuzzValidateConfig feeds arbitrary JSON to the config decoder and the validator:
// no panic, problems well formed, and a decoded config round-trips through JSON.
func FuzzValidateConfig(f *testing.F) {
	f.Add([]byte(`{"command":"npx","args":["-y","x"],"env":{"A":"${B}"}}`), true)
	f.Add([]byte(`{"type":"http","url":"https://a.example.com/mcp","headers":{"Authorization":"Bearer x"},"timeout":100}`), false)
	f.Add([]byte(`{"type":"websocket","url":"wss://a/ws","serverInstructions":true,"unknown":[1,2]}`), false)
	f.Add([]byte(`{"url":"https://${H}/","customUserVars":{"K":{"title":"k"}},"startup":false,"serverInstructions":"hi"}`), true)
	f.Add([]byte(`{"type":"stdio","url":"x","timeout":-1,"initTimeout":99999999999}`), false)
	f.Add([]byte(`[]`), true)
	f.Fuzz(func(t *testing.T, b []byte, app bool) {
		var cfg ServerConfig
		if json.Unmarshal(b, &cfg) != nil {
			return
		}
		scope := UserScope("fuzz")
		if app {
			scope = AppScope
		}
		if err := ValidateConfig(scope, "fuzz", cfg); err != nil {
			ps := problemsOf(t, err)
			if len(ps) == 0 {
				t.Fatal("validation error without problems")
			}
			for _, p := range ps {
				if p.Server != "fuzz" || p.Reason == "" || p.Warning {
					t.Fatalf("ill-formed problem %+v", p)
				}
			}
		}
		for _, w := range ConfigWarnings("fuzz", cfg) {
			if !w.Warning || w.Field == "" {
				t.Fatalf("ill-formed warning %+v", w)
			}
		}
		out, err := json.Marshal(cfg)
		if err != nil {
			return // an Extra value that is not valid JSON cannot come from Unmarshal
		}
		var again ServerConfig
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatalf("re-decode %s: %v", out, err)
		}
		out2, _ := json.Marshal(again)
		if string(out) != string(out2) || !cfg.Equal(again) {
			t.Fatalf("round trip unstable:\n%s\n%s", out, out2)
		}
		_, _ = ExpandVars(cfg, func(string) (string, bool) { return "v", true })
		sealed, secrets := SealSecrets(cfg, func(v string) string { return SecretRef([]byte("k"), v) })
		for k, v := range sealed.Headers {
			if !IsPlaceholder(v) && !IsSecretRef(v) {
				t.Fatalf("header %s left in clear", k)
			}
		}
		for ref := range secrets {
			if !IsSecretRef(ref) {
				t.Fatalf("bad ref %q", ref)
			}
		}
	})
}
