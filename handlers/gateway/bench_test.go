package gateway_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpes/mcpes/domain"
)

// BenchmarkToolCall times echo through /mcp and straight to the same clock (its own
// process, streamable HTTP), interleaved call by call, and reports the gateway's
// added latency at p50 and p99 (targets: ≤ 0.3 ms and ≤ 2 ms) and the p50 ratio.
// bench/gateway compares with the npm peers too.
func BenchmarkToolCall(b *testing.B) {
	e := newEnv(b)
	clock := startClock(b, "127.0.0.1:0")
	e.put(domain.AppScope, "clock", httpCfg(clock.URL))
	pin := mcp.ProtocolVersion20251125
	direct := goClient(b, clock.URL, "", pin)
	via := goClient(b, e.URL(), aliceToken, pin)
	ctx := context.Background()
	call := func(c *client.Client, name string) time.Duration {
		start := time.Now()
		res, err := callTool(ctx, c, name, map[string]any{"text": "ping"})
		d := time.Since(start)
		if err != nil || text(res) != "ping" {
			b.Fatalf("%s: %+v %v", name, res, err)
		}
		return d
	}
	for range 100 {
		call(direct, "echo")
		call(via, "clock__echo")
	}
	dd := make([]time.Duration, 0, b.N)
	dv := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		dd = append(dd, call(direct, "echo"))
		dv = append(dv, call(via, "clock__echo"))
	}
	b.StopTimer()
	slices.Sort(dd)
	slices.Sort(dv)
	q := func(d []time.Duration, p int) float64 {
		return float64(d[min(len(d)-1, len(d)*p/100)]) / float64(time.Millisecond)
	}
	b.ReportMetric(q(dv, 50)-q(dd, 50), "added-p50-ms")
	b.ReportMetric(q(dv, 99)-q(dd, 99), "added-p99-ms")
	b.ReportMetric(q(dv, 50)/q(dd, 50), "p50-ratio")
}
