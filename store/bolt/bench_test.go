package bolt_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/bolt"
	"github.com/mcpes/mcpes/store/storetest"
)

const (
	benchProducers = 64
	benchRounds    = 8
)

// benchEvents returns n unsealed envelopes of about 300 bytes of canonical JSON,
// spread over streams, and the records the store would write for them.
func benchEvents(tb testing.TB, n, streams int) ([]events.Envelope, [][]byte) {
	tb.Helper()
	evs := make([]events.Envelope, n)
	recs := make([][]byte, n)
	prev := events.ZeroHash
	for i := range evs {
		e := storetest.Event(tb, fmt.Sprintf("conn/owner-%d/srv", i%streams), i)
		e.Reason = ""
		e.Data = []byte(`{"owner":"owner","server":"srv","pad":"` + strings.Repeat("x", 24) + `"}`)
		evs[i] = e
		_, canon, sum, err := events.Seal(e, uint64(i+1), uint64(i/streams+1), prev)
		if err != nil {
			tb.Fatal(err)
		}
		recs[i], prev = events.EncodeRecord(canon, sum), sum
	}
	return evs, recs
}

// baseline is the plain bbolt loop the store is measured against: one writer
// goroutine takes up to 256 pending pre-encoded records, writes them in one fsync'd
// Update keyed by position (no hashing, no indexes), and acknowledges each.
type baseline struct {
	db      *bbolt.DB
	reqs    chan baselineReq
	stop    chan struct{}
	seq     uint64
	commits atomic.Int64
}

type baselineReq struct {
	rec  []byte
	done chan struct{}
}

func newBaseline(tb testing.TB, noSync bool) *baseline {
	tb.Helper()
	db, err := bbolt.Open(filepath.Join(tb.TempDir(), "baseline.db"), 0o600,
		&bbolt.Options{FreelistType: bbolt.FreelistMapType, NoSync: noSync}) // the store's options
	if err != nil {
		tb.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("log")); return err }); err != nil {
		tb.Fatal(err)
	}
	bl := &baseline{db: db, reqs: make(chan baselineReq), stop: make(chan struct{})}
	go bl.writer()
	tb.Cleanup(func() { close(bl.stop); db.Close() })
	return bl
}

func (bl *baseline) writer() {
	batch := make([]baselineReq, 0, 256)
	for {
		select {
		case r := <-bl.reqs:
			batch = append(batch[:0], r)
		case <-bl.stop:
			return
		}
	drain:
		for len(batch) < 256 {
			select {
			case r := <-bl.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		err := bl.db.Update(func(tx *bbolt.Tx) error {
			b := tx.Bucket([]byte("log"))
			b.FillPercent = 1.0
			for _, r := range batch {
				bl.seq++
				if err := b.Put(binary.BigEndian.AppendUint64(nil, bl.seq), r.rec); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			panic(err)
		}
		bl.commits.Add(1)
		for _, r := range batch {
			close(r.done)
		}
	}
}

// run writes recs from producers goroutines, each waiting for every acknowledgement,
// and returns the elapsed time.
func (bl *baseline) run(recs [][]byte, producers int) time.Duration {
	start := time.Now()
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := p; i < len(recs); i += producers {
				r := baselineReq{rec: recs[i], done: make(chan struct{})}
				bl.reqs <- r
				<-r.done
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// storeConcurrent appends evs to the store from producers goroutines, one event per
// Append, each producer on its own streams. Returns the elapsed time.
func storeConcurrent(tb testing.TB, s *bolt.Store, evs []events.Envelope, producers int) time.Duration {
	tb.Helper()
	var failed atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := p; i < len(evs); i += producers {
				if _, err := s.Append(context.Background(), evs[i].Subject, store.AnyVersion, evs[i]); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		tb.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkAppend measures durable appends against plain bbolt writing the same bytes
// in the same run:
//
//	go test -run '^$' -bench BenchmarkAppend -benchtime 20000x ./store/bolt
func BenchmarkAppend(b *testing.B) {
	concurrent := func(b *testing.B, noSync bool) {
		evs, recs := benchEvents(b, b.N, benchProducers)
		s := openBench(b, bolt.Options{NoSync: noSync})
		bl := newBaseline(b, noSync)
		b.ResetTimer()
		// Alternate rounds of the two so that a slow phase of the disk hits both alike.
		var base, got time.Duration
		for lo := 0; lo < b.N; {
			hi := min(b.N, lo+max(b.N/benchRounds, 1))
			base += bl.run(recs[lo:hi], benchProducers)
			got += storeConcurrent(b, s, evs[lo:hi], benchProducers)
			lo = hi
		}
		b.StopTimer()
		eps, beps := float64(b.N)/got.Seconds(), float64(b.N)/base.Seconds()
		st := s.Stats()
		b.ReportMetric(eps, "events/s")
		b.ReportMetric(beps, "baseline_events/s")
		b.ReportMetric(eps/beps, "ratio")
		b.ReportMetric(float64(st.Events)/float64(max(st.Commits, 1)), "events/commit")
		b.ReportMetric(float64(len(recs[0])), "record_bytes")
		b.ReportMetric(float64(st.Writes)/float64(max(st.Commits, 1)), "writes/commit")
		bc := float64(max(bl.commits.Load(), 1))
		b.ReportMetric(float64(b.N)/bc, "baseline_events/commit")
		b.ReportMetric(float64(baselineWrites(bl.db))/bc, "baseline_writes/commit")
	}
	b.Run("concurrent64", func(b *testing.B) { concurrent(b, false) })
	// Without fsync both sides are CPU-bound: this shows the cost of hashing, JSON
	// and indexes, which a fast disk would expose.
	b.Run("concurrent64-nosync", func(b *testing.B) { concurrent(b, true) })
	b.Run("single", func(b *testing.B) {
		evs, recs := benchEvents(b, b.N, 8)
		s := openBench(b, bolt.Options{})
		db, err := bbolt.Open(filepath.Join(b.TempDir(), "baseline.db"), 0o600,
			&bbolt.Options{FreelistType: bbolt.FreelistMapType}) // the store's options
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		if err := db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("log")); return err }); err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		b.ResetTimer()
		// Interleave the two so that a noisy moment of the disk hits both alike.
		var base, got time.Duration
		for i := range b.N {
			t0 := time.Now()
			err := db.Update(func(tx *bbolt.Tx) error {
				bk := tx.Bucket([]byte("log"))
				bk.FillPercent = 1.0
				return bk.Put(binary.BigEndian.AppendUint64(nil, uint64(i+1)), recs[i])
			})
			t1 := time.Now()
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.Append(ctx, evs[i].Subject, store.AnyVersion, evs[i]); err != nil {
				b.Fatal(err)
			}
			base, got = base+t1.Sub(t0), got+time.Since(t1)
		}
		b.StopTimer()
		ns, bns := float64(got.Nanoseconds())/float64(b.N), float64(base.Nanoseconds())/float64(b.N)
		b.ReportMetric(ns, "ns/append")
		b.ReportMetric(bns, "baseline_ns")
		b.ReportMetric(ns/bns, "ratio")
	})
}

func openBench(b *testing.B, opts bolt.Options) *bolt.Store {
	b.Helper()
	s, err := bolt.Open(filepath.Join(b.TempDir(), "events.db"), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { checkAndClose(b, s) })
	return s
}

func baselineWrites(db *bbolt.DB) int64 {
	st := db.Stats()
	return st.TxStats.GetWrite()
}
