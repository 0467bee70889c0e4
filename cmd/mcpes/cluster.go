package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mcpes/mcpes/cluster"
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
		return nil, fmt.Errorf("cluster %s: %w", cfg.URL, err)
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
		return nil, fmt.Errorf("cluster %s: catching up: %w", cfg.URL, err)
	}
	m.Logger.Info("joined cluster", "url", cfg.URL, "applied", cl.Applied())
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
