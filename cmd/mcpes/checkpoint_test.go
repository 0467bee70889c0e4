package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/note"

	"github.com/mcpes/mcpes/audit"
	"github.com/mcpes/mcpes/config"
	"github.com/mcpes/mcpes/domain"
)

func TestServe_CheckpointsToWitness_VerifyExportAndTailCut(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "mcpes.test/log")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("MCPES_SIGNING_KEY", skey)
	dir := t.TempDir()
	witness := filepath.Join(dir, "witness.jsonl")

	// given the service run with a signing key and a witness file, then stopped
	cfg := &config.Config{DataDir: filepath.Join(dir, "data"), Listen: "127.0.0.1:0",
		MCPServers: map[string]domain.ServerConfig{"dead": {Type: "sse", URL: "http://127.0.0.1:1/sse", InitTimeoutMS: 2000}},
		Audit:      config.Audit{Witness: "file://" + witness}}
	cfg.SetDefaults()
	m := &Main{Config: cfg, Logger: discardLogger()}
	ctx := context.Background()
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for get(t, "http://"+m.Addr()+"/readyz") != 200 {
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// then the log verifies against the witness
	out, errOut, code := runArgs(t, "", "verify", "--data", cfg.DataDir, "--witness", witness)
	if code != 0 || !strings.Contains(out, "verify ok") || !strings.Contains(out, "1 checkpoints") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errOut)
	}
	// and an export with proofs verifies with the checkpoint and the public key alone
	excerpt, errOut, code := runArgs(t, "", "export", "--data", cfg.DataDir, "--proofs", "--server", "dead")
	if code != 0 || !strings.Contains(excerpt, `{"proof":`) {
		t.Fatalf("export: exit %d\n%s%s", code, excerpt, errOut)
	}
	lines := bytes.Split(bytes.TrimSpace(mustRead(t, witness)), []byte("\n"))
	cpFile, exFile := filepath.Join(dir, "cp.json"), filepath.Join(dir, "excerpt.jsonl")
	writeFile(t, cpFile, lines[len(lines)-1])
	writeFile(t, exFile, []byte(excerpt))
	out, errOut, code = runArgs(t, "", "verify-export", exFile, "--checkpoint", cpFile, "--key", vkey)
	if code != 0 || !strings.Contains(out, "verify-export ok") {
		t.Fatalf("verify-export: exit %d\n%s%s", code, out, errOut)
	}

	// and since that checkpoint there is nothing more to check
	out, errOut, code = runArgs(t, "", "verify", "--data", cfg.DataDir, "--since", cpFile, "--key", vkey)
	if code != 0 || !strings.Contains(out, "verify ok: 0 events checked after position") {
		t.Fatalf("verify --since: exit %d\n%s%s", code, out, errOut)
	}

	// when the tail of the log is cut, with the checkpoint stored in the file
	size := cutTail(t, dbPath(cfg.DataDir), 1)

	// then verify alone cannot tell, but against the witness it exits 1 naming the checkpoint
	if out, errOut, code = runArgs(t, "", "verify", "--data", cfg.DataDir); code != 0 {
		t.Fatalf("verify without the witness: exit %d\n%s%s", code, out, errOut)
	}
	out, _, code = runArgs(t, "", "verify", "--data", cfg.DataDir, "--witness", witness, "--key", vkey)
	if code != 1 || !strings.Contains(out, "checkpoint mcpes.test/log size ") || !strings.Contains(out, "missing") {
		t.Fatalf("verify after the cut (log of %d): exit %d\n%s", size, code, out)
	}
	t.Log(out)
}

// cutTail removes the last n records of a stopped store's file as an attacker would:
// the head points at the new last record, the stored tree and checkpoint are gone.
// It returns the new size.
func cutTail(t *testing.T, path string, n uint64) uint64 {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var keep uint64
	err = db.Update(func(tx *bbolt.Tx) error {
		log, meta := tx.Bucket([]byte("log")), tx.Bucket([]byte("meta"))
		k, _ := log.Cursor().Last()
		keep = binary.BigEndian.Uint64(k) - n
		c := log.Cursor()
		var last []byte
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if binary.BigEndian.Uint64(k) > keep {
				if err := c.Delete(); err != nil {
					return err
				}
				continue
			}
			last = append([]byte(nil), v...)
		}
		head := append([]byte(nil), meta.Get([]byte("head"))...)
		binary.BigEndian.PutUint64(head, keep)
		copy(head[8:40], last[1:33])
		if err := meta.Put([]byte("head"), head); err != nil {
			return err
		}
		if err := meta.Delete([]byte("tree")); err != nil {
			return err
		}
		return tx.Bucket([]byte("snapshots")).Delete([]byte(audit.SnapshotCheckpoint))
	})
	if err != nil {
		t.Fatal(err)
	}
	return keep
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
