package audit_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpes/mcpes/audit"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/bolt"
)

// refusalLog writes a bbolt log of n events: a private server "ghost" of owner zed
// changing every tenth event, and between the changes refusals of alice's requests
// for "ghost" (she has no such server: no_config), each recorded as having read the
// projection just before the last change. Every decision replays the same, and each
// one's view must be taken as of a position before a later event of its server name.
func refusalLog(tb testing.TB, n int) *bolt.Store {
	tb.Helper()
	ctx := context.Background()
	st, err := bolt.Open(filepath.Join(tb.TempDir(), "log.db"), bolt.Options{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	env := func(fact any, reason string) events.Envelope {
		e, err := events.New(fact, events.Meta{ID: fmt.Sprint(at.UnixNano()), Source: "mcpes://test", Time: at, Actor: "system", Reason: reason})
		if err != nil {
			tb.Fatal(err)
		}
		at = at.Add(time.Millisecond)
		return e
	}
	ghost := domain.ServerConfig{Type: domain.TransportStreamableHTTP, URL: "http://127.0.0.1:1/mcp"}
	var pos uint64
	for pos < uint64(n) {
		var fact any = domain.ServerRegistered{Scope: domain.UserScope("zed"), Name: "ghost", Config: ghost}
		if pos > 0 {
			fact = domain.ServerConfigChanged{Scope: domain.UserScope("zed"), Name: "ghost", Config: ghost, Changed: []string{"url"}}
		}
		read := pos
		e := env(fact, "")
		if _, err := st.Append(ctx, e.Subject, store.AnyVersion, e); err != nil {
			tb.Fatal(err)
		}
		pos++
		var refusals []events.Envelope
		for range min(9, n-int(pos)) {
			in := domain.DecisionInputs{Owner: "alice", Server: "ghost", Position: read, ExistingState: domain.ConnNone}
			refusals = append(refusals, env(domain.ConnectionRefused{Inputs: in, Rule: domain.RuleNoConfig, Count: 1}, string(domain.RuleNoConfig)))
		}
		if len(refusals) > 0 {
			if _, err := st.Append(ctx, refusals[0].Subject, store.AnyVersion, refusals...); err != nil {
				tb.Fatal(err)
			}
			pos += uint64(len(refusals))
		}
	}
	return st
}

// peakHeap runs fn and returns the most heap in use sampled while it ran.
func peakHeap(fn func()) uint64 {
	runtime.GC()
	var peak atomic.Uint64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	fn()
	close(stop)
	<-done
	return peak.Load()
}

func TestVerifyAll_MemoryDoesNotGrowWithTheLog(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 125k events")
	}
	// given two logs of the same mix, one four times the other
	small, large := refusalLog(t, 25_000), refusalLog(t, 100_000)

	// when each is verified
	heap := map[string]uint64{}
	for name, st := range map[string]*bolt.Store{"25k": small, "100k": large} {
		heap[name] = peakHeap(func() {
			rep, err := audit.VerifyAll(context.Background(), st, nil)
			if err != nil || !rep.OK || rep.Decisions == 0 {
				t.Fatalf("%s: %v, %d decisions, problems %.3v", name, err, rep.Decisions, rep.Problems)
			}
		})
	}

	// then the larger log needs no more memory than the smaller one, give or take the
	// garbage collector's slack
	t.Logf("peak heap in use: 25k events %d KiB, 100k events %d KiB", heap["25k"]>>10, heap["100k"]>>10)
	if heap["100k"] > heap["25k"]+16<<20 {
		t.Fatalf("peak heap grew from %d KiB to %d KiB with the log", heap["25k"]>>10, heap["100k"]>>10)
	}
}

// BenchmarkVerifyAll_Refusals verifies a 100k-event log of config changes and
// refusals (refusalLog: every decision's view is compared as of an earlier position)
// and reports events/s and the peak heap in use. BenchmarkVerifyLog does the same on
// a log the generator wrote (go run ./bench/auditlog).
//
//	go test -run '^$' -bench VerifyAll_Refusals -benchtime 3x ./audit
func BenchmarkVerifyAll_Refusals(b *testing.B) {
	st := refusalLog(b, 100_000)
	var events int
	var wall time.Duration
	var peak uint64
	for b.Loop() {
		t0 := time.Now()
		peak = max(peak, peakHeap(func() {
			rep, err := audit.VerifyAll(context.Background(), st, nil)
			if err != nil || !rep.OK {
				b.Fatalf("verify: %v, problems %.3v", err, rep.Problems)
			}
			events += rep.Events
		}))
		wall += time.Since(t0)
	}
	b.ReportMetric(float64(events)/wall.Seconds(), "events/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak_heap_MiB")
}
