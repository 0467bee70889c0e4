package audit_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mcpes/mcpes/audit"
	"github.com/mcpes/mcpes/store/bolt"
)

// BenchmarkExplainAt times explain at the start, the middle and the end of the log in
// MCPES_BENCH_DATA (a data directory, e.g. the generator's 10M log with its as-of
// snapshots: `go run ./bench/auditlog -events 10000000 -data DIR`, or an older log after
// `mcpes snapshots --data DIR`), for MCPES_BENCH_OWNER (default user-0045) and
// MCPES_BENCH_SERVER (default own-0). It reports the events folded after the snapshot
// (tail/op). Skipped without MCPES_BENCH_DATA.
//
//	MCPES_BENCH_DATA=/data/10m go test -run '^$' -bench ExplainAt -benchtime 20x ./audit
func BenchmarkExplainAt(b *testing.B) {
	dir := os.Getenv("MCPES_BENCH_DATA")
	if dir == "" {
		b.Skip("MCPES_BENCH_DATA names no data directory")
	}
	owner, server := envOr("MCPES_BENCH_OWNER", "user-0045"), envOr("MCPES_BENCH_SERVER", "own-0")
	ctx := context.Background()
	st, err := bolt.Open(filepath.Join(dir, "mcpes.db"), bolt.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	head, _, err := st.Head(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		pos  uint64
	}{{"start", min(head, 1000)}, {"middle", head / 2}, {"end", head}} {
		evs, err := st.ReadAll(ctx, c.pos, 1)
		if err != nil || len(evs) == 0 {
			b.Fatalf("event at %d: %v", c.pos, err)
		}
		at := evs[0].Time
		b.Run(c.name, func(b *testing.B) {
			var ex audit.Explanation
			for b.Loop() {
				if ex, err = audit.Explain(ctx, st, owner, server, at); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(ex.Position-ex.Snapshot), "tail/op")
			b.ReportMetric(float64(ex.Position), "position")
		})
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
