package projections

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/bolt"
)

// BenchmarkOpen/1M opens a 1,000,000-event bbolt log and makes both projections ready,
// from a snapshot plus a 1,000-event tail (target ≤ 1 s) and, as the baseline of the
// same run, by full replay. ready_s splits into bolt_open_s (store.Open) and
// projections_s (LoadAll). The fixture is built once per run (without fsync, by 16
// concurrent appenders, so positions interleave between streams).
func BenchmarkOpen(b *testing.B) {
	n, tail := *openEvents, 1_000
	name := "1M"
	if n != 1_000_000 {
		name = fmt.Sprint(n)
	}
	b.Run(name, func(b *testing.B) {
		path := *openFixture
		if path == "" {
			path = filepath.Join(b.TempDir(), "events.db")
		}
		if _, err := os.Stat(path); err != nil {
			start := time.Now()
			buildBoltFixture(b, path, n, tail)
			b.Logf("fixture: %d events in %s", n, time.Since(start).Round(time.Millisecond))
		}

		var projTime, openTime time.Duration
		open := func(b *testing.B, opts Options) {
			ctx := context.Background()
			t0 := time.Now()
			st, err := bolt.Open(path, bolt.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			t1 := time.Now()
			s, c, err := LoadAll(ctx, st, opts)
			if err != nil {
				b.Fatal(err)
			}
			openTime += t1.Sub(t0)
			projTime += time.Since(t1)
			if *openVerbose {
				b.Logf("bolt.Open %s, projections %s", t1.Sub(t0), time.Since(t1))
			}
			head, _, _ := st.Head(ctx)
			if s.Position() != head || c.Position() != head || head < uint64(n) {
				b.Fatalf("positions %d/%d, head %d", s.Position(), c.Position(), head)
			}
		}
		for _, tc := range []struct {
			name string
			opts Options
		}{{"snapshot", Options{}}, {"full_replay", Options{NoSnapshot: true}}} {
			b.Run(tc.name, func(b *testing.B) {
				projTime, openTime = 0, 0
				for b.Loop() {
					open(b, tc.opts)
				}
				b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "ready_s")
				b.ReportMetric(openTime.Seconds()/float64(b.N), "bolt_open_s")
				b.ReportMetric(projTime.Seconds()/float64(b.N), "projections_s")
			})
		}
	})
}

var openVerbose = flag.Bool("open-verbose", false, "log the phases of each BenchmarkOpen open")

var openFixture = flag.String("open-fixture", "", "keep the BenchmarkOpen log at this path and reuse it when present")

var openEvents = flag.Int("open-events", 1_000_000, "size of the BenchmarkOpen log")

// buildBoltFixture appends about n events, snapshots both projections, then appends a
// tail of tail more events that the snapshot does not cover.
func buildBoltFixture(b *testing.B, path string, n, tail int) {
	b.Helper()
	ctx := context.Background()
	st, err := bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	write := func(count int, seed uint64) {
		ch := make(chan batch, 256)
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for bt := range ch {
					if _, err := st.Append(ctx, bt.stream, store.AnyVersion, bt.evs...); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		genLogTo(b, count, seed, func(bt batch) { ch <- bt })
		close(ch)
		wg.Wait()
	}
	write(n-tail, 7)
	s, c, err := Rebuild(ctx, st, 0)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Snapshot(ctx, st); err != nil {
		b.Fatal(err)
	}
	if err := c.Snapshot(ctx, st); err != nil {
		b.Fatal(err)
	}
	write(tail, 8) // a different seed: new ids, the same server names
}
