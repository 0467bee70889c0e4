package audit_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mcpes/mcpes/audit"
	"github.com/mcpes/mcpes/internal/testnats"
)

func TestJetStreamWitness_TailCutCaughtFromTheStream(t *testing.T) {
	k, v := newKey(t, "mcpes.test/log")
	ctx := context.Background()
	ns := testnats.Start(t, -1, t.TempDir())
	where := ns.ClientURL() + "/mcpes.checkpoints"

	// given a log of 40 events checkpointed to a JetStream witness (the checkpoint
	// published twice, as a retry would)
	db, _, cp := checkpointedBolt(t, k, 20)
	wit, err := audit.NewWitness(where, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer wit.(*audit.JetStreamWitness).Close()
	for range 2 {
		if err := wit.Publish(ctx, cp); err != nil {
			t.Fatal(err)
		}
	}

	// when the last 5 events are cut from the file, the stored checkpoint with them
	cutTail(t, db, 35, true)

	// then the stream holds the checkpoint once, and verify against it names the cut
	cps, err := audit.ReadWitness(ctx, where, v)
	if err != nil || len(cps) != 1 || cps[0].Size != 40 || cps[0].Note != cp.Note {
		t.Fatalf("witness stream: %+v %v", cps, err)
	}
	rep := verifyFile(t, db, audit.WithCheckpoints(cps...), audit.WithVerifier(v))
	if rep.OK || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "size 40") || !strings.Contains(rep.Problems[0], "missing") {
		t.Fatalf("report %+v", rep)
	}
}

func TestJetStreamWitness_ForgedMessageNamedAndDeletesDenied(t *testing.T) {
	k, v := newKey(t, "mcpes.test/log")
	mallory, _ := newKey(t, "mcpes.test/log")
	ctx := context.Background()
	ns := testnats.Start(t, -1, t.TempDir())
	where := ns.ClientURL() + "/mcpes.checkpoints"
	wit := &audit.JetStreamWitness{URL: ns.ClientURL(), Subject: "mcpes.checkpoints"}
	defer wit.Close()
	good, _ := audit.SignCheckpoint(k.Signer, 5, [32]byte{5}, time.Now())
	bad, _ := audit.SignCheckpoint(mallory.Signer, 9, [32]byte{9}, time.Now())

	// given a witness stream with a checkpoint signed by another key after a good one
	for _, c := range []audit.Checkpoint{good, bad} {
		if err := wit.Publish(ctx, c); err != nil {
			t.Fatal(err)
		}
	}

	// when it is read, then the forged message is named by its sequence
	if _, err := audit.ReadWitness(ctx, where, v); !errors.Is(err, audit.ErrCheckpoint) || !strings.Contains(err.Error(), "message 2") {
		t.Fatalf("err = %v", err)
	}
	// and a client cannot delete or purge the witness stream's messages
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(ctx, audit.WitnessStream("mcpes.checkpoints"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(ctx, 1); err == nil {
		t.Fatal("deleted a witness message")
	}
	if err := s.Purge(ctx); err == nil {
		t.Fatal("purged the witness stream")
	}
}

func TestReadWitness_RefusesAnHTTPWitnessAndBadURLs(t *testing.T) {
	_, v := newKey(t, "mcpes.test/log")
	for _, where := range []string{"https://witness.example/add", "nats://127.0.0.1:4222/", "nats://127.0.0.1:4222/a.*", "ftp://x/y"} {
		if _, err := audit.ReadWitness(context.Background(), where, v); !errors.Is(err, audit.ErrInvalidArgument) {
			t.Errorf("%s: err = %v", where, err)
		}
	}
}
