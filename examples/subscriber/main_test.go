package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/internal/testevents"
	"github.com/mcpes/mcpes/internal/testnats"
	"github.com/mcpes/mcpes/relay"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/memory"
)

// receiver is a webhook endpoint that answers 503 to the first call, then records.
type receiver struct {
	mu    sync.Mutex
	calls int
	got   []Notification
	ch    chan struct{}
}

func newReceiver(tb testing.TB) (*receiver, string) {
	tb.Helper()
	rc := &receiver{ch: make(chan struct{}, 16)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.calls++
		if rc.calls == 1 {
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return
		}
		var n Notification
		if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&n) != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		rc.got = append(rc.got, n)
		rc.ch <- struct{}{}
	}))
	tb.Cleanup(srv.Close)
	return rc, srv.URL
}

func (rc *receiver) waitFor(tb testing.TB, n int) []Notification {
	tb.Helper()
	deadline := time.After(30 * time.Second)
	for {
		rc.mu.Lock()
		if len(rc.got) >= n {
			got := append([]Notification(nil), rc.got...)
			rc.mu.Unlock()
			return got
		}
		rc.mu.Unlock()
		select {
		case <-rc.ch:
		case <-deadline:
			tb.Fatalf("webhook got %d notifications, want %d", len(rc.got), n)
		}
	}
}

func appendFact(tb testing.TB, st store.Store, fact any) {
	tb.Helper()
	testevents.Append(tb, st, "system", fact)
}

// appendStory appends a registration, a failed inspection, a recovery with tool drift
// and unrelated noise: two of them are worth a webhook call.
func appendStory(tb testing.TB, st store.Store) {
	tb.Helper()
	appendFact(tb, st, domain.ServerRegistered{Scope: domain.AppScope, Name: "files"})
	appendFact(tb, st, domain.ServerInspectionFailed{Scope: domain.AppScope, Name: "files",
		Class: domain.FailureUnreachable, Message: "connection refused"})
	appendFact(tb, st, domain.ServerReinspectionRequested{Scope: domain.AppScope, Name: "files"})
	appendFact(tb, st, domain.ServerInspected{Scope: domain.AppScope, Name: "files"})
	appendFact(tb, st, domain.ServerToolsChanged{Scope: domain.AppScope, Name: "files",
		PrevDigest: "a", Digest: "b", Added: []string{"search"}, Removed: []string{"grep"}})
	appendFact(tb, st, domain.ConnectionLost{Owner: "alice", Server: "files", Error: "eof"})
}

func checkStory(tb testing.TB, got []Notification) {
	tb.Helper()
	if len(got) != 2 {
		tb.Fatalf("notifications = %+v, want 2", got)
	}
	f, d := got[0], got[1]
	if f.Kind != "inspection_failed" || f.Server != "files" || f.Scope != "app" ||
		f.Class != "unreachable" || f.Message != "connection refused" || f.Sequence != 2 {
		tb.Errorf("failure notification = %+v", f)
	}
	if d.Kind != "tools_changed" || d.Server != "files" || len(d.Added) != 1 || d.Added[0] != "search" ||
		len(d.Removed) != 1 || d.Removed[0] != "grep" || d.Sequence != 5 || d.Event.Type != events.TypeServerToolsChanged {
		tb.Errorf("drift notification = %+v", d)
	}
}

func TestInProcess_PostsFailuresAndDriftToWebhook(t *testing.T) {
	// given an in-process pub/sub with the webhook forwarder subscribed, and a relay
	st := memory.New()
	t.Cleanup(func() { _ = st.Close() })
	ip := relay.NewInProcess(nil)
	t.Cleanup(func() { _ = ip.Close() })
	rc, url := newReceiver(t)
	ctx, cancel := context.WithCancel(context.Background())
	wait, err := startInProcess(ctx, ip, &Webhook{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	r, err := relay.New(relay.Config{Store: st, Publisher: ip.Publisher(), Name: "relay:inprocess"})
	if err != nil {
		t.Fatal(err)
	}
	relayDone := make(chan error, 1)
	go func() { relayDone <- r.Run(ctx) }()

	// when the story is appended
	appendStory(t, st)

	// then the failure and the drift are posted, in order, after one retried 503
	checkStory(t, rc.waitFor(t, 2))
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if err := <-relayDone; err != nil {
		t.Fatal(err)
	}
}

func TestRun_NATS_PostsFailuresAndDriftToWebhook(t *testing.T) {
	// given an embedded JetStream with the relay publishing a stored story to it
	ns := testnats.Start(t, -1, t.TempDir())
	st := memory.New()
	t.Cleanup(func() { _ = st.Close() })
	appendStory(t, st)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub, err := relay.NewNATSPublisher(ctx, relay.NATSConfig{URL: ns.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	r, err := relay.New(relay.Config{Store: st, Publisher: pub, Name: "relay:nats"})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.Run(ctx) }()

	// when the subscriber program runs against it
	rc, url := newReceiver(t)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-nats", ns.ClientURL(), "-durable", "alerts", "-webhook", url}, nil)
	}()

	// then the two notifications arrive, and the program stops cleanly
	checkStory(t, rc.waitFor(t, 2))
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run = %v", err)
	}
}

func TestRun_RequiresNATSAndWebhook(t *testing.T) {
	var out sink
	if err := run(context.Background(), []string{"-webhook", "http://127.0.0.1:1/"}, &out); err == nil {
		t.Fatal("run without -nats succeeded")
	}
	if err := run(context.Background(), []string{"-nats", "nats://127.0.0.1:1"}, &out); err == nil {
		t.Fatal("run without -webhook succeeded")
	}
}

type sink struct{ b []byte }

func (s *sink) Write(p []byte) (int, error) { s.b = append(s.b, p...); return len(p), nil }

func TestWebhook_ClientErrorIsNotRetried(t *testing.T) {
	// given a receiver that always answers 400
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls++
		http.Error(w, "no", http.StatusBadRequest)
	}))
	defer srv.Close()
	e, err := events.New(domain.ServerInspectionFailed{Scope: domain.AppScope, Name: "x", Class: domain.FailureAuth},
		events.Meta{ID: uuid.Must(uuid.NewV7()).String(), Source: "mcpes://t", Time: time.Now(), Actor: "system"})
	if err != nil {
		t.Fatal(err)
	}
	// when posting, then it fails after one call
	if err := (&Webhook{URL: srv.URL}).Post(context.Background(), e); err == nil || calls != 1 {
		t.Fatalf("post = %v after %d calls, want an error after 1", err, calls)
	}
}
