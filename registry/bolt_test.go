package registry_test

import (
	"bytes"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/registry"
	boltstore "github.com/mcpes/mcpes/store/bolt"
)

func openBolt(tb testing.TB, path string) *boltstore.Store {
	tb.Helper()
	st, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

func TestService_Reconcile_RestartWithSameFileWritesNoEvents(t *testing.T) {
	// given a bolt store reconciled with a file (secrets and placeholders included),
	// then closed
	path := filepath.Join(t.TempDir(), "mcpes.db")
	st := openBolt(t, path)
	h := newHarness(t, st, registry.Options{InspectOnPut: registry.InspectOff})
	rep, err := h.Svc.Reconcile(ctx(t), registry.ConfigFile{Servers: fileServers()})
	if err != nil || len(rep.Registered) != 3 {
		t.Fatalf("first reconcile = %+v, %v", rep, err)
	}
	head := h.head(t)
	if err := h.Svc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// when the store is reopened and the same file reconciled by a new service
	st = openBolt(t, path)
	t.Cleanup(func() { _ = st.Close() })
	h = newHarness(t, st, registry.Options{InspectOnPut: registry.InspectOff})
	rep, err = h.Svc.Reconcile(ctx(t), registry.ConfigFile{Servers: fileServers()})

	// then no event is written
	if err != nil {
		t.Fatal(err)
	}
	if rep.Registered != nil || rep.Changed != nil || rep.Removed != nil || h.head(t) != head {
		t.Fatalf("restart reconcile = %+v, head %d→%d; want nothing", rep, head, h.head(t))
	}

	// when the file then loses a server
	file := fileServers()
	delete(file, "docs")
	rep, err = h.Svc.Reconcile(ctx(t), registry.ConfigFile{Servers: file})
	// then only the removal is written
	if err != nil || len(rep.Removed) != 1 || h.head(t) != head+1 {
		t.Fatalf("reconcile = %+v, %v, head %d→%d", rep, err, head, h.head(t))
	}
}

func TestService_SecretsNeverStoredInClearOutsideTheSecretStore(t *testing.T) {
	// given a bolt store, an app server and a user server carrying secrets, inspected
	// (successfully and not), and a projection snapshot
	path := filepath.Join(t.TempDir(), "mcpes.db")
	st := openBolt(t, path)
	h := newHarness(t, st, registry.Options{})
	const appToken, userToken, envSecret = "app-tok-93be0c71d4", "user-tok-5a7e22f0c9", "env-val-0d1e2f3a4b"
	up := startMCP(t, "alpha")
	appCfg := httpConfig(up.URL)
	appCfg.Headers = map[string]string{"Authorization": "Bearer " + appToken}
	if _, err := h.Svc.Put(ctx(t), "admin", domain.AppScope, "app", appCfg); err != nil {
		t.Fatal(err)
	}
	clockCfg := domain.ServerConfig{Command: clockBinary(t), Env: map[string]string{"CLOCK_SECRET": envSecret}, InitTimeoutMS: 10000}
	if _, err := h.Svc.Put(ctx(t), "admin", domain.AppScope, "clock", clockCfg); err != nil {
		t.Fatal(err)
	}
	userCfg := domain.ServerConfig{Type: "sse", URL: "https://mcp.example.com/sse",
		Headers: map[string]string{"X-Api-Key": userToken}, InitTimeoutMS: 500}
	if _, err := h.Svc.Put(ctx(t), "owner:alice", domain.UserScope("alice"), "mine", userCfg); err != nil {
		t.Fatal(err)
	}
	if st := h.state(domain.AppScope, "app"); !st.Inspected || st.InspectionFailed {
		t.Fatalf("app server not inspected with its secret header: %+v", st)
	}
	if err := h.Proj.Snapshot(ctx(t), st); err != nil {
		t.Fatal(err)
	}
	assertNoRecordContains(t, h, appToken)
	head := h.head(t)
	_ = h.Svc.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// when every key and value of every bucket but the secret store is scanned
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	perBucket := map[string]int{}
	var scan func(path string, b *bolt.Bucket) error
	scan = func(path string, b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			if v == nil { // a nested bucket
				return scan(path+"/"+string(k), b.Bucket(k))
			}
			perBucket[path]++
			for _, s := range []string{appToken, userToken, envSecret} {
				if bytes.Contains(k, []byte(s)) || bytes.Contains(v, []byte(s)) {
					t.Errorf("bucket %s key %q holds a secret in clear", path, k)
				}
			}
			return nil
		})
	}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if string(name) == "secrets" {
				return nil
			}
			return scan(string(name), b)
		})
	})
	// then none holds a secret in clear (the secret store holds them, by contract)
	if err != nil {
		t.Fatal(err)
	}
	if perBucket["log"] != int(head) || perBucket["snapshots"] == 0 {
		t.Fatalf("scanned %v, want all %d log records and the snapshot", perBucket, head)
	}
}
