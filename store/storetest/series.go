package storetest

import (
	"errors"
	"slices"
	"testing"

	"github.com/mcpes/mcpes/store"
)

func testSnapshotSeries(t *testing.T, open Opener, f Features) {
	// given a series with snapshots at 100, 200 and 300, and a single snapshot of the
	// same name
	s := open(t)
	ctx := ctxT(t)
	if _, _, err := s.LoadSnapshotAt(ctx, "asof", 1000); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("empty series: %v, want ErrNotFound", err)
	}
	for _, pos := range []uint64{200, 100, 300} {
		data := []byte{byte(pos / 100)}
		if err := s.SaveSnapshotAt(ctx, "asof", pos, data); err != nil {
			t.Fatal(err)
		}
		data[0] = 'X' // the store keeps its own copy
	}
	if err := s.SaveSnapshotAt(ctx, "asof2", 150, []byte{9}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveSnapshot(ctx, "asof", 7, []byte("single")); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveSnapshotAt(ctx, "", 7, nil); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("empty series name: %v, want ErrInvalid", err)
	}

	// when the newest one at or before each position is asked for
	check := func(s store.Store, when string) {
		t.Helper()
		for _, c := range []struct {
			pos, at uint64
			b       byte
		}{{100, 100, 1}, {199, 100, 1}, {200, 200, 2}, {299, 200, 2}, {300, 300, 3}, {1 << 62, 300, 3}} {
			at, data, err := s.LoadSnapshotAt(ctx, "asof", c.pos)
			// then it is the one of the series with the greatest position <= pos
			if err != nil || at != c.at || len(data) != 1 || data[0] != c.b {
				t.Fatalf("%s: at %d: got %d %v %v, want %d [%d]", when, c.pos, at, data, err, c.at, c.b)
			}
		}
		if _, _, err := s.LoadSnapshotAt(ctx, "asof", 99); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s: before the first: %v, want ErrNotFound", when, err)
		}
		if _, _, err := s.LoadSnapshotAt(ctx, "aso", 1000); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s: a prefix of a series name: %v, want ErrNotFound", when, err)
		}
		if at, data, err := s.LoadSnapshotAt(ctx, "asof2", 1000); err != nil || at != 150 || data[0] != 9 {
			t.Fatalf("%s: other series: %d %v %v", when, at, data, err)
		}
		if pos, data, err := s.LoadSnapshot(ctx, "asof"); err != nil || pos != 7 || string(data) != "single" {
			t.Fatalf("%s: the single snapshot: %d %q %v", when, pos, data, err)
		}
	}
	check(s, "at once")
	// a snapshot saved again at the same position replaces the first
	if err := s.SaveSnapshotAt(ctx, "asof", 200, []byte{2}); err != nil {
		t.Fatal(err)
	}
	check(s, "after a resave")
	if f.Reopen != nil {
		s = f.Reopen(t, s)
		check(s, "after reopen")
	}
}

func testStreams(t *testing.T, open Opener, f Features) {
	// given events on five streams
	s := open(t)
	ctx := ctxT(t)
	for _, stream := range []string{"conn/o1/a", "server/app/a", "conn/o1/b", "conn/o10/a", "server/user:o1/b"} {
		mustAppend(t, s, stream, 0, Event(t, stream, 1))
	}
	list := func(s store.Store, prefix string) []string {
		t.Helper()
		var got []string
		if err := s.Streams(ctx, prefix, func(name string) error { got = append(got, name); return nil }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	check := func(s store.Store, when string) {
		t.Helper()
		// when the streams under a prefix are listed
		// then exactly those are, in byte order
		if got, want := list(s, "conn/o1/"), []string{"conn/o1/a", "conn/o1/b"}; !slices.Equal(got, want) {
			t.Fatalf("%s: conn/o1/: %v, want %v", when, got, want)
		}
		if got := list(s, ""); len(got) != 5 || !slices.IsSorted(got) {
			t.Fatalf("%s: all streams: %v", when, got)
		}
		if got := list(s, "nothing/"); len(got) != 0 {
			t.Fatalf("%s: no match: %v", when, got)
		}
	}
	check(s, "at once")
	stop := errors.New("stop")
	n := 0
	if err := s.Streams(ctx, "", func(string) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("stopping listing: %v after %d", err, n)
	}
	if f.Reopen != nil {
		s = f.Reopen(t, s)
		check(s, "after reopen")
	}
}
