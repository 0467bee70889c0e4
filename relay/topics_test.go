package relay_test

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/relay"
)

func TestTopicsFor_AllAndArea(t *testing.T) {
	for typ, want := range map[string][]string{
		events.TypeServerInspectionFailed: {relay.AllTopic, relay.ServerTopic},
		events.TypeConnectionRefused:      {relay.AllTopic, relay.ConnectionTopic},
		events.TypeToolCalled:             {relay.AllTopic, relay.ToolTopic},
		"mcpes.other.thing.v1":            {relay.AllTopic},
		"garbage":                         {relay.AllTopic},
	} {
		got := relay.TopicsFor(typ)
		if len(got) != len(want) || got[0] != want[0] || (len(want) == 2 && got[1] != want[1]) {
			t.Errorf("TopicsFor(%s) = %v, want %v", typ, got, want)
		}
	}
	for _, topic := range relay.Topics {
		for _, c := range topic {
			if !(c >= 'a' && c <= 'z' || c == '_') {
				t.Errorf("topic %q has %q: not a plain NATS stream name", topic, c)
			}
		}
	}
}

func TestFilter_MatchAndTopic(t *testing.T) {
	failed := events.Envelope{Type: events.TypeServerInspectionFailed, Subject: "server/app/files"}
	failedV2 := events.Envelope{Type: "mcpes.server.inspection_failed.v2", Subject: "server/user:bob/x"}
	lost := events.Envelope{Type: events.TypeConnectionLost, Subject: "conn/alice/files"}
	cases := []struct {
		name  string
		f     relay.Filter
		match []bool // failed, failedV2, lost
		topic string
	}{
		{"zero", relay.Filter{}, []bool{true, true, true}, relay.AllTopic},
		{"short type, any version", relay.Filter{Types: []string{"server.inspection_failed"}}, []bool{true, true, false}, relay.ServerTopic},
		{"full type", relay.Filter{Types: []string{events.TypeServerInspectionFailed}}, []bool{true, false, false}, relay.ServerTopic},
		{"two areas", relay.Filter{Types: []string{"server.inspection_failed", "connection.lost"}}, []bool{true, true, true}, relay.AllTopic},
		{"prefix of a type is not a type", relay.Filter{Types: []string{"server.inspection"}}, []bool{false, false, false}, relay.ServerTopic},
		{"subject prefix", relay.Filter{SubjectPrefix: "server/app/"}, []bool{true, false, false}, relay.ServerTopic},
		{"conn prefix keeps the all topic (tool.called is conn/ too)", relay.Filter{SubjectPrefix: "conn/"}, []bool{false, false, true}, relay.AllTopic},
		{"type and subject", relay.Filter{Types: []string{"connection.lost"}, SubjectPrefix: "conn/bob/"}, []bool{false, false, false}, relay.ConnectionTopic},
	}
	for _, tc := range cases {
		for i, e := range []events.Envelope{failed, failedV2, lost} {
			if got := tc.f.Match(e); got != tc.match[i] {
				t.Errorf("%s: Match(%s %s) = %v", tc.name, e.Type, e.Subject, got)
			}
		}
		if got := tc.f.Topic(); got != tc.topic {
			t.Errorf("%s: Topic() = %s, want %s", tc.name, got, tc.topic)
		}
	}
}

func TestDedupe_DropsRepeatsAndOldSequences(t *testing.T) {
	d := relay.NewDedupe(2, 3)
	ev := func(id string, seq uint64) events.Envelope {
		return events.Envelope{ID: id, Sequence: events.Sequence(seq)}
	}
	steps := []struct {
		e    events.Envelope
		want bool
	}{
		{ev("a", 3), false}, // at or below the start
		{ev("b", 4), true},
		{ev("b", 4), false}, // redelivery
		{ev("b", 9), false}, // same id, other sequence
		{ev("c", 5), true},
		{ev("d", 4), false}, // older sequence
		{ev("e", 6), true},  // evicts b from the id set
		{ev("b", 7), true},  // b forgotten: the sequence decides
	}
	for i, s := range steps {
		if got := d.Fresh(s.e); got != s.want {
			t.Fatalf("step %d: Fresh(%s,%d) = %v", i, s.e.ID, s.e.Sequence, got)
		}
	}
	if d.Last() != 7 {
		t.Fatalf("Last = %d", d.Last())
	}
}

func TestDecodeMessage_Rejects(t *testing.T) {
	for name, m := range map[string]*message.Message{
		"not json":      message.NewMessage("x", []byte("nope")),
		"no sequence":   message.NewMessage("x", []byte(`{"id":"x","type":"t"}`)),
		"uuid mismatch": message.NewMessage("y", []byte(`{"id":"x","type":"t","sequence":"1"}`)),
	} {
		if _, err := relay.DecodeMessage(m); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if _, err := relay.DecodeMessage(message.NewMessage("x", []byte(`{"id":"x","type":"t","sequence":"00000000000000000001"}`))); err != nil {
		t.Errorf("valid: %v", err)
	}
}

func FuzzDecodeMessage(f *testing.F) {
	f.Add("01a2", []byte(`{"specversion":"1.0","id":"01a2","type":"mcpes.server.removed.v1","sequence":"00000000000000000001","data":{}}`))
	f.Add("", []byte(`{"id":"a","type":"t","sequence":7}`))
	f.Add("x", []byte(`{"sequence":"-1"}`))
	f.Add("x", []byte(`[]`))
	f.Fuzz(func(t *testing.T, uuid string, payload []byte) {
		e, err := relay.DecodeMessage(message.NewMessage(uuid, payload))
		if err != nil {
			return
		}
		if e.ID == "" || e.Sequence == 0 || (uuid != "" && uuid != e.ID) {
			t.Fatalf("accepted %q as %+v", payload, e)
		}
	})
}
