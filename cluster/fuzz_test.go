package cluster_test

import (
	"errors"
	"testing"

	"github.com/mcpes/mcpes/cluster"
)

// FuzzDecodeMessage: any subject and body either decode to a valid append of the
// stream the subject names, or fail with ErrBadMessage; never a panic.
func FuzzDecodeMessage(f *testing.F) {
	f.Add(cluster.Subject("server/app/files"), []byte(`[{"specversion":"1.0","id":"e1","source":"mcpes://n","type":"mcpes.server.registered.v1","subject":"server/app/files","time":"2026-12-04T00:00:00Z","datacontenttype":"application/json","sequence":"0","streamversion":0,"actor":"admin","prevhash":"","data":{}}]`))
	f.Add("mcpes.log.!!", []byte(`[]`))
	f.Add("other.subject", []byte(`null`))
	f.Fuzz(func(t *testing.T, subject string, body []byte) {
		stream, evs, err := cluster.DecodeMessage(subject, body)
		if err != nil {
			if !errors.Is(err, cluster.ErrBadMessage) {
				t.Fatalf("error %v is not ErrBadMessage", err)
			}
			return
		}
		if cluster.Subject(stream) != subject {
			t.Fatalf("stream %q does not round-trip to subject %q", stream, subject)
		}
		for _, e := range evs {
			if e.Subject != stream {
				t.Fatalf("event subject %q in stream %q", e.Subject, stream)
			}
		}
	})
}

// FuzzDecodeDecision: any subject and body either decode to a decision whose record
// checks against its hash, or fail with ErrBadMessage; never a panic.
func FuzzDecodeDecision(f *testing.F) {
	f.Add(cluster.DecisionSubject("node1"), shippedRecord(f))
	f.Add("mcpes.decisions.!!", []byte{1})
	f.Add("other", []byte(`{}`))
	f.Fuzz(func(t *testing.T, subject string, body []byte) {
		d, err := cluster.DecodeDecision(subject, body)
		if err != nil {
			if !errors.Is(err, cluster.ErrBadMessage) {
				t.Fatalf("error %v is not ErrBadMessage", err)
			}
			return
		}
		if cluster.DecisionSubject(d.Node) != subject {
			t.Fatalf("node %q does not round-trip to subject %q", d.Node, subject)
		}
	})
}
