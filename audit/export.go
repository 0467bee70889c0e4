package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// Filter selects events for Export and the HTTP events feed. Zero fields match
// everything.
type Filter struct {
	// Since and Until bound the event time (inclusive).
	Since, Until time.Time
	// Owner keeps only that owner's streams: server/user:<owner>/... and
	// conn/<owner>/... ("_" selects the shared repository's connection streams).
	Owner string
	// Server keeps only streams of servers of that name (any scope or owner).
	Server string
	// Types keeps events whose type equals one entry, or starts with an entry that ends
	// in "*" (e.g. "mcpes.connection.*").
	Types []string
	// Subjects keeps events whose subject equals one entry, or starts with an entry
	// that ends in "*" or "/".
	Subjects []string
}

// Match reports whether e passes every set criterion.
func (f Filter) Match(e events.Envelope) bool {
	if !f.Since.IsZero() && e.Time.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && e.Time.After(f.Until) {
		return false
	}
	if f.Owner != "" && !OwnsSubject(f.Owner, e.Subject) {
		return false
	}
	if f.Server != "" && subjectServer(e.Subject) != f.Server {
		return false
	}
	if len(f.Types) > 0 && !matchAny(f.Types, e.Type, false) {
		return false
	}
	if len(f.Subjects) > 0 && !matchAny(f.Subjects, e.Subject, true) {
		return false
	}
	return true
}

func matchAny(patterns []string, v string, slashPrefix bool) bool {
	for _, p := range patterns {
		switch {
		case p == v:
			return true
		case strings.HasSuffix(p, "*") && strings.HasPrefix(v, p[:len(p)-1]):
			return true
		case slashPrefix && strings.HasSuffix(p, "/") && strings.HasPrefix(v, p):
			return true
		}
	}
	return false
}

// OwnsSubject reports whether a stream belongs to owner (domain.OwnerStreamPrefixes).
func OwnsSubject(owner, subject string) bool {
	if owner == "" {
		return false
	}
	for _, p := range domain.OwnerStreamPrefixes(owner) {
		if strings.HasPrefix(subject, p) {
			return true
		}
	}
	return false
}

// subjectServer returns the server name of a server or connection stream: the last
// path segment.
func subjectServer(subject string) string {
	return subject[strings.LastIndexByte(subject, '/')+1:]
}

// Progress receives how far a long operation got: stage names the step ("chain",
// "decisions", "replay", "export"), pos the position reached, head the last position.
// Calls come from the caller's goroutine; nil means no reporting.
type Progress func(stage string, pos, head uint64)

func (p Progress) report(stage string, pos, head uint64) {
	if p != nil {
		p(stage, pos, head)
	}
}

// progressEvery is how often (in events) the long operations report progress.
const progressEvery = 1000

// Export writes the events that f selects as CloudEvents JSON Lines (one envelope a
// line, hash last) to w, in log order, and returns how many it wrote. It reads only
// the part of the log f's time bounds allow, and for an owner or server filter only
// the streams that can match, through the store's per-stream index. Returns the store's or w's error
// (wrapped); lines written before an error stay written.
func Export(ctx context.Context, st store.Store, f Filter, w io.Writer, progress Progress) (int, error) {
	return exportTo(ctx, st, f, 0, w, nil, progress)
}

// exportTo is Export of the positions up to limit (0: the head), calling written
// after each line.
func exportTo(ctx context.Context, st store.Store, f Filter, limit uint64, w io.Writer, written func(events.Envelope), progress Progress) (int, error) {
	head, _, err := st.Head(ctx)
	if err != nil {
		return 0, fmt.Errorf("export: head: %w", err)
	}
	from, to := uint64(1), head
	if limit > 0 {
		to = min(to, limit)
	}
	if !f.Since.IsZero() {
		p, err := st.PositionAt(ctx, f.Since.Add(-time.Nanosecond))
		if err != nil {
			return 0, fmt.Errorf("export: position at since: %w", err)
		}
		from = p + 1
	}
	if !f.Until.IsZero() {
		p, err := st.PositionAt(ctx, f.Until)
		if err != nil {
			return 0, fmt.Errorf("export: position at until: %w", err)
		}
		to = min(to, p)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	n := 0
	if to == 0 || from > to {
		return 0, nil
	}
	streams, indexed, err := streamsOf(ctx, st, f)
	if err != nil {
		return 0, fmt.Errorf("export: %w", err)
	}
	read := func(fn func(events.Envelope) error) error { return scan(ctx, st, from, to, fn) }
	if indexed {
		read = func(fn func(events.Envelope) error) error { return scanStreams(ctx, st, streams, from, to, fn) }
	}
	reported := uint64(0)
	err = read(func(e events.Envelope) error {
		if pos := uint64(e.Sequence); pos >= reported+progressEvery {
			progress.report("export", pos, to)
			reported = pos
		}
		if !f.Match(e) {
			return nil
		}
		if err := WriteLine(bw, e); err != nil {
			return err
		}
		if written != nil {
			written(e)
		}
		n++
		return nil
	})
	if ferr := bw.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("export: write: %w", ferr)
	}
	progress.report("export", to, to)
	if err != nil {
		return n, fmt.Errorf("export: %w", err)
	}
	return n, nil
}

// WriteLine writes one envelope as a JSON line: the CloudEvents structured form with
// the mcpes extensions and hash last.
func WriteLine(w io.Writer, e events.Envelope) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode event %d: %w", uint64(e.Sequence), err)
	}
	b = append(b, '\n')
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write event %d: %w", uint64(e.Sequence), err)
	}
	return nil
}
