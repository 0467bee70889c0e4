package audit_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/mcpes/mcpes/audit"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/projections"
)

func TestExplain_FromAsOfSnapshotsGivesTheSameAnswer(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	url := clockURL(t)

	// given alice's private clock, then an app clock shadowing it, connected each time
	w.register("owner:alice", domain.UserScope("alice"), "clock", url)
	if _, err := w.get("owner:alice", "alice", "clock"); err != nil {
		t.Fatal(err)
	}
	times := []time.Time{between(t)}
	w.register("admin", domain.AppScope, "clock", url)
	if _, err := w.get("owner:alice", "alice", "clock"); err != nil {
		t.Fatal(err)
	}
	times = append(times, between(t), time.Time{})
	var plain []audit.Explanation
	for _, at := range times {
		ex, err := audit.Explain(ctx, w.st, "alice", "clock", at)
		if err != nil || ex.Snapshot != 0 {
			t.Fatalf("without snapshots: snapshot %d, %v", ex.Snapshot, err)
		}
		plain = append(plain, ex)
	}

	// when as-of snapshots are taken every 2 events and the same questions asked
	if _, err := projections.BuildAsOf(ctx, w.st, 2, 0, nil); err != nil {
		t.Fatal(err)
	}
	for i, at := range times {
		ex, err := audit.Explain(ctx, w.st, "alice", "clock", at)
		if err != nil {
			t.Fatal(err)
		}
		// then each answer says which snapshot it started from and is otherwise the same
		if ex.Snapshot == 0 || ex.Snapshot > ex.Position || ex.Position-ex.Snapshot >= 2 {
			t.Fatalf("at %v: snapshot %d for position %d", at, ex.Snapshot, ex.Position)
		}
		ex.Snapshot = 0
		if at.IsZero() {
			ex.At = plain[i].At
		}
		if !reflect.DeepEqual(ex, plain[i]) {
			t.Fatalf("at %v: answer from snapshots differs:\n%+v\n%+v", at, ex, plain[i])
		}
	}
}
