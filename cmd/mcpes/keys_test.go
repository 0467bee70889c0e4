package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/mcpes/mcpes/config"
	"github.com/mcpes/mcpes/credentials"
	"github.com/mcpes/mcpes/store/bolt"
)

func TestKeysGen_PrintsUsableKeys(t *testing.T) {
	// when keys gen runs, then it prints one entry MCPES_KEYS accepts
	out, _, code := runArgs(t, "", "keys", "gen", "--id", "k7")
	k, err := credentials.ParseKeys(strings.TrimSpace(out))
	if code != 0 || err != nil || k.Active() != "k7" {
		t.Fatalf("keys gen: %q code %d: %v", out, code, err)
	}
	// when it runs with --signing, then the private key signs a note the verifier key checks
	out, _, code = runArgs(t, "", "keys", "gen", "--signing", "mcpes-test")
	var skey, vkey string
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, EnvSigningKey+"="); ok {
			skey = v
		}
		if v, ok := strings.CutPrefix(line, "verifier key: "); ok {
			vkey = v
		}
	}
	signer, err := note.NewSigner(skey)
	if code != 0 || err != nil {
		t.Fatalf("signing key %q: %v", out, err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: "checkpoint\n"}, signer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(msg, note.VerifierList(verifier)); err != nil {
		t.Fatalf("verifier rejects the signer's note: %v", err)
	}
}

// seedSecret writes a secret in clear into a new data directory, as mcpes did
// before encryption.
func seedSecret(tb testing.TB, dir, ref, value string) {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	st, err := bolt.Open(dbPath(dir), bolt.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	if err := st.PutSecret(context.Background(), ref, []byte(value)); err != nil {
		tb.Fatal(err)
	}
	if err := st.Close(); err != nil {
		tb.Fatal(err)
	}
}

func TestServe_SecretsWithoutKey_RefusesAndSaysHow(t *testing.T) {
	// given a data directory holding a secret stored in clear
	dir := filepath.Join(t.TempDir(), "data")
	seedSecret(t, dir, "secret:0123456789abcdef0123456789abcdef", "legacy-clear-value")
	cfg := &config.Config{DataDir: dir, Listen: "127.0.0.1:0"}
	cfg.SetDefaults()
	// when serve starts without a key
	t.Setenv(credentials.EnvKeys, "")
	err := (&Main{Config: cfg, Logger: discardLogger()}).Run(context.Background())
	// then it refuses and says how to make one
	if err == nil || !strings.Contains(err.Error(), "mcpes keys gen") || !strings.Contains(err.Error(), "1 secrets") {
		t.Fatalf("serve without key: %v", err)
	}
	// when it starts with a key, then it runs and the secret is sealed in the file
	key, _ := credentials.GenerateKey("k1")
	t.Setenv(credentials.EnvKeys, key)
	m := &Main{Config: cfg, Logger: discardLogger()}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v, err := m.metered.Secret(context.Background(), "secret:0123456789abcdef0123456789abcdef"); err != nil || string(v) != "legacy-clear-value" {
		t.Fatalf("secret through the service: %q %v", v, err)
	}
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if raw, _ := os.ReadFile(dbPath(dir)); bytes.Contains(raw, []byte("legacy-clear-value")) {
		t.Fatal("the data file still holds the secret in clear after serve started with a key")
	}
	// when a new key becomes active and keys rotate runs, then it reports the move
	key2, _ := credentials.GenerateKey("k2")
	t.Setenv(credentials.EnvKeys, key2+","+key)
	out, stderr, code := runArgs(t, "", "keys", "rotate", "--data", dir)
	if code != 0 || !strings.Contains(out, "active key k2: 1 re-encrypted (1 from k1)") {
		t.Fatalf("rotate: %q %q code %d", out, stderr, code)
	}
	// and k2 alone opens it afterwards
	t.Setenv(credentials.EnvKeys, key2)
	out, _, code = runArgs(t, "", "keys", "rotate", "--data", dir)
	if code != 0 || !strings.Contains(out, "0 re-encrypted, 1 already under k2") {
		t.Fatalf("second rotate: %q code %d", out, code)
	}
}

func TestServe_NoSecretsNoKey_Starts(t *testing.T) {
	// given the README's offline demo situation: no secrets and no key
	t.Setenv(credentials.EnvKeys, "")
	cfg := &config.Config{DataDir: filepath.Join(t.TempDir(), "data"), Listen: "127.0.0.1:0"}
	cfg.SetDefaults()
	m := &Main{Config: cfg, Logger: discardLogger()}
	// then serve starts
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	_ = m.Close(context.Background())
}
