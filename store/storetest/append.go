package storetest

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

func testAppendAndReadStream(t *testing.T, open Opener, _ Features) {
	// given a store with three events on stream a and one on b
	s := open(t)
	ctx := ctxT(t)
	first := Events(t, "a", 3)
	res := mustAppend(t, s, "a", store.NoStream, first...)
	if got := res.Positions; got[0] != 1 || got[1] != 2 || got[2] != 3 || res.StreamVersion != 3 || res.Duplicates != 0 {
		t.Fatalf("first append: %+v, want positions 1..3, version 3", res)
	}
	mustAppend(t, s, "b", store.NoStream, Event(t, "b", 1))

	// when two more are appended at the expected version
	more := Events(t, "a", 2)
	res = mustAppend(t, s, "a", 3, more...)

	// then they follow in the stream and in the log
	if res.Positions[0] != 5 || res.Positions[1] != 6 || res.StreamVersion != 5 {
		t.Fatalf("second append: %+v, want positions 5,6, version 5", res)
	}
	got, err := s.ReadStream(ctx, "a", 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := append(ids(first), ids(more)...)
	if !equalStrings(ids(got), want) {
		t.Fatalf("stream a: %v, want %v", ids(got), want)
	}
	for i, e := range got {
		if e.StreamVersion != uint64(i+1) {
			t.Fatalf("stream a event %d has version %d", i, e.StreamVersion)
		}
	}
	got, err = s.ReadStream(ctx, "a", 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !equalStrings(ids(got), want[2:4]) {
		t.Fatalf("stream a from 3 limit 2: %v, want %v", ids(got), want[2:4])
	}
	if got, err = s.ReadStream(ctx, "a", 6, 0); err != nil || len(got) != 0 {
		t.Fatalf("stream a beyond its end: %d events, %v", len(got), err)
	}
	if got, err = s.ReadStream(ctx, "nope", 1, 0); err != nil || len(got) != 0 {
		t.Fatalf("unknown stream: %d events, %v", len(got), err)
	}
	for stream, v := range map[string]uint64{"a": 5, "b": 1, "nope": 0} {
		if got, err := s.StreamVersion(ctx, stream); err != nil || got != v {
			t.Fatalf("StreamVersion(%s) = %d, %v; want %d", stream, got, err, v)
		}
	}
}

func testSealedFields(t *testing.T, open Opener, _ Features) {
	// given an envelope with every optional field set
	s := open(t)
	e := Event(t, "sealed", 7)
	e.CorrelationID, e.CausationID = "corr-1", "cause-1"
	e.Sequence, e.StreamVersion, e.PrevHash, e.Hash = 99, 99, "junk", "junk" // overwritten by the store

	// when it is appended after another event
	mustAppend(t, s, "other", store.NoStream, Event(t, "other", 1))
	mustAppend(t, s, "sealed", store.NoStream, e)

	// then the store sealed it and kept the writer's fields
	all := readAll(t, s)
	if len(all) != 2 {
		t.Fatalf("%d events, want 2", len(all))
	}
	got := all[1]
	if got.Sequence != 2 || got.StreamVersion != 1 {
		t.Fatalf("sequence %d streamversion %d, want 2 and 1", got.Sequence, got.StreamVersion)
	}
	if got.PrevHash != all[0].Hash || len(got.Hash) != 64 || got.Hash == all[0].Hash {
		t.Fatalf("prevhash %s hash %s, previous hash %s", got.PrevHash, got.Hash, all[0].Hash)
	}
	if all[0].PrevHash != hex.EncodeToString(events.ZeroHash[:]) {
		t.Fatalf("first prevhash %s, want zeros", all[0].PrevHash)
	}
	if got.ID != e.ID || got.Type != e.Type || got.Source != e.Source || got.Subject != e.Subject ||
		got.Actor != e.Actor || got.Reason != e.Reason || got.CorrelationID != "corr-1" ||
		got.CausationID != "cause-1" || !got.Time.Equal(e.Time) || !bytes.Equal(got.Data, e.Data) ||
		got.SpecVersion != events.SpecVersion || got.DataContentType != e.DataContentType {
		t.Fatalf("stored %+v\nappended %+v", got, e)
	}
	_, h, err := s.Head(ctxT(t))
	if err != nil || hex.EncodeToString(h[:]) != got.Hash {
		t.Fatalf("head hash %x, %v; want %s", h, err, got.Hash)
	}
	// and a caller mutating what it read does not change the store
	got.Data[0] = 'X'
	if again := readAll(t, s); !bytes.Equal(again[1].Data, e.Data) {
		t.Fatal("read data aliases the store")
	}
}

func testReadAllPages(t *testing.T, open Opener, _ Features) {
	// given 25 events over three streams
	s := open(t)
	var want []string
	for i := range 25 {
		stream := []string{"p/x", "p/y", "p/z"}[i%3]
		e := Event(t, stream, i)
		mustAppend(t, s, stream, store.AnyVersion, e)
		want = append(want, e.ID)
	}

	// when read in pages of 7
	var got []string
	from := uint64(1)
	for {
		page, err := s.ReadAll(ctxT(t), from, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 7 {
			t.Fatalf("page of %d, limit 7", len(page))
		}
		if len(page) == 0 {
			break
		}
		for i, e := range page {
			if uint64(e.Sequence) != from+uint64(i) {
				t.Fatalf("page from %d: event %d has sequence %d", from, i, e.Sequence)
			}
		}
		got = append(got, ids(page)...)
		from = uint64(page[len(page)-1].Sequence) + 1
	}

	// then the pages are the log in order
	if !equalStrings(got, want) {
		t.Fatalf("paged read %v, want %v", got, want)
	}
	if page, err := s.ReadAll(ctxT(t), 0, 1); err != nil || len(page) != 1 || page[0].ID != want[0] {
		t.Fatalf("ReadAll from 0 should start at 1: %v %v", ids(page), err)
	}
	var positions []uint64
	err := s.ReadRecords(ctxT(t), 20, func(pos uint64, rec []byte) error {
		e, err := events.DecodeRecord(rec)
		if err != nil || e.ID != want[pos-1] {
			t.Errorf("record %d: %v, id %s want %s", pos, err, e.ID, want[pos-1])
		}
		positions = append(positions, pos)
		return nil
	})
	if err != nil || len(positions) != 6 || positions[0] != 20 || positions[5] != 25 {
		t.Fatalf("ReadRecords from 20: %v, %v", positions, err)
	}
}

func testReadRecordsStops(t *testing.T, open Opener, _ Features) {
	s := open(t)
	mustAppend(t, s, "r", store.NoStream, Events(t, "r", 5)...)
	stop := errors.New("stop here")
	n := 0
	err := s.ReadRecords(ctxT(t), 1, func(pos uint64, rec []byte) error {
		n++
		if pos == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Fatalf("ReadRecords returned %v after %d records; want the callback's error after 3", err, n)
	}
}

func testExpectedVersionConflict(t *testing.T, open Opener, _ Features) {
	// given stream c at version 2
	s := open(t)
	mustAppend(t, s, "c", store.NoStream, Events(t, "c", 2)...)

	// when a writer appends expecting version 1
	late := Events(t, "c", 2)
	_, err := s.Append(ctxT(t), "c", 1, late...)

	// then it gets a conflict naming both versions, and nothing was stored
	var ce *store.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, store.ErrVersionConflict) {
		t.Fatalf("append at a stale version: %v, want *ConflictError", err)
	}
	if ce.Stream != "c" || ce.Expected != 1 || ce.Actual != 2 {
		t.Fatalf("conflict %+v, want stream c expected 1 actual 2", ce)
	}
	if h := head(t, s); h != 2 {
		t.Fatalf("head %d after a conflict, want 2", h)
	}
	// and the refused ids are not remembered: the same events at the right version are new
	res := mustAppend(t, s, "c", 2, late...)
	if res.Duplicates != 0 || res.Positions[0] != 3 || res.StreamVersion != 4 {
		t.Fatalf("retry at the right version: %+v", res)
	}
	if _, err := s.Append(ctxT(t), "c", 9, Event(t, "c", 9)); !errors.Is(err, store.ErrVersionConflict) {
		t.Fatalf("append expecting a future version: %v", err)
	}
	verifyOK(t, s, 4)
}

func testNoStreamAndAnyVersion(t *testing.T, open Opener, _ Features) {
	s := open(t)
	mustAppend(t, s, "n", store.NoStream, Event(t, "n", 1))
	if _, err := s.Append(ctxT(t), "n", store.NoStream, Event(t, "n", 2)); !errors.Is(err, store.ErrVersionConflict) {
		t.Fatalf("NoStream on an existing stream: %v, want a conflict", err)
	}
	for i := range 3 {
		res := mustAppend(t, s, "n", store.AnyVersion, Event(t, "n", i))
		if res.StreamVersion != uint64(i+2) {
			t.Fatalf("AnyVersion append %d: version %d", i, res.StreamVersion)
		}
	}
	mustAppend(t, s, "fresh", store.AnyVersion, Event(t, "fresh", 1))
	if _, err := s.Append(ctxT(t), "n", -7, Event(t, "n", 7)); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("expected version -7: %v, want ErrInvalid", err)
	}
}

func testInvalidAppend(t *testing.T, open Opener, _ Features) {
	// given a store with one event
	s := open(t)
	mustAppend(t, s, "ok", store.NoStream, Event(t, "ok", 1))

	bad := map[string]func() (string, []events.Envelope){
		"subject differs": func() (string, []events.Envelope) { return "x", []events.Envelope{Event(t, "y", 1)} },
		"second subject differs": func() (string, []events.Envelope) {
			return "x", []events.Envelope{Event(t, "x", 1), Event(t, "y", 2)}
		},
		"empty stream": func() (string, []events.Envelope) { return "", []events.Envelope{Event(t, "", 1)} },
		"no events":    func() (string, []events.Envelope) { return "x", nil },
		"no id": func() (string, []events.Envelope) {
			e := Event(t, "x", 1)
			e.ID = ""
			return "x", []events.Envelope{e}
		},
		"no type": func() (string, []events.Envelope) {
			e := Event(t, "x", 1)
			e.Type = ""
			return "x", []events.Envelope{e}
		},
		"bad data": func() (string, []events.Envelope) {
			e := Event(t, "x", 1)
			e.Data = []byte("{not json")
			return "x", []events.Envelope{Event(t, "x", 0), e}
		},
	}
	for name, mk := range bad {
		// when an invalid append is made
		stream, evs := mk()
		_, err := s.Append(ctxT(t), stream, store.AnyVersion, evs...)
		// then it fails with ErrInvalid and leaves no trace
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
		if h := head(t, s); h != 1 {
			t.Fatalf("%s: head %d, want 1", name, h)
		}
		if v, _ := s.StreamVersion(ctxT(t), "x"); v != 0 {
			t.Fatalf("%s: stream x at version %d", name, v)
		}
	}
	verifyOK(t, s, 1)
}

func testDuplicateIDs(t *testing.T, open Opener, f Features) {
	// given an event stored at position 2
	s := open(t)
	mustAppend(t, s, "d", store.NoStream, Event(t, "d", 0))
	e := Event(t, "d", 1)
	mustAppend(t, s, "d", 1, e)

	check := func(s store.Store, when string, version uint64) {
		// when it is appended again, even at a stale version
		res, err := s.Append(ctxT(t), "d", 1, e)
		// then the earlier position is returned and nothing is stored
		if err != nil || res.Positions[0] != 2 || res.Duplicates != 1 {
			t.Fatalf("%s: duplicate append: %+v, %v; want position 2, 1 duplicate", when, res, err)
		}
		if res.StreamVersion != version {
			t.Fatalf("%s: duplicate append reports version %d, want %d", when, res.StreamVersion, version)
		}
	}
	check(s, "at once", 2)
	if h := head(t, s); h != 2 {
		t.Fatalf("head %d after a duplicate, want 2", h)
	}

	// and mixed with new events, duplicates keep their position, new ones are appended
	n1, n2 := Event(t, "d", 2), Event(t, "d", 3)
	res := mustAppend(t, s, "d", 2, n1, e, n2, n1)
	if p := res.Positions; p[0] != 3 || p[1] != 2 || p[2] != 4 || p[3] != 3 || res.Duplicates != 2 || res.StreamVersion != 4 {
		t.Fatalf("mixed append: %+v, want positions [3 2 4 3], 2 duplicates, version 4", res)
	}
	// and a duplicate id appended to another stream is still the earlier event
	other := e
	other.Subject = "elsewhere"
	res = mustAppend(t, s, "elsewhere", store.NoStream, other)
	if res.Positions[0] != 2 || res.Duplicates != 1 || head(t, s) != 4 {
		t.Fatalf("duplicate id on another stream: %+v", res)
	}
	for range 50 { // many later events do not age it out
		mustAppend(t, s, "filler", store.AnyVersion, Event(t, "filler", 0))
	}
	check(s, "after 50 more events", 4)
	if f.Reopen != nil {
		s = f.Reopen(t, s)
		check(s, "after reopen", 4)
	}
	verifyOK(t, s, 54)
}
