package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpes/mcpes/domain"
)

// watchStream starts what notices an HTTP connection's loss without waiting for
// the next request:
//
//   - SSE: mcp-go's connection-lost handler (set in Dial) fires when the stream ends;
//   - streamable HTTP on 2026-07-28: a subscriptions/listen stream, kept open;
//     once the server acknowledged it, its end means loss;
//   - streamable HTTP on earlier versions: the standalone GET event stream of the
//     session, read here; its end means loss;
//   - a server offering neither stream is probed with tools/list every
//     ProbeInterval, and a probe that cannot reach it means loss.
//
// The listen and GET streams also carry notifications/tools/list_changed.
func (c *Conn) watchStream() {
	if c.transport != domain.TransportStreamableHTTP {
		return
	}
	c.watchers.Add(1)
	go func() {
		defer c.watchers.Done()
		var err error
		if mcp.IsModernProtocol(c.init.ProtocolVersion) {
			err = c.client.Listen(c.lifeCtx, mcp.SubscriptionFilter{ToolsListChanged: true})
			if c.listenAcked.Load() || unreachable(err) {
				c.streamEnded(err)
				return
			}
		} else {
			var opened bool
			opened, err = c.readGETStream()
			if opened || unreachable(err) {
				c.streamEnded(err)
				return
			}
		}
		if c.lifeCtx.Err() == nil {
			c.logger.Debug("no event stream; probing instead", "err", c.red.err(err), "every", c.probeEvery)
			c.probe()
		}
	}()
}

// unreachable reports whether a stream that never opened failed because the
// server could not be reached (rather than because it does not offer the stream).
func unreachable(err error) bool {
	return err != nil && Classify(err) == domain.FailureUnreachable && !isNotFound(err)
}

func (c *Conn) streamEnded(err error) {
	if c.lifeCtx.Err() != nil {
		return // closed by us
	}
	if err == nil {
		err = errors.New("server closed the event stream")
	}
	c.lose(fmt.Errorf("event stream lost: %w", err))
}

func (c *Conn) probe() {
	if c.probeEvery < 0 {
		return
	}
	t := time.NewTicker(c.probeEvery)
	defer t.Stop()
	for {
		select {
		case <-c.lifeCtx.Done():
			return
		case <-c.done:
			return
		case <-t.C:
			_ = c.Health(c.lifeCtx)
		}
	}
}

// readGETStream opens the session's standalone GET event stream (streamable HTTP
// before 2026-07-28) and reads it until it ends, dispatching notifications.
// opened reports whether the server accepted the stream.
func (c *Conn) readGETStream() (opened bool, err error) {
	req, err := http.NewRequestWithContext(c.lifeCtx, http.MethodGet, c.url, nil)
	if err != nil {
		return false, err
	}
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Accept", "text/event-stream")
	if sid := c.client.GetSessionId(); sid != "" {
		req.Header.Set("Mcp-Session-Id", sid)
	}
	req.Header.Set("Mcp-Protocol-Version", c.init.ProtocolVersion)
	resp, err := c.http.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return false, fmt.Errorf("GET stream: HTTP %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	err = readSSE(resp.Body, func(ev sseEvent) bool {
		if ev.Data != "" {
			c.dispatch(c.lifeCtx, []byte(ev.Data), nil)
		}
		return true
	})
	return true, err
}

// maxSSEEvent bounds one event's data; a longer event is an error. The bodies read
// here come through limitBodies, which already bounds each event by
// Options.MaxMessageBytes; this is only the backstop, at the largest limit the
// config accepts.
const maxSSEEvent = domain.MaxMessageBytesCeiling

// sseEvent is one event of a text/event-stream: its id (empty when it had none),
// type, data lines joined with "\n", and the retry delay it asked for (ms, 0 when
// none).
type sseEvent struct {
	ID, Event, Data string
	Retry           int
	HasData         bool // at least one data line, even an empty one
}

// readSSE reads a text/event-stream body, calling onEvent for each event that has
// data or an id, until onEvent returns false. Returns nil at a clean EOF or when
// stopped, or the read error.
func readSSE(r io.Reader, onEvent func(sseEvent) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxSSEEvent)
	var ev sseEvent
	var data bytes.Buffer
	flush := func() bool {
		more := true
		if data.Len() > 0 || ev.ID != "" {
			ev.HasData = data.Len() > 0
			ev.Data = strings.TrimSuffix(data.String(), "\n")
			more = onEvent(ev)
		}
		ev = sseEvent{}
		data.Reset()
		return more
	}
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" {
			if !flush() {
				return nil
			}
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			ev.Event = value
		case "id":
			if !strings.ContainsRune(value, 0) {
				ev.ID = value
			}
		case "retry":
			if n, err := strconv.Atoi(value); err == nil && n >= 0 {
				ev.Retry = n
			}
		case "data":
			if data.Len()+len(value) > maxSSEEvent {
				return fmt.Errorf("event larger than %d bytes", maxSSEEvent)
			}
			data.WriteString(value)
			data.WriteByte('\n')
		}
	}
	flush()
	return sc.Err()
}
