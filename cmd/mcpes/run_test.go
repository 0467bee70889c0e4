package main

import (
	"context"
	"testing"
	"time"

	"github.com/mcpes/mcpes/config"
)

// runService runs the service on cfg (defaults applied), waits until /readyz says
// ready, and returns it with its base URL; it is closed when the test ends.
func runService(tb testing.TB, cfg *config.Config) (*Main, string) {
	tb.Helper()
	cfg.SetDefaults()
	m := &Main{Config: cfg, Logger: discardLogger()}
	ctx := context.Background()
	if err := m.Run(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = m.Close(ctx) })
	base := "http://" + m.Addr()
	deadline := time.Now().Add(20 * time.Second)
	for get(tb, base+"/readyz") != 200 {
		if time.Now().After(deadline) {
			tb.Fatal("never ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return m, base
}
