package bolt_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/bolt"
)

const scanEvents = 200_000

// scanFile writes scanEvents events (without fsync, in batches of 256) to a new file
// and returns its path, closed.
func scanFile(b *testing.B) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "scan.db")
	s, err := bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	evs, _ := benchEvents(b, 256, 1)
	ctx := context.Background()
	for i := 0; i < scanEvents; i += len(evs) {
		for j := range evs {
			evs[j].ID = fmt.Sprintf("0190f1d2-0000-7000-8000-%012d", i+j)
			evs[j].Subject = fmt.Sprintf("conn/owner-%d/srv", i%1000)
		}
		if _, err := s.Append(ctx, evs[0].Subject, store.AnyVersion, evs...); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkScan measures what replay and startup build on: a raw ReadRecords scan,
// the scan with the chain check, and Open of a file.
//
//	go test -run '^$' -bench BenchmarkScan ./store/bolt
func BenchmarkScan(b *testing.B) {
	path := scanFile(b)
	s, err := bolt.Open(path, bolt.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	total, _, _ := s.Head(ctx)
	b.Run("ReadRecords", func(b *testing.B) {
		for b.Loop() {
			n := 0
			if err := s.ReadRecords(ctx, 1, func(uint64, []byte) error { n++; return nil }); err != nil || uint64(n) != total {
				b.Fatalf("%d records, %v", n, err)
			}
		}
		b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("ReadRecordsChained", func(b *testing.B) {
		for b.Loop() {
			prev := events.ZeroHash
			err := s.ReadRecords(ctx, 1, func(_ uint64, rec []byte) error {
				var err error
				prev, err = events.CheckRecord(prev, rec)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("Open200kReadOnly", func(b *testing.B) {
		for b.Loop() {
			o, err := bolt.Open(path, bolt.Options{ReadOnly: true})
			if err != nil {
				b.Fatal(err)
			}
			o.Close()
		}
	})
	b.Run("Open200k", func(b *testing.B) {
		copyPath := filepath.Join(b.TempDir(), "copy.db")
		if err := copyFile(path, copyPath); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			o, err := bolt.Open(copyPath, bolt.Options{})
			if err != nil {
				b.Fatal(err)
			}
			o.Close()
		}
	})
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o600)
}
