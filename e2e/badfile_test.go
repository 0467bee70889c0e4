package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/bolt"
	"github.com/mcpes/mcpes/store/storetest"
)

// TestBadDataFile_VerifyAndServeExit1NamingTheFile runs the binary on a truncated
// and an empty mcpes.db and on one whose pages are damaged: both commands exit 1 with one line naming the file and the
// problem, never a crash, and the file keeps its bytes (an empty file is not
// initialised by serve).
func TestBadDataFile_VerifyAndServeExit1NamingTheFile(t *testing.T) {
	t.Parallel()
	// given a good data file whose data reaches far past its first pages
	good := filepath.Join(t.TempDir(), "mcpes.db")
	st, err := bolt.Open(good, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(context.Background(), "server/app/a", store.AnyVersion,
		storetest.Events(t, "server/app/a", 400)...); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	damaged := bytes.Clone(raw)
	for off := 4 * 4096; off+8 <= len(raw)/2; off += 4096 { // page headers past the metas
		copy(damaged[off:], bytes.Repeat([]byte{0xff}, 8))
	}
	cfg := writeConfig(t, "mcpServers: {}\n")
	for _, tc := range []struct {
		name, problem string
		bytes         []byte
	}{
		{"truncated", "truncated", raw[:len(raw)/2]},
		{"empty", "empty (0 bytes)", nil},
		{"damaged pages", "damaged page", damaged},
	} {
		for _, cmd := range [][]string{{"verify"}, {"serve", "--config", cfg, "--listen", "127.0.0.1:0"}} {
			t.Run(tc.name+"/"+cmd[0], func(t *testing.T) {
				t.Parallel()
				// given a data directory holding the bad file
				dir := t.TempDir()
				path := filepath.Join(dir, "mcpes.db")
				if err := os.WriteFile(path, tc.bytes, 0o600); err != nil {
					t.Fatal(err)
				}
				// when the command runs on it
				res := runCLI(t, nil, "", append(cmd, "--data", dir)...)
				// then it exits 1 with one line naming the file and the problem
				if res.code != 1 {
					t.Fatalf("exit %d, want 1: %s", res.code, res)
				}
				out := res.stdout + res.stderr
				for _, crash := range []string{"goroutine", "SIGBUS", "panic", "fatal error"} {
					if strings.Contains(out, crash) {
						t.Fatalf("output shows a crash (%q): %s", crash, res)
					}
				}
				var msgs []string
				for _, l := range strings.Split(strings.TrimSpace(res.stderr), "\n") {
					if strings.HasPrefix(l, "mcpes: ") {
						msgs = append(msgs, l)
					}
				}
				if len(msgs) != 1 || !strings.Contains(msgs[0], path) || !strings.Contains(msgs[0], tc.problem) {
					t.Fatalf("want one line naming %s and %q: %s", path, tc.problem, res)
				}
				// and the file is untouched
				after, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if sha256.Sum256(after) != sha256.Sum256(tc.bytes) {
					t.Fatalf("%s changed: %d bytes before, %d after", path, len(tc.bytes), len(after))
				}
			})
		}
	}
}
