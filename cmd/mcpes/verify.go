package main

import (
	"encoding/json"
	"fmt"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/mcpes/mcpes/audit"
	"github.com/mcpes/mcpes/config"
)

func newVerifyCmd(e *env) *cobra.Command {
	var witness, key, since, clusterURL string
	c := &cobra.Command{
		Use:   "verify [--witness PATH|nats://HOST:PORT/SUBJECT] [--key PUB] [--since CHECKPOINT] [--cluster URL]",
		Short: "Check the hash chain and replay every decision; exit 1 on any problem",
		Long: `verify walks the whole log: every stored byte must chain (SHA-256 over the previous
hash and the event), positions must be gap-free, and every recorded connection decision
must come out the same when the pure policy is re-run on the projection rebuilt to the
position it read. The first bad position is named. The log's Merkle tree must match
the newest signed checkpoint stored in the file and, with --witness, every checkpoint
published to that witness (a witness file, or nats://HOST:PORT/SUBJECT for a JetStream
witness; signatures checked with --key, or the key derived from
MCPES_SIGNING_KEY): a cut tail, a rewritten event or a fork names the checkpoint.
--since CHECKPOINT (a file with a signed note, or a witness line) checks only the log
after that trusted checkpoint (chain and tree; decisions are not replayed).
--cluster nats://HOST:PORT (with --data) also reads every node's decisions from the
cluster's decisions stream, each checked against its hash, and checks this node's:
every decision shipped, each copy equal to the log's record.
Exit 0 when all is well, 1 otherwise.`,
		Example: `  mcpes verify
  mcpes verify --data ./mcpes-data --witness /var/lib/witness/mcpes.jsonl --key 'mcpes.example/log+1b2c3d4e+A...'
  mcpes verify --data ./mcpes-data --witness nats://127.0.0.1:4222/mcpes.checkpoints --key 'mcpes.example/log+1b2c3d4e+A...'
  mcpes verify --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rep audit.VerifyReport
			var opts []audit.VerifyOption
			v, err := verifierFrom(key)
			if err != nil {
				return err
			}
			if v != nil {
				opts = append(opts, audit.WithVerifier(v))
			}
			if since != "" {
				if v == nil || e.data == "" {
					return usagef("verify --since needs --data DIR and --key PUB (or MCPES_SIGNING_KEY)")
				}
				cp, err := readCheckpoint(since, v)
				if err != nil {
					return err
				}
				opts = append(opts, audit.WithSince(cp))
			}
			var notes []string
			if witness != "" {
				if v == nil {
					return usagef("verify --witness needs --key PUB (or MCPES_SIGNING_KEY) to check the checkpoints' signatures")
				}
				cps, err := audit.ReadWitness(cmd.Context(), witness, v)
				if err != nil {
					return err
				}
				opts = append(opts, audit.WithCheckpoints(cps...))
				for _, c := range cps {
					notes = append(notes, c.Note)
				}
			}
			if e.data != "" {
				st, err := openData(e.data)
				if err != nil {
					return err
				}
				defer st.Close()
				scanGC(e.getenv)
				bar := newProgress(e.stderr, "verify")
				rep, err = audit.VerifyAll(cmd.Context(), st, func(stage string, pos, head uint64) {
					if stage == "chain" { // the one pass; decisions are replayed alongside
						bar.update(pos, head)
					}
				}, opts...)
				bar.done()
				if err != nil {
					return err
				}
				if clusterURL != "" {
					nc, err := nats.Connect(clusterURL, nats.Name("mcpes verify"))
					if err != nil {
						return fmt.Errorf("cluster %s: %w", config.RedactURLs(clusterURL), err)
					}
					dc, err := checkDecisions(cmd.Context(), nc, st)
					nc.Close()
					if err != nil {
						return err
					}
					rep.Problems = append(rep.Problems, dc.problems...)
					rep.OK = rep.OK && len(dc.problems) == 0
					fmt.Fprintln(e.stderr, dc.summary())
				}
			} else {
				if clusterURL != "" {
					return usagef("verify --cluster needs --data DIR (this node's data directory)")
				}
				// The signatures were checked here; the service checks its log against
				// the tree heads.
				body, _ := json.Marshal(map[string][]string{"checkpoints": notes})
				if _, _, err := e.call(cmd.Context(), "POST", "/v1/audit/verify", nil, body, &rep); err != nil {
					return err
				}
			}
			after := ""
			if rep.Since > 0 {
				after = fmt.Sprintf(" after position %d", rep.Since)
			}
			return e.report(rep, rep.Problems, rep.OK, func(status string) string {
				return fmt.Sprintf("verify %s: %d events checked%s, %d checkpoints, %d decisions replayed, %d problems",
					status, rep.Events, after, rep.Checkpoints, rep.Decisions, len(rep.Problems))
			})
		},
	}
	c.Flags().StringVar(&since, "since", "", "check only the log after this trusted checkpoint (a note file or witness line)")
	c.Flags().StringVar(&witness, "witness", "", "a witness to check the log against: a file (JSON Lines of signed checkpoints) or nats://HOST:PORT/SUBJECT")
	c.Flags().StringVar(&clusterURL, "cluster", "", "also check every node's decisions in the cluster at nats://HOST:PORT[,...] (with --data)")
	c.Flags().StringVar(&key, "key", "", "the checkpoint signer's verifier key, or a file holding it (default: from MCPES_SIGNING_KEY)")
	dataFlag(c, e)
	return c
}

func newReplayCmd(e *env) *cobra.Command {
	var until string
	c := &cobra.Command{
		Use:   "replay [--until POS|TIME]",
		Short: "Rebuild the projections from the log, print the state, and compare every decision",
		Long: `replay folds the log from the start to --until (a log position, or an RFC 3339 time;
default the end), prints the servers and open connections it gives, and re-runs every
recorded connection decision. Exit 1 when a decision replays differently.`,
		Example: `  mcpes replay
  mcpes replay --until 42
  mcpes replay --until 2026-11-24T14:02:00Z --data ./mcpes-data --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			var pos uint64
			var at time.Time
			if until != "" {
				if n, perr := strconv.ParseUint(until, 10, 64); perr == nil {
					if n == 0 {
						return usagef("--until 0: positions start at 1")
					}
					pos = n
				} else if t, terr := parseTime("until", until); terr == nil {
					at = t
				} else {
					return usagef("--until %q: want a log position or an RFC 3339 time", until)
				}
			}
			st, closeFn, err := e.readStore(ctx, nil)
			if err != nil {
				return err
			}
			defer closeFn()
			if !at.IsZero() {
				if pos, err = audit.PositionAt(ctx, st, at); err != nil {
					return err
				}
				if pos == 0 {
					return fmt.Errorf("replay: no event at or before %s", until)
				}
			}
			scanGC(e.getenv)
			bar := newProgress(e.stderr, "replay")
			res, err := audit.Replay(ctx, st, pos, func(_ string, p, head uint64) { bar.update(p, head) })
			bar.done()
			if err != nil {
				return err
			}
			if e.json {
				if err := printJSON(e.stdout, res); err != nil {
					return err
				}
			} else if err := e.printReplay(res); err != nil {
				return err
			}
			if len(res.Mismatches) > 0 {
				return errReported
			}
			return nil
		},
	}
	c.Flags().StringVar(&until, "until", "", "replay up to this log position or time (default: the end)")
	dataFlag(c, e)
	return c
}

func (e *env) printReplay(res audit.ReplayResult) error {
	toRows := func(v any) []map[string]any {
		b, _ := json.Marshal(v)
		var rows []map[string]any
		_ = json.Unmarshal(b, &rows)
		return rows
	}
	fmt.Fprintf(e.stdout, "state at position %d\n\nservers:\n", res.Position)
	if err := printTable(e.stdout, toRows(res.Servers), serverColumns); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "\nopen connections:")
	if err := printTable(e.stdout, toRows(res.Connections), connColumns); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "\n%d decisions replayed, %d mismatches\n", res.Decisions, len(res.Mismatches))
	for _, m := range res.Mismatches {
		fmt.Fprintln(e.stdout, "mismatch:", m.String())
	}
	return nil
}

// report prints a check's result: rep as JSON with --json, else each problem and the
// summary line (given "ok" or "FAILED"). It returns errReported when the check failed.
func (e *env) report(rep any, problems []string, ok bool, summary func(status string) string) error {
	if e.json {
		if err := printJSON(e.stdout, rep); err != nil {
			return err
		}
	} else {
		for _, p := range problems {
			fmt.Fprintln(e.stdout, "problem:", p)
		}
		status := "ok"
		if !ok {
			status = "FAILED"
		}
		fmt.Fprintln(e.stdout, summary(status))
	}
	if !ok {
		return errReported
	}
	return nil
}

// scanGC gives the garbage collector a larger goal for a command that reads the
// whole log: the scan allocates a little per event and keeps little (tens of MB), so
// at the default goal the collector would run every few megabytes (about a tenth of
// the CPU of a verify). GOGC, when set, wins.
func scanGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(300)
	}
}
