package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store/memory"
)

const rebuildEvents = 200_000

// BenchmarkRebuild measures replay of a realistic mixed log held in the memory store:
// decode + chain check + apply into both projections (events/s, target ≥ 500,000), the
// chain check alone (chain_events/s, target ≥ 1,000,000), and, as the baseline of the
// same run, a full encoding/json decode of every envelope (json_events/s).
func BenchmarkRebuild(b *testing.B) {
	ctx := context.Background()
	st := memory.New()
	b.Cleanup(func() { _ = st.Close() })
	appendAll(b, st, genLog(b, rebuildEvents, 1))
	head, _, _ := st.Head(ctx)
	var bytesTotal int
	_ = st.ReadRecords(ctx, 1, func(_ uint64, rec []byte) error { bytesTotal += len(rec); return nil })
	b.Logf("log: %d events, %.0f bytes per record on average", head, float64(bytesTotal)/float64(head))

	b.Run("projections", func(b *testing.B) {
		cpu := startCPU()
		for b.Loop() {
			s, c, err := Rebuild(ctx, st, 0)
			if err != nil || s.Position() != head || c.Position() != head {
				b.Fatalf("rebuild: %v at %d", err, s.Position())
			}
		}
		b.ReportMetric(float64(head)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64(head)*float64(b.N)/cpu.seconds(), "events/cpu_s")
	})
	b.Run("chain", func(b *testing.B) {
		cpu := startCPU()
		for b.Loop() {
			var prev [32]byte
			link := newLinker()
			err := st.ReadRecords(ctx, 1, func(_ uint64, rec []byte) error {
				h, err := link.check(prev, rec)
				prev = h
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(head)*float64(b.N)/b.Elapsed().Seconds(), "chain_events/s")
		b.ReportMetric(float64(head)*float64(b.N)/cpu.seconds(), "chain_events/cpu_s")
	})
	b.Run("json_baseline", func(b *testing.B) {
		cpu := startCPU()
		for b.Loop() {
			err := st.ReadRecords(ctx, 1, func(_ uint64, rec []byte) error {
				_, err := events.DecodeRecord(rec)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(head)*float64(b.N)/b.Elapsed().Seconds(), "json_events/s")
		b.ReportMetric(float64(head)*float64(b.N)/cpu.seconds(), "json_events/cpu_s")
	})
}

// BenchmarkEffectiveLookup measures the hot path at scale: 100,000 servers (10 private
// servers for each of 10,000 owners, plus 100 app servers), reporting the p99 latency
// of one Effective lookup (target ≤ 1 µs) and the heap the projection holds (target ≤
// 300 MiB).
func BenchmarkEffectiveLookup(b *testing.B) {
	const owners, perOwner, apps = 10_000, 10, 100
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	s := NewServers()
	pos := uint64(0)
	tools := make([]domain.Tool, 8)
	for i := range tools {
		tools[i] = domain.Tool{Name: fmt.Sprintf("tool_%d", i), Description: "does a thing",
			InputSchema: domain.RawJSON(`{"type":"object","properties":{"q":{"type":"string"}}}`)}
	}
	add := func(scope domain.Scope, name string) {
		pos++
		cfg := domain.ServerConfig{Type: "streamable-http", URL: "https://" + name + ".example.com/mcp",
			Headers: map[string]string{"Authorization": "secret:0123456789abcdef0123456789abcdef"}}
		data, _ := json.Marshal(domain.ServerRegistered{Scope: scope, Name: name, Config: cfg})
		ev := rawEvent{pos: pos, typ: events.TypeServerRegistered, subject: domain.ServerStream(scope, name), t: t0, data: data}
		if err := s.foldChecked(&ev, [32]byte{}); err != nil {
			b.Fatal(err)
		}
		pos++
		data, _ = json.Marshal(domain.ServerInspected{Scope: scope, Name: name, ConfigVersion: pos - 1, Tools: tools, Digest: "d"})
		ev = rawEvent{pos: pos, typ: events.TypeServerInspected, subject: domain.ServerStream(scope, name), t: t0, data: data}
		if err := s.foldChecked(&ev, [32]byte{}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range apps {
		add(domain.AppScope, fmt.Sprintf("app-%03d", i))
	}
	ownerIDs := make([]string, owners)
	for o := range owners {
		ownerIDs[o] = fmt.Sprintf("owner-%05d", o)
		for j := range perOwner {
			add(domain.UserScope(ownerIDs[o]), fmt.Sprintf("srv-%d-%d", o%97, j))
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	heapMiB := float64(after.HeapAlloc-min(before.HeapAlloc, after.HeapAlloc)) / (1 << 20)

	// Lookups: a mix of app servers, the owner's own servers and misses.
	type q struct{ owner, name string }
	queries := make([]q, 4096)
	for i := range queries {
		o := (i * 7919) % owners
		switch i % 3 {
		case 0:
			queries[i] = q{ownerIDs[o], fmt.Sprintf("app-%03d", i%apps)}
		case 1:
			queries[i] = q{ownerIDs[o], fmt.Sprintf("srv-%d-%d", o%97, i%perOwner)}
		default:
			queries[i] = q{ownerIDs[o], "missing"}
		}
	}
	// The baseline of the same run: a plain sync.RWMutex + map lookup of the same keys.
	var baseMu sync.RWMutex
	base := make(map[string]*int, owners*perOwner+apps)
	one := 1
	for _, st := range s.States() { // as many keys as the projection holds
		v := one
		base[st.Scope.Owner()+"/"+st.Name] = &v
	}
	baseKeys := make([]string, len(queries))
	for i, qq := range queries {
		baseKeys[i] = qq.owner + "/" + qq.name
	}
	p99 := func(lookup func(i int)) (p50, p99 time.Duration) {
		samples := make([]time.Duration, 0, 200_000)
		for i := range cap(samples) {
			start := time.Now()
			lookup(i & (len(queries) - 1))
			samples = append(samples, time.Since(start))
		}
		slices.Sort(samples)
		return samples[len(samples)/2], samples[len(samples)*99/100]
	}
	i := 0
	for b.Loop() {
		qq := queries[i&(len(queries)-1)]
		i++
		_, _, _ = s.Effective(qq.owner, qq.name)
	}
	b.StopTimer()
	ep50, ep99 := p99(func(i int) { _, _, _ = s.Effective(queries[i].owner, queries[i].name) })
	_, vp99 := p99(func(i int) { _, _ = s.View(queries[i].owner, queries[i].name) })
	bp50, bp99 := p99(func(i int) {
		baseMu.RLock()
		_ = base[baseKeys[i]]
		baseMu.RUnlock()
	})
	b.ReportMetric(float64(ep99.Nanoseconds()), "p99_ns")
	b.ReportMetric(float64(ep50.Nanoseconds()), "p50_ns")
	b.ReportMetric(float64(vp99.Nanoseconds()), "view_p99_ns")
	b.ReportMetric(float64(bp99.Nanoseconds()), "baseline_p99_ns")
	b.ReportMetric(float64(ep50)/float64(max(bp50, 1)), "p50_x_baseline")
	b.ReportMetric(heapMiB, "heap_MiB")
	runtime.KeepAlive(s)
}

// cpuClock measures the process's CPU time (user + system, every thread), which the
// other jobs on a shared machine do not inflate the way they inflate wall time.
type cpuClock struct{ start time.Duration }

func startCPU() *cpuClock { return &cpuClock{start: processCPU()} }

func (c *cpuClock) seconds() float64 { return (processCPU() - c.start).Seconds() }

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
