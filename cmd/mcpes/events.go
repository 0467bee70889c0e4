package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mcpes/mcpes/audit"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/relay"
)

// eventsPage is how many events one API request asks for.
const eventsPage = 1000

type eventsOpts struct {
	after   uint64
	follow  bool
	types   []string
	subject string
	from    string
	durable string
}

func newEventsCmd(e *env) *cobra.Command {
	var o eventsOpts
	c := &cobra.Command{
		Use:   "events [--after N] [--follow] [--type T] [--subject S]",
		Short: "Print the event log as JSON Lines (CloudEvents), optionally following it live",
		Long: `events prints the log, one CloudEvents JSON object a line, in log order, from the
position after --after. --follow keeps printing new events as they are committed
(Server-Sent Events from the API); when the stream ends without being interrupted
(the service stopped), it exits 1 saying so and where to resume. --from nats://HOST:PORT reads from NATS JetStream
instead (what 'mcpes serve --pubsub nats://...' publishes); --durable NAME keeps the
position on the NATS server so a restarted follower resumes where it stopped.`,
		Example: `  mcpes events
  mcpes events --type connection.evicted --subject conn/alice/
  mcpes events --after 120 --follow
  mcpes events --follow --from nats://127.0.0.1:4222 --durable audit-sink
  mcpes events --data ./mcpes-data`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			w := bufio.NewWriter(e.stdout)
			defer w.Flush()
			switch {
			case o.from != "":
				if !o.follow {
					return usagef("--from reads a live stream: add --follow")
				}
				f := relay.Filter{Types: o.types, SubjectPrefix: o.subject}
				err := relay.FollowNATS(ctx, o.from, o.durable, f, func(ev events.Envelope) error {
					if ev.Sequence <= events.Sequence(o.after) {
						return nil
					}
					if err := audit.WriteLine(w, ev); err != nil {
						return err
					}
					return w.Flush()
				})
				if ctx.Err() != nil {
					return nil
				}
				if err == nil {
					err = errors.New("the stream ended")
				}
				return fmt.Errorf("following %s: %w; resume with --durable", o.from, err)
			case e.data != "":
				if o.follow {
					return usagef("--follow needs a running service (or --from nats://...), not --data")
				}
				return e.offlineEvents(ctx, w, o)
			}
			return e.onlineEvents(ctx, w, o)
		},
	}
	f := c.Flags()
	f.Uint64Var(&o.after, "after", 0, "print only events after this log position")
	f.BoolVar(&o.follow, "follow", false, "keep printing new events as they are committed")
	f.StringSliceVar(&o.types, "type", nil, "only events of this type (full, e.g. mcpes.connection.evicted.v1, or short, connection.evicted); repeatable")
	f.StringVar(&o.subject, "subject", "", "only events whose subject (stream) is this or starts with it when it ends in / or *")
	f.StringVar(&o.from, "from", "", "read from NATS JetStream at this URL (nats://HOST:PORT) instead of the API")
	f.StringVar(&o.durable, "durable", "", "durable JetStream consumer name (with --from): resume where the last run stopped")
	dataFlag(c, e)
	return c
}

func (e *env) offlineEvents(ctx context.Context, w *bufio.Writer, o eventsOpts) error {
	st, err := openData(e.data)
	if err != nil {
		return err
	}
	defer st.Close()
	rf := relay.Filter{Types: o.types}
	af := audit.Filter{}
	if o.subject != "" {
		af.Subjects = []string{o.subject}
	}
	from := o.after + 1
	for {
		evs, err := st.ReadAll(ctx, from, eventsPage)
		if err != nil {
			return err
		}
		for _, ev := range evs {
			if rf.Match(ev) && af.Match(ev) {
				if err := audit.WriteLine(w, ev); err != nil {
					return err
				}
			}
			from = uint64(ev.Sequence) + 1
		}
		if len(evs) < eventsPage {
			return nil
		}
	}
}

func (e *env) onlineEvents(ctx context.Context, w *bufio.Writer, o eventsOpts) error {
	cl, err := e.client()
	if err != nil {
		return err
	}
	q := url.Values{}
	for _, t := range o.types {
		q.Add("type", fullType(t))
	}
	if o.subject != "" {
		q.Set("subject", o.subject)
	}
	if o.follow {
		q.Set("after", strconv.FormatUint(o.after, 10))
		resp, err := cl.do(ctx, "GET", "/v1/events", q, nil, "text/event-stream")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		last, err := copySSE(resp.Body, w)
		if ctx.Err() != nil {
			return nil // interrupted: the follower was asked to stop
		}
		if err == nil {
			err = errors.New("the service closed the stream (stopped or restarting?)")
		}
		return fmt.Errorf("following %s: %w; resume with --follow --after %d", cl.base, err, max(last, o.after))
	}
	after := o.after
	q.Set("limit", strconv.Itoa(eventsPage))
	for {
		q.Set("after", strconv.FormatUint(after, 10))
		raw, _, err := cl.call(ctx, "GET", "/v1/events", q, nil, nil)
		if err != nil {
			return err
		}
		n := 0
		for _, line := range bytes.Split(raw, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			n++
			w.Write(line)
			w.WriteByte('\n')
			if seq := sequenceOf(line); seq > after {
				after = seq
			}
		}
		if n < eventsPage {
			return nil
		}
	}
}

// fullType turns the short form of an event type ("connection.evicted") into the
// pattern the API's filter takes ("mcpes.connection.evicted.*", every version).
func fullType(t string) string {
	if strings.HasPrefix(t, "mcpes.") || strings.HasSuffix(t, "*") {
		return t
	}
	return "mcpes." + t + ".*"
}

// sequenceOf reads the sequence extension of one CloudEvents JSON line.
func sequenceOf(line []byte) uint64 {
	var ev struct {
		Sequence json.RawMessage `json:"sequence"`
	}
	if json.Unmarshal(line, &ev) != nil {
		return 0
	}
	s := strings.Trim(string(ev.Sequence), `"`)
	v, _ := strconv.ParseUint(s, 10, 64)
	return v
}

// copySSE writes the data of every Server-Sent Event of r as one line to w, flushing
// after each, until r ends. It returns the sequence of the last event written.
func copySSE(r io.Reader, w *bufio.Writer) (uint64, error) {
	var last uint64
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var data []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if len(data) > 0 {
				line := strings.Join(data, "\n")
				w.WriteString(line)
				w.WriteByte('\n')
				if err := w.Flush(); err != nil {
					return last, err
				}
				if seq := sequenceOf([]byte(line)); seq > last {
					last = seq
				}
				data = data[:0]
			}
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	if err := sc.Err(); err != nil {
		return last, fmt.Errorf("event stream: %w", err)
	}
	return last, nil
}
