package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpes/mcpes/internal/testnats"
)

// natsCluster is three nats-server processes on loopback, clustered with JetStream,
// each route between two servers through its own proxy so a test can cut any link.
type natsCluster struct {
	tb      testing.TB
	bin     string
	confs   []string
	client  []int
	procs   []*natsProc
	routes  [][]*testnats.Proxy // routes[i][j]: the link server i dials to reach j
	workDir string
}

// natsProc is one running nats-server.
type natsProc struct {
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
}

// natsServerBin finds the nats-server binary `make nats-server` installs into ./bin,
// else one on PATH; the test fails (it does not skip) when there is none.
func natsServerBin(tb testing.TB) string {
	tb.Helper()
	if p := filepath.Join(repoRoot, "bin", "nats-server"); fileExists(p) {
		return p
	}
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	tb.Fatal("nats-server not found in ./bin or on PATH: run `make nats-server` (make test does)")
	return ""
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// startNATSCluster writes a config per server and starts them.
func startNATSCluster(tb testing.TB, n int) *natsCluster {
	tb.Helper()
	c := &natsCluster{tb: tb, bin: natsServerBin(tb), workDir: tb.TempDir(), procs: make([]*natsProc, n)}
	routePorts := make([]int, n)
	for i := range n {
		c.client = append(c.client, testnats.FreePort(tb))
		routePorts[i] = testnats.FreePort(tb)
	}
	c.routes = make([][]*testnats.Proxy, n)
	for i := range n {
		c.routes[i] = make([]*testnats.Proxy, n)
		var urls []string
		for j := range n {
			if j != i {
				p := testnats.StartProxy(tb, fmt.Sprintf("127.0.0.1:%d", routePorts[j]))
				c.routes[i][j] = p
				urls = append(urls, "nats://"+p.Addr())
			}
		}
		conf := fmt.Sprintf(`server_name: n%d
listen: "127.0.0.1:%d"
jetstream { store_dir: %q }
cluster {
  name: mcpes
  listen: "127.0.0.1:%d"
  no_advertise: true
  routes: [%s]
}
`, i, c.client[i], filepath.Join(c.workDir, fmt.Sprintf("n%d", i)), routePorts[i], strings.Join(quoteAll(urls), ", "))
		path := filepath.Join(c.workDir, fmt.Sprintf("n%d.conf", i))
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			tb.Fatal(err)
		}
		c.confs = append(c.confs, path)
	}
	for i := range n {
		c.start(i)
	}
	tb.Cleanup(func() {
		for i := range c.procs {
			c.kill(i)
		}
	})
	return c
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// start runs server i (again, on the same ports and store) and waits for its port.
func (c *natsCluster) start(i int) {
	c.tb.Helper()
	p := &natsProc{logs: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(c.bin, "-c", c.confs[i])
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		c.tb.Fatalf("start nats-server %d: %v", i, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	c.procs[i] = p
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", c.addr(i), time.Second)
		if err == nil {
			conn.Close()
			return
		}
		select {
		case <-p.done:
			c.tb.Fatalf("nats-server %d exited:\n%s", i, p.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("nats-server %d does not listen:\n%s", i, p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill stops server i with SIGKILL: no goodbye to its peers, nothing flushed.
func (c *natsCluster) kill(i int) {
	p := c.procs[i]
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	c.procs[i] = nil
}

func (c *natsCluster) addr(i int) string { return fmt.Sprintf("127.0.0.1:%d", c.client[i]) }
func (c *natsCluster) url(i int) string  { return "nats://" + c.addr(i) }

// partition cuts (or, with heal, restores) every route to and from server i.
func (c *natsCluster) partition(i int, heal bool) {
	for j := range c.routes {
		if j == i {
			continue
		}
		for _, p := range []*testnats.Proxy{c.routes[i][j], c.routes[j][i]} {
			if heal {
				p.Heal()
			} else {
				p.Cut()
			}
		}
	}
}
