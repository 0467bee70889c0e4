package bolt_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/bolt"
	"github.com/mcpes/mcpes/store/storetest"
)

// openTest opens a store on a new file and, after the test, checks its invariants
// (reopening the file if the test closed the store) and closes it.
func openTest(tb testing.TB) *bolt.Store {
	tb.Helper()
	return openAt(tb, filepath.Join(tb.TempDir(), "events.db"), bolt.Options{})
}

func openAt(tb testing.TB, path string, opts bolt.Options) *bolt.Store {
	tb.Helper()
	s, err := bolt.Open(path, opts)
	if err != nil {
		tb.Fatalf("open %s: %v", path, err)
	}
	tb.Cleanup(func() { checkAndClose(tb, s) })
	return s
}

func checkAndClose(tb testing.TB, s *bolt.Store) {
	tb.Helper()
	ctx := context.Background()
	err := s.Check(ctx)
	if errors.Is(err, store.ErrClosed) {
		ro, oerr := bolt.Open(s.Path(), bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
		if oerr != nil {
			tb.Errorf("reopen for check: %v", oerr)
			return
		}
		defer ro.Close()
		err = ro.Check(ctx)
		if err == nil {
			err = verifyErr(ctx, ro)
		}
	} else if err == nil {
		err = verifyErr(ctx, s)
	}
	if err != nil {
		tb.Errorf("after the test: %v", err)
	}
	if err := s.Close(); err != nil {
		tb.Errorf("close: %v", err)
	}
}

func verifyErr(ctx context.Context, s store.Store) error {
	rep, err := store.Verify(ctx, s)
	if err != nil {
		return err
	}
	if !rep.OK {
		return errors.New("verify: " + rep.Problems[0].String())
	}
	return nil
}

func TestBolt_Conformance(t *testing.T) {
	for name, opts := range map[string]bolt.Options{
		"default": {},
		// the stream index written to the file every few events, so that reads merge
		// file and memory in every test
		"index-every-5": {IndexEvery: 5},
	} {
		t.Run(name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.Store {
				return openAt(t, filepath.Join(t.TempDir(), "events.db"), opts)
			}, storetest.Features{
				Durable: true,
				Reopen: func(t *testing.T, s store.Store) store.Store {
					path := s.(*bolt.Store).Path()
					if err := s.Close(); err != nil {
						t.Fatalf("close: %v", err)
					}
					return openAt(t, path, opts)
				},
			})
		})
	}
}

func TestReadStream_AcrossIndexFlushes(t *testing.T) {
	// given a store that writes its stream index every 50 events
	path := filepath.Join(t.TempDir(), "events.db")
	opts := bolt.Options{IndexEvery: 50, NoSync: true}
	s := openAt(t, path, opts)
	ctx := context.Background()
	want := map[string][]string{}
	// when 600 events go to 7 streams in batches of 1 to 4
	for i := 0; i < 600; {
		stream := fmt.Sprintf("s/%d", i%7)
		evs := storetest.Events(t, stream, 1+i%4)
		if _, err := s.Append(ctx, stream, int64(len(want[stream])), evs...); err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			want[stream] = append(want[stream], e.ID)
		}
		i += len(evs)
	}
	check := func(s *bolt.Store, when string) {
		// then every stream reads back whole and from any version, before and after reopen
		for stream, ids := range want {
			for _, from := range []uint64{1, 13, uint64(len(ids))} {
				got, err := s.ReadStream(ctx, stream, from, 0)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(ids)-int(from)+1 {
					t.Fatalf("%s: %s from %d: %d events, want %d", when, stream, from, len(got), len(ids)-int(from)+1)
				}
				for i, e := range got {
					if e.ID != ids[int(from)-1+i] || e.StreamVersion != from+uint64(i) {
						t.Fatalf("%s: %s from %d: event %d is %s@%d", when, stream, from, i, e.ID, e.StreamVersion)
					}
				}
			}
			if got, _ := s.ReadStream(ctx, stream, 10, 5); len(got) != 5 || got[0].StreamVersion != 10 {
				t.Fatalf("%s: %s from 10 limit 5: %d events", when, stream, len(got))
			}
		}
		if err := s.Check(ctx); err != nil {
			t.Fatal(err)
		}
	}
	check(s, "open")
	s.Close()
	check(openAt(t, path, opts), "reopened")
}

func TestOpen_LockedFile(t *testing.T) {
	// given a store open on a file
	path := filepath.Join(t.TempDir(), "events.db")
	openAt(t, path, bolt.Options{})

	// when a second open of the same file gives up waiting
	start := time.Now()
	_, err := bolt.Open(path, bolt.Options{Timeout: 100 * time.Millisecond})

	// then it fails with ErrLocked, in about the timeout
	if !errors.Is(err, bolt.ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("second open took %v", d)
	}
}

func TestOpen_ReadOnly(t *testing.T) {
	// given a store with events, closed
	path := filepath.Join(t.TempDir(), "events.db")
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Append(ctx, "ro", store.NoStream, storetest.Events(t, "ro", 3)...); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCheckpoint(ctx, "c", 2); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// when it is opened read-only
	ro := openAt(t, path, bolt.Options{ReadOnly: true})

	// then it reads, and refuses writes
	if h, _, err := ro.Head(ctx); err != nil || h != 3 {
		t.Fatalf("head %d, %v", h, err)
	}
	if all, err := ro.ReadAll(ctx, 1, 0); err != nil || len(all) != 3 {
		t.Fatalf("read all: %d, %v", len(all), err)
	}
	if c, err := ro.Checkpoint(ctx, "c"); err != nil || c != 2 {
		t.Fatalf("checkpoint %d, %v", c, err)
	}
	if _, err := ro.Append(ctx, "ro", store.AnyVersion, storetest.Event(t, "ro", 4)); !errors.Is(err, bolt.ErrReadOnly) {
		t.Fatalf("append read-only: %v", err)
	}
	if err := ro.SetCheckpoint(ctx, "c", 3); !errors.Is(err, bolt.ErrReadOnly) {
		t.Fatalf("checkpoint read-only: %v", err)
	}
	// and a second reader may share the file
	ro2 := openAt(t, path, bolt.Options{ReadOnly: true, Timeout: time.Second})
	if h, _, _ := ro2.Head(ctx); h != 3 {
		t.Fatalf("second reader head %d", h)
	}
}

func TestOpen_NotAStore(t *testing.T) {
	// given a bbolt file that is not an event store
	path := filepath.Join(t.TempDir(), "other.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("x")); return err }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// when it is opened read-only, then it is refused as not a store
	if _, err := bolt.Open(path, bolt.Options{ReadOnly: true}); !errors.Is(err, bolt.ErrNotStore) {
		t.Fatalf("read-only open of a foreign file: %v, want ErrNotStore", err)
	}
	// and a writable open does not adopt it either
	if _, err := bolt.Open(path, bolt.Options{}); !errors.Is(err, bolt.ErrNotStore) {
		t.Fatalf("open of a foreign file: %v, want ErrNotStore", err)
	}
	// and a missing file cannot be opened read-only
	if _, err := bolt.Open(filepath.Join(t.TempDir(), "missing.db"), bolt.Options{ReadOnly: true}); err == nil {
		t.Fatal("read-only open of a missing file succeeded")
	}
}

func TestAppend_SealMatchesEvents(t *testing.T) {
	// given envelopes with awkward field contents
	s := openTest(t)
	ctx := context.Background()
	weird := []string{"", "plain", `quo"te`, `back\slash`, "<html>&amp;", "ünïcödé ✓", "\u2028line", "a,\"sequence\":\"1\""}
	var evs []events.Envelope
	for i, w := range weird {
		e := storetest.Event(t, "seal", i)
		e.Reason, e.CorrelationID, e.CausationID = w, w, w
		e.Data = []byte(`{"s": "` + `x` + `", "n": [1, 2,3] , "h":"<&>"}`)
		e.Time = time.Date(2026, 1, 2, 3, 4, 5, i*7, time.FixedZone("X", 3600))
		evs = append(evs, e)
	}
	// when they are appended, as one batch and one by one
	if _, err := s.Append(ctx, "seal", store.NoStream, evs[:4]...); err != nil {
		t.Fatal(err)
	}
	for _, e := range evs[4:] {
		if _, err := s.Append(ctx, "seal", store.AnyVersion, e); err != nil {
			t.Fatal(err)
		}
	}
	// then every stored record is byte for byte what events.Seal makes
	prev := events.ZeroHash
	err := s.ReadRecords(ctx, 1, func(pos uint64, rec []byte) error {
		_, canon, sum, err := events.Seal(evs[pos-1], pos, pos, prev)
		if err != nil {
			return err
		}
		if want := events.EncodeRecord(canon, sum); !bytes.Equal(rec, want) {
			t.Errorf("record %d:\n got %s\nwant %s", pos, rec[33:], want[33:])
		}
		prev = sum
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestClose_WritesTheIndexKeptInMemory(t *testing.T) {
	// given a store that writes its stream index every 1,000 events, and 30 appended
	path := filepath.Join(t.TempDir(), "events.db")
	s := openAt(t, path, bolt.Options{IndexEvery: 1000, NoSync: true})
	ctx := context.Background()
	for i := range 30 {
		stream := fmt.Sprintf("s/%d", i%3)
		if _, err := s.Append(ctx, stream, store.AnyVersion, storetest.Events(t, stream, 1)...); err != nil {
			t.Fatal(err)
		}
	}

	// when it is closed
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// then the file's index covers all 30 (a later Open reads no tail to rebuild it)
	raw, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket([]byte("meta")).Get([]byte("indexed"))
		if len(v) != 8 || binary.BigEndian.Uint64(v) != 30 {
			t.Fatalf("meta indexed = %x, want 30", v)
		}
		if n := tx.Bucket([]byte("stream")).Stats().KeyN; n != 30 {
			t.Fatalf("%d stream index entries, want 30", n)
		}
		return nil
	})
}
