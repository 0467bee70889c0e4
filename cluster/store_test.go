package cluster_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/mcpes/mcpes/cluster"
	"github.com/mcpes/mcpes/internal/testnats"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/bolt"
)

// single opens one node on a one-server JetStream (one replica).
func single(t *testing.T) (*cluster.Store, *nats.Conn) {
	t.Helper()
	dir := t.TempDir()
	ns := testnats.Start(t, -1, filepath.Join(dir, "nats"))
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	replica, err := bolt.Open(filepath.Join(dir, "node.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	st, err := cluster.Open(ctx, nc, replica, cluster.Options{Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, nc
}

func TestAppend_RetryWithTheSameEventIsStoredOnce(t *testing.T) {
	st, _ := single(t)
	ctx := context.Background()
	env := registered(t, "files")
	// given an acknowledged append
	first, err := st.Append(ctx, env.Subject, store.NoStream, env)
	if err != nil || first.Duplicates != 0 {
		t.Fatalf("first: %+v %v", first, err)
	}
	// when it is retried (the ack was lost, say), then it is a duplicate at the same
	// position and the log holds it once
	again, err := st.Append(ctx, env.Subject, store.AnyVersion, env)
	if err != nil || again.Duplicates != 1 || again.Positions[0] != first.Positions[0] {
		t.Fatalf("retry: %+v %v (first %+v)", again, err, first)
	}
	if head, _, _ := st.Head(ctx); head != 1 {
		t.Fatalf("head %d, want 1", head)
	}
	// and an append at a stale version is a conflict that stores nothing
	other := registered(t, "files")
	_, err = st.Append(ctx, other.Subject, store.NoStream, other)
	var ce *store.ConflictError
	if !errors.As(err, &ce) || ce.Actual != 1 {
		t.Fatalf("stale append: %v", err)
	}
}

func TestApply_AForeignMessageStopsApplyingAndAppendsFail(t *testing.T) {
	st, nc := single(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	// given a message on the log's subjects that is not an mcpes append
	js, _ := nc.JetStream()
	if _, err := js.Publish(cluster.Subject("server/app/x"), []byte(`{"not":"an append"}`)); err != nil {
		t.Fatal(err)
	}
	// when a node appends after it, then the append fails (it is never applied past
	// the bad message) instead of hanging, and the replica holds nothing
	env := registered(t, "files")
	_, err := st.Append(ctx, env.Subject, store.AnyVersion, env)
	if !errors.Is(err, cluster.ErrBadMessage) {
		t.Fatalf("append after a foreign message: %v", err)
	}
	if head, _, _ := st.Head(ctx); head != 0 {
		t.Fatalf("head %d", head)
	}
}
