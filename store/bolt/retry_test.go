package bolt_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/bolt"
	"github.com/mcpes/mcpes/store/storetest"
)

func TestAppend_RetryAfterCrashFindsUnindexedEvents(t *testing.T) {
	// given a file left as a crash leaves it: events committed, their ids only in the
	// recent index (never flushed to the ids bucket)
	dir := t.TempDir()
	ctx := context.Background()
	live := openAt(t, filepath.Join(dir, "live.db"), bolt.Options{NoSync: true, IndexEvery: 1000})
	evs := storetest.Events(t, "crash", 3)
	if _, err := live.Append(ctx, "crash", store.NoStream, evs...); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "live.db"))
	if err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(dir, "crashed.db")
	if err := os.WriteFile(crashed, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s := openAt(t, crashed, bolt.Options{NoSync: true, IndexEvery: 1000})

	// when the writer retries the same events after the restart
	res, err := s.Append(ctx, "crash", store.AnyVersion, evs...)

	// then they are found as already stored, at their positions, and nothing is added
	if err != nil {
		t.Fatal(err)
	}
	if res.Duplicates != 3 || res.Positions[0] != 1 || res.Positions[2] != 3 {
		t.Fatalf("retry: %+v", res)
	}
	if head, _, _ := s.Head(ctx); head != 3 {
		t.Fatalf("head %d after the retry, want 3", head)
	}
}
