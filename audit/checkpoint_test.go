package audit_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/note"

	"github.com/mcpes/mcpes/audit"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/bolt"
)

// newKey returns a fresh signing key, as `mcpes keys gen --signing` makes one.
func newKey(tb testing.TB, name string) (audit.SigningKey, note.Verifier) {
	tb.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		tb.Fatal(err)
	}
	k, err := audit.ParseSigningKey(skey)
	if err != nil {
		tb.Fatal(err)
	}
	if k.VerifierKey != vkey {
		tb.Fatalf("derived verifier key %q, GenerateKey gave %q", k.VerifierKey, vkey)
	}
	v, err := audit.ParseVerifierKey(vkey)
	if err != nil {
		tb.Fatal(err)
	}
	return k, v
}

// registerServers appends n server registrations to w's log.
func registerServers(w *world, n int, prefix string) {
	for i := range n {
		w.register("admin", domain.AppScope, fmt.Sprintf("%s%d", prefix, i), "http://127.0.0.1:1/mcp")
	}
}

func TestCheckpoint_SignOpenAndRejectForgeries(t *testing.T) {
	k, v := newKey(t, "mcpes.test/log")
	_, other := newKey(t, "mcpes.test/log")
	root := [32]byte{1, 2, 3}
	at := time.Date(2026, 12, 4, 14, 2, 0, 0, time.UTC)

	// given a signed checkpoint
	cp, err := audit.SignCheckpoint(k.Signer, 42, root, at)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cp.Note, "mcpes.test/log\n42\n") || !strings.Contains(cp.Note, "\n\n— mcpes.test/log ") {
		t.Fatalf("not a C2SP checkpoint note:\n%s", cp.Note)
	}

	// when it is opened with the right key, then it reads back
	got, err := audit.OpenCheckpoint([]byte(cp.Note), v)
	if err != nil || got.Size != 42 || got.Root != root || !got.Time.Equal(at) || got.Origin != "mcpes.test/log" {
		t.Fatalf("opened %+v, %v", got, err)
	}
	// and with another key, or changed, it does not
	for name, msg := range map[string]string{
		"other key":      cp.Note,
		"size changed":   strings.Replace(cp.Note, "\n42\n", "\n41\n", 1),
		"no signature":   strings.SplitAfter(cp.Note, "\n\n")[0],
		"not a note":     "hello",
		"oversized note": strings.Repeat("x", audit.MaxCheckpointBytes+1),
	} {
		ver := v
		if name == "other key" {
			ver = other
		}
		if _, err := audit.OpenCheckpoint([]byte(msg), ver); !errors.Is(err, audit.ErrCheckpoint) {
			t.Errorf("%s: err = %v, want ErrCheckpoint", name, err)
		}
	}
	if _, err := audit.ParseSigningKey("PRIVATE+KEY+x+00000000+AAAA"); !errors.Is(err, audit.ErrCheckpoint) || strings.Contains(err.Error(), "AAAA") {
		t.Errorf("bad signing key: %v", err)
	}
}

// checkpointedBolt writes a bolt log of n registrations (2n events), makes a
// checkpoint published to a witness file, closes the store, and returns the paths.
func checkpointedBolt(t *testing.T, k audit.SigningKey, n int) (dbPath, witnessPath string, cp audit.Checkpoint) {
	t.Helper()
	dir := t.TempDir()
	dbPath, witnessPath = filepath.Join(dir, "mcpes.db"), filepath.Join(dir, "witness.jsonl")
	st, err := bolt.Open(dbPath, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	w := newWorldOn(t, st, false)
	registerServers(w, n, "s")
	w.closeManager()
	cpr := audit.NewCheckpointer(st, k.Signer, audit.CheckpointerOptions{Witness: &audit.FileWitness{Path: witnessPath}})
	cp, ok, err := cpr.Checkpoint(context.Background())
	if err != nil || !ok || cp.Size != uint64(2*n) {
		t.Fatalf("checkpoint %+v %v %v", cp, ok, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return dbPath, witnessPath, cp
}

// cutTail removes the log's records after keep and points the head at the new last
// one, as an attacker with the file would: the chain up to keep stays intact. With
// dropStored the stored checkpoint goes too.
func cutTail(t *testing.T, path string, keep uint64, dropStored bool) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		log, meta := tx.Bucket([]byte("log")), tx.Bucket([]byte("meta"))
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
		if dropStored {
			return tx.Bucket([]byte("snapshots")).Delete([]byte(audit.SnapshotCheckpoint))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func verifyFile(t *testing.T, path string, opts ...audit.VerifyOption) audit.VerifyReport {
	t.Helper()
	ro, err := bolt.Open(path, bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	rep, err := audit.VerifyAll(context.Background(), ro, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestVerifyAll_TailCutAfterCheckpoint(t *testing.T) {
	k, v := newKey(t, "mcpes.test/log")
	// given a log of 100 events checkpointed to a witness file
	db, wit, cp := checkpointedBolt(t, k, 50)
	if rep := verifyFile(t, db); !rep.OK || rep.Checkpoints != 1 {
		t.Fatalf("before the cut: %+v", rep)
	}

	// when the last 7 events are removed and the stored checkpoint with them
	cutTail(t, db, 93, true)

	// then the file alone verifies (the chain cannot tell) ...
	if rep := verifyFile(t, db, audit.WithVerifier(v)); !rep.OK || rep.Events != 93 {
		t.Fatalf("without the witness: %+v", rep)
	}
	// ... but against the witness it fails, naming the checkpoint and the missing tail
	cps, err := audit.ReadWitnessFile(wit, v)
	if err != nil || len(cps) != 1 {
		t.Fatalf("witness: %v %v", cps, err)
	}
	rep := verifyFile(t, db, audit.WithCheckpoints(cps...), audit.WithVerifier(v))
	want := fmt.Sprintf("checkpoint: checkpoint mcpes.test/log size %d ", cp.Size)
	if rep.OK || len(rep.Problems) != 1 || !strings.HasPrefix(rep.Problems[0], want) || !strings.Contains(rep.Problems[0], "missing") {
		t.Fatalf("report %+v, want one problem starting %q about missing events", rep, want)
	}
}

func TestVerifyAll_StoredCheckpointCatchesACutThatLeftIt(t *testing.T) {
	k, v := newKey(t, "mcpes.test/log")
	// given a checkpointed log whose tail is cut, the stored checkpoint left in place
	db, _, _ := checkpointedBolt(t, k, 10)
	cutTail(t, db, 15, false)

	// when the file is verified without a witness
	rep := verifyFile(t, db, audit.WithVerifier(v))

	// then its own newest checkpoint shows the cut
	if rep.OK || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "the log ends at position 15; the events up to 20") {
		t.Fatalf("report %+v", rep)
	}
}

func TestVerifyAll_RewrittenOrForkedLogAgainstWitness(t *testing.T) {
	k, v := newKey(t, "mcpes.test/log")
	ctx := context.Background()
	// given a log with a checkpoint at its head
	w := newWorld(t)
	registerServers(w, 10, "s")
	cp, _, err := audit.NewCheckpointer(w.st, k.Signer, audit.CheckpointerOptions{}).Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rewritten, pos := reseal(t, w.st, &forgery{
		match: is(3, func(domain.ServerRegistered) bool { return true }),
		forge: func(_ *events.Envelope, fact any) any {
			f := fact.(domain.ServerRegistered)
			f.Config.URL = "http://127.0.0.1:2/evil"
			return f
		},
	})
	cases := map[string]store.Store{"rewritten at " + fmt.Sprint(pos): rewritten, "forked": fork(t, w.st, 19)}
	for name, st := range cases {
		t.Run(name, func(t *testing.T) {
			// when the other log is verified against the checkpoint
			rep, err := audit.VerifyAll(ctx, st, nil, audit.WithCheckpoints(cp), audit.WithVerifier(v))
			if err != nil {
				t.Fatal(err)
			}
			// then the chain holds, and the checkpoint is named as not matching
			want := fmt.Sprintf("checkpoint: checkpoint mcpes.test/log size %d ", cp.Size)
			if rep.OK || !strings.HasPrefix(rep.Problems[0], want) || !strings.Contains(rep.Problems[0], "rewritten, or the log forked") {
				t.Fatalf("report %+v", rep)
			}
		})
	}
}

// fork returns a log that shares src's first common events and then goes its own
// way with other registrations, ending beyond src's head.
func fork(t *testing.T, src store.Store, common int) store.Store {
	t.Helper()
	ctx := context.Background()
	evs, err := src.ReadAll(ctx, 1, common)
	if err != nil {
		t.Fatal(err)
	}
	forked := newWorld(t)
	for _, e := range evs {
		e.Hash, e.PrevHash, e.Sequence, e.StreamVersion = "", "", 0, 0
		if _, err := forked.st.Append(ctx, e.Subject, store.AnyVersion, e); err != nil {
			t.Fatal(err)
		}
	}
	registerServers(forked, 2, "other")
	return forked.st
}

func TestCheckpointer_RunEveryNEventsToFileAndHTTPWitness(t *testing.T) {
	k, v := newKey(t, "mcpes.test/log")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var posted []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		posted = append(posted, string(b))
		mu.Unlock()
	}))
	defer srv.Close()
	wit := filepath.Join(t.TempDir(), "w.jsonl")
	fileW, _ := audit.NewWitness("file://"+wit, nil)
	httpW, err := audit.NewWitness(srv.URL+"/add", srv.Client())
	if err != nil {
		t.Fatal(err)
	}

	// given a checkpointer every 10 events, publishing to a file and an HTTP witness
	w := newWorld(t)
	both := witnesses{fileW, httpW}
	cpr := audit.NewCheckpointer(w.st, k.Signer, audit.CheckpointerOptions{Every: 10, Interval: time.Hour, Witness: both})
	done := make(chan struct{})
	go func() { defer close(done); cpr.Run(ctx) }()

	// when 30 events are appended
	registerServers(w, 15, "s")

	// then a checkpoint is made at the head whenever 10 or more events came since the
	// last one, so fewer than 10 are left uncovered; both witnesses get each one
	deadline := time.Now().Add(20 * time.Second)
	var cps []audit.Checkpoint
	for time.Now().Before(deadline) {
		if cps, _ = audit.ReadWitnessFile(wit, v); len(cps) > 0 && cps[len(cps)-1].Size > 20 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // a wrong extra checkpoint would show by now
	cancel()
	<-done
	cps, _ = audit.ReadWitnessFile(wit, v)
	if len(cps) == 0 || cps[len(cps)-1].Size <= 20 {
		t.Fatalf("witness file holds %v", cps)
	}
	for i, c := range cps {
		if c.Size < 10 || (i > 0 && c.Size < cps[i-1].Size+10) {
			t.Fatalf("checkpoint sizes %v: want 10 or more events apart", cps)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(posted) != len(cps) || posted[len(posted)-1] != cps[len(cps)-1].Note {
		t.Fatalf("HTTP witness got %d notes, file %d", len(posted), len(cps))
	}
	if rep, _ := audit.VerifyAll(context.Background(), w.st, nil, audit.WithCheckpoints(cps...), audit.WithVerifier(v)); !rep.OK || rep.Checkpoints != len(cps) {
		t.Fatalf("verify %+v", rep)
	}
}

func TestCheckpointer_IntervalCoversAQuietLog(t *testing.T) {
	k, v := newKey(t, "mcpes.test/log")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// given a checkpointer every 1,000 events or 20 ms
	w := newWorld(t)
	cpr := audit.NewCheckpointer(w.st, k.Signer, audit.CheckpointerOptions{Every: 1000, Interval: 20 * time.Millisecond})
	done := make(chan struct{})
	go func() { defer close(done); cpr.Run(ctx) }()

	// when 4 events are appended and nothing more
	registerServers(w, 2, "s")

	// then a checkpoint of those 4 is stored within the interval (bounded generously)
	deadline := time.Now().Add(20 * time.Second)
	for {
		size, msg, err := w.st.LoadSnapshot(ctx, audit.SnapshotCheckpoint)
		if err == nil && size == 4 {
			if c, err := audit.OpenCheckpoint(msg, v); err != nil || c.Size != 4 {
				t.Fatalf("stored checkpoint %+v %v", c, err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of 4 events stored: %d %v", size, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}

type witnesses []audit.Witness

func (ws witnesses) Publish(ctx context.Context, c audit.Checkpoint) error {
	var errs []error
	for _, w := range ws {
		errs = append(errs, w.Publish(ctx, c))
	}
	return errors.Join(errs...)
}

func TestReadWitnessFile_RejectsAForgedLine(t *testing.T) {
	k, v := newKey(t, "mcpes.test/log")
	mallory, _ := newKey(t, "mcpes.test/log")
	path := filepath.Join(t.TempDir(), "w.jsonl")
	fw := &audit.FileWitness{Path: path}
	good, _ := audit.SignCheckpoint(k.Signer, 5, [32]byte{5}, time.Now())
	bad, _ := audit.SignCheckpoint(mallory.Signer, 9, [32]byte{9}, time.Now())
	// given a witness file with a line signed by another key
	for _, c := range []audit.Checkpoint{good, bad} {
		if err := fw.Publish(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	// when it is read, then the line is named
	if _, err := audit.ReadWitnessFile(path, v); !errors.Is(err, audit.ErrCheckpoint) || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyAll_StoredTreeThatIsNotTheRecords(t *testing.T) {
	k, _ := newKey(t, "mcpes.test/log")
	// given a log whose stored Merkle tree was altered in the file
	db, _, _ := checkpointedBolt(t, k, 3)
	raw, err := bbolt.Open(db, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = raw.Update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket([]byte("meta"))
		tree := append([]byte(nil), meta.Get([]byte("tree"))...)
		tree[len(tree)-1] ^= 1
		return meta.Put([]byte("tree"), tree)
	})
	if cerr := raw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	// when it is verified
	rep := verifyFile(t, db)

	// then the tree is reported
	if rep.OK || len(rep.Problems) != 1 || !strings.HasPrefix(rep.Problems[0], "tree: ") {
		t.Fatalf("report %+v", rep)
	}
}

func TestVerifyAll_SinceATrustedCheckpoint(t *testing.T) {
	k, v := newKey(t, "mcpes.test/log")
	ctx := context.Background()
	// given a bolt log checkpointed at 20 events (A) and at 46 (B)
	dir := t.TempDir()
	path := filepath.Join(dir, "mcpes.db")
	st, err := bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	w := newWorldOn(t, st, false)
	cpr := audit.NewCheckpointer(st, k.Signer, audit.CheckpointerOptions{})
	registerServers(w, 10, "a")
	a, _, err := cpr.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	registerServers(w, 13, "b")
	b, _, err := cpr.Checkpoint(ctx)
	if err != nil || a.Size != 20 || b.Size != 46 {
		t.Fatalf("checkpoints %d %d, %v", a.Size, b.Size, err)
	}
	w.closeManager()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// when it is verified since A, then only the 26 events after A are walked, and B matches
	rep := verifyFile(t, path, audit.WithSince(a), audit.WithCheckpoints(b), audit.WithVerifier(v))
	if !rep.OK || rep.Events != 26 || rep.Since != 20 || rep.Checkpoints != 1 {
		t.Fatalf("report %+v", rep)
	}
	// and once events after A are cut, B names the missing tail
	cutTail(t, path, 30, true)
	rep = verifyFile(t, path, audit.WithSince(a), audit.WithCheckpoints(b), audit.WithVerifier(v))
	if rep.OK || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "size 46") || !strings.Contains(rep.Problems[0], "ends at position 30") {
		t.Fatalf("report %+v", rep)
	}
	// and a checkpoint the tree stored with it does not match is refused as a start
	forged, _ := audit.SignCheckpoint(k.Signer, a.Size, [32]byte{1}, a.Time)
	rep = verifyFile(t, path, audit.WithSince(forged))
	if rep.OK || len(rep.Problems) != 1 || !strings.HasPrefix(rep.Problems[0], "since: ") {
		t.Fatalf("report %+v", rep)
	}
}
