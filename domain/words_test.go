package domain

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTidyMessage_CollapsesRepeatedPrefixes(t *testing.T) {
	for in, want := range map[string]string{
		"failed to send request: failed to send request: dial tcp 127.0.0.1:1: connect: connection refused": "failed to send request: dial tcp 127.0.0.1:1: connect: connection refused",
		"a: b: a: b":    "a: b: a: b",
		"EOF":           "EOF",
		"x: x: x: boom": "x: boom",
	} {
		if got := TidyMessage(in); got != want {
			t.Errorf("TidyMessage(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestServerState_StatusAndReason(t *testing.T) {
	reg := ServerRegistered{Scope: AppScope, Name: "s", Config: ServerConfig{URL: "https://x"}}
	st := ServerState{}.Apply(reg, 1, at0)
	if st.Status() != StatusPending || st.Reason() != "" || st.AppSource() != SourceFile || st.ConfigVersion != 1 {
		t.Fatalf("registered: %s %q %s v%d", st.Status(), st.Reason(), st.AppSource(), st.ConfigVersion)
	}
	failed := st.Apply(ServerInspectionFailed{Scope: AppScope, Name: "s", ConfigVersion: 1, Class: FailureConfig,
		Message: "environment variable not set: TOKEN"}, 2, at0)
	if failed.Status() != StatusFailed || failed.Reason() != "config: environment variable not set: TOKEN" {
		t.Fatalf("failed: %s %q", failed.Status(), failed.Reason())
	}
	oauth := st.Apply(ServerInspectionFailed{Scope: AppScope, Name: "s", ConfigVersion: 1, Class: FailureAuth, RequiresOAuth: true}, 2, at0)
	if oauth.Status() != StatusRequiresOAuth || !strings.Contains(oauth.Reason(), "OAuth") {
		t.Fatalf("oauth: %s %q", oauth.Status(), oauth.Reason())
	}
	changed := st.Apply(ServerConfigChanged{Scope: AppScope, Name: "s", Config: ServerConfig{URL: "https://y"},
		Changed: []string{"url"}, Source: SourceAPI}, 3, at0)
	if changed.ConfigVersion != 2 || changed.Version != 3 || changed.AppSource() != SourceAPI {
		t.Fatalf("changed: v%d at %d from %s", changed.ConfigVersion, changed.Version, changed.AppSource())
	}
	if got := RefusalText("later", "", RuleStartupDisabled); got != "server later for app: refused by policy (rule startup_false)" {
		t.Fatalf("refusal = %q", got)
	}
}

// FuzzTidyMessage: any message comes out valid UTF-8 (when it went in valid), at
// most 1,000 bytes plus the ellipsis, without two equal parts in a row, and tidying
// twice changes nothing more.
func FuzzTidyMessage(f *testing.F) {
	f.Add("failed to send request: failed to send request: EOF")
	f.Add("a: a")
	f.Add(strings.Repeat("é: ", 600))
	f.Fuzz(func(t *testing.T, in string) {
		out := TidyMessage(in)
		if utf8.ValidString(in) && !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8 from %q", in)
		}
		if len(out) > 1000+len("…") {
			t.Fatalf("%d bytes", len(out))
		}
		if len(out) <= 1000 && TidyMessage(out) != out {
			t.Fatalf("not idempotent: %q -> %q -> %q", in, out, TidyMessage(out))
		}
	})
}
