// Command rssclient measures what huge upstream answers cost mcpes's side: it opens
// n connections to bigserver with the upstream adapter, makes one call of the given
// size on each at once, and prints one JSON line: the calls that failed naming the
// limit, the other outcomes, and the process's peak resident memory (VmHWM).
//
//	rssclient -server BIN [-n 6] [-bytes 50000000] [-limit 0]                 # stdio
//	rssclient -url http://HOST/mcp -transport streamable-http [-notify] ...
//	rssclient -url http://HOST/sse -transport sse ...
//
// It is built without the race detector whatever the test run uses, so the figure
// is the service's own.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/upstream"
)

type report struct {
	Calls        int      `json:"calls"`
	LimitErrors  int      `json:"limitErrors"`
	Protocol     int      `json:"protocolClass"`
	Other        []string `json:"other,omitempty"`
	BaselineKiB  int      `json:"baselineRSSKiB"`
	PeakKiB      int      `json:"peakRSSKiB"`
	ElapsedMilli int64    `json:"elapsedMs"`
}

func main() {
	bin := flag.String("server", "", "bigserver binary (stdio)")
	u := flag.String("url", "", "bigserver URL (HTTP transports)")
	tr := flag.String("transport", "stdio", "stdio, streamable-http or sse")
	n := flag.Int("n", 6, "connections, one call each, all at once")
	size := flag.Int("bytes", 50_000_000, "size of each answer's text")
	limit := flag.Int64("limit", 0, "MaxMessageBytes (0: the default)")
	notify := flag.Bool("notify", false, "ask for a notification first (streamable HTTP answers as SSE)")
	protocol := flag.String("protocol", "2025-11-25", "protocol version (mcpes's default; empty: mcp-go's newest)")
	flag.Parse()

	cfg := domain.ServerConfig{Type: *tr, URL: *u, InitTimeoutMS: 30000, TimeoutMS: 120000}
	if *tr == domain.TransportStdio {
		cfg = domain.ServerConfig{Command: *bin, InitTimeoutMS: 30000, TimeoutMS: 120000}
	}
	opts := upstream.Options{Scope: domain.AppScope, MaxMessageBytes: *limit, ProtocolVersion: *protocol,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx := context.Background()
	conns := make([]*upstream.Conn, *n)
	for i := range conns {
		c, err := upstream.Dial(ctx, "big"+strconv.Itoa(i), cfg, opts)
		if err != nil {
			fail(err)
		}
		defer c.Close()
		conns[i] = c
	}
	rep := report{Calls: *n, BaselineKiB: status("VmRSS")}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for _, c := range conns {
		wg.Go(func() {
			_, err := c.CallTool(ctx, "big", map[string]any{"bytes": *size, "notify": *notify}, nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				rep.Other = append(rep.Other, "ok")
			case strings.Contains(err.Error(), "upstream message exceeds connections.maxMessageBytes"):
				rep.LimitErrors++
			default:
				rep.Other = append(rep.Other, err.Error())
			}
			if upstream.Classify(err) == domain.FailureProtocol {
				rep.Protocol++
			}
		})
	}
	wg.Wait()
	rep.ElapsedMilli = time.Since(start).Milliseconds()
	rep.PeakKiB = status("VmHWM")
	_ = json.NewEncoder(os.Stdout).Encode(rep)
}

// status returns a kB field of /proc/self/status.
func status(field string) int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		fail(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return kb
		}
	}
	fail(fmt.Errorf("no %s in /proc/self/status", field))
	return 0
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "rssclient:", err)
	os.Exit(1)
}
