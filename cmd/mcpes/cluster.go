package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mcpes/mcpes/cluster"
	"github.com/mcpes/mcpes/config"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// joinCluster connects to the JetStream cluster of cluster.url and returns the shared
// log with replica as this node's local copy. It waits until the replica has caught up
// with the stream's head as it was at joining, so that the projections load a current
// view.
func (m *Main) joinCluster(ctx context.Context, replica store.Store) (*cluster.Store, error) {
	cfg := m.Config.Cluster
	nc, err := nats.Connect(cfg.URL, nats.Name("mcpes "+m.Config.NodeID), nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", config.RedactURLs(cfg.URL), err)
	}
	ctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	cl, err := cluster.Open(ctx, nc, replica, cluster.Options{MaxStaleness: cfg.MaxStaleness.D(), Logger: m.Logger, Node: m.Config.NodeID})
	if err != nil {
		nc.Close()
		return nil, err
	}
	m.clusterConn = nc
	if err := cl.CatchUp(ctx); err != nil {
		return nil, fmt.Errorf("cluster %s: catching up: %w", config.RedactURLs(cfg.URL), err)
	}
	m.Logger.Info("joined cluster", "url", config.RedactURLs(cfg.URL), "applied", cl.Applied())
	return cl, nil
}

// joinTimeout bounds joining the cluster and catching up at start.
const joinTimeout = 2 * time.Minute

// staleNode reports whether this node is past cluster.maxStaleness (never when it is
// not clustered).
func (m *Main) staleNode() bool { return m.cluster != nil && !m.cluster.Fresh() }

// closeCluster stops applying the shared log (closing the replica) and disconnects.
func (m *Main) closeCluster() error {
	if m.cluster == nil {
		return nil
	}
	err := m.cluster.Close()
	m.clusterConn.Close()
	m.cluster = nil
	return err
}

// decisionsCheck is what verify --cluster found in the decisions stream.
type decisionsCheck struct {
	perNode  map[string]int
	thisNode string
	problems []string
}

// checkDecisions reads every node's decisions from the cluster through nc (each record
// checked against its hash as it is read) and checks them against st, this node's
// log: each node's decisions come in log order and name that node as their source,
// this node's shipped copies equal its records, and every decision of st up to the
// shipped checkpoint was shipped.
func checkDecisions(ctx context.Context, nc *nats.Conn, st store.Store) (decisionsCheck, error) {
	res := decisionsCheck{perNode: map[string]int{}}
	last := map[string]uint64{}
	shipped := map[string]bool{}
	err := cluster.ReadDecisions(ctx, nc, "", func(d cluster.Decision) error {
		pos := uint64(d.Event.Sequence)
		res.perNode[d.Node]++
		if pos <= last[d.Node] {
			res.problems = append(res.problems, fmt.Sprintf("node %q: decision %s at position %d after position %d", d.Node, d.Event.ID, pos, last[d.Node]))
		}
		last[d.Node] = pos
		if u, err := url.Parse(d.Event.Source); err != nil || u.Host != d.Node {
			res.problems = append(res.problems, fmt.Sprintf("node %q: decision %s names source %q", d.Node, d.Event.ID, d.Event.Source))
		}
		local, err := st.ReadAll(ctx, pos, 1)
		if err != nil {
			return err
		}
		if len(local) == 1 && local[0].ID == d.Event.ID {
			res.thisNode = d.Node
			shipped[d.Event.ID] = true
			if local[0].Hash != d.Event.Hash {
				res.problems = append(res.problems, fmt.Sprintf("position %d: the decisions stream's copy of %s has hash %s, the log %s", pos, d.Event.ID, d.Event.Hash, local[0].Hash))
			}
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("cluster decisions: %w", err)
	}
	upTo, err := st.Checkpoint(ctx, cluster.ShippedCheckpoint)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return res, err
	}
	err = st.ReadRecords(ctx, 1, func(pos uint64, rec []byte) error {
		if pos > upTo {
			return errStopScan
		}
		_, canon, err := events.SplitRecord(rec)
		if err != nil {
			return err
		}
		if domain.NodeLocal(string(events.Unquote(events.Field(canon, "subject")))) {
			if id := string(events.Unquote(events.Field(canon, "id"))); !shipped[id] {
				res.problems = append(res.problems, fmt.Sprintf("position %d: decision %s is not in the decisions stream", pos, id))
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return res, err
	}
	return res, nil
}

var errStopScan = errors.New("stop")

// summary is one line naming how many decisions each node shipped.
func (c decisionsCheck) summary() string {
	nodes := slices.Sorted(maps.Keys(c.perNode))
	parts := make([]string, 0, len(nodes))
	for _, n := range nodes {
		p := fmt.Sprintf("%s %d", n, c.perNode[n])
		if n == c.thisNode {
			p += " (this log's)"
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return "cluster decisions: none shipped"
	}
	return "cluster decisions: " + strings.Join(parts, ", ")
}

// verifyDecisions is checkDecisions for the running node (POST /v1/audit/verify).
func (m *Main) verifyDecisions(ctx context.Context) (map[string]int, []string, error) {
	dc, err := checkDecisions(ctx, m.clusterConn, m.metered)
	return dc.perNode, dc.problems, err
}
