package testnats

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is n embedded JetStream servers on loopback joined by routes, each with its
// own store directory, that a test can hard-stop and restart on the same ports.
type Cluster struct {
	tb      testing.TB
	opts    []*server.Options
	Servers []*server.Server // nil while stopped
	// Routes[i][j] is the link server i dials to reach server j (nil for i == j).
	Routes [][]*Proxy
}

// StartCluster runs n clustered JetStream servers under dir and shuts them down at
// cleanup. Every route goes through its own Proxy (routes are not advertised, so
// servers never bypass them), so a test can partition any pair. It fails tb when they do not form a JetStream cluster within 30 s.
func StartCluster(tb testing.TB, n int, dir string) *Cluster {
	tb.Helper()
	ports := FreePorts(tb, 2*n)
	clientPorts, routePorts := ports[:n], ports[n:]
	c := &Cluster{tb: tb, Servers: make([]*server.Server, n), Routes: make([][]*Proxy, n)}
	for i := range n {
		var routes []*url.URL
		c.Routes[i] = make([]*Proxy, n)
		for j := range n {
			if j != i {
				p := StartProxy(tb, fmt.Sprintf("127.0.0.1:%d", routePorts[j]))
				c.Routes[i][j] = p
				routes = append(routes, &url.URL{Scheme: "nats", Host: p.Addr()})
			}
		}
		c.opts = append(c.opts, &server.Options{
			ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: clientPorts[i],
			JetStream: true, StoreDir: filepath.Join(dir, fmt.Sprintf("n%d", i)), NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "mcpes", Host: "127.0.0.1", Port: routePorts[i], NoAdvertise: true},
			Routes:  routes,
		})
	}
	for i := range n {
		c.Start(i)
	}
	tb.Cleanup(func() {
		for i := range c.Servers {
			c.Stop(i)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !c.anyMetaLeader() {
		if time.Now().After(deadline) {
			tb.Fatal("nats cluster: no JetStream meta leader")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c
}

// anyMetaLeader reports a JetStream meta leader that knows every server as a peer,
// so that a stream of len(Servers) replicas can be placed.
func (c *Cluster) anyMetaLeader() bool {
	for _, s := range c.Servers {
		if s != nil && s.JetStreamIsLeader() && len(s.JetStreamClusterPeers()) == len(c.Servers) {
			return true
		}
	}
	return false
}

// Start (re)starts server i with its options and store.
func (c *Cluster) Start(i int) {
	c.tb.Helper()
	ns, err := server.NewServer(c.opts[i])
	if err != nil {
		c.tb.Fatalf("nats server %d: %v", i, err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		// the server logs nothing here; a port somebody else holds is the usual cause
		for _, port := range []int{c.opts[i].Port, c.opts[i].Cluster.Port} {
			if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
				c.tb.Fatalf("nats server %d not ready: %v", i, err)
			} else {
				l.Close()
			}
		}
		c.tb.Fatalf("nats server %d not ready in 30 s", i)
	}
	c.Servers[i] = ns
}

// Stop shuts server i down at once (a hard stop: clients and routes drop).
func (c *Cluster) Stop(i int) {
	if ns := c.Servers[i]; ns != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
		c.Servers[i] = nil
	}
}

// Isolate cuts (or, with heal, restores) every route link to and from server i.
func (c *Cluster) Isolate(i int, heal bool) {
	for j := range c.Routes {
		for _, p := range []*Proxy{c.Routes[i][j], c.Routes[j][i]} {
			switch {
			case p == nil:
			case heal:
				p.Heal()
			default:
				p.Cut()
			}
		}
	}
}

// URL returns server i's client URL.
func (c *Cluster) URL(i int) string { return "nats://" + c.Addr(i) }

// Addr returns server i's client host:port.
func (c *Cluster) Addr(i int) string { return fmt.Sprintf("127.0.0.1:%d", c.opts[i].Port) }

// URLs returns every client URL, comma separated, for a client that fails over.
func (c *Cluster) URLs() string {
	var out []string
	for i := range c.opts {
		out = append(out, c.URL(i))
	}
	return strings.Join(out, ",")
}

// Name returns server i's name (the name stream cluster info reports).
func (c *Cluster) Name(i int) string { return c.opts[i].ServerName }
