package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/mcpes/mcpes/cluster"
	"github.com/mcpes/mcpes/store/memory"
)

// shippedRecord returns the stored record of a decision, as the ship loop sends it.
func shippedRecord(t testing.TB) []byte {
	st := memory.New()
	defer st.Close()
	ctx := context.Background()
	if _, err := st.Append(ctx, "server/app/files", -1, registered(t, "files")); err != nil {
		t.Fatal(err)
	}
	d := lost(t, "node1", "alice", "files")
	if _, err := st.Append(ctx, d.Subject, -1, d); err != nil {
		t.Fatal(err)
	}
	var rec []byte
	if err := st.ReadRecords(ctx, 2, func(_ uint64, r []byte) error { rec = bytes.Clone(r); return nil }); err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestDecodeDecision_ChecksTheRecordAgainstItsHash(t *testing.T) {
	// given a decision's record as node1 shipped it
	rec := shippedRecord(t)
	subject := cluster.DecisionSubject("node1")

	// when it is read back, then it names its node and its event
	d, err := cluster.DecodeDecision(subject, rec)
	if err != nil || d.Node != "node1" || d.Event.Subject != "conn/alice/files" || d.Event.Hash == "" {
		t.Fatalf("decision %+v, %v", d, err)
	}

	// when one byte of its content is changed, then it is refused
	forged := bytes.Replace(rec, []byte(`"gone"`), []byte(`"fine"`), 1)
	if bytes.Equal(forged, rec) {
		t.Fatal("forgery changed nothing")
	}
	if _, err := cluster.DecodeDecision(subject, forged); !errors.Is(err, cluster.ErrBadMessage) {
		t.Fatalf("forged record: %v, want ErrBadMessage", err)
	}
	// and a record on another subject is refused
	if _, err := cluster.DecodeDecision("mcpes.log.bm9kZTE", rec); !errors.Is(err, cluster.ErrBadMessage) {
		t.Fatalf("log subject: %v", err)
	}
}
