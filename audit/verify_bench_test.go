package audit_test

import (
	"context"
	"flag"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpes/mcpes/audit"
	"github.com/mcpes/mcpes/store/bolt"
)

var verifyLog = flag.String("verify-log", "", "a bbolt log (e.g. written by go run ./bench/auditlog) for BenchmarkVerifyLog")

// BenchmarkVerifyLog verifies the log named by -verify-log (skipped without it) and
// reports events/s, the CPU seconds used per wall second (two cores: up to 2), events
// per CPU second (a figure a loaded machine does not distort) and the
// peak Go heap in use, sampled every 10 ms (the mapped file is not heap: bbolt reads
// it through mmap, which RSS counts and the kernel can drop).
//
//	go test -run '^$' -bench VerifyLog -benchtime 1x ./audit -args -verify-log /tmp/auditlog/mcpes.db
func BenchmarkVerifyLog(b *testing.B) {
	if *verifyLog == "" {
		b.Skip("no -verify-log")
	}
	st, err := bolt.Open(*verifyLog, bolt.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var peak atomic.Uint64
	stop := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	var events int
	var wall time.Duration
	var cpu float64
	for b.Loop() {
		t0, c0 := time.Now(), cpuSeconds()
		rep, err := audit.VerifyAll(context.Background(), st, nil)
		wall += time.Since(t0)
		cpu += cpuSeconds() - c0
		if err != nil || !rep.OK {
			b.Fatalf("verify: %v, %d problems: %.3v", err, len(rep.Problems), rep.Problems)
		}
		events += rep.Events
	}
	close(stop)
	b.ReportMetric(float64(events)/wall.Seconds(), "events/s")
	b.ReportMetric(cpu/wall.Seconds(), "cpu/wall")
	b.ReportMetric(float64(events)/cpu, "events/cpu_s") // what a quiet machine gives per core
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak_heap_MiB")
}
