package projections

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/memory"
)

func asOfLog(t *testing.T) (*memory.Store, uint64) {
	t.Helper()
	st := memory.New()
	t.Cleanup(func() { _ = st.Close() })
	appendAll(t, st, genLog(t, 3000, 7))
	head, _, err := st.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st, head
}

func TestAsOfSnapshot_EqualsTheFoldFromTheStart(t *testing.T) {
	// given a log of ~3000 events with as-of snapshots every 500
	ctx := context.Background()
	st, head := asOfLog(t)
	n, err := BuildAsOf(ctx, st, 500, 0, nil)
	if err != nil || n != int(head/500) {
		t.Fatalf("built %d snapshots (%v), want %d", n, err, head/500)
	}
	// when the projection is asked for at positions before, at and between snapshots
	for _, pos := range []uint64{1, 499, 500, 501, 1234, 2000, head - 1, head} {
		got, from, err := AsOfSnapshot(ctx, st, pos, nil)
		if err != nil {
			t.Fatal(err)
		}
		want, err := AsOf(ctx, st, pos)
		if err != nil {
			t.Fatal(err)
		}
		// then it starts from the nearest snapshot and holds what the full fold holds
		if from != pos/500*500 {
			t.Errorf("at %d: started from %d, want %d", pos, from, pos/500*500)
		}
		_, gb, _ := got.encodeSnapshot()
		_, wb, _ := want.encodeSnapshot()
		if got.Position() != pos || !reflect.DeepEqual(gb, wb) {
			t.Fatalf("at %d: projection from the snapshot differs from the full fold", pos)
		}
	}
	// and building again adds nothing, and the check passes
	if n, err := BuildAsOf(ctx, st, 500, 0, nil); err != nil || n != 0 {
		t.Fatalf("second build: %d, %v", n, err)
	}
	if n, err := CheckAsOf(ctx, st); err != nil || n != int(head/500) {
		t.Fatalf("check: %d, %v", n, err)
	}
}

func TestAsOf_ForgedSnapshotIsCaught(t *testing.T) {
	// given as-of snapshots, one of which is replaced by the projection of a later
	// position relabelled as the earlier one (valid hash, wrong content)
	ctx := context.Background()
	st, _ := asOfLog(t)
	if _, err := BuildAsOf(ctx, st, 500, 0, nil); err != nil {
		t.Fatal(err)
	}
	at1000, _, _ := st.LoadSnapshotAt(ctx, ServersAsOfSeries, 1000)
	_, later, _ := st.LoadSnapshotAt(ctx, ServersAsOfSeries, 2500)
	s := NewServers()
	if err := s.restoreSnapshot(ctx, st, 2500, later); err != nil {
		t.Fatal(err)
	}
	early := NewServers()
	if err := early.restoreSnapshot(ctx, st, 1000, mustLoad(t, st, 1000)); err != nil {
		t.Fatal(err)
	}
	s.follower.pos.Store(early.Position())
	s.follower.lastHash = early.follower.lastHash
	_, forged, _ := s.encodeSnapshot()
	if err := st.SaveSnapshotAt(ctx, ServersAsOfSeries, at1000, forged); err != nil {
		t.Fatal(err)
	}
	// when the snapshots are checked against the log
	_, err := CheckAsOf(ctx, st)
	// then the forged one is named
	if !errors.Is(err, ErrAsOfMismatch) {
		t.Fatalf("check: %v, want ErrAsOfMismatch", err)
	}

	// and a snapshot whose position hash is not the log's is not used at all
	if err := st.SaveSnapshotAt(ctx, ServersAsOfSeries, 1500, []byte(`{"format":2,"position":1500,"hash":"`+
		"00000000000000000000000000000000000000000000000000000000000000aa"+`"}`)); err != nil {
		t.Fatal(err)
	}
	got, from, err := AsOfSnapshot(ctx, st, 1600, nil)
	if err != nil || from != 0 {
		t.Fatalf("with a snapshot of another log: from %d, %v; want a fold from 0", from, err)
	}
	want, _ := AsOf(ctx, st, 1600)
	if !reflect.DeepEqual(got.States(), want.States()) {
		t.Fatal("fold from 0 differs")
	}
}

func mustLoad(t *testing.T, st store.Store, pos uint64) []byte {
	t.Helper()
	_, b, err := st.LoadSnapshotAt(context.Background(), ServersAsOfSeries, pos)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRunAsOf_KeepsSnapshotsAsTheLogGrows(t *testing.T) {
	// given a log of ~1200 events and the background snapshotter at every 500
	ctx, cancel := context.WithCancel(context.Background())
	st := memory.New()
	t.Cleanup(func() { _ = st.Close() })
	batches := genLog(t, 3000, 11)
	half := len(batches) / 3
	appendAll(t, st, batches[:half])
	done := make(chan struct{})
	go func() { RunAsOf(ctx, st, 500, slog.New(slog.DiscardHandler)); close(done) }()

	// when it has caught up with the log, and the log grows on
	waitAsOf(t, st, 500)
	appendAll(t, st, batches[half:])
	head, _, _ := st.Head(ctx)

	// then, in time, the newest multiple of 500 has its snapshot, and it holds what a
	// fold from the start holds
	want := head / 500 * 500
	deadline := time.Now().Add(30 * time.Second)
	for {
		at, data, err := st.LoadSnapshotAt(ctx, ServersAsOfSeries, head)
		if err == nil && at == want {
			s := NewServers()
			if err := s.restoreSnapshot(ctx, st, at, data); err != nil {
				t.Fatal(err)
			}
			full, _ := AsOf(ctx, st, at)
			if !reflect.DeepEqual(s.States(), full.States()) {
				t.Fatal("background snapshot differs from the fold")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot at %d after 30 s (newest %d, %v)", want, at, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// and it stops when its context ends
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("RunAsOf did not stop")
	}
}

// waitAsOf waits until the newest multiple of every at or before the head has its
// snapshot.
func waitAsOf(t *testing.T, st store.Store, every uint64) {
	t.Helper()
	ctx := context.Background()
	head, _, _ := st.Head(ctx)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if at, _, err := st.LoadSnapshotAt(ctx, ServersAsOfSeries, head); err == nil && at == head/every*every {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot at %d after 30 s", head/every*every)
		}
	}
}
