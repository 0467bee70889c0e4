package store_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/memory"
	"github.com/mcpes/mcpes/store/storetest"
)

// edited shows a real store's records through an edit, as a tampered file would.
type edited struct {
	store.Store
	edit func(pos uint64, rec []byte) (uint64, []byte, bool)
}

func (e edited) ReadRecords(ctx context.Context, from uint64, fn func(uint64, []byte) error) error {
	return e.Store.ReadRecords(ctx, from, func(pos uint64, rec []byte) error {
		p, r, keep := e.edit(pos, bytes.Clone(rec))
		if !keep {
			return nil
		}
		return fn(p, r)
	})
}

func filled(t *testing.T, n int) store.Store {
	t.Helper()
	s := memory.New()
	t.Cleanup(func() { _ = s.Close() })
	for i := range n {
		stream := []string{"a", "b"}[i%2]
		if _, err := s.Append(context.Background(), stream, store.AnyVersion, storetest.Event(t, stream, i)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestVerify_IntactLog(t *testing.T) {
	// given a log of 10 events
	s := filled(t, 10)
	var calls, lastPos uint64
	// when it is verified with a progress callback every 4 records
	rep, err := store.Verify(context.Background(), s, store.WithProgress(4, func(pos, head uint64) {
		calls++
		lastPos = pos
		if head != 10 {
			t.Errorf("progress head %d", head)
		}
	}))
	// then it is OK and progress was reported at 4, 8 and the end
	if err != nil || !rep.OK || rep.Events != 10 || rep.Head != 10 || rep.FirstBad != 0 || len(rep.Problems) != 0 {
		t.Fatalf("report %+v, %v", rep, err)
	}
	if calls != 3 || lastPos != 10 {
		t.Fatalf("progress called %d times, last at %d", calls, lastPos)
	}
	// and an empty log verifies too
	if rep, err := store.Verify(context.Background(), filled(t, 0)); err != nil || !rep.OK || rep.Events != 0 {
		t.Fatalf("empty log: %+v, %v", rep, err)
	}
}

func TestVerify_NamesFirstBadPosition(t *testing.T) {
	cases := map[string]struct {
		edit func(pos uint64, rec []byte) (uint64, []byte, bool)
		want uint64
	}{
		"flipped json byte": {func(p uint64, r []byte) (uint64, []byte, bool) {
			if p == 4 {
				r[len(r)-3] ^= 0x20
			}
			return p, r, true
		}, 4},
		"flipped hash byte": {func(p uint64, r []byte) (uint64, []byte, bool) {
			if p == 6 {
				r[5] ^= 1
			}
			return p, r, true
		}, 6},
		"missing record": {func(p uint64, r []byte) (uint64, []byte, bool) { return p, r, p != 3 }, 3},
		"missing last":   {func(p uint64, r []byte) (uint64, []byte, bool) { return p, r, p != 10 }, 10},
		"renumbered": {func(p uint64, r []byte) (uint64, []byte, bool) {
			if p >= 7 {
				return p + 1, r, true
			}
			return p, r, true
		}, 7},
		"truncated record": {func(p uint64, r []byte) (uint64, []byte, bool) {
			if p == 2 {
				return p, r[:20], true
			}
			return p, r, true
		}, 2},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			// given a log of 10 events read through a tampering edit
			s := edited{Store: filled(t, 10), edit: c.edit}
			// when it is verified
			rep, err := store.Verify(context.Background(), s)
			// then the first bad position is named
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK || rep.FirstBad != c.want || len(rep.Problems) == 0 {
				t.Fatalf("report ok=%v first bad %d (want %d): %v", rep.OK, rep.FirstBad, c.want, rep.Problems)
			}
		})
	}
}

func TestVerify_ClosedStore(t *testing.T) {
	s := filled(t, 2)
	_ = s.Close()
	if _, err := store.Verify(context.Background(), s); err == nil {
		t.Fatal("verify of a closed store returned no error")
	}
}

func TestVerify_WithRecordsHandsEveryRecordInOrder(t *testing.T) {
	// given a log of 3000 events (several of the consumer's chunks)
	st := filled(t, 3000)
	var want [][]byte
	if err := st.ReadRecords(context.Background(), 1, func(_ uint64, rec []byte) error {
		_, canon, err := events.SplitRecord(rec)
		want = append(want, bytes.Clone(canon))
		return err
	}); err != nil {
		t.Fatal(err)
	}

	// when it is verified with a consumer of the records
	var got [][]byte
	var last uint64
	rep, err := store.Verify(context.Background(), st, store.WithRecords(func(pos uint64, canon []byte) {
		if pos != last+1 {
			t.Errorf("record %d after %d", pos, last)
		}
		last = pos
		got = append(got, bytes.Clone(canon))
	}))

	// then the consumer saw every record's canonical bytes, in order, before Verify
	// returned
	if err != nil || !rep.OK {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
	if len(got) != len(want) {
		t.Fatalf("consumer saw %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("record %d: got %.40q, want %.40q", i+1, got[i], want[i])
		}
	}
}
