package domain

import (
	"errors"
	"strings"
	"testing"
)

func TestParseWitness(t *testing.T) {
	good := map[string]WitnessTarget{
		"file:///var/lib/w.jsonl":                 {Kind: WitnessFile, Addr: "/var/lib/w.jsonl"},
		"https://witness.example/add":             {Kind: WitnessHTTP, Addr: "https://witness.example/add"},
		"nats://127.0.0.1:4222/mcpes.checkpoints": {Kind: WitnessJetStream, Addr: "nats://127.0.0.1:4222", Subject: "mcpes.checkpoints"},
	}
	for raw, want := range good {
		if got, err := ParseWitness(raw); err != nil || got != want {
			t.Errorf("%s: %+v %v, want %+v", raw, got, err, want)
		}
	}
	bad := map[string]string{
		"":                            "want file://PATH",
		"file://":                     "needs a path",
		"http:///nohost":              "with a host",
		"nats://127.0.0.1:4222":       "subject",
		"nats://127.0.0.1:4222/a..b":  "subject",
		"nats://127.0.0.1:4222/a.>":   "subject",
		"nats://u:p@127.0.0.1:4222/a": "no user",
		"nats://127.0.0.1:4222/a?x=1": "no user, query",
		"nats://127.0.0.1:4222/a b":   "subject",
		"s3://bucket/key":             "want file://PATH",
		"nats://127.0.0.1:4222/" + strings.Repeat("a", 256): "subject",
	}
	for raw, want := range bad {
		if _, err := ParseWitness(raw); !errors.Is(err, ErrWitness) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want one naming %q", raw, err, want)
		}
	}
}

func FuzzParseWitness(f *testing.F) {
	for _, s := range []string{"file:///w", "https://h/x", "nats://127.0.0.1:4222/a.b", "nats://h/a.*", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		w, err := ParseWitness(raw)
		if err != nil {
			return
		}
		switch w.Kind {
		case WitnessFile:
			if w.Addr == "" {
				t.Fatalf("%q: empty path", raw)
			}
		case WitnessHTTP:
		case WitnessJetStream:
			if !validSubject(w.Subject) || strings.ContainsAny(w.Subject, " *>") || !strings.HasPrefix(w.Addr, "nats://") {
				t.Fatalf("%q: %+v", raw, w)
			}
		default:
			t.Fatalf("%q: kind %q", raw, w.Kind)
		}
	})
}
