package relay_test

import (
	"context"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/internal/testnats"
	"github.com/mcpes/mcpes/relay"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/bolt"
)

// benchTarget is a publisher with a subscriber behind it where one is needed.
type benchTarget struct {
	pub message.Publisher
}

// gochannelTarget is the in-process pub/sub with one subscriber on AllTopic, so each
// Publish waits for its ack.
func gochannelTarget(tb testing.TB) benchTarget {
	ip := relay.NewInProcess(nil)
	tb.Cleanup(func() { _ = ip.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	msgs, err := ip.PubSub().Subscribe(ctx, relay.AllTopic)
	if err != nil {
		tb.Fatal(err)
	}
	go func() {
		for m := range msgs {
			m.Ack()
		}
	}()
	return benchTarget{pub: ip.Publisher()}
}

// jetstreamTarget is an embedded JetStream; Publish returns after each PubAck.
func jetstreamTarget(tb testing.TB) benchTarget {
	ns := testnats.Start(tb, -1, tb.TempDir())
	return benchTarget{pub: newNATSPublisher(tb, ns.ClientURL())}
}

// bareLoop publishes evs the way the relay groups them (batches of the relay's size,
// AllTopic then each area topic), with payloads built beforehand.
func bareLoop(tb testing.TB, pub message.Publisher, evs []events.Envelope, batch int) {
	payloads := make([][]byte, len(evs))
	for i, e := range evs {
		p, err := relay.Payload(e)
		if err != nil {
			tb.Fatal(err)
		}
		payloads[i] = p
	}
	for lo := 0; lo < len(evs); lo += batch {
		hi := min(lo+batch, len(evs))
		for _, topic := range relay.Topics {
			var msgs []*message.Message
			for i := lo; i < hi; i++ {
				if topic == relay.AllTopic || relay.AreaTopic(events.Area(evs[i].Type)) == topic {
					msgs = append(msgs, relay.NewMessage(evs[i], payloads[i]))
				}
			}
			if len(msgs) > 0 {
				if err := pub.Publish(topic, msgs...); err != nil {
					tb.Fatal(err)
				}
			}
		}
	}
}

// freshCopies returns evs with new ids (so JetStream does not drop them as
// duplicates of the relay's run) and the same size and types.
func freshCopies(evs []events.Envelope) []events.Envelope {
	out := slices.Clone(evs)
	for i := range out {
		out[i].ID = uuid.Must(uuid.NewV7()).String()
	}
	return out
}

// BenchmarkRelay measures the relay (bolt store -> publisher, checkpoint included)
// against a bare watermill loop publishing the same payloads, batched and grouped the
// same way, to the same target. The machine is shared and noisy, so rounds of the two
// alternate and the medians are compared.
func BenchmarkRelay(b *testing.B) {
	for _, tc := range []struct {
		name   string
		target func(testing.TB) benchTarget
		chunk  int // events per round: about a second of work for either side
	}{{"gochannel", gochannelTarget, 10000}, {"jetstream", jetstreamTarget, 4000}} {
		b.Run(tc.name, func(b *testing.B) {
			chunk := tc.chunk
			st := newBoltStore(b, bolt.Options{})
			tgt := tc.target(b)
			var relayRates, baseRates []float64
			for round := range 5 * b.N {
				// the relay: the round's events are committed while it is stopped
				appendEvents(b, st, chunk, 500)
				evs, err := st.ReadAll(context.Background(), uint64(round*chunk+1), chunk)
				if err != nil || len(evs) != chunk {
					b.Fatalf("read back: %d events, %v", len(evs), err)
				}
				r, err := relay.New(relay.Config{Store: st, Publisher: tgt.pub, Name: "bench"})
				if err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				stop := runRelay(b, r)
				for r.Stats().Published < uint64(chunk) {
					time.Sleep(100 * time.Microsecond)
				}
				relayRates = append(relayRates, float64(chunk)/time.Since(t0).Seconds())
				stop()

				// the bare loop, on fresh ids so JetStream does not drop them
				base := freshCopies(evs)
				t1 := time.Now()
				bareLoop(b, tgt.pub, base, relay.DefaultBatchSize)
				baseRates = append(baseRates, float64(chunk)/time.Since(t1).Seconds())
			}
			rate, baseline := median(relayRates), median(baseRates)
			b.ReportMetric(rate, "events/s")
			b.ReportMetric(baseline, "baseline_events/s")
			b.ReportMetric(rate/baseline, "ratio")
		})
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkEndToEndLag appends 1,000 events/s for 3 seconds to a durable bolt store
// and measures append start -> subscriber receipt (p50_ms, p99_ms), beside the
// durable append alone (append_p50_ms). The JetStream subscriber is FollowNATS.
func BenchmarkEndToEndLag(b *testing.B) {
	for _, name := range []string{"gochannel", "jetstream"} {
		b.Run(name, func(b *testing.B) {
			for range b.N {
				measureLag(b, name, 1000, 3*time.Second)
			}
		})
	}
}

func measureLag(b *testing.B, target string, rate int, dur time.Duration) {
	st := newBoltStore(b, bolt.Options{})
	var (
		mu      sync.Mutex
		started = map[string]time.Time{}
		lags    []time.Duration
		appends []time.Duration
	)
	got := func(e events.Envelope) error {
		now := time.Now()
		mu.Lock()
		if t, ok := started[e.ID]; ok {
			lags = append(lags, now.Sub(t))
			delete(started, e.ID)
		}
		mu.Unlock()
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var pub message.Publisher
	switch target {
	case "gochannel":
		ip := relay.NewInProcess(nil)
		defer ip.Close()
		ch, err := ip.Subscribe(ctx, relay.Filter{})
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			for e := range ch {
				_ = got(e)
			}
		}()
		pub = ip.Publisher()
	default:
		ns := testnats.Start(b, -1, b.TempDir())
		pub = newNATSPublisher(b, ns.ClientURL())
		go func() { _ = relay.FollowNATS(ctx, ns.ClientURL(), "", relay.Filter{}, got) }()
	}
	r, err := relay.New(relay.Config{Store: st, Publisher: pub, Name: "lag"})
	if err != nil {
		b.Fatal(err)
	}
	stop := runRelay(b, r)
	defer stop()

	total := int(dur.Seconds() * float64(rate))
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := range total {
		<-tick.C
		stream, evs := batchEvents(b, i, i, 1)
		mu.Lock()
		started[evs[0].ID] = time.Now()
		mu.Unlock()
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			t0 := time.Now()
			if _, err := st.Append(context.Background(), stream, store.AnyVersion, evs...); err != nil {
				b.Error(err)
			}
			mu.Lock()
			appends = append(appends, time.Since(t0))
			mu.Unlock()
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(lags)
		mu.Unlock()
		if n == total || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lags) != total {
		b.Fatalf("received %d of %d events", len(lags), total)
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(lags[len(lags)/2]), "p50_ms")
	b.ReportMetric(ms(lags[len(lags)*99/100]), "p99_ms")
	// the durable append alone (fsync included), which the lag above contains
	sort.Slice(appends, func(i, j int) bool { return appends[i] < appends[j] })
	b.ReportMetric(ms(appends[len(appends)/2]), "append_p50_ms")
}
