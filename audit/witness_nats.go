package audit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/mod/sumdb/note"
)

// JetStreamWitness publishes each checkpoint as one message (the witness-file JSON
// line) to a subject of a JetStream stream it creates when missing: file storage, the
// subject only, deletes and purges denied, so the stream is append-only to any client
// that does not own the server. Each message's id is origin/size, so a checkpoint
// published twice is stored once.
type JetStreamWitness struct {
	URL     string // nats://HOST:PORT
	Subject string

	mu sync.Mutex
	nc *nats.Conn
	js jetstream.JetStream
}

// WitnessStream is the name of the JetStream stream that keeps the checkpoints of a
// subject: WITNESS_ followed by the subject with dots as underscores.
func WitnessStream(subject string) string {
	return "WITNESS_" + strings.ReplaceAll(subject, ".", "_")
}

// connect dials once and makes sure the stream exists.
func (w *JetStreamWitness) connect(ctx context.Context) (jetstream.JetStream, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.js != nil {
		return w.js, nil
	}
	nc, err := nats.Connect(w.URL, nats.Name("mcpes witness"), nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err == nil {
		_, err = js.Stream(ctx, WitnessStream(w.Subject))
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			_, err = js.CreateStream(ctx, jetstream.StreamConfig{
				Name:        WitnessStream(w.Subject),
				Description: "mcpes signed checkpoints (" + w.Subject + ")",
				Subjects:    []string{w.Subject},
				Storage:     jetstream.FileStorage,
				Retention:   jetstream.LimitsPolicy,
				DenyDelete:  true,
				DenyPurge:   true,
				Duplicates:  time.Hour,
			})
		}
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	w.nc, w.js = nc, js
	return js, nil
}

// Publish implements Witness: it returns once JetStream acknowledged the message.
func (w *JetStreamWitness) Publish(ctx context.Context, c Checkpoint) error {
	js, err := w.connect(ctx)
	if err != nil {
		return fmt.Errorf("witness %s/%s: %w", w.URL, w.Subject, err)
	}
	line, err := witnessLine(c)
	if err != nil {
		return err
	}
	id := c.Origin + "/" + strconv.FormatUint(c.Size, 10)
	if _, err := js.Publish(ctx, w.Subject, line, jetstream.WithMsgID(id),
		jetstream.WithExpectStream(WitnessStream(w.Subject))); err != nil {
		return fmt.Errorf("witness %s/%s: %w", w.URL, w.Subject, err)
	}
	return nil
}

// Close ends the connection (a later Publish dials again).
func (w *JetStreamWitness) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.nc != nil {
		w.nc.Close()
		w.nc, w.js = nil, nil
	}
}

// ReadWitnessJetStream reads every checkpoint kept on a JetStream witness subject
// (url nats://HOST:PORT, as JetStreamWitness publishes them) and checks each
// signature with v. A message that is not a checkpoint signed by v is an error naming
// its stream sequence.
func ReadWitnessJetStream(ctx context.Context, url, subject string, v note.Verifier) ([]Checkpoint, error) {
	nc, err := nats.Connect(url, nats.Name("mcpes verify"))
	if err != nil {
		return nil, fmt.Errorf("witness %s/%s: %w", url, subject, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("witness %s/%s: %w", url, subject, err)
	}
	s, err := js.Stream(ctx, WitnessStream(subject))
	if err != nil {
		return nil, fmt.Errorf("witness %s/%s: %w", url, subject, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("witness %s/%s: %w", url, subject, err)
	}
	var out []Checkpoint
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		msg, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, fmt.Errorf("witness %s/%s: message %d is missing", url, subject, seq)
		}
		if err != nil {
			return nil, fmt.Errorf("witness %s/%s: message %d: %w", url, subject, seq, err)
		}
		if msg.Subject != subject {
			continue
		}
		if len(msg.Data) > 2*MaxCheckpointBytes {
			return nil, fmt.Errorf("witness %s/%s message %d: %w: %d bytes", url, subject, seq, ErrCheckpoint, len(msg.Data))
		}
		c, err := parseWitnessLine(msg.Data, v)
		if err != nil {
			return nil, fmt.Errorf("witness %s/%s message %d: %w", url, subject, seq, err)
		}
		out = append(out, c)
	}
	return out, nil
}
