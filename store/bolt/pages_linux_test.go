package bolt_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/bolt"
)

// mappedKiB is how much of path is resident in this process's mappings of it
// (/proc/self/smaps).
func mappedKiB(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skip("no /proc/self/smaps:", err)
	}
	defer f.Close()
	kib, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) >= 5 && strings.Contains(fields[0], "-"):
			in = len(fields) >= 6 && fields[5] == path
		case in && len(fields) >= 2 && fields[0] == "Rss:":
			n, _ := strconv.Atoi(fields[1])
			kib += n
		}
	}
	return kib
}

func TestReadRecords_LongScanReadsEverythingAndReleasesThePages(t *testing.T) {
	// given a file of 60,000 events with 1 KiB of data each (~135 MB)
	path := filepath.Join(t.TempDir(), "scan.db")
	s, err := bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	evs, _ := benchEvents(t, 500, 1)
	pad := `{"pad":"` + strings.Repeat("x", 1024) + `"}`
	const n = 60_000
	for i := 0; i < n; i += len(evs) {
		for j := range evs {
			evs[j].ID = fmt.Sprintf("0190f1d2-0000-7000-8000-%012d", i+j)
			evs[j].Data = []byte(pad)
		}
		if _, err := s.Append(ctx, evs[0].Subject, store.AnyVersion, evs...); err != nil {
			t.Fatal(err)
		}
	}
	size, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}

	// when it is scanned from the start
	var got uint64
	prev := events.ZeroHash
	err = s.ReadRecords(ctx, 1, func(pos uint64, rec []byte) error {
		if pos != got+1 {
			return fmt.Errorf("position %d after %d", pos, got)
		}
		h, err := events.CheckRecord(prev, rec)
		if err != nil {
			return fmt.Errorf("position %d: %w", pos, err)
		}
		got, prev = pos, h
		return nil
	})

	// then every record is read, intact and in order, and at the end at most a few
	// chunks of the file stay resident in the process
	if err != nil || got != n {
		t.Fatalf("read %d of %d records: %v", got, n, err)
	}
	resident := mappedKiB(t, path)
	t.Logf("file %d KiB, resident after the scan %d KiB", size.Size()>>10, resident)
	if resident > int(size.Size()>>10)/3 {
		t.Fatalf("%d KiB of the %d KiB file resident after the scan", resident, size.Size()>>10)
	}
}
