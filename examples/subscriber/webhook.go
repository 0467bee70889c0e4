package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/relay"
)

// watched selects the events worth a webhook call: failed inspections and tool drift.
var watched = relay.Filter{Types: []string{"server.inspection_failed", "server.tools_changed"}}

// Notification is the JSON body posted for each watched event.
type Notification struct {
	// Kind is "inspection_failed" or "tools_changed".
	Kind     string    `json:"kind"`
	Scope    string    `json:"scope"`
	Server   string    `json:"server"`
	Time     time.Time `json:"time"`
	EventID  string    `json:"eventId"`
	Sequence uint64    `json:"sequence"`
	// Inspection failures.
	Class   string `json:"class,omitempty"`
	Message string `json:"message,omitempty"`
	// Tool drift.
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
	Changed []string `json:"changed,omitempty"`
	// Event is the whole CloudEvent, for receivers that want more.
	Event events.Envelope `json:"event"`
}

// errNotWatched is returned by notification for events the webhook does not post.
var errNotWatched = errors.New("event not watched")

// notification builds the body for e. Returns errNotWatched for other events and the
// decoder's error for a payload that does not decode.
func notification(e events.Envelope) (Notification, error) {
	n := Notification{Time: e.Time, EventID: e.ID, Sequence: uint64(e.Sequence), Event: e}
	fact, err := events.Decode(e)
	if err != nil {
		return n, err
	}
	switch f := fact.(type) {
	case domain.ServerInspectionFailed:
		n.Kind, n.Scope, n.Server = "inspection_failed", string(f.Scope), f.Name
		n.Class, n.Message = string(f.Class), f.Message
	case domain.ServerToolsChanged:
		n.Kind, n.Scope, n.Server = "tools_changed", string(f.Scope), f.Name
		n.Added, n.Removed, n.Changed = f.Added, f.Removed, f.Changed
	default:
		return n, errNotWatched
	}
	return n, nil
}

// Webhook posts notifications to URL.
type Webhook struct {
	URL    string
	Client *http.Client
	// Attempts per event (default 3), with a doubling pause from 100ms between them.
	Attempts int
}

// Post sends the notification for e. Events that are not watched are ignored. A 5xx
// answer or a transport error is retried; a 4xx is not. Returns the last failure.
func (w *Webhook) Post(ctx context.Context, e events.Envelope) error {
	n, err := notification(e)
	if errors.Is(err, errNotWatched) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("event %s: %w", e.ID, err)
	}
	body, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("event %s: %w", e.ID, err)
	}
	attempts := max(w.Attempts, 1)
	if w.Attempts == 0 {
		attempts = 3
	}
	pause := 100 * time.Millisecond
	for i := 1; ; i++ {
		retry, err := w.post(ctx, body)
		if err == nil {
			return nil
		}
		if !retry || i == attempts {
			return fmt.Errorf("post event %s to %s: %w", e.ID, w.URL, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
			pause *= 2
		}
	}
}

func (w *Webhook) post(ctx context.Context, body []byte) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	client := w.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return ctx.Err() == nil, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return false, nil
	}
	return resp.StatusCode >= 500, fmt.Errorf("status %s", resp.Status)
}

// startInProcess subscribes to an in-process pub/sub (the library call an embedding
// program makes) and posts its watched events in the background. The subscription
// exists when it returns; wait returns nil once ctx ends, or the first failed post.
func startInProcess(ctx context.Context, ip *relay.InProcess, w *Webhook) (wait func() error, err error) {
	ctx, cancel := context.WithCancel(ctx)
	ch, err := ip.Subscribe(ctx, watched)
	if err != nil {
		cancel()
		return nil, err
	}
	done := make(chan error, 1)
	go func() {
		defer cancel()
		for e := range ch {
			if err := w.Post(ctx, e); err != nil && ctx.Err() == nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	return func() error { return <-done }, nil
}

// forwardNATS posts the watched events read from JetStream until ctx ends (nil) or a
// post fails; with a durable name a restart resumes after the last posted event.
func forwardNATS(ctx context.Context, url, durable string, w *Webhook) error {
	err := relay.FollowNATS(ctx, url, durable, watched, func(e events.Envelope) error {
		return w.Post(ctx, e)
	})
	if ctx.Err() != nil {
		return nil // stopped while a post was in flight: not acknowledged, posted again
	}
	return err
}
