package upstream

import (
	"context"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpes/mcpes/domain"
)

// BenchmarkDial measures streamable-HTTP connect + initialize against an
// in-process server: a bare mcp-go client (the baseline) and upstream.Dial, in the
// same run. It reports bare-ms, dial-ms and dial/bare.
//
//	go test -run '^$' -bench BenchmarkDial -benchtime 200x ./upstream/
func BenchmarkDial(b *testing.B) {
	ts, _ := inProcessHTTP(b)
	ctx := context.Background()
	// Each returns how long connect + initialize took; Close is not counted.
	bare := func() time.Duration {
		t0 := time.Now()
		c, err := client.NewStreamableHttpClient(ts.URL)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			b.Fatal(err)
		}
		var in mcp.InitializeRequest
		in.Params.ClientInfo = mcp.Implementation{Name: "bench", Version: "0"}
		if _, err := c.Initialize(ctx, in); err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		_ = c.Close()
		return d
	}
	cfg := domain.ServerConfig{Type: "streamable-http", URL: ts.URL}
	opts := appOpts(b)
	dial := func() time.Duration {
		t0 := time.Now()
		c, err := Dial(ctx, "clock", cfg, opts)
		if err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		_ = c.Close()
		return d
	}
	// Warm both paths (keep-alive sockets, lazy init).
	for range 5 {
		bare()
		dial()
	}
	b.ResetTimer()
	var bareT, dialT time.Duration
	for i := 0; i < b.N; i++ {
		// Alternate so drift on a noisy machine hits both alike.
		bareT += bare()
		dialT += dial()
	}
	n := float64(b.N)
	b.ReportMetric(float64(bareT.Microseconds())/1000/n, "bare-ms")
	b.ReportMetric(float64(dialT.Microseconds())/1000/n, "dial-ms")
	b.ReportMetric(float64(dialT)/float64(bareT), "dial/bare")
}
