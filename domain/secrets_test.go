package domain

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func TestSecretRef_IsTruncatedHMAC(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	m := hmac.New(sha256.New, key)
	m.Write([]byte("token"))
	want := "secret:" + hex.EncodeToString(m.Sum(nil)[:16])
	if got := SecretRef(key, "token"); got != want || !IsSecretRef(got) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if SecretRef(key, "a") == SecretRef([]byte("other key"), "a") {
		t.Fatal("ref does not depend on the key")
	}
}

func TestIsSecretRef(t *testing.T) {
	ok := "secret:" + strings.Repeat("ab", 16)
	for v, want := range map[string]bool{ok: true, ok + "0": false, "secret:" + strings.Repeat("AB", 16): false,
		"secrets" + strings.Repeat("ab", 16): false, "": false, "${A}": false} {
		if IsSecretRef(v) != want {
			t.Errorf("IsSecretRef(%q) != %v", v, want)
		}
	}
}

func TestSealSecrets_ReplacesEveryClearValue(t *testing.T) {
	// given headers and env with clear values, a placeholder and an existing ref
	key := []byte("k")
	existing := SecretRef(key, "old")
	cfg := ServerConfig{URL: "https://a", Headers: map[string]string{"Authorization": "Bearer abc", "X-Env": "${TOKEN}", "X-Old": existing},
		Env: map[string]string{"PASSWORD": "hunter2", "SAME": "Bearer abc"}}

	// when sealing
	sealed, secrets := SealSecrets(cfg, func(v string) string { return SecretRef(key, v) })

	// then clear values became refs, placeholders and refs stayed, and each ref maps back
	ref := SecretRef(key, "Bearer abc")
	if sealed.Headers["Authorization"] != ref || sealed.Env["SAME"] != ref || sealed.Headers["X-Env"] != "${TOKEN}" ||
		sealed.Headers["X-Old"] != existing || sealed.Env["PASSWORD"] != SecretRef(key, "hunter2") {
		t.Fatalf("sealed: %+v %+v", sealed.Headers, sealed.Env)
	}
	if len(secrets) != 2 || secrets[ref] != "Bearer abc" || secrets[SecretRef(key, "hunter2")] != "hunter2" {
		t.Fatalf("secrets: %v", secrets)
	}
	if cfg.Headers["Authorization"] != "Bearer abc" {
		t.Fatal("input changed")
	}
	// and sealing again changes nothing
	again, more := SealSecrets(sealed, func(v string) string { return SecretRef(key, v) })
	if !again.Equal(sealed) || len(more) != 0 {
		t.Fatalf("not idempotent: %v", more)
	}
}

func TestRedactSecrets_HidesAllButPlaceholders(t *testing.T) {
	cfg := ServerConfig{Headers: map[string]string{"A": "clear", "B": "${B}", "C": SecretRef([]byte("k"), "x")}, Env: map[string]string{"D": "d"}}
	got := RedactSecrets(cfg)
	if got.Headers["A"] != Redacted || got.Headers["B"] != "${B}" || got.Headers["C"] != Redacted || got.Env["D"] != Redacted {
		t.Fatalf("redacted: %+v %+v", got.Headers, got.Env)
	}
	if cfg.Headers["A"] != "clear" {
		t.Fatal("input changed")
	}
}

func TestSealSecrets_OAuthClientSecret(t *testing.T) {
	// given a LibreChat oauth block with a client secret and other fields
	cfg := ServerConfig{URL: "https://a", OAuth: &OAuthConfig{ClientID: "pre", ClientSecret: "s3cr3t-client",
		Scope: "read", TokenExchangeMethod: "default_post"}}
	// when it is sealed, then the secret is a reference and the rest is kept
	sealed, secrets := SealSecrets(cfg, func(v string) string { return SecretRef([]byte("k"), v) })
	blk, ok := sealed.OAuthClient()
	if !ok || !IsSecretRef(blk.ClientSecret) || secrets[blk.ClientSecret] != "s3cr3t-client" || blk.ClientID != "pre" ||
		blk.Scope != "read" || blk.TokenExchangeMethod != "default_post" {
		t.Fatalf("sealed block %+v, secrets %v", blk, secrets)
	}
	// and the original is unchanged, and redaction hides it
	if cfg.OAuth.ClientSecret != "s3cr3t-client" {
		t.Fatal("SealSecrets changed its argument")
	}
	if b, _ := RedactSecrets(cfg).OAuthClient(); b.ClientSecret != Redacted {
		t.Fatalf("redacted %+v", b)
	}
}
