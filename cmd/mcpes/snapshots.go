package main

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcpes/mcpes/config"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/store/bolt"
)

func newSnapshotsCmd(e *env) *cobra.Command {
	var every int
	var check bool
	c := &cobra.Command{
		Use:   "snapshots --data DIR [--every N] [--check]",
		Short: "Build (or check) the as-of snapshots explain starts from, for an existing log",
		Long: `snapshots stores an as-of snapshot of the server-config projection at every multiple of
--every events that the log in DIR lacks, folding the log once from the newest one, so
that explain at any time folds at most --every events. The running service keeps them
itself (audit.snapshotEvery); this command is for a log written without them, with the
service stopped.

With --check, it rebuilds the projection from the start of the log instead and compares
it with every stored snapshot: exit 1 naming the first that differs. Snapshots are
derived data; an explanation says which one it started from.`,
		Example: `  mcpes snapshots --data ./mcpes-data
  mcpes snapshots --data ./mcpes-data --check`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if e.data == "" {
				return usagef("snapshots needs --data DIR (the running service keeps its own)")
			}
			if every < 1000 {
				return usagef("--every wants at least 1000 events, got %d", every)
			}
			ctx := cmd.Context()
			start := time.Now()
			if check {
				st, err := openData(e.data)
				if err != nil {
					return err
				}
				defer st.Close()
				n, err := projections.CheckAsOf(ctx, st)
				if errors.Is(err, projections.ErrAsOfMismatch) {
					fmt.Fprintf(e.stderr, "snapshots: %d ok, then: %v\n", n, err)
					return errReported
				}
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(e.stdout, "snapshots ok: %d checked in %s\n", n, time.Since(start).Round(time.Millisecond))
				return err
			}
			ro, err := openData(e.data) // its checks and messages (missing, in use)
			if err != nil {
				return err
			}
			_ = ro.Close()
			st, err := bolt.Open(dbPath(e.data), bolt.Options{Timeout: 500 * time.Millisecond})
			if err != nil {
				return fmt.Errorf("open data directory %s: %w", e.data, err)
			}
			defer st.Close()
			n, err := projections.BuildAsOf(ctx, st, uint64(every), 0, slog.Default())
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(e.stdout, "snapshots: %d saved every %d events in %s\n", n, every, time.Since(start).Round(time.Millisecond))
			return err
		},
	}
	c.Flags().IntVar(&every, "every", config.DefaultSnapshotEvery, "events between snapshots")
	c.Flags().BoolVar(&check, "check", false, "compare the stored snapshots with the log instead of building")
	dataFlag(c, e)
	return c
}
