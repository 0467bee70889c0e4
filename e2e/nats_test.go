package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpes/mcpes/internal/testnats"
)

// follower is a running `mcpes events --follow --from nats://...` and the event ids it
// printed, in order.
type follower struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	ids  []string
	seqs []string
	done chan struct{}
	errs *syncBuffer
}

func startFollower(tb testing.TB, natsURL, durable string) *follower {
	tb.Helper()
	f := &follower{done: make(chan struct{}), errs: &syncBuffer{}}
	f.cmd = exec.Command(mcpesBin(), "events", "--follow", "--from", natsURL, "--durable", durable)
	f.cmd.Stderr = f.errs
	out, err := f.cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := f.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() {
		defer close(f.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var ev struct {
				ID       string `json:"id"`
				Sequence string `json:"sequence"`
			}
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				f.mu.Lock()
				f.ids = append(f.ids, ev.ID)
				f.seqs = append(f.seqs, ev.Sequence)
				f.mu.Unlock()
			}
		}
		_ = f.cmd.Wait()
	}()
	tb.Cleanup(func() {
		_ = f.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-f.done:
		case <-time.After(10 * time.Second):
			_ = f.cmd.Process.Kill()
			<-f.done
		}
	})
	return f
}

func (f *follower) snapshot() ([]string, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ids...), append([]string(nil), f.seqs...)
}

func TestNATS_SIGKILLMidStream_FollowerGetsEveryEvent(t *testing.T) {
	t.Parallel()
	// given mcpes publishing to an embedded NATS JetStream and a durable follower
	natsURL := testnats.Start(t, -1, t.TempDir()).ClientURL()
	cfg := writeConfig(t, baseConfig())
	svc := startService(t, serveOpts{config: cfg, args: []string{"--pubsub", natsURL}})
	svc.waitReady()
	// the relay creates the streams at start; the follower may start now
	fol := startFollower(t, natsURL, "e2e-sink")

	put := func(s *service, i int) {
		body := fmt.Sprintf(`{"type":"sse","url":"http://127.0.0.1:1/sse","description":"server %d"}`, i)
		s.call("PUT", fmt.Sprintf("/v1/servers/s%d", i), adminToken, []byte(body))
	}
	// when events are written and the service is SIGKILLed in the middle of a stream
	var wg sync.WaitGroup
	stopWriting := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stopWriting:
				return
			default:
			}
			req := fmt.Sprintf(`{"type":"sse","url":"http://127.0.0.1:1/sse","description":"burst %d"}`, i)
			_, _ = svcCallQuiet(svc, "PUT", fmt.Sprintf("/v1/servers/b%d", i%7), []byte(req))
		}
	})
	for i := 0; i < 10; i++ {
		put(svc, i)
	}
	svc.stop(syscall.SIGKILL)
	close(stopWriting)
	wg.Wait()
	// and the follower is SIGKILLed too, and restarted with the same durable name
	_ = fol.cmd.Process.Kill()
	<-fol.done
	firstIDs, firstSeqs := fol.snapshot()
	checkOrder(t, firstSeqs)
	fol = startFollower(t, natsURL, "e2e-sink")

	// and it restarts on the same data and writes more
	svc2 := startService(t, serveOpts{config: cfg, data: svc.data, args: []string{"--pubsub", natsURL}})
	svc2.waitReady()
	for i := 10; i < 20; i++ {
		put(svc2, i)
	}
	time.Sleep(500 * time.Millisecond) // let async inspections land
	want := svc2.events(adminToken)

	// then the follower ends with every event id of the log, in log order, none missing
	deadline := time.Now().Add(60 * time.Second)
	for {
		ids, seqs := fol.snapshot()
		got := map[string]bool{}
		for _, id := range append(firstIDs, ids...) {
			got[id] = true
		}
		missing := 0
		for _, e := range want {
			if !got[e["id"].(string)] {
				missing++
			}
		}
		if missing == 0 {
			checkOrder(t, seqs)
			if len(ids) > len(want) {
				t.Errorf("restarted follower printed %d events, more than the %d of the log", len(ids), len(want))
			}
			t.Logf("%d events (%d before the kill, %d after), none missing", len(want), len(firstIDs), len(ids))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("followers have %d+%d of %d events; stderr: %s\nserve logs: %s", len(firstIDs), len(ids), len(want), fol.errs.String(), svc2.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkOrder fails unless the sequences only grow (each follower sees log order).
func checkOrder(tb testing.TB, seqs []string) {
	tb.Helper()
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			tb.Errorf("out of order: %s after %s", seqs[i], seqs[i-1])
		}
	}
}

// svcCallQuiet is call without failing the test (the service may be gone).
func svcCallQuiet(s *service, method, path string, body []byte) (int, error) {
	req, err := newRequest(s.url+path, method, adminToken, body)
	if err != nil {
		return 0, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
