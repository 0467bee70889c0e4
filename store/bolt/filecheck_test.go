package bolt_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/bolt"
	"github.com/mcpes/mcpes/store/storetest"
)

// goodFile writes a store with enough events that its data reaches well past its
// first pages, closes it, and returns its path and bytes.
func goodFile(t *testing.T) (string, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mcpes.db")
	s, err := bolt.Open(path, bolt.Options{NoSync: true, IndexEvery: 64})
	if err != nil {
		t.Fatal(err)
	}
	evs := storetest.Events(t, "server/app/a", 400)
	if _, err := s.Append(context.Background(), "server/app/a", store.AnyVersion, evs...); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, raw
}

// highWater returns the page count the newer meta page of a good file gives.
func highWater(good []byte, ps int) uint64 {
	m := 0
	if binary.NativeEndian.Uint64(good[ps+offTxid:]) > binary.NativeEndian.Uint64(good[offTxid:]) {
		m = ps
	}
	return binary.NativeEndian.Uint64(good[m+offPgid:])
}

// Offsets of meta fields in a meta page (page header 16 bytes, then the meta).
const (
	offMagic   = 16
	offVersion = 20
	offPgid    = 16 + 40
	offTxid    = 16 + 48
)

func TestOpen_RefusesBadFilesAndLeavesThemUntouched(t *testing.T) {
	t.Parallel()
	_, good := goodFile(t)
	const ps = 4096 // the page size of files written here
	pgid := highWater(good, ps)
	if int(pgid)*ps <= 3*ps {
		t.Fatalf("the good file's data ends at page %d; need more for a truncation test", pgid)
	}
	bothMetas := func(f func(page []byte)) []byte {
		b := bytes.Clone(good)
		f(b[:ps])
		f(b[ps : 2*ps])
		return b
	}
	foreign := bytes.Repeat([]byte("SQLite format 3\x00not a bbolt file at all\n"), 1000)
	cases := []struct {
		name  string
		bytes []byte
		want  string
	}{
		{"empty", nil, "empty (0 bytes)"},
		{"shorter than a meta", good[:50], "too short to be a bbolt database"},
		{"shorter than two meta pages", good[:ps+100], "shorter than its two meta pages"},
		{"truncated below its meta", good[:int(pgid-1)*ps], "but its meta page says the data reaches"},
		{"truncated mid-page", good[:int(pgid)*ps-1], "truncated"},
		{"foreign", foreign, "no bbolt magic number"},
		{"bad magic", bothMetas(func(p []byte) { p[offMagic] ^= 0xff }), "no bbolt magic number"},
		{"bad version", bothMetas(func(p []byte) { binary.NativeEndian.PutUint32(p[offVersion:], 3) }), "format version 3"},
		{"bad checksum", bothMetas(func(p []byte) { p[offTxid] ^= 1 }), "checksum mismatch"},
	}
	for _, tc := range cases {
		for _, ro := range []bool{false, true} {
			name := tc.name
			if ro {
				name += "/read-only"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				// given a data file with these bytes
				path := filepath.Join(t.TempDir(), "mcpes.db")
				if err := os.WriteFile(path, tc.bytes, 0o600); err != nil {
					t.Fatal(err)
				}
				before := sha256.Sum256(tc.bytes)
				// when it is opened
				s, err := bolt.Open(path, bolt.Options{ReadOnly: ro, Timeout: 5 * time.Second})
				if err == nil {
					s.Close()
				}
				// then Open refuses it naming the file and the problem
				var fe *bolt.FileError
				if !errors.Is(err, bolt.ErrBadFile) || !errors.As(err, &fe) || fe.Path != path {
					t.Fatalf("open: got %v, want a *FileError for %s", err, path)
				}
				if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("open: %q does not name the file and %q", err, tc.want)
				}
				// and the file's bytes are unchanged
				after, rerr := os.ReadFile(path)
				if rerr != nil {
					t.Fatal(rerr)
				}
				if sha256.Sum256(after) != before {
					t.Fatalf("the file changed: %d bytes before, %d after", len(tc.bytes), len(after))
				}
			})
		}
	}
}

func TestOpen_AcceptsAFileBboltCanRecover(t *testing.T) {
	t.Parallel()
	_, good := goodFile(t)
	const ps = 4096
	pgid := highWater(good, ps)
	txid0 := binary.NativeEndian.Uint64(good[offTxid:])
	txid1 := binary.NativeEndian.Uint64(good[ps+offTxid:])
	older := 0 // the meta page a torn write would have hit
	if txid0 > txid1 {
		older = ps
	}
	torn := bytes.Clone(good)
	torn[older+offTxid] ^= 1
	cases := []struct {
		name  string
		bytes []byte
	}{
		// a torn meta write: bbolt falls back on the other meta page
		{"one damaged meta page", torn},
		// pages after the high-water mark are free space
		{"cut after its data", good[:int(pgid)*ps]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// given a file that is damaged only where bbolt does not look
			path := filepath.Join(t.TempDir(), "mcpes.db")
			if err := os.WriteFile(path, tc.bytes, 0o600); err != nil {
				t.Fatal(err)
			}
			// when it is opened read-only
			s, err := bolt.Open(path, bolt.Options{ReadOnly: true})
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer s.Close()
			// then every event is there and the chain holds
			if err := s.Check(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := verifyErr(context.Background(), s); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestOpen_DamagedPagesFailAsBadFileNotACrash(t *testing.T) {
	t.Parallel()
	_, good := goodFile(t)
	const ps = 4096
	pgid := highWater(good, ps)
	for name, first := range map[string]uint64{"every page after the metas": 2, "data pages only": 4} {
		for _, ro := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/read-only=%v", name, ro), func(t *testing.T) {
				t.Parallel()
				// given a file of the right size with valid meta pages whose other page
				// headers are overwritten
				bad := bytes.Clone(good)
				for pg := first; pg < pgid; pg++ {
					copy(bad[pg*ps:], bytes.Repeat([]byte{0xff}, 8))
				}
				path := filepath.Join(t.TempDir(), "mcpes.db")
				if err := os.WriteFile(path, bad, 0o600); err != nil {
					t.Fatal(err)
				}
				// when it is opened and read whole
				s, err := bolt.Open(path, bolt.Options{ReadOnly: ro, Timeout: 5 * time.Second})
				if err == nil {
					_, err = store.Verify(context.Background(), s)
					if cerr := s.Close(); err == nil {
						err = cerr
					}
				}
				// then it fails with a *FileError naming a damaged page, and the bytes stay
				var fe *bolt.FileError
				if !errors.As(err, &fe) || fe.Path != path || !strings.Contains(err.Error(), "damaged page") {
					t.Fatalf("got %v, want a *FileError naming a damaged page", err)
				}
				if after, _ := os.ReadFile(path); !bytes.Equal(after, bad) {
					t.Fatal("the file changed")
				}
			})
		}
	}
}

// BenchmarkCheckpoint measures one small read transaction, the unit the damage
// guard wraps.
func BenchmarkCheckpoint(b *testing.B) {
	s := openAt(b, filepath.Join(b.TempDir(), "events.db"), bolt.Options{NoSync: true})
	ctx := context.Background()
	if err := s.SetCheckpoint(ctx, "relay", 0); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.Checkpoint(ctx, "relay"); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAppend_PageDamagedUnderARunningStoreFailsTheAppendNotTheProcess(t *testing.T) {
	t.Parallel()
	// given a writable store whose data pages get overwritten while it runs
	path, good := goodFile(t)
	s, err := bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	const ps = 4096
	for pg := uint64(2); pg < highWater(good, ps); pg++ {
		if _, err := f.WriteAt(bytes.Repeat([]byte{0xff}, 8), int64(pg*ps)); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	// when an event is appended
	_, err = s.Append(context.Background(), "server/app/b", store.AnyVersion, storetest.Event(t, "server/app/b", 1))
	// then the append fails naming a damaged page, and the process goes on
	if !errors.Is(err, bolt.ErrBadFile) || !strings.Contains(err.Error(), "damaged page") {
		t.Fatalf("append on a damaged file: %v", err)
	}
}

func TestRead_ABugInACallbackStillPanics(t *testing.T) {
	t.Parallel()
	// given a good store
	path, _ := goodFile(t)
	s, err := bolt.Open(path, bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// when a read callback panics with a runtime error (a bug, not damage)
	var got any
	func() {
		defer func() { got = recover() }()
		_ = s.ReadRecords(context.Background(), 1, func(uint64, []byte) error {
			var m map[string]int
			m["x"]++ // assignment to a nil map
			return nil
		})
	}()
	// then the panic goes on: it is not reported as a damaged file
	if _, ok := got.(runtime.Error); !ok {
		t.Fatalf("recovered %v (%T), want the runtime error", got, got)
	}
}
