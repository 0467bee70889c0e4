package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/storetest"
)

func TestAppendBatch_CommitsInOrderTogether(t *testing.T) {
	// given a store and 300 appends to 5 streams
	s := openTest(t)
	defer checkAndClose(t, s)
	ctx := context.Background()
	var batch []store.Append
	for i := range 300 {
		stream := fmt.Sprintf("s/%d", i%5)
		batch = append(batch, store.Append{Stream: stream, Expected: store.AnyVersion, Events: storetest.Events(t, stream, 1)})
	}
	before := s.Stats().Commits
	// when they are appended as one batch
	res, err := s.AppendBatch(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	// then each lands at the next position, in the batch's order, in few commits
	for i, r := range res {
		if r.Positions[0] != uint64(i+1) || r.StreamVersion != uint64(i/5+1) {
			t.Fatalf("append %d at %v, stream version %d", i, r.Positions, r.StreamVersion)
		}
	}
	all, err := s.ReadAll(ctx, 1, 0)
	if err != nil || len(all) != 300 {
		t.Fatalf("read %d, %v", len(all), err)
	}
	for i, e := range all {
		if e.ID != batch[i].Events[0].ID {
			t.Fatalf("position %d holds %s, want %s", i+1, e.ID, batch[i].Events[0].ID)
		}
	}
	if commits := s.Stats().Commits - before; commits > 30 {
		t.Fatalf("%d commits for one batch of 300", commits)
	}
}

func TestAppendBatch_NothingAfterAFailedAppendIsStored(t *testing.T) {
	// given a batch whose second append expects a version its stream does not have
	s := openTest(t)
	defer checkAndClose(t, s)
	ctx := context.Background()
	batch := []store.Append{
		{Stream: "a", Expected: store.NoStream, Events: storetest.Events(t, "a", 1)},
		{Stream: "b", Expected: 7, Events: storetest.Events(t, "b", 1)},
		{Stream: "c", Expected: store.AnyVersion, Events: storetest.Events(t, "c", 1)},
	}
	// when it is appended
	_, err := s.AppendBatch(ctx, batch)
	// then the conflict is the batch's error, the first append is stored and the
	// third, after the failed one, is not
	if !errors.Is(err, store.ErrVersionConflict) {
		t.Fatalf("err %v, want a version conflict", err)
	}
	for stream, want := range map[string]uint64{"a": 1, "b": 0, "c": 0} {
		if v, err := s.StreamVersion(ctx, stream); err != nil || v != want {
			t.Fatalf("stream %s at version %d (%v), want %d", stream, v, err, want)
		}
	}
}
