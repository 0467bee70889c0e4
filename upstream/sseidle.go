package upstream

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// sseReadTimeout (LibreChat's sseReadTimeout): an event stream that stays silent
// for longer is cut, which the connection notices as loss like any other end of
// its stream. Only text/event-stream responses are watched; plain JSON answers
// keep the per-request timeout.

// idleStreams wraps a RoundTripper so that every event-stream response body is
// closed after idle without a byte.
type idleStreams struct {
	base http.RoundTripper
	idle time.Duration
}

func (t idleStreams) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil || resp == nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp, err
	}
	resp.Body = newIdleBody(resp.Body, t.idle)
	return resp, nil
}

// idleBody closes its body when no Read returned data for idle.
type idleBody struct {
	body  io.ReadCloser
	idle  time.Duration
	timer *time.Timer
	mu    sync.Mutex
	fired bool
}

func newIdleBody(body io.ReadCloser, idle time.Duration) *idleBody {
	b := &idleBody{body: body, idle: idle}
	b.timer = time.AfterFunc(idle, func() {
		b.mu.Lock()
		b.fired = true
		b.mu.Unlock()
		_ = body.Close()
	})
	return b
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if n > 0 {
		b.timer.Reset(b.idle)
	}
	if err != nil {
		b.mu.Lock()
		fired := b.fired
		b.mu.Unlock()
		if fired {
			return n, fmt.Errorf("%w: event stream silent for %s (sseReadTimeout)", ErrConnLost, b.idle)
		}
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	return b.body.Close()
}
