package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	bbolt "go.etcd.io/bbolt"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/bolt"
)

// writeSnapshotLog writes n config and connection events for owner o1's server s1 to
// a data directory and returns it.
func writeSnapshotLog(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := bolt.Open(filepath.Join(dir, "mcpes.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		var fact any = domain.ConnectionLost{Owner: "o1", Server: "s1", ConnID: "c", Error: "x"}
		if i%3 == 0 {
			fact = domain.ServerRegistered{Scope: domain.UserScope("o1"), Name: "s1",
				Config: domain.ServerConfig{Type: "sse", URL: fmt.Sprintf("https://s1.example/%d", i)}}
			if i > 0 {
				fact = domain.ServerConfigChanged{Scope: domain.UserScope("o1"), Name: "s1", Changed: []string{"url"},
					Config: domain.ServerConfig{Type: "sse", URL: fmt.Sprintf("https://s1.example/%d", i)}}
			}
		}
		env, err := events.New(fact, events.Meta{ID: uuid.Must(uuid.NewV7()).String(), Source: "mcpes://test",
			Time: t0.Add(time.Duration(i) * time.Second), Actor: "owner:o1"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Append(context.Background(), env.Subject, store.AnyVersion, env); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestSnapshots_BuildCheckAndAForgedOne(t *testing.T) {
	// given a log of 2500 events written without as-of snapshots
	dir := writeSnapshotLog(t, 2500)
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).Add(2200 * time.Second).Format(time.RFC3339)
	plain, errOut, code := runArgs(t, "", "explain", "--data", dir, "--owner", "o1", "--server", "s1", "--at", at)
	if code != 0 || strings.Contains(plain, "as-of snapshot") {
		t.Fatalf("explain without snapshots: exit %d\n%s%s", code, plain, errOut)
	}

	// when they are built every 1000 events
	out, errOut, code := runArgs(t, "", "snapshots", "--data", dir, "--every", "1000")
	// then two are saved, they check out, and explain starts from the one at 2000
	// with the same answer
	if code != 0 || !strings.Contains(out, "2 saved") {
		t.Fatalf("snapshots: exit %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code = runArgs(t, "", "snapshots", "--data", dir, "--check"); code != 0 || !strings.Contains(out, "2 checked") {
		t.Fatalf("snapshots --check: exit %d\n%s%s", code, out, errOut)
	}
	snap, _, code := runArgs(t, "", "explain", "--data", dir, "--owner", "o1", "--server", "s1", "--at", at)
	if code != 0 || !strings.Contains(snap, "as-of snapshot at position 2000") {
		t.Fatalf("explain with snapshots: exit %d\n%s", code, snap)
	}
	var kept []string
	for _, l := range strings.Split(snap, "\n") {
		if !strings.Contains(l, "as-of snapshot") {
			kept = append(kept, l)
		}
	}
	if strings.Join(kept, "\n") != plain {
		t.Fatalf("explain from the snapshot differs:\n%s\nwant\n%s", snap, plain)
	}

	// and when the one at 2000 is replaced by the older state, relabelled
	st, err := bolt.Open(filepath.Join(dir, "mcpes.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, early, err := st.LoadSnapshotAt(ctx, projections.ServersAsOfSeries, 1000)
	if err != nil {
		t.Fatal(err)
	}
	_, late, err := st.LoadSnapshotAt(ctx, projections.ServersAsOfSeries, 2000)
	if err != nil {
		t.Fatal(err)
	}
	var forged, real map[string]json.RawMessage
	if json.Unmarshal(early, &forged) != nil || json.Unmarshal(late, &real) != nil {
		t.Fatal("snapshots are not JSON objects")
	}
	forged["position"], forged["hash"] = real["position"], real["hash"]
	b, _ := json.Marshal(forged)
	if err := st.SaveSnapshotAt(ctx, projections.ServersAsOfSeries, 2000, b); err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	// then an explanation from it says so, and the check names it
	if out, _, _ := runArgs(t, "", "explain", "--data", dir, "--owner", "o1", "--server", "s1", "--at", at); !strings.Contains(out, "as-of snapshot at position 2000") {
		t.Fatalf("explain from a forged snapshot does not name it:\n%s", out)
	}
	out, errOut, code = runArgs(t, "", "snapshots", "--data", dir, "--check")
	if code != 1 || !strings.Contains(errOut, "position 2000") {
		t.Fatalf("check of a forged snapshot: exit %d\n%s%s", code, out, errOut)
	}
}

func TestExport_OwnerExcerptOfAChangedEventWarns(t *testing.T) {
	// given a log where one of o1's events was changed in the file after it was written
	dir := writeSnapshotLog(t, 30)
	db, err := bbolt.Open(filepath.Join(dir, "mcpes.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		key := binary.BigEndian.AppendUint64(nil, 4) // position 4: the config change at i=3
		rec := tx.Bucket([]byte("log")).Get(key)
		changed := bytes.Replace(rec, []byte("s1.example/3"), []byte("s1.example/9"), 1)
		if bytes.Equal(changed, rec) {
			return fmt.Errorf("record 4 lacks the URL: %s", rec)
		}
		return tx.Bucket([]byte("log")).Put(key, changed)
	})
	_ = db.Close()
	if err != nil {
		t.Fatal(err)
	}
	// when o1's events are exported through the index
	out, errOut, code := runArgs(t, "", "export", "--data", dir, "--owner", "o1")
	// then they are all written, but the changed one is named and the exit is 1
	if code != 1 || strings.Count(out, "\n") != 30 || !strings.Contains(errOut, "broken at position 4") {
		t.Fatalf("export: exit %d, %d lines\n%s", code, strings.Count(out, "\n"), errOut)
	}
	// and an untouched server's excerpt passes
	if _, errOut, code := runArgs(t, "", "export", "--data", dir, "--owner", "o1", "--until", "2026-12-01T00:00:02Z"); code != 0 {
		t.Fatalf("export before the change: exit %d\n%s", code, errOut)
	}
}
