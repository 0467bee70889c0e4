package credentials_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mcpes/mcpes/credentials"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/bolt"
)

func ring(tb testing.TB, ids ...string) (*credentials.Keyring, string) {
	tb.Helper()
	var entries []string
	for _, id := range ids {
		e, err := credentials.GenerateKey(id)
		if err != nil {
			tb.Fatal(err)
		}
		entries = append(entries, e)
	}
	spec := strings.Join(entries, ",")
	k, err := credentials.ParseKeys(spec)
	if err != nil {
		tb.Fatal(err)
	}
	return k, spec
}

func openBolt(tb testing.TB, path string) *bolt.Store {
	tb.Helper()
	st, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

func TestKeyring_SealOpen_BoundToRef(t *testing.T) {
	k, _ := ring(t, "k1")
	// given a value sealed under alice's record key
	sealed, err := k.Seal("oauth/alice/github", []byte("refresh-token-xyz"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("refresh-token-xyz")) {
		t.Fatal("sealed value holds the plaintext")
	}
	// when it is opened under its own ref, then it is the value and names its key
	got, id, err := k.Open("oauth/alice/github", sealed)
	if err != nil || string(got) != "refresh-token-xyz" || id != "k1" {
		t.Fatalf("open: %q %q %v", got, id, err)
	}
	// when it is copied under bob's ref, then it does not decrypt
	if _, _, err := k.Open("oauth/bob/github", sealed); !errors.Is(err, credentials.ErrDecrypt) {
		t.Fatalf("copied under another owner: %v, want ErrDecrypt", err)
	}
	// when one byte is flipped, then it does not decrypt
	bad := bytes.Clone(sealed)
	bad[len(bad)-1] ^= 1
	if _, _, err := k.Open("oauth/alice/github", bad); !errors.Is(err, credentials.ErrDecrypt) {
		t.Fatalf("tampered: %v, want ErrDecrypt", err)
	}
	// when it is opened with a ring that lacks its key, then the key is named as unknown
	other, _ := ring(t, "k2")
	if _, _, err := other.Open("oauth/alice/github", sealed); !errors.Is(err, credentials.ErrUnknownKey) {
		t.Fatalf("other ring: %v, want ErrUnknownKey", err)
	}
}

func TestParseKeys_Errors(t *testing.T) {
	good, _ := credentials.GenerateKey("k1")
	for name, spec := range map[string]string{
		"empty":     "",
		"no colon":  "abc",
		"short key": "k1:AAAA",
		"bad id":    "k 1:" + strings.TrimPrefix(good, "k1:"),
		"duplicate": good + "," + good,
	} {
		if _, err := credentials.ParseKeys(spec); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), strings.TrimPrefix(good, "k1:")) {
			t.Errorf("%s: error shows the key: %v", name, err)
		}
	}
}

func TestLoadKeys_FilePermissionsAndEnvFirst(t *testing.T) {
	_, spec := ring(t, "f1")
	path := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(path, []byte("# mcpes keys\n"+spec+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// given a key file readable by others, then it is refused
	if _, err := credentials.LoadKeys("", path); !errors.Is(err, credentials.ErrBadKey) {
		t.Fatalf("0644 key file: %v, want ErrBadKey", err)
	}
	// given 0600, then its key is active
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := credentials.LoadKeys("", path)
	if err != nil || k.Active() != "f1" {
		t.Fatalf("0600 key file: %v %v", k.IDs(), err)
	}
	// given MCPES_KEYS too, then the environment wins
	_, envSpec := ring(t, "e2", "e1")
	if k, err := credentials.LoadKeys(envSpec, path); err != nil || k.Active() != "e2" {
		t.Fatalf("env: %v %v", k.IDs(), err)
	}
	// given neither, then ErrNoKey
	if _, err := credentials.LoadKeys("", ""); !errors.Is(err, credentials.ErrNoKey) {
		t.Fatalf("none: %v", err)
	}
}

func TestStore_SecretsAreSealedInTheDataFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "log.db")
	k, _ := ring(t, "k1")
	st := credentials.New(openBolt(t, path), k)
	// given secrets put through the credential store
	if err := st.PutSecret(ctx, "secret:aa", []byte("header-secret-value")); err != nil {
		t.Fatal(err)
	}
	if err := st.Update(ctx, "oauth/alice/s", func([]byte, bool) ([]byte, error) { return []byte("token-secret-value"), nil }); err != nil {
		t.Fatal(err)
	}
	// then they read back
	if v, err := st.Secret(ctx, "secret:aa"); err != nil || string(v) != "header-secret-value" {
		t.Fatalf("read back: %q %v", v, err)
	}
	st.Backend.Close()
	// and the raw file has neither value
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"header-secret-value", "token-secret-value"} {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("data file holds %q in clear", s)
		}
	}
}

func TestStore_NoKey_RefusesToStore(t *testing.T) {
	st := credentials.New(openBolt(t, filepath.Join(t.TempDir(), "log.db")), nil)
	if err := st.PutSecret(context.Background(), "secret:aa", []byte("v")); !errors.Is(err, credentials.ErrNoKey) {
		t.Fatalf("put without key: %v, want ErrNoKey", err)
	}
	if n, err := st.Count(context.Background()); err != nil || n != 0 {
		t.Fatalf("count %d %v", n, err)
	}
}

func TestStore_Rotate_ResealsOldKeyAndPlaintext(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "log.db")
	b := openBolt(t, path)
	// given a value stored in clear by an older mcpes, and one sealed under k1
	if err := b.PutSecret(ctx, "secret:old", []byte("legacy-clear")); err != nil {
		t.Fatal(err)
	}
	k1, spec1 := ring(t, "k1")
	if err := credentials.New(b, k1).PutSecret(ctx, "secret:k1", []byte("under-k1")); err != nil {
		t.Fatal(err)
	}
	// when k2 becomes active (k1 kept) and rotate runs
	e2, _ := credentials.GenerateKey("k2")
	both, err := credentials.ParseKeys(e2 + "," + spec1)
	if err != nil {
		t.Fatal(err)
	}
	st := credentials.New(b, both)
	rep, err := st.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// then it reports one re-sealed from k1 and one encrypted
	if rep.Active != "k2" || rep.Resealed["k1"] != 1 || rep.Encrypted != 1 || rep.Unchanged != 0 {
		t.Fatalf("report %+v", rep)
	}
	// and a second run changes nothing
	if rep, err := st.Rotate(ctx); err != nil || rep.Unchanged != 2 || rep.Encrypted != 0 || len(rep.Resealed) != 0 {
		t.Fatalf("second rotate %+v %v", rep, err)
	}
	// and k2 alone opens both
	only2, _ := credentials.ParseKeys(e2)
	for ref, want := range map[string]string{"secret:old": "legacy-clear", "secret:k1": "under-k1"} {
		if v, err := credentials.New(b, only2).Secret(ctx, ref); err != nil || string(v) != want {
			t.Errorf("%s after rotate: %q %v", ref, v, err)
		}
	}
}

func TestStore_Update_ConcurrentWritersLoseNothing(t *testing.T) {
	ctx := context.Background()
	k, _ := ring(t, "k1")
	st := credentials.New(openBolt(t, filepath.Join(t.TempDir(), "log.db")), k)
	// when 8 writers each append one byte through Update
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			errs <- st.Update(ctx, "counter", func(cur []byte, _ bool) ([]byte, error) {
				return append(bytes.Clone(cur), byte('a'+i)), nil
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, credentials.ErrContention) {
			t.Fatal(err)
		}
	}
	// then every successful write is in the value, none lost to a race
	v, err := st.Secret(ctx, "counter")
	if err != nil || len(v) == 0 {
		t.Fatalf("%q %v", v, err)
	}
	seen := map[byte]bool{}
	for _, c := range v {
		if seen[c] {
			t.Fatalf("byte %c twice in %q", c, v)
		}
		seen[c] = true
	}
	if err := st.Delete(ctx, "counter"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Secret(ctx, "counter"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

func FuzzParseKeys(f *testing.F) {
	good, _ := credentials.GenerateKey("k1")
	f.Add(good)
	f.Add("k2:AAAA,k1:" + strings.TrimPrefix(good, "k1:"))
	f.Add("# comment\n\n" + good)
	f.Fuzz(func(t *testing.T, spec string) {
		k, err := credentials.ParseKeys(spec)
		if err == nil && k.Active() == "" {
			t.Fatal("no error and no active key")
		}
	})
}

func FuzzOpen(f *testing.F) {
	k, _ := credentials.ParseKeys("k1:" + strings.Repeat("A", 43) + "=")
	sealed, _ := k.Seal("r", []byte("v"))
	f.Add(sealed)
	f.Add([]byte("mcpes-aead1\x00\x02k1"))
	f.Add([]byte("plain"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, _, err := k.Open("r", b); err == nil && !bytes.Equal(v, []byte("v")) {
			t.Fatalf("forged value opened: %q", v)
		}
	})
}
