package relay_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/internal/testnats"
	"github.com/mcpes/mcpes/relay"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/bolt"
)

func newNATSPublisher(tb testing.TB, url string) *relay.NATSPublisher {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := relay.NewNATSPublisher(ctx, relay.NATSConfig{URL: url, PublishTimeout: time.Second})
	if err != nil {
		tb.Fatalf("nats publisher: %v", err)
	}
	tb.Cleanup(func() { _ = p.Close() })
	return p
}

// streamInfo returns the state of a topic's stream.
func streamInfo(tb testing.TB, url, topic string) *jetstream.StreamInfo {
	tb.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := js.Stream(context.Background(), topic)
	if err != nil {
		tb.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return info
}

// streamMsgs returns how many messages a topic's stream holds.
func streamMsgs(tb testing.TB, url, topic string) uint64 {
	tb.Helper()
	return streamInfo(tb, url, topic).State.Msgs
}

func TestNATS_100kEvents_EveryIDInOrder(t *testing.T) {
	n := volume()
	// given a durable bolt store, an embedded JetStream, a relay and a subscriber
	st := newBoltStore(t, bolt.Options{})
	ns := testnats.Start(t, -1, t.TempDir())
	url := ns.ClientURL()
	r := newRelay(t, st, newNATSPublisher(t, url), "relay:nats")
	runRelay(t, r)
	sub := newCollector()
	follow(t, url, "", relay.Filter{}, sub)

	// when n events are appended while both run
	start := time.Now()
	ids := appendEvents(t, st, n, 500)
	appended := time.Since(start)

	// then the subscriber got every id, in log order, once (after dedupe), and the
	// stream holds each event once
	sub.waitFor(t, n, 3*time.Minute)
	t.Logf("%d events: appended in %s, received in %s", n, appended.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	got, _ := sub.snapshot()
	sameIDs(t, got, ids)
	if m := streamMsgs(t, url, relay.AllTopic); m != uint64(n) {
		t.Fatalf("stream %s holds %d messages, want %d", relay.AllTopic, m, n)
	}
}

func TestNATS_RelayCrash_RestartFromCheckpointLosesNothing(t *testing.T) {
	// given 3,000 stored events and a relay that crashes after ~1,200 messages
	// without checkpointing its last batch
	st := newBoltStore(t, bolt.Options{})
	ids := appendEvents(t, st, 3000, 100)
	ns := testnats.Start(t, -1, t.TempDir())
	url := ns.ClientURL()
	pub := newNATSPublisher(t, url)
	ctx, cancel := context.WithCancel(context.Background())
	crasher := &crashingPublisher{Publisher: pub, after: 1200, crash: cancel}
	if err := newRelay(t, st, crasher, "relay:nats").Run(ctx); err != nil {
		t.Fatalf("crashed run: %v", err)
	}
	cp, err := st.Checkpoint(context.Background(), "relay:nats")
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	if cp >= uint64(crasher.posted.Load()) {
		t.Fatalf("checkpoint %d covers all %d posted events", cp, crasher.posted.Load())
	}

	// when a new relay starts from the checkpoint and a subscriber reads everything
	runRelay(t, newRelay(t, st, pub, "relay:nats"))
	sub := newCollector()
	follow(t, url, "", relay.Filter{}, sub)

	// then it has every event once, in order; JetStream dropped the republished batch
	sub.waitFor(t, len(ids), time.Minute)
	got, _ := sub.snapshot()
	sameIDs(t, got, ids)
	waitCheckpoint(t, st, "relay:nats", uint64(len(ids)))
	if m := streamMsgs(t, url, relay.AllTopic); m != uint64(len(ids)) {
		t.Fatalf("stream holds %d messages, want %d (duplicates not dropped by msg id)", m, len(ids))
	}
}

func TestNATS_ServerRestart_RelayCatchesUpNothingLost(t *testing.T) {
	// given a relay and a durable subscriber on a JetStream server with a fixed port
	st := newBoltStore(t, bolt.Options{})
	dir := t.TempDir()
	port := testnats.FreePort(t) // not one the kernel hands out again while it is down
	ns := testnats.Start(t, port, dir)
	url := ns.ClientURL()
	r := newRelay(t, st, newNATSPublisher(t, url), "relay:nats")
	runRelay(t, r)
	sub := newCollector()
	follow(t, url, "restart", relay.Filter{}, sub)
	ids := appendEvents(t, st, 3000, 50)
	sub.waitFor(t, 1000, time.Minute)

	// when the server stops mid-stream, appends go on, and a new server starts on the
	// same port and store directory
	ns.Shutdown()
	ns.WaitForShutdown()
	ids = append(ids, appendEvents(t, st, 2000, 50)...)
	deadline := time.Now().Add(20 * time.Second)
	for r.Stats().LastError == "" {
		if time.Now().After(deadline) {
			t.Fatalf("relay saw no failure while NATS was down: %+v", r.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	lag, err := r.Lag(context.Background())
	if err != nil || lag.Events == 0 {
		t.Fatalf("lag while NATS down = %+v (%v), want events behind", lag, err)
	}
	testnats.Start(t, port, dir)

	// then the relay catches up and the subscriber has every event once, in order
	sub.waitFor(t, len(ids), 2*time.Minute)
	got, _ := sub.snapshot()
	sameIDs(t, got, ids)
	waitCheckpoint(t, st, "relay:nats", uint64(len(ids)))
	if s := r.Stats(); s.Retries == 0 || s.LastError != "" {
		t.Fatalf("stats after recovery = %+v", s)
	}
}

func TestFollowNATS_Durable_StopAndRestartResumesWithoutGap(t *testing.T) {
	// given 2,000 events relayed to JetStream
	st := newBoltStore(t, bolt.Options{})
	ns := testnats.Start(t, -1, t.TempDir())
	url := ns.ClientURL()
	runRelay(t, newRelay(t, st, newNATSPublisher(t, url), "relay:nats"))
	ids := appendEvents(t, st, 2000, 100)

	// when a durable follower stops after 700 events, 1,000 more are appended, and
	// it starts again with the same name
	first := newCollector()
	ctx, cancel := context.WithCancel(context.Background())
	err := relay.FollowNATS(ctx, url, "audit", relay.Filter{}, func(e events.Envelope) error {
		_ = first.add(e)
		if first.len() == 700 {
			cancel()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("first follow: %v", err)
	}
	ids = append(ids, appendEvents(t, st, 1000, 100)...)
	second := newCollector()
	follow(t, url, "audit", relay.Filter{}, second)
	firstIDs, firstSeqs := first.snapshot()
	second.waitForSeq(t, uint64(len(ids)), time.Minute)

	// then the second run resumed where the first stopped (not from the start), and
	// both runs together hold every event once, in order
	_, secondSeqs := second.snapshot()
	last := firstSeqs[len(firstSeqs)-1]
	if secondSeqs[0] > last+1 || secondSeqs[0] == 1 {
		t.Fatalf("second run starts at %d after the first ended at %d", secondSeqs[0], last)
	}
	secondIDs, _ := second.snapshot()
	merged := firstIDs
	for i, id := range secondIDs {
		if secondSeqs[i] > last {
			merged = append(merged, id)
		}
	}
	sameIDs(t, merged, ids)
}

func TestFollowNATS_FilterReadsAreaTopic(t *testing.T) {
	// given server and connection events relayed to JetStream
	st := newMemoryStore(t)
	ns := testnats.Start(t, -1, t.TempDir())
	url := ns.ClientURL()
	runRelay(t, newRelay(t, st, newNATSPublisher(t, url), "relay:nats"))
	appendEvents(t, st, 400, 10)
	evs, _ := st.ReadAll(context.Background(), 1, 400)
	var want []string
	for _, e := range evs {
		if e.Type == "mcpes.connection.lost.v1" {
			want = append(want, e.ID)
		}
	}

	// when following connection.lost only
	sub := newCollector()
	follow(t, url, "", relay.Filter{Types: []string{"connection.lost"}}, sub)

	// then exactly the connection events arrive, in order
	sub.waitFor(t, len(want), time.Minute)
	time.Sleep(50 * time.Millisecond)
	got, _ := sub.snapshot()
	sameIDs(t, got, want)
}

func TestFollowNATS_Errors(t *testing.T) {
	ns := testnats.Start(t, -1, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// given no relay has created the streams, then following fails with not found
	err := relay.FollowNATS(ctx, ns.ClientURL(), "", relay.Filter{}, func(events.Envelope) error { return nil })
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("no stream: err = %v", err)
	}
	// and a durable name with a dot is refused before connecting
	err = relay.FollowNATS(ctx, ns.ClientURL(), "a.b", relay.Filter{}, func(events.Envelope) error { return nil })
	if !errors.Is(err, relay.ErrInvalidConfig) {
		t.Fatalf("bad durable: err = %v", err)
	}
	// and out's error comes back as is
	st := newMemoryStore(t)
	runRelay(t, newRelay(t, st, newNATSPublisher(t, ns.ClientURL()), "relay:nats"))
	appendEvents(t, st, 3, 3)
	boom := errors.New("boom")
	err = relay.FollowNATS(ctx, ns.ClientURL(), "", relay.Filter{}, func(events.Envelope) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("out error: err = %v", err)
	}
	// and the ephemeral consumer is gone once FollowNATS returned
	if n := streamConsumers(t, ns.ClientURL(), relay.AllTopic); n != 0 {
		t.Fatalf("%d consumers left on %s", n, relay.AllTopic)
	}
}

// streamConsumers returns how many consumers a topic's stream has.
func streamConsumers(tb testing.TB, url, topic string) int {
	tb.Helper()
	return streamInfo(tb, url, topic).State.Consumers
}
