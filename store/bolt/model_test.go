package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/bolt"
	"github.com/mcpes/mcpes/store/memory"
	"github.com/mcpes/mcpes/store/storetest"
)

// TestBolt_MatchesModel applies the same random operations to the bolt store and the
// memory model (appends at right, stale and any versions, duplicate ids, reads,
// reopens) and requires the same answers, down to every hash.
func TestBolt_MatchesModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 3))
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.db")
	opts := bolt.Options{NoSync: true, IndexEvery: 1 + rng.IntN(40)}
	t.Logf("IndexEvery %d", opts.IndexEvery)
	real, err := bolt.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { checkAndClose(t, real) })
	model := memory.New()
	var seen []events.Envelope
	base := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	streams := []string{"server/app/a", "server/app/b", "conn/u1/a", "conn/u2/b", "conn/_/a"}

	for op := range 600 {
		stream := streams[rng.IntN(len(streams))]
		switch k := rng.IntN(40); {
		case k < 30: // append
			evs := make([]events.Envelope, 1+rng.IntN(3))
			for i := range evs {
				if len(seen) > 0 && rng.IntN(8) == 0 {
					evs[i] = seen[rng.IntN(len(seen))] // a retry of an earlier event
					evs[i].Subject = stream
				} else {
					evs[i] = storetest.Event(t, stream, op)
					// times mostly rise, sometimes step back
					evs[i].Time = base.Add(time.Duration(op*1000+rng.IntN(5000)-1000) * time.Millisecond)
					seen = append(seen, evs[i])
				}
			}
			v, _ := model.StreamVersion(ctx, stream)
			expected := []int64{store.AnyVersion, int64(v), int64(v), int64(v) - 1, int64(v) + 1, store.NoStream}[rng.IntN(6)]
			want, werr := model.Append(ctx, stream, expected, evs...)
			got, gerr := real.Append(ctx, stream, expected, evs...)
			if !sameErr(werr, gerr) || !reflect.DeepEqual(want, got) {
				t.Fatalf("op %d: append %d events to %s at %d:\nmodel %+v %v\nbolt  %+v %v", op, len(evs), stream, expected, want, werr, got, gerr)
			}
		case k < 34:
			from := uint64(rng.IntN(10))
			limit := rng.IntN(6)
			want, _ := model.ReadStream(ctx, stream, from, limit)
			got, err := real.ReadStream(ctx, stream, from, limit)
			if err != nil || !sameEnvelopes(want, got) {
				t.Fatalf("op %d: ReadStream(%s, %d, %d): %d vs %d events, %v", op, stream, from, limit, len(want), len(got), err)
			}
		case k < 38:
			at := base.Add(time.Duration(rng.IntN(op+2)*1000) * time.Millisecond)
			want, _ := model.PositionAt(ctx, at)
			got, err := real.PositionAt(ctx, at)
			if err != nil || want != got {
				t.Fatalf("op %d: PositionAt(%s): model %d, bolt %d, %v", op, at, want, got, err)
			}
			wv, _ := model.StreamVersion(ctx, stream)
			gv, _ := real.StreamVersion(ctx, stream)
			if wv != gv {
				t.Fatalf("op %d: StreamVersion(%s): model %d, bolt %d", op, stream, wv, gv)
			}
		case k < 39:
			if err := real.Check(ctx); err != nil {
				t.Fatalf("op %d: %v", op, err)
			}
		default:
			if err := real.Close(); err != nil {
				t.Fatal(err)
			}
			if real, err = bolt.Open(path, opts); err != nil {
				t.Fatal(err)
			}
		}
	}
	// then the two logs are the same, hash for hash
	want, _ := model.ReadAll(ctx, 1, 0)
	got, err := real.ReadAll(ctx, 1, 0)
	if err != nil || !sameEnvelopes(want, got) {
		t.Fatalf("final logs differ: %d vs %d events, %v", len(want), len(got), err)
	}
	wh, whash, _ := model.Head(ctx)
	gh, ghash, _ := real.Head(ctx)
	if wh != gh || whash != ghash {
		t.Fatalf("heads differ: model %d %x, bolt %d %x", wh, whash, gh, ghash)
	}
	t.Logf("%d events, %d distinct ids offered", gh, len(seen))
}

func sameErr(a, b error) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var ca, cb *store.ConflictError
	if errors.As(a, &ca) {
		return errors.As(b, &cb) && *ca == *cb
	}
	return fmt.Sprint(errors.Is(a, store.ErrInvalid)) == fmt.Sprint(errors.Is(b, store.ErrInvalid))
}

func sameEnvelopes(a, b []events.Envelope) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if !x.Time.Equal(y.Time) {
			return false
		}
		x.Time, y.Time = time.Time{}, time.Time{}
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}
