package handlers

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mcpes/mcpes/audit"
	"github.com/mcpes/mcpes/events"
)

// eventsPage is how many events one store read fetches for the feed.
const eventsPage = 256

// eventsQuery is the parsed query of GET /v1/events.
type eventsQuery struct {
	after  uint64
	limit  int // 0 = no limit
	filter audit.Filter
}

func parseEventsQuery(r *http.Request, id Identity) (eventsQuery, error) {
	q := r.URL.Query()
	var out eventsQuery
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return out, fmt.Errorf("%w: after=%q: want a log position", ErrInvalidRequest, v)
		}
		out.after = n
	}
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil && n > out.after {
			out.after = n
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return out, fmt.Errorf("%w: limit=%q: want a count", ErrInvalidRequest, v)
		}
		out.limit = n
	}
	out.filter.Types = q["type"]
	out.filter.Subjects = q["subject"]
	owner, err := targetOwner(r, id)
	if err != nil {
		return out, err
	}
	// An owner sees only its own streams; the admin sees everything unless it asks for
	// one owner.
	out.filter.Owner = owner
	if id.Admin && q.Get("owner") == "_" {
		out.filter.Owner = "_"
	}
	return out, nil
}

func (a *api) events(w http.ResponseWriter, r *http.Request, id Identity) error {
	q, err := parseEventsQuery(r, id)
	if err != nil {
		return err
	}
	if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		return a.followEvents(w, r, q)
	}
	head, _, err := a.Store.Head(r.Context())
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Mcpes-Head", strconv.FormatUint(head, 10))
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	n := 0
	_, err = a.eachEvent(r.Context(), q.after, head, func(e events.Envelope) (bool, error) {
		if !q.filter.Match(e) {
			return true, nil
		}
		if err := audit.WriteLine(bw, e); err != nil {
			return false, err
		}
		n++
		return q.limit == 0 || n < q.limit, nil
	})
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		// The status line is gone; all that is left is to log and cut the stream.
		a.Logger.Warn("event feed ended early", "err", err)
	}
	return nil
}

// eachEvent calls fn for the events with position in (after, to], in order, until fn
// returns false or an error. It returns the last position read.
func (a *api) eachEvent(ctx context.Context, after, to uint64, fn func(events.Envelope) (bool, error)) (uint64, error) {
	for after < to {
		page, err := a.Store.ReadAll(ctx, after+1, eventsPage)
		if err != nil {
			return after, err
		}
		if len(page) == 0 {
			return after, nil
		}
		for _, e := range page {
			pos := uint64(e.Sequence)
			if pos > to {
				return after, nil
			}
			after = pos
			more, err := fn(e)
			if err != nil || !more {
				return after, err
			}
		}
	}
	return after, nil
}

// followEvents serves the feed as Server-Sent Events: everything after q.after, then
// every new event as it is committed (woken by Store.Wait, no polling), with a comment
// line every Heartbeat while idle. Each event's SSE id is its log position, so a client
// reconnecting with Last-Event-ID resumes where it stopped.
func (a *api) followEvents(w http.ResponseWriter, r *http.Request, q eventsQuery) error {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a follow outlives the server's write timeout
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	ctx := r.Context()
	bw := bufio.NewWriter(w)
	flush := func() error {
		if err := bw.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}
	fmt.Fprintf(bw, ": following after %d\nretry: 2000\n\n", q.after)
	if err := flush(); err != nil {
		return nil
	}
	after, sent := q.after, 0
	for {
		head, _, err := a.Store.Head(ctx)
		if err != nil {
			return nil
		}
		done := false
		after, err = a.eachEvent(ctx, after, head, func(e events.Envelope) (bool, error) {
			if !q.filter.Match(e) {
				return true, nil
			}
			b, err := json.Marshal(e)
			if err != nil {
				return false, err
			}
			fmt.Fprintf(bw, "id: %d\nevent: %s\ndata: %s\n\n", uint64(e.Sequence), e.Type, b)
			sent++
			done = q.limit > 0 && sent >= q.limit
			return !done, nil
		})
		if err != nil || flush() != nil || done {
			return nil
		}
		for {
			wctx, cancel := context.WithTimeout(ctx, a.Heartbeat)
			_, err := a.Store.Wait(wctx, after)
			cancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				a.Logger.Warn("event follow ended", "err", err)
				return nil
			}
			fmt.Fprintf(bw, ": heartbeat %d\n\n", after)
			if flush() != nil {
				return nil
			}
		}
	}
}
