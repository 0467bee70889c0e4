package registry_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/registry"
)

func TestService_StartupInspect_SlowAndDeadServersDelayNoOne(t *testing.T) {
	// given six app servers: a good in-process one, the example clock server over
	// stdio and over streamable HTTP (subprocesses), a dead port and two servers that
	// never answer (initTimeout 2 s each)
	h := newHarness(t, nil, registry.Options{InspectOnPut: registry.InspectOff})
	good := startMCP(t, "alpha", "beta")
	hang1, held1 := startHanging(t)
	hang2, held2 := startHanging(t)
	const hangTimeout = 2 * time.Second
	file := map[string]domain.ServerConfig{
		"good":      httpConfig(good.URL),
		"clock":     {Command: clockBinary(t), InitTimeoutMS: 10000},
		"clockhttp": {Type: "http", URL: startClockHTTP(t), InitTimeoutMS: 10000},
		"dead":      {Type: "streamable-http", URL: "http://" + deadAddr(t) + "/mcp", InitTimeoutMS: 1000},
		"hang1":     {Type: "streamable-http", URL: hang1, InitTimeoutMS: hangTimeout.Milliseconds()},
		"hang2":     {Type: "streamable-http", URL: hang2, InitTimeoutMS: hangTimeout.Milliseconds()},
	}
	if _, err := h.Svc.Reconcile(ctx(t), registry.ConfigFile{Servers: file}); err != nil {
		t.Fatal(err)
	}
	if h.Svc.IsReady() {
		t.Fatal("ready before startup inspection")
	}

	// when the startup inspection runs
	var mu sync.Mutex
	seen := map[string]domain.InspectionOutcome{}
	at := map[string]time.Duration{}
	start := time.Now()
	err := h.Svc.StartupInspect(ctx(t), 0, func(name string, out domain.InspectionOutcome) {
		mu.Lock()
		seen[name], at[name] = out, time.Since(start)
		mu.Unlock()
	})
	elapsed := time.Since(start)

	// then it returns once the hanging ones timed out, together, not one after the
	// other, and the good server's result did not wait for them
	if err != nil {
		t.Fatal(err)
	}
	if elapsed < hangTimeout || elapsed >= 2*hangTimeout {
		t.Fatalf("startup inspection took %v, want about one initTimeout (%v)", elapsed, hangTimeout)
	}
	if at["good"] >= hangTimeout {
		t.Fatalf("the good server was recorded after %v, behind the hanging ones", at["good"])
	}
	if !h.Svc.IsReady() {
		t.Fatal("not ready after startup inspection")
	}
	if len(seen) != len(file) {
		t.Fatalf("progress saw %d servers, want %d", len(seen), len(file))
	}
	// and the good ones are inspected with their tools
	for name, want := range map[string]string{"good": "alpha", "clock": "now", "clockhttp": "echo"} {
		st := h.state(domain.AppScope, name)
		if !st.Inspected || st.InspectionFailed || st.LastSuccess == nil ||
			!slices.ContainsFunc(st.LastSuccess.Tools, func(tl domain.Tool) bool { return tl.Name == want }) {
			t.Fatalf("%s: %+v (outcome %+v), want inspected with tool %s", name, st, seen[name], want)
		}
	}
	// and the dead and hanging ones are stubs, classified
	for name, class := range map[string]domain.FailureClass{"dead": domain.FailureUnreachable,
		"hang1": domain.FailureTimeout, "hang2": domain.FailureTimeout} {
		st := h.state(domain.AppScope, name)
		if !st.InspectionFailed || st.FailureClass != class {
			t.Fatalf("%s: failed %v class %q (%s), want a %s stub", name, st.InspectionFailed, st.FailureClass, st.FailureMessage, class)
		}
	}
	// and nothing of the timed-out inspections is left talking to the hanging servers
	waitFor(t, 2*time.Second, func() bool { return held1.Load()+held2.Load() == 0 }, "hanging servers still hold requests")
}

func TestService_Reinspect_RecoveryStory(t *testing.T) {
	// given an app server registered while nothing listens on its port
	h := newHarness(t, nil, registry.Options{})
	addr := deadAddr(t)
	cfg := domain.ServerConfig{Type: "streamable-http", URL: "http://" + addr + "/mcp", InitTimeoutMS: 3000}
	put, err := h.Svc.Put(ctx(t), "admin", domain.AppScope, "flaky", cfg)
	if err != nil {
		t.Fatal(err)
	}
	st := h.state(domain.AppScope, "flaky")
	if !st.InspectionFailed || st.FailureClass != domain.FailureUnreachable {
		t.Fatalf("after put: %+v, want an unreachable stub", st)
	}

	// when it is reinspected while still down
	res, err := h.Svc.Reinspect(ctx(t), "admin", domain.AppScope, "flaky")

	// then the caller gets a structured failure, not an error, and the stub stays
	if err != nil {
		t.Fatal(err)
	}
	if res.Server != "flaky" || res.OK || res.Reason == "" {
		t.Fatalf("reinspect while down = %+v", res)
	}
	if st := h.state(domain.AppScope, "flaky"); !st.InspectionFailed || st.Version != put.Version {
		t.Fatalf("after failed reinspection: %+v", st)
	}

	// when the server comes up on that port and is reinspected
	up := startMCPOn(t, addr, "ping")
	res, err = h.Svc.Reinspect(ctx(t), "owner:ops", domain.AppScope, "flaky")

	// then it is recovered and its config version moved on
	if err != nil || !res.OK {
		t.Fatalf("reinspect when up = %+v, %v", res, err)
	}
	st = h.state(domain.AppScope, "flaky")
	if st.InspectionFailed || st.Version <= put.Version || st.LastSuccess == nil || !st.LastSuccess.Recovered {
		t.Fatalf("after recovery: %+v, want healthy at a version after %d", st, put.Version)
	}
	if up.Inspections() != 1 {
		t.Fatalf("server saw %d inspections, want 1", up.Inspections())
	}
	wantTypes := []string{events.TypeServerRegistered, events.TypeServerInspectionFailed,
		events.TypeServerReinspectionRequested, events.TypeServerInspectionFailed,
		events.TypeServerReinspectionRequested, events.TypeServerInspected}
	if got := h.streamTypes(t, domain.AppScope, "flaky"); !slices.Equal(got, wantTypes) {
		t.Fatalf("stream = %v\nwant %v", got, wantTypes)
	}
	if last := readEvent(t, h, h.head(t)); last.Actor != "owner:ops" || last.CausationID == "" {
		t.Fatalf("recovery event actor %q causation %q", last.Actor, last.CausationID)
	}

	// when it is reinspected again
	_, err = h.Svc.Reinspect(ctx(t), "admin", domain.AppScope, "flaky")
	// then it is not in a failed state
	wantErr(t, err, domain.ErrNotFailed)
	if err.Error() != "server flaky is not in a failed state" {
		t.Fatalf("message = %q", err)
	}
	// and an unknown server is not found
	_, err = h.Svc.Reinspect(ctx(t), "admin", domain.AppScope, "nope")
	wantErr(t, err, domain.ErrServerNotFound)
	if err.Error() != "server nope not found" {
		t.Fatalf("message = %q", err)
	}
}

func TestService_Reinspect_ConcurrentCallersShareOneInspection(t *testing.T) {
	// given a failed stub whose server has come back
	h := newHarness(t, nil, registry.Options{})
	addr := deadAddr(t)
	cfg := domain.ServerConfig{Type: "streamable-http", URL: "http://" + addr + "/mcp", InitTimeoutMS: 3000}
	if _, err := h.Svc.Put(ctx(t), "admin", domain.AppScope, "back", cfg); err != nil {
		t.Fatal(err)
	}
	up := startMCPOn(t, addr, "ping")

	// when ten callers reinspect it at once
	const n = 10
	results := make([]registry.ReinspectResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-gate
			results[i], errs[i] = h.Svc.Reinspect(ctx(t), "admin", domain.AppScope, "back")
		})
	}
	close(gate)
	wg.Wait()

	// then the server saw exactly one inspection
	if got, hs := up.Inspections(), up.Handshakes(); got != 1 || hs < 1 || hs > 2 {
		t.Fatalf("server saw %d inspections and %d handshakes, want 1 inspection (one connect)", got, hs)
	}
	// and every caller got that inspection's success or "not in a failed state"
	oks := 0
	for i := range n {
		switch {
		case errs[i] == nil && results[i].OK:
			oks++
		case errors.Is(errs[i], domain.ErrNotFailed):
		default:
			t.Fatalf("caller %d: %+v, %v", i, results[i], errs[i])
		}
	}
	if oks == 0 {
		t.Fatal("no caller got the inspection's result")
	}
	// and the final state is healthy, with one request and one recovery recorded
	st := h.state(domain.AppScope, "back")
	if st.InspectionFailed || st.LastSuccess == nil || !st.LastSuccess.Recovered {
		t.Fatalf("final state %+v", st)
	}
	types := h.streamTypes(t, domain.AppScope, "back")
	if count(types, events.TypeServerReinspectionRequested) != 1 || count(types, events.TypeServerInspected) != 1 {
		t.Fatalf("stream = %v", types)
	}
}

func TestService_Inspect_RecordsToolDrift(t *testing.T) {
	// given a server inspected with tools alpha and beta
	h := newHarness(t, nil, registry.Options{})
	up := startMCP(t, "alpha", "beta")
	if _, err := h.Svc.Put(ctx(t), "admin", domain.AppScope, "drifty", httpConfig(up.URL)); err != nil {
		t.Fatal(err)
	}
	first := h.state(domain.AppScope, "drifty").LastSuccess
	if first == nil || len(first.Tools) != 2 {
		t.Fatalf("first inspection = %+v", first)
	}

	// when the upstream drops alpha, adds gamma and it is inspected again
	up.MCP.DeleteTools("alpha")
	up.MCP.AddTool(echoTool("gamma"))
	out, err := h.Svc.Inspect(ctx(t), domain.AppScope, "drifty")

	// then the drift is recorded: gamma added, alpha removed
	if err != nil || !out.OK {
		t.Fatalf("inspect = %+v, %v", out, err)
	}
	last := readEvent(t, h, h.head(t))
	fact, err := events.Decode(last)
	if err != nil {
		t.Fatal(err)
	}
	drift, ok := fact.(domain.ServerToolsChanged)
	if !ok {
		t.Fatalf("last event is %s, want tools_changed", last.Type)
	}
	if !slices.Equal(drift.Added, []string{"gamma"}) || !slices.Equal(drift.Removed, []string{"alpha"}) ||
		drift.PrevDigest != first.Digest {
		t.Fatalf("drift = %+v", drift)
	}

	// when it is inspected once more without change
	head := h.head(t)
	if _, err := h.Svc.Inspect(ctx(t), domain.AppScope, "drifty"); err != nil {
		t.Fatal(err)
	}
	// then a success is recorded but no drift
	if got := readEvent(t, h, h.head(t)).Type; h.head(t) != head+1 || got != events.TypeServerInspected {
		t.Fatalf("after unchanged inspection: head %d→%d, last %s", head, h.head(t), got)
	}
}

func TestService_Inspect_UnauthorizedMarksRequiresOAuth(t *testing.T) {
	// given a server that answers 401 with an OAuth challenge
	h := newHarness(t, nil, registry.Options{})
	url := startUnauthorized(t)

	// when it is registered (and inspected)
	if _, err := h.Svc.Put(ctx(t), "admin", domain.AppScope, "secured", httpConfig(url)); err != nil {
		t.Fatal(err)
	}

	// then it requires OAuth and is not failed
	st := h.state(domain.AppScope, "secured")
	if !st.RequiresOAuth() || st.InspectionFailed || !st.Inspected {
		t.Fatalf("state = %+v, want requiresOAuth and not failed", st)
	}
	// and it cannot be reinspected as a failed server
	_, err := h.Svc.Reinspect(ctx(t), "admin", domain.AppScope, "secured")
	wantErr(t, err, domain.ErrNotFailed)
}

func TestService_Put_AsyncInspection(t *testing.T) {
	// given a registry that inspects in the background
	h := newHarness(t, nil, registry.Options{InspectOnPut: registry.InspectAsync})
	up := startMCP(t, "alpha")

	// when a server is put and the background work is awaited
	if _, err := h.Svc.Put(ctx(t), "admin", domain.AppScope, "bg", httpConfig(up.URL)); err != nil {
		t.Fatal(err)
	}
	h.Svc.Wait()

	// then its inspection was recorded
	if st := h.state(domain.AppScope, "bg"); !st.Inspected || st.InspectionFailed {
		t.Fatalf("state = %+v", st)
	}
}

func count(list []string, v string) int {
	n := 0
	for _, x := range list {
		if x == v {
			n++
		}
	}
	return n
}

func waitFor(tb testing.TB, d time.Duration, cond func() bool, msg string) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatal(msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestService_Close_CancelsRunningInspections(t *testing.T) {
	// given a background inspection of a server that never answers, with a long
	// initTimeout
	h := newHarness(t, nil, registry.Options{InspectOnPut: registry.InspectAsync})
	url, held := startHanging(t)
	cfg := domain.ServerConfig{Type: "streamable-http", URL: url, InitTimeoutMS: 60000}
	if _, err := h.Svc.Put(ctx(t), "admin", domain.AppScope, "slow", cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return held.Load() > 0 }, "inspection never reached the server")

	// when the service is closed
	start := time.Now()
	if err := h.Svc.Close(); err != nil {
		t.Fatal(err)
	}

	// then Close returns promptly, nothing talks to the server any more, and no
	// failure was recorded for an inspection the shutdown cut short
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v", d)
	}
	waitFor(t, 2*time.Second, func() bool { return held.Load() == 0 }, "requests still held after Close")
	if got := h.streamTypes(t, domain.AppScope, "slow"); !slices.Equal(got, []string{events.TypeServerRegistered}) {
		t.Fatalf("stream = %v", got)
	}
}

func TestService_Inspect_TimedOutStdioServerLeavesNoProcess(t *testing.T) {
	// given an app stdio server that never speaks (a sleep with an argument no other
	// process has) and a 1 s initTimeout
	h := newHarness(t, nil, registry.Options{InspectOnPut: registry.InspectOff})
	marker := fmt.Sprintf("%d.%03d", 900+os.Getpid()%100, time.Now().Nanosecond()%1000)
	cfg := domain.ServerConfig{Command: "sleep", Args: []string{marker}, InitTimeoutMS: 1000}
	if _, err := h.Svc.Put(ctx(t), "admin", domain.AppScope, "mute", cfg); err != nil {
		t.Fatal(err)
	}

	// when it is inspected
	out, err := h.Svc.Inspect(ctx(t), domain.AppScope, "mute")

	// then the inspection times out, the server is a stub, and its process is gone
	if err != nil || out.OK || out.Class != domain.FailureTimeout {
		t.Fatalf("inspect = %+v, %v; want a timeout", out, err)
	}
	if st := h.state(domain.AppScope, "mute"); !st.InspectionFailed {
		t.Fatalf("state = %+v", st)
	}
	waitFor(t, 3*time.Second, func() bool { return !processWithArg(t, marker) }, "the timed-out server's process survived")
}

// processWithArg reports whether a live process has arg in its command line.
func processWithArg(tb testing.TB, arg string) bool {
	tb.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		tb.Skip("no /proc")
	}
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		for _, a := range strings.Split(string(b), "\x00") {
			if a == arg {
				stat, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
				// A zombie has exited; only its parent's bookkeeping is left.
				if i := strings.LastIndexByte(string(stat), ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
					continue
				}
				return true
			}
		}
	}
	return false
}
