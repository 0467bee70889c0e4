package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

func testPositionAt(t *testing.T, open Opener, _ Features) {
	// given events at t0, t0+1s, t0+2s
	s := open(t)
	ctx := ctxT(t)
	t0 := time.Date(2026, 3, 1, 14, 2, 0, 0, time.UTC)
	for i := range 3 {
		e := Event(t, "time", i)
		e.Time = t0.Add(time.Duration(i) * time.Second)
		mustAppend(t, s, "time", store.AnyVersion, e)
	}
	// then the position in force at a time is the last event not later than it
	cases := []struct {
		at   time.Time
		want uint64
	}{
		{t0.Add(-time.Nanosecond), 0},
		{t0, 1},
		{t0.Add(1500 * time.Millisecond), 2},
		{t0.Add(2 * time.Second), 3},
		{t0.Add(24 * time.Hour), 3},
		{t0.In(time.FixedZone("UTC+2", 7200)).Add(time.Second), 2},
	}
	for _, c := range cases {
		if got, err := s.PositionAt(ctx, c.at); err != nil || got != c.want {
			t.Errorf("PositionAt(%s) = %d, %v; want %d", c.at, got, err, c.want)
		}
	}
	// and an event stamped earlier than the one before does not reopen the past
	e := Event(t, "time", 9)
	e.Time = t0.Add(500 * time.Millisecond)
	mustAppend(t, s, "time", store.AnyVersion, e)
	if got, _ := s.PositionAt(ctx, t0.Add(time.Second)); got != 2 {
		t.Errorf("after a late-stamped event, PositionAt(t0+1s) = %d, want 2", got)
	}
	if got, _ := s.PositionAt(ctx, t0.Add(3*time.Second)); got != 4 {
		t.Errorf("after a late-stamped event, PositionAt(t0+3s) = %d, want 4", got)
	}
}

func testCheckpoints(t *testing.T, open Opener, f Features) {
	s := open(t)
	ctx := ctxT(t)
	if _, err := s.Checkpoint(ctx, "relay"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unset checkpoint: %v, want ErrNotFound", err)
	}
	for _, pos := range []uint64{5, 3, 1 << 40} {
		if err := s.SetCheckpoint(ctx, "relay", pos); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Checkpoint(ctx, "relay"); err != nil || got != pos {
			t.Fatalf("checkpoint after setting %d: %d, %v", pos, got, err)
		}
	}
	if err := s.SetCheckpoint(ctx, "other", 0); err != nil {
		t.Fatal(err)
	}
	if f.Reopen != nil {
		s = f.Reopen(t, s)
		if got, err := s.Checkpoint(ctx, "relay"); err != nil || got != 1<<40 {
			t.Fatalf("checkpoint after reopen: %d, %v", got, err)
		}
		if got, err := s.Checkpoint(ctx, "other"); err != nil || got != 0 {
			t.Fatalf("zero checkpoint after reopen: %d, %v", got, err)
		}
	}
}

func testSnapshots(t *testing.T, open Opener, f Features) {
	s := open(t)
	ctx := ctxT(t)
	if _, _, err := s.LoadSnapshot(ctx, "config"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing snapshot: %v, want ErrNotFound", err)
	}
	data := []byte(`{"servers":1}`)
	if err := s.SaveSnapshot(ctx, "config", 7, data); err != nil {
		t.Fatal(err)
	}
	data[0] = 'X' // the store keeps its own copy
	big := bytes.Repeat([]byte("snapshot "), 100_000)
	if err := s.SaveSnapshot(ctx, "big", 9, big); err != nil {
		t.Fatal(err)
	}
	check := func(s store.Store, when string) {
		pos, got, err := s.LoadSnapshot(ctx, "config")
		if err != nil || pos != 7 || string(got) != `{"servers":1}` {
			t.Fatalf("%s: snapshot %d %q %v", when, pos, got, err)
		}
		got[0] = 'Y'
		if _, again, _ := s.LoadSnapshot(ctx, "config"); again[0] != '{' {
			t.Fatalf("%s: loaded snapshot aliases the store", when)
		}
	}
	check(s, "at once")
	if pos, got, err := s.LoadSnapshot(ctx, "big"); err != nil || pos != 9 || !bytes.Equal(got, big) {
		t.Fatalf("big snapshot at %d, %d bytes, %v", pos, len(got), err)
	}
	if err := s.SaveSnapshot(ctx, "big", 11, []byte("small")); err != nil {
		t.Fatal(err)
	}
	if f.Reopen != nil {
		s = f.Reopen(t, s)
	}
	if pos, got, err := s.LoadSnapshot(ctx, "big"); err != nil || pos != 11 || string(got) != "small" {
		t.Fatalf("overwritten snapshot: %d %q %v", pos, got, err)
	}
	check(s, "later")
}

func testSecrets(t *testing.T, open Opener, f Features) {
	s := open(t)
	ctx := ctxT(t)
	ref := "secret:00112233445566778899aabbccddeeff"
	if _, err := s.Secret(ctx, ref); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing secret: %v, want ErrNotFound", err)
	}
	value := []byte("Bearer s3cr3t")
	if err := s.PutSecret(ctx, ref, value); err != nil {
		t.Fatal(err)
	}
	value[0] = 'X'
	// storing the same ref again is a no-op: the first value stays
	if err := s.PutSecret(ctx, ref, []byte("another")); err != nil {
		t.Fatal(err)
	}
	key := []byte{0, 1, 2, 255, 254}
	if err := s.PutSecret(ctx, "_hmac_key", key); err != nil {
		t.Fatal(err)
	}
	if f.Reopen != nil {
		s = f.Reopen(t, s)
	}
	if got, err := s.Secret(ctx, ref); err != nil || string(got) != "Bearer s3cr3t" {
		t.Fatalf("secret %q, %v", got, err)
	}
	if got, err := s.Secret(ctx, "_hmac_key"); err != nil || !bytes.Equal(got, key) {
		t.Fatalf("binary secret %x, %v", got, err)
	}
	// and secrets are outside the log
	if h := head(t, s); h != 0 {
		t.Fatalf("head %d after storing secrets, want 0", h)
	}
}

func testClosed(t *testing.T, open Opener, _ Features) {
	// given a closed store that had data
	s := open(t)
	mustAppend(t, s, "z", store.NoStream, Event(t, "z", 1))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := context.Background()
	// then every call fails with ErrClosed
	calls := map[string]func() error{
		"Append":     func() error { _, err := s.Append(ctx, "z", store.AnyVersion, Event(t, "z", 2)); return err },
		"ReadStream": func() error { _, err := s.ReadStream(ctx, "z", 1, 0); return err },
		"ReadAll":    func() error { _, err := s.ReadAll(ctx, 1, 0); return err },
		"ReadRecords": func() error {
			return s.ReadRecords(ctx, 1, func(uint64, []byte) error { return nil })
		},
		"Head":          func() error { _, _, err := s.Head(ctx); return err },
		"PositionAt":    func() error { _, err := s.PositionAt(ctx, time.Now()); return err },
		"StreamVersion": func() error { _, err := s.StreamVersion(ctx, "z"); return err },
		"Wait":          func() error { _, err := s.Wait(ctx, 5); return err },
		"Checkpoint":    func() error { _, err := s.Checkpoint(ctx, "c"); return err },
		"SetCheckpoint": func() error { return s.SetCheckpoint(ctx, "c", 1) },
		"SaveSnapshot":  func() error { return s.SaveSnapshot(ctx, "s", 1, nil) },
		"LoadSnapshot":  func() error { _, _, err := s.LoadSnapshot(ctx, "s"); return err },
		"PutSecret":     func() error { return s.PutSecret(ctx, "r", []byte("v")) },
		"Secret":        func() error { _, err := s.Secret(ctx, "r"); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s on a closed store: %v, want ErrClosed", name, err)
		}
	}
}

func testHashChain(t *testing.T, open Opener, _ Features) {
	// given events appended one by one and in batches
	s := open(t)
	for i := range 10 {
		mustAppend(t, s, "h", store.AnyVersion, Events(t, "h", i%3+1)...)
	}
	// then every record chains to the one before and the head is the last hash
	prev := events.ZeroHash
	var last uint64
	err := s.ReadRecords(ctxT(t), 1, func(pos uint64, rec []byte) error {
		h, err := events.CheckRecord(prev, rec)
		if err != nil {
			t.Fatalf("record %d: %v", pos, err)
		}
		prev, last = h, pos
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	h, hh, err := s.Head(ctxT(t))
	if err != nil || h != last || hh != prev || h != 19 {
		t.Fatalf("head %d %x, last record %d %x, %v", h, hh, last, prev, err)
	}
	verifyOK(t, s, 19)
}

func testReopen(t *testing.T, open Opener, f Features) {
	if f.Reopen == nil {
		t.Skip("store has no Reopen")
	}
	// given a store with events on two streams
	s := open(t)
	mustAppend(t, s, "a", store.NoStream, Events(t, "a", 3)...)
	mustAppend(t, s, "b", store.NoStream, Events(t, "b", 2)...)
	before := readAll(t, s)
	_, hash, _ := s.Head(ctxT(t))

	// when it is reopened
	s = f.Reopen(t, s)

	// then the log, head, versions and time index are as before and the chain goes on
	after := readAll(t, s)
	if len(after) != len(before) {
		t.Fatalf("%d events after reopen, %d before", len(after), len(before))
	}
	for i := range before {
		if after[i].Hash != before[i].Hash || after[i].ID != before[i].ID || !after[i].Time.Equal(before[i].Time) {
			t.Fatalf("event %d changed across reopen: %+v vs %+v", i+1, after[i], before[i])
		}
	}
	h, hash2, err := s.Head(ctxT(t))
	if err != nil || h != 5 || hash2 != hash {
		t.Fatalf("head after reopen %d %x, %v; want 5 %x", h, hash2, err, hash)
	}
	if v, _ := s.StreamVersion(ctxT(t), "a"); v != 3 {
		t.Fatalf("stream a at %d after reopen", v)
	}
	if p, _ := s.PositionAt(ctxT(t), time.Now().Add(time.Hour)); p != 5 {
		t.Fatalf("PositionAt(now+1h) = %d after reopen", p)
	}
	if _, err := s.Append(ctxT(t), "a", 2, Event(t, "a", 9)); !errors.Is(err, store.ErrVersionConflict) {
		t.Fatalf("stale append after reopen: %v", err)
	}
	res := mustAppend(t, s, "a", 3, Event(t, "a", 4))
	if res.Positions[0] != 6 || res.StreamVersion != 4 {
		t.Fatalf("append after reopen: %+v", res)
	}
	verifyOK(t, s, 6)
}
