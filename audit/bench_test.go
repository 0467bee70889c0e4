package audit_test

import (
	"context"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mcpes/mcpes/audit"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/memory"
)

// BenchmarkExport reports the export rate (events/s, every event through an owner
// filter to io.Discard) and its cost relative to a plain ReadAll scan of the same log,
// timed alternately in the same loop (x_readall: export time / scan time).
func BenchmarkExport(b *testing.B) {
	const n = 20000
	ctx := context.Background()
	st := memory.New()
	b.Cleanup(func() { _ = st.Close() })
	for i := range n {
		owner := "o" + strconv.Itoa(i%100)
		fact := domain.ServerRegistered{Scope: domain.UserScope(owner), Name: "s" + strconv.Itoa(i),
			Config: domain.ServerConfig{Type: "sse", URL: "https://example.com/sse"}}
		env, err := events.New(fact, events.Meta{ID: uuid.Must(uuid.NewV7()).String(), Source: "mcpes://bench",
			Time: time.Now(), Actor: "owner:" + owner})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.Append(ctx, env.Subject, store.AnyVersion, env); err != nil {
			b.Fatal(err)
		}
	}
	scan := func() {
		for from := uint64(1); ; {
			page, err := st.ReadAll(ctx, from, 512)
			if err != nil {
				b.Fatal(err)
			}
			if len(page) == 0 {
				return
			}
			from = uint64(page[len(page)-1].Sequence) + 1
		}
	}
	var scanTime, exportTime time.Duration
	for b.Loop() {
		t0 := time.Now()
		scan()
		t1 := time.Now()
		got, err := audit.Export(ctx, st, audit.Filter{Owner: "o7"}, io.Discard, nil)
		exportTime += time.Since(t1)
		scanTime += t1.Sub(t0)
		if err != nil || got != n/100 {
			b.Fatalf("exported %d, %v", got, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/exportTime.Seconds(), "events/s")
	b.ReportMetric(float64(exportTime)/float64(scanTime), "x_readall")
}
