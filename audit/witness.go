package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/note"

	"github.com/mcpes/mcpes/domain"
)

// Witness keeps the checkpoints the service publishes, outside the data file, so
// that a log rewritten or cut short after a checkpoint no longer matches it.
type Witness interface {
	// Publish hands one signed checkpoint to the witness.
	Publish(ctx context.Context, c Checkpoint) error
}

// NewWitness returns the witness named by url (domain.ParseWitness): file://PATH
// (FileWitness), http(s)://URL (HTTPWitness, POSTing with client, http.DefaultClient
// when nil) or nats://HOST:PORT/SUBJECT (JetStreamWitness). Returns an error wrapping
// ErrInvalidArgument for any other URL.
func NewWitness(url string, client *http.Client) (Witness, error) {
	t, err := domain.ParseWitness(url)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	switch t.Kind {
	case domain.WitnessFile:
		return &FileWitness{Path: t.Addr}, nil
	case domain.WitnessHTTP:
		if client == nil {
			client = http.DefaultClient
		}
		return &HTTPWitness{URL: t.Addr, Client: client}, nil
	default:
		return &JetStreamWitness{URL: t.Addr, Subject: t.Subject}, nil
	}
}

// ReadWitness reads every checkpoint a witness keeps and checks each signature with
// v: where is a witness file's path (or file://PATH) or nats://HOST:PORT/SUBJECT.
// An HTTP witness keeps its checkpoints itself: it cannot be read back here.
func ReadWitness(ctx context.Context, where string, v note.Verifier) ([]Checkpoint, error) {
	if !strings.Contains(where, "://") {
		return ReadWitnessFile(where, v)
	}
	t, err := domain.ParseWitness(where)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	switch t.Kind {
	case domain.WitnessFile:
		return ReadWitnessFile(t.Addr, v)
	case domain.WitnessJetStream:
		return ReadWitnessJetStream(ctx, t.Addr, t.Subject, v)
	}
	return nil, fmt.Errorf("%w: witness %q: an HTTP witness cannot be read back; give its file or JetStream subject", ErrInvalidArgument, where)
}

// witnessLine is one checkpoint as a witness keeps it: {origin, size, root, time,
// checkpoint} in JSON.
func witnessLine(c Checkpoint) ([]byte, error) { return json.Marshal(c) }

// FileWitness appends each checkpoint to a file as one JSON line ({origin, size,
// root, time, checkpoint}) and syncs it. The file is opened in append mode for every
// checkpoint, so it may live on another disk or be shipped elsewhere as it grows.
type FileWitness struct {
	Path string
	mu   sync.Mutex
}

// Publish implements Witness.
func (w *FileWitness) Publish(_ context.Context, c Checkpoint) error {
	line, err := witnessLine(c)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	f, err := os.OpenFile(w.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("witness %s: %w", w.Path, err)
	}
	_, err = f.Write(append(line, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("witness %s: %w", w.Path, err)
	}
	return nil
}

// HTTPWitness POSTs each checkpoint note (text/plain) to URL; any 2xx is success.
type HTTPWitness struct {
	URL    string
	Client *http.Client
}

// Publish implements Witness.
func (w *HTTPWitness) Publish(ctx context.Context, c Checkpoint) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, strings.NewReader(c.Note))
	if err != nil {
		return fmt.Errorf("witness %s: %w", w.URL, err)
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := w.Client.Do(req)
	if err != nil {
		return fmt.Errorf("witness %s: %w", w.URL, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("witness %s: %s", w.URL, resp.Status)
	}
	return nil
}

// ReadWitnessFile reads every checkpoint of a FileWitness file and checks each
// signature with v. A line that is not a checkpoint signed by v is an error naming
// the line (a witness file is evidence: nothing in it is skipped).
func ReadWitnessFile(path string, v note.Verifier) ([]Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	defer f.Close()
	var out []Checkpoint
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 2*MaxCheckpointBytes)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		c, err := parseWitnessLine(line, v)
		if err != nil {
			return nil, fmt.Errorf("witness %s line %d: %w", path, n, err)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("%w: a line longer than %d bytes", ErrCheckpoint, 2*MaxCheckpointBytes)
		}
		return nil, fmt.Errorf("witness %s: %w", path, err)
	}
	return out, nil
}
