package relay_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/relay"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/bolt"
)

func newRelay(tb testing.TB, st store.Store, pub message.Publisher, name string) *relay.Relay {
	tb.Helper()
	r, err := relay.New(relay.Config{Store: st, Publisher: pub, Name: name,
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// subscribe collects the in-process events that pass f until cleanup.
func subscribe(tb testing.TB, ip *relay.InProcess, f relay.Filter) *collector {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	ch, err := ip.Subscribe(ctx, f)
	if err != nil {
		tb.Fatal(err)
	}
	c := newCollector()
	go func() {
		for e := range ch {
			_ = c.add(e)
		}
	}()
	return c
}

func TestRelay_GoChannel_EveryEventInOrderPerTopic(t *testing.T) {
	// given a bolt store, an in-process pub/sub with three subscribers, a running relay
	st := newBoltStore(t, bolt.Options{})
	ip := relay.NewInProcess(nil)
	t.Cleanup(func() { _ = ip.Close() })
	all := subscribe(t, ip, relay.Filter{})
	servers := subscribe(t, ip, relay.Filter{Types: []string{"server.reinspection_requested"}})
	conns := subscribe(t, ip, relay.Filter{SubjectPrefix: "conn/alice/"})
	r := newRelay(t, st, ip.Publisher(), "relay:inprocess")
	runRelay(t, r)

	// when 2,000 events are appended while the relay runs
	ids := appendEvents(t, st, 2000, 25)

	// then each subscriber gets exactly its events, in log order, once
	all.waitFor(t, len(ids), 30*time.Second)
	got, _ := all.snapshot()
	sameIDs(t, got, ids)
	var wantServer, wantConn []string
	evs, err := st.ReadAll(context.Background(), 1, len(ids))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if events.Area(e.Type) == "server" {
			wantServer = append(wantServer, e.ID)
		} else {
			wantConn = append(wantConn, e.ID)
		}
	}
	servers.waitFor(t, len(wantServer), 10*time.Second)
	conns.waitFor(t, len(wantConn), 10*time.Second)
	gotServer, _ := servers.snapshot()
	gotConn, _ := conns.snapshot()
	sameIDs(t, gotServer, wantServer)
	sameIDs(t, gotConn, wantConn)

	// and the checkpoint reaches the head, with no lag left
	waitCheckpoint(t, st, "relay:inprocess", uint64(len(ids)))
	lag, err := r.Lag(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if lag.Events != 0 || lag.Age != 0 || lag.Head != uint64(len(ids)) {
		t.Fatalf("lag after catching up = %+v, want none at head %d", lag, len(ids))
	}
}

func waitCheckpoint(tb testing.TB, st store.Store, name string, want uint64) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := st.Checkpoint(context.Background(), name)
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("checkpoint %s = %d (%v), want %d", name, got, err, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRelay_Message_CarriesIDPayloadAndMetadata(t *testing.T) {
	// given a relay to GoChannel and a raw watermill subscription to the server topic
	st := newMemoryStore(t)
	ip := relay.NewInProcess(nil)
	t.Cleanup(func() { _ = ip.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	msgs, err := ip.PubSub().Subscribe(ctx, relay.ServerTopic)
	if err != nil {
		t.Fatal(err)
	}
	runRelay(t, newRelay(t, st, ip.Publisher(), "relay:inprocess"))

	// when a server event with a correlation id is appended
	_, evs := batchEvents(t, 0, 7, 1)
	if _, err := st.Append(ctx, evs[0].Subject, store.NoStream, evs...); err != nil {
		t.Fatal(err)
	}
	stored, _ := st.ReadAll(ctx, 1, 1)

	// then the message is the CloudEvent with its hash, keyed by the event id
	select {
	case m := <-msgs:
		m.Ack()
		want := map[string]string{"type": events.TypeServerReinspectionRequested, "subject": "server/app/srv0",
			"sequence": "1", "correlation_id": "corr-7", "Nats-Msg-Id": stored[0].ID}
		for k, v := range want {
			if m.Metadata.Get(k) != v {
				t.Errorf("metadata %s = %q, want %q", k, m.Metadata.Get(k), v)
			}
		}
		if m.UUID != stored[0].ID {
			t.Errorf("uuid %s, want event id %s", m.UUID, stored[0].ID)
		}
		wantPayload, err := relay.Payload(stored[0])
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Payload) != string(wantPayload) {
			t.Errorf("payload\n%s\nwant the envelope's JSON with hash\n%s", m.Payload, wantPayload)
		}
		e, err := relay.DecodeMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		if e.Hash == "" || e.Hash != stored[0].Hash || e.PrevHash != stored[0].PrevHash {
			t.Errorf("payload hash %q prev %q, want %q %q", e.Hash, e.PrevHash, stored[0].Hash, stored[0].PrevHash)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no message")
	}
}

// flakyPublisher fails every call while failing is set and every third call
// otherwise, after letting the real publisher take the first half of the messages,
// so retries see partial batches.
type flakyPublisher struct {
	message.Publisher
	failing atomic.Bool
	calls   atomic.Int64
}

func (p *flakyPublisher) Publish(topic string, msgs ...*message.Message) error {
	n := p.calls.Add(1)
	if p.failing.Load() {
		return errors.New("broker down")
	}
	if n%3 == 0 {
		if err := p.Publisher.Publish(topic, msgs[:len(msgs)/2]...); err != nil {
			return err
		}
		return errors.New("connection reset mid-batch")
	}
	return p.Publisher.Publish(topic, msgs...)
}

func TestRelay_FailingPublisher_RetriedWithoutSkipping(t *testing.T) {
	// given a publisher that is down at first and then fails every third call halfway
	st := newMemoryStore(t)
	ip := relay.NewInProcess(nil)
	t.Cleanup(func() { _ = ip.Close() })
	sub := subscribe(t, ip, relay.Filter{})
	pub := &flakyPublisher{Publisher: ip.Publisher()}
	pub.failing.Store(true)
	r := newRelay(t, st, pub, "relay:flaky")
	runRelay(t, r)
	ids := appendEvents(t, st, 500, 10)

	// when the relay has retried for a while, the broker comes back
	deadline := time.Now().Add(10 * time.Second)
	for r.Stats().Retries < 3 || r.Stats().LastError == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no retries recorded: %+v", r.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	lag, err := r.Lag(context.Background())
	if err != nil || lag.Events != 500 || lag.Age <= 0 {
		t.Fatalf("lag while down = %+v (%v), want 500 events with an age", lag, err)
	}
	pub.failing.Store(false)

	// then the subscriber gets every event once, in order, and the error clears
	sub.waitFor(t, len(ids), 20*time.Second)
	got, _ := sub.snapshot()
	sameIDs(t, got, ids)
	waitCheckpoint(t, st, "relay:flaky", 500)
	if s := r.Stats(); s.LastError != "" || s.Published != 500 {
		t.Fatalf("stats after recovery = %+v", s)
	}
}

// crashingPublisher publishes for real, and once it has taken after messages it
// cancels the relay (a crash) and fails, so the batch it took is never checkpointed.
type crashingPublisher struct {
	message.Publisher
	after  int64
	taken  atomic.Int64
	crash  context.CancelFunc
	once   sync.Once
	posted atomic.Int64
}

func (p *crashingPublisher) Publish(topic string, msgs ...*message.Message) error {
	if err := p.Publisher.Publish(topic, msgs...); err != nil {
		return err
	}
	if topic == relay.AllTopic {
		p.posted.Add(int64(len(msgs)))
	}
	if p.taken.Add(int64(len(msgs))) >= p.after {
		p.once.Do(p.crash)
		return errors.New("crashed")
	}
	return nil
}

func TestRelay_Crash_InProcess_RestartFromCheckpointLosesNothing(t *testing.T) {
	// given 3,000 stored events and a relay that crashes after publishing ~1,000
	// messages, before checkpointing its last batch
	st := newBoltStore(t, bolt.Options{})
	ids := appendEvents(t, st, 3000, 100)
	ip := relay.NewInProcess(nil)
	t.Cleanup(func() { _ = ip.Close() })
	raw := newCollector()
	ctxSub, cancelSub := context.WithCancel(context.Background())
	t.Cleanup(cancelSub)
	msgs, err := ip.PubSub().Subscribe(ctxSub, relay.AllTopic)
	if err != nil {
		t.Fatal(err)
	}
	deduped := newCollector()
	seen := relay.NewDedupe(0, 0)
	go func() {
		for m := range msgs {
			e, err := relay.DecodeMessage(m)
			m.Ack()
			if err != nil {
				continue
			}
			_ = raw.add(e)
			if seen.Fresh(e) {
				_ = deduped.add(e)
			}
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	crasher := &crashingPublisher{Publisher: ip.Publisher(), after: 1000, crash: cancel}
	r1 := newRelay(t, st, crasher, "relay:crash")
	if err := r1.Run(ctx); err != nil {
		t.Fatalf("crashed run: %v", err)
	}
	cp, err := st.Checkpoint(context.Background(), "relay:crash")
	if err != nil {
		t.Fatal(err)
	}
	if cp >= uint64(crasher.posted.Load()) {
		t.Fatalf("checkpoint %d covers all %d posted events: the crash did not lose a batch", cp, crasher.posted.Load())
	}

	// when a new relay starts from the checkpoint
	runRelay(t, newRelay(t, st, ip.Publisher(), "relay:crash"))

	// then after dedupe the subscriber has every event once, in order, and the raw
	// stream shows the redelivered batch
	deduped.waitFor(t, len(ids), 30*time.Second)
	got, _ := deduped.snapshot()
	sameIDs(t, got, ids)
	raw.waitFor(t, len(ids)+int(uint64(crasher.posted.Load())-cp), 10*time.Second)
	if n := raw.len(); n <= len(ids) {
		t.Fatalf("raw deliveries %d: expected the un-checkpointed batch again", n)
	}
}

func TestRelay_Lag_BeforeRun_ReadsStoredCheckpoint(t *testing.T) {
	// given 10 events, 4 of them checkpointed by an earlier run
	st := newMemoryStore(t)
	appendEvents(t, st, 10, 5)
	if err := st.SetCheckpoint(context.Background(), "relay:x", 4); err != nil {
		t.Fatal(err)
	}
	r := newRelay(t, st, relay.NewInProcess(nil).Publisher(), "relay:x")

	// when the lag is read before Run
	time.Sleep(2 * time.Millisecond)
	lag, err := r.Lag(context.Background())

	// then it counts from the stored checkpoint and ages the 5th event
	if err != nil {
		t.Fatal(err)
	}
	if lag.Head != 10 || lag.Published != 4 || lag.Events != 6 || lag.Age < 2*time.Millisecond {
		t.Fatalf("lag = %+v", lag)
	}
}

func TestRelay_Run_SecondRunAndClosedStore(t *testing.T) {
	// given a running relay
	st := newMemoryStore(t)
	r := newRelay(t, st, relay.NewInProcess(nil).Publisher(), "relay:y")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	for !r.Stats().Running {
		time.Sleep(time.Millisecond)
	}

	// when Run is called again, then ErrRunning
	if err := r.Run(ctx); !errors.Is(err, relay.ErrRunning) {
		t.Fatalf("second Run = %v, want ErrRunning", err)
	}
	// when the store closes, then Run ends with store.ErrClosed
	_ = st.Close()
	select {
	case err := <-done:
		if !errors.Is(err, store.ErrClosed) {
			t.Fatalf("Run after close = %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop on a closed store")
	}
}

func TestNew_InvalidConfig(t *testing.T) {
	st := newMemoryStore(t)
	pub := relay.NewInProcess(nil).Publisher()
	for name, cfg := range map[string]relay.Config{
		"no name":         {Store: st, Publisher: pub},
		"backoff min>max": {Store: st, Publisher: pub, Name: "r", MinBackoff: time.Second, MaxBackoff: time.Millisecond},
	} {
		if _, err := relay.New(cfg); !errors.Is(err, relay.ErrInvalidConfig) {
			t.Errorf("%s: err = %v, want ErrInvalidConfig", name, err)
		}
	}
}

func TestInProcess_Follow_HistoryThenLiveWithoutGap(t *testing.T) {
	// given 600 stored events, a relay publishing to the in-process pub/sub
	st := newBoltStore(t, bolt.Options{})
	ids := appendEvents(t, st, 600, 20)
	ip := relay.NewInProcess(nil)
	t.Cleanup(func() { _ = ip.Close() })
	runRelay(t, newRelay(t, st, ip.Publisher(), "relay:inprocess"))

	// when a follower starts after position 100 while more events are appended
	c := newCollector()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ip.Follow(ctx, st, 100, relay.Filter{}, c.add) }()
	more := appendEvents(t, st, 400, 7)
	ids = append(ids[100:], more...)

	// then it gets 101..1000 once each, in order, then stops cleanly
	c.waitFor(t, len(ids), 30*time.Second)
	got, _ := c.snapshot()
	sameIDs(t, got, ids)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Follow = %v", err)
	}
}

func TestInProcess_Follow_OutErrorStops(t *testing.T) {
	// given stored events and a callback that fails on the third
	st := newMemoryStore(t)
	appendEvents(t, st, 5, 5)
	ip := relay.NewInProcess(nil)
	t.Cleanup(func() { _ = ip.Close() })
	boom := errors.New("boom")
	n := 0
	// when following, then the callback's error comes back as is
	err := ip.Follow(context.Background(), st, 0, relay.Filter{}, func(events.Envelope) error {
		if n++; n == 3 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || n != 3 {
		t.Fatalf("Follow = %v after %d calls, want boom after 3", err, n)
	}
}

func TestInProcess_OnInspectionFailed_AlertsOnlyFailures(t *testing.T) {
	// given the alert hook subscribed and a relay running
	st := newMemoryStore(t)
	ip := relay.NewInProcess(nil)
	t.Cleanup(func() { _ = ip.Close() })
	got := make(chan domain.ServerInspectionFailed, 4)
	ctx, cancel := context.WithCancel(context.Background())
	hookDone, err := ip.OnInspectionFailed(ctx, func(_ events.Envelope, f domain.ServerInspectionFailed) { got <- f })
	if err != nil {
		t.Fatal(err)
	}
	runRelay(t, newRelay(t, st, ip.Publisher(), "relay:inprocess"))

	// when a registration, a failed inspection and a successful one are appended
	appendFact(t, st, domain.ServerRegistered{Scope: domain.AppScope, Name: "files"})
	appendFact(t, st, domain.ServerInspectionFailed{Scope: domain.AppScope, Name: "files",
		Class: domain.FailureTimeout, Message: "initialize timed out"})
	appendFact(t, st, domain.ServerInspected{Scope: domain.AppScope, Name: "files"})
	appendFact(t, st, domain.ServerReinspectionRequested{Scope: domain.AppScope, Name: "files"})

	// then exactly the failure is alerted, with its fields
	select {
	case f := <-got:
		if f.Name != "files" || f.Class != domain.FailureTimeout || f.Message != "initialize timed out" {
			t.Fatalf("alert = %+v", f)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no alert")
	}
	select {
	case f := <-got:
		t.Fatalf("unexpected second alert %+v", f)
	case <-time.After(100 * time.Millisecond):
	}
	cancel()
	select {
	case <-hookDone:
	case <-time.After(10 * time.Second):
		t.Fatal("hook did not stop")
	}
}

func TestRelay_CleanStop_CheckpointsEverythingAcknowledged(t *testing.T) {
	// given a relay that has published 1,000 events
	st := newBoltStore(t, bolt.Options{})
	appendEvents(t, st, 1000, 100)
	r := newRelay(t, st, relay.NewInProcess(nil).Publisher(), "relay:stop")
	stop := runRelay(t, r)
	for r.Stats().Published < 1000 {
		time.Sleep(time.Millisecond)
	}

	// when it stops
	stop()

	// then the checkpoint already names the last event, and a new relay has no lag
	cp, err := st.Checkpoint(context.Background(), "relay:stop")
	if err != nil || cp != 1000 {
		t.Fatalf("checkpoint after stop = %d (%v), want 1000", cp, err)
	}
	lag, err := newRelay(t, st, relay.NewInProcess(nil).Publisher(), "relay:stop").Lag(context.Background())
	if err != nil || lag.Events != 0 {
		t.Fatalf("lag of a new relay = %+v (%v)", lag, err)
	}
}
