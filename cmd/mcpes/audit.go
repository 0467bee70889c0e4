package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcpes/mcpes/audit"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/memory"
)

// parseTime reads a time flag: RFC 3339 (nanoseconds allowed), or a date.
func parseTime(flag, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usagef("--%s %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z, or a date", flag, v)
}

func newExplainCmd(e *env) *cobra.Command {
	var owner, server, at string
	c := &cobra.Command{
		Use:   "explain --owner ID --server NAME [--at TIME]",
		Short: "Explain why a connection was (or would be) made, refused or evicted",
		Long: `explain reconstructs from the log alone, for one owner's repository ("app" is the
shared one) and one server at a time (default now): the effective config and where it
came from, its history, the may-connect verdict and the rule, and the connection
decisions around that time.`,
		Example: `  mcpes explain --owner app --server clock
  mcpes explain --owner alice --server notes --at 2026-11-24T14:02:00Z --json
  mcpes explain --owner alice --server notes --data ./mcpes-data`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("owner") || server == "" {
				return usagef("explain needs --owner ID (\"app\" for the shared repository) and --server NAME")
			}
			owner = ownerArg(owner)
			when, err := parseTime("at", at)
			if err != nil {
				return err
			}
			var ex audit.Explanation
			if e.data != "" {
				st, err := openData(e.data)
				if err != nil {
					return err
				}
				defer st.Close()
				if ex, err = audit.Explain(cmd.Context(), st, owner, server, when); err != nil {
					return err
				}
			} else {
				q := url.Values{"owner": {owner}, "server": {server}}
				if at != "" {
					q.Set("at", when.Format(time.RFC3339Nano))
				}
				if _, _, err := e.call(cmd.Context(), "GET", "/v1/audit/explain", q, nil, &ex); err != nil {
					return err
				}
			}
			if e.json {
				return printJSON(e.stdout, ex)
			}
			_, err = io.WriteString(e.stdout, ex.Text())
			return err
		},
	}
	c.Flags().StringVar(&owner, "owner", "", "owner whose repository to explain (\"app\" = the shared repository)")
	c.Flags().StringVar(&server, "server", "", "server name")
	c.Flags().StringVar(&at, "at", "", "time to explain (RFC 3339; default now)")
	dataFlag(c, e)
	return c
}

func newExportCmd(e *env) *cobra.Command {
	var since, until, owner, server, cpPath, key string
	var types []string
	var proofs bool
	c := &cobra.Command{
		Use:   "export [--since T] [--until T] [--owner ID] [--server NAME] [--type T] [--proofs]",
		Short: "Write events as CloudEvents JSON Lines for archiving or a SIEM",
		Long: `export writes the selected events as they are in the log (original sequence and
hash). With --proofs, each event is followed by its inclusion proof against a signed
checkpoint (--checkpoint FILE, else the newest the service stored; events after it are
left out), so that 'mcpes verify-export' checks the excerpt with the public key alone.
Through the service an owner token exports only that owner's events.`,
		Example: `  mcpes export > audit.jsonl
  mcpes export --owner alice --since 2026-11-24 --type 'mcpes.connection.*'
  mcpes export --owner alice --proofs > alice.jsonl
  mcpes export --data ./mcpes-data --server clock`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var f audit.Filter
			var err error
			if f.Since, err = parseTime("since", since); err != nil {
				return err
			}
			if f.Until, err = parseTime("until", until); err != nil {
				return err
			}
			f.Owner, f.Server = owner, server
			f.Owner = ownerArg(f.Owner)
			for _, t := range types {
				f.Types = append(f.Types, fullType(t))
			}
			if err := checkTypes(f.Types); err != nil {
				return err
			}
			var check logCheck
			if e.data == "" {
				if cpPath != "" {
					return usagef("--checkpoint needs --data: the service proves against its newest checkpoint")
				}
				return e.exportOnline(cmd, f, proofs, &check)
			}
			st, err := openData(e.data)
			if err != nil {
				return err
			}
			defer st.Close()
			bar := newProgress(e.stderr, "export")
			defer bar.done()
			progress := func(_ string, pos, head uint64) { bar.update(pos, head) }
			// An excerpt is read through the stream index and checked line by line;
			// the whole log is verified only when it is exported whole.
			excerpt := f.Owner != "" || f.Server != ""
			out := e.stdout
			if excerpt && !proofs {
				out = &checkingWriter{w: e.stdout, check: &check}
			}
			var n int
			if proofs {
				var cp audit.Checkpoint
				if cpPath != "" {
					v, err := verifierFrom(key)
					if err != nil {
						return err
					}
					if v == nil {
						return usagef("--checkpoint needs --key PUB (or MCPES_SIGNING_KEY) to check its signature")
					}
					if cp, err = readCheckpoint(cpPath, v); err != nil {
						return err
					}
				} else if cp, err = audit.StoredCheckpoint(cmd.Context(), st); err != nil {
					return fmt.Errorf("export --proofs: no signed checkpoint in %s yet: %w", e.data, err)
				}
				n, err = audit.ExportProofs(cmd.Context(), st, f, cp, e.stdout, progress)
			} else {
				n, err = audit.Export(cmd.Context(), st, f, out, progress)
			}
			if err != nil {
				return err
			}
			bar.done()
			if isTerminal(e.stderr) {
				fmt.Fprintf(e.stderr, "exported %d events\n", n)
			}
			if !excerpt {
				// The copy fetched from a service was checked line by line; a data
				// directory exported whole is verified here.
				rep, err := store.Verify(cmd.Context(), st)
				if err != nil {
					return err
				}
				if !rep.OK {
					check.broken, check.at, check.why = true, rep.FirstBad, "verify found a problem"
					if len(rep.Problems) > 0 {
						check.why = rep.Problems[0].Message
					}
				}
			}
			warns := check.warnings()
			for _, w := range warns {
				fmt.Fprintf(e.stderr, "warning: %s\n", w)
			}
			if check.broken {
				return errReported
			}
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&since, "since", "", "only events at or after this time (RFC 3339)")
	fl.StringVar(&until, "until", "", "only events at or before this time (RFC 3339)")
	fl.StringVar(&owner, "owner", "", "only this owner's streams (\"app\" = the shared repository's connections)")
	fl.StringVar(&server, "server", "", "only streams of servers of this name")
	fl.StringSliceVar(&types, "type", nil, "only events of this type (a trailing * matches a prefix); repeatable")
	fl.BoolVar(&proofs, "proofs", false, "follow each event with its inclusion proof against a signed checkpoint")
	fl.StringVar(&cpPath, "checkpoint", "", "with --proofs and --data: prove against this checkpoint (a note file or witness line)")
	fl.StringVar(&key, "key", "", "the verifier key for --checkpoint, or a file holding it")
	dataFlag(c, e)
	return c
}

// exportOnline streams the service's export (GET /v1/audit/export) to stdout.
// exportOnline writes the service's export. An unfiltered export is the whole log
// in order, so its hash chain is checked line by line as it passes (check); a
// filtered one is an excerpt, checked with --proofs and verify-export instead.
func (e *env) exportOnline(cmd *cobra.Command, f audit.Filter, proofs bool, check *logCheck) error {
	cl, err := e.client()
	if err != nil {
		return err
	}
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !f.Since.IsZero() {
		set("since", f.Since.Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		set("until", f.Until.Format(time.RFC3339Nano))
	}
	set("owner", f.Owner)
	set("server", f.Server)
	q["type"] = f.Types
	if proofs {
		q.Set("proofs", "1")
	}
	resp, err := cl.do(cmd.Context(), "GET", "/v1/audit/export", q, nil, "application/x-ndjson")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	whole := !proofs && f.Owner == "" && f.Server == "" && len(f.Types) == 0 && f.Since.IsZero() && f.Until.IsZero()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	bar := newProgress(e.stderr, "export") // the total is not known: a count
	defer bar.done()
	lines := uint64(0)
	for sc.Scan() {
		line := sc.Bytes()
		if _, err := e.stdout.Write(append(line, '\n')); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		lines++
		bar.update(lines, 0)
		var ev events.Envelope
		if whole && json.Unmarshal(line, &ev) == nil && ev.Type != "" {
			check.line(line, ev)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	bar.done()
	for _, w := range check.warnings() {
		fmt.Fprintf(e.stderr, "warning: %s\n", w)
	}
	if check.broken {
		return errReported
	}
	return nil
}

// readStore returns a store to read the whole log from: the data directory opened
// read-only with --data, or else an in-memory copy of the running service's log
// fetched through /v1/events (so offline audit code runs unchanged).
// check, when not nil, sees every fetched line.
func (e *env) readStore(ctx context.Context, check *logCheck) (store.Store, func(), error) {
	if e.data != "" {
		st, err := openData(e.data)
		if err != nil {
			return nil, nil, err
		}
		return st, func() { st.Close() }, nil
	}
	cl, err := e.client()
	if err != nil {
		return nil, nil, err
	}
	mem := memory.New()
	bar := newProgress(e.stderr, "fetch")
	defer bar.done()
	var after uint64
	q := url.Values{"limit": {strconv.Itoa(eventsPage)}}
	for {
		q.Set("after", strconv.FormatUint(after, 10))
		raw, _, err := cl.call(ctx, "GET", "/v1/events", q, nil, nil)
		if err != nil {
			mem.Close()
			return nil, nil, err
		}
		sc := bufio.NewScanner(bytes.NewReader(raw))
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		n := 0
		for sc.Scan() {
			if len(bytes.TrimSpace(sc.Bytes())) == 0 {
				continue
			}
			var ev events.Envelope
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				mem.Close()
				return nil, nil, fmt.Errorf("decode event after %d: %w", after, err)
			}
			if check != nil {
				check.line(sc.Bytes(), ev)
			}
			n++
			after = uint64(ev.Sequence)
			if _, err := mem.Append(ctx, ev.Subject, store.AnyVersion, unsealed(ev)); err != nil {
				mem.Close()
				return nil, nil, fmt.Errorf("copy event %d: %w", after, err)
			}
		}
		bar.update(after, 0)
		if n < eventsPage {
			break
		}
	}
	return mem, func() { mem.Close() }, nil
}

// unsealed clears what the store assigns, so a copy is sealed again identically.
func unsealed(ev events.Envelope) events.Envelope {
	ev.Sequence, ev.StreamVersion = 0, 0
	ev.PrevHash, ev.Hash = "", ""
	return ev
}
