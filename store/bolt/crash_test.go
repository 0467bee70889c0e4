package bolt_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/bolt"
	"github.com/mcpes/mcpes/store/storetest"
)

var trialsFlag = flag.Int("trials", 50, "kill trials of TestCrash_KillDuringAppend")

const (
	crashEnvPath  = "MCPES_CRASH_CHILD_PATH"
	crashEnvTrial = "MCPES_CRASH_CHILD_TRIAL"
)

// TestCrash_KillDuringAppend re-executes the test binary as a child that appends
// concurrently and reports every append that returned; the parent kills it with
// SIGKILL at a random moment and checks that the file opens, verifies, passes Check,
// and holds every reported event at its reported position.
func TestCrash_KillDuringAppend(t *testing.T) {
	if path := os.Getenv(crashEnvPath); path != "" {
		crashChild(path, os.Getenv(crashEnvTrial))
		return
	}
	if testing.Short() {
		t.Skip("crash test spawns processes")
	}
	seed := testSeed(t)
	// Two files, each with its own child at a time, halve the wall time on two cores.
	for w := range 2 {
		t.Run(fmt.Sprintf("file%d", w), func(t *testing.T) {
			t.Parallel()
			crashTrials(t, rand.New(rand.NewPCG(seed, uint64(w))), (*trialsFlag+1-w)/2)
		})
	}
}

func crashTrials(t *testing.T, rng *rand.Rand, trials int) {
	path := filepath.Join(t.TempDir(), "events.db")
	reported := map[uint64]string{} // position -> id, over all trials
	start := time.Now()
	for trial := range trials {
		// given a child appending to the file
		lines, killedAt := runAndKill(t, path, trial, time.Duration(rng.IntN(60_000))*time.Microsecond)
		for _, l := range lines {
			pos, id := parseLine(t, l)
			if old, ok := reported[pos]; ok && old != id {
				t.Fatalf("trial %d: position %d reported for %s and earlier for %s", trial, pos, id, old)
			}
			reported[pos] = id
		}
		// then the file opens, verifies, passes Check, and holds every reported append
		s, err := bolt.Open(path, bolt.Options{Timeout: 5 * time.Second})
		if err != nil {
			t.Fatalf("trial %d (killed after %v): open: %v", trial, killedAt, err)
		}
		ctx := context.Background()
		rep, err := store.Verify(ctx, s)
		if err != nil || !rep.OK {
			t.Fatalf("trial %d: verify %v: %v", trial, err, rep.Problems)
		}
		if err := s.Check(ctx); err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		ids := map[uint64]string{}
		err = s.ReadRecords(ctx, 1, func(pos uint64, rec []byte) error {
			e, err := events.DecodeRecord(rec)
			ids[pos] = e.ID
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		for pos, id := range reported {
			if ids[pos] != id {
				t.Fatalf("trial %d: append of %s returned position %d, the file has %q there", trial, id, pos, ids[pos])
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d trials, %d acknowledged events survived, %v", trials, len(reported), time.Since(start))
	if len(reported) == 0 {
		t.Fatal("no child ever reported an append: the test did not exercise anything")
	}
}

// runAndKill starts the child, kills it with SIGKILL after it has run for delay
// beyond its first report (or after a timeout), and returns its complete lines.
func runAndKill(t *testing.T, path string, trial int, delay time.Duration) ([]string, time.Duration) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrash_KillDuringAppend$/^$")
	cmd.Env = append(os.Environ(), crashEnvPath+"="+path, crashEnvTrial+"="+strconv.Itoa(trial))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	var (
		mu    sync.Mutex
		lines []string
		first = make(chan struct{})
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		r := bufio.NewReader(out)
		once := sync.OnceFunc(func() { close(first) })
		defer once()
		for {
			l, err := r.ReadString('\n')
			if err != nil { // a cut-off last line is not a report
				return
			}
			if strings.HasPrefix(l, "ok ") {
				mu.Lock()
				lines = append(lines, strings.TrimSpace(l))
				mu.Unlock()
				once()
			}
		}
	}()
	select {
	case <-first:
	case <-time.After(20 * time.Second):
		t.Log("child reported nothing in 20s")
	}
	time.Sleep(delay)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	killedAt := time.Since(started)
	<-done
	_ = cmd.Wait()
	mu.Lock()
	defer mu.Unlock()
	return lines, killedAt
}

func parseLine(t *testing.T, l string) (uint64, string) {
	t.Helper()
	f := strings.Fields(l)
	if len(f) != 3 {
		t.Fatalf("bad child line %q", l)
	}
	pos, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		t.Fatalf("bad child line %q: %v", l, err)
	}
	return pos, f[2]
}

// crashChild appends until killed, printing "ok <position> <id>" after each Append
// of an event returns.
func crashChild(path, trial string) {
	// A small IndexEvery puts index flushes among the commits that get killed.
	s, err := bolt.Open(path, bolt.Options{Timeout: 10 * time.Second, IndexEvery: 100})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			stream := fmt.Sprintf("crash/%s/%d", trial, g)
			version := int64(store.NoStream)
			for i := 0; ; i++ {
				evs := make([]events.Envelope, 1+i%3)
				for j := range evs {
					e, err := storetest.NewEvent(stream, i)
					if err != nil {
						panic(err)
					}
					evs[j] = e
				}
				res, err := s.Append(context.Background(), stream, version, evs...)
				if err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					os.Exit(3)
				}
				version = int64(res.StreamVersion)
				mu.Lock()
				for j, p := range res.Positions {
					fmt.Fprintf(w, "ok %d %s\n", p, evs[j].ID)
				}
				_ = w.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}
