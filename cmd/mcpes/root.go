package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// usageError marks a command-line mistake (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// failure is an error already reported to the user (exit 1, nothing more printed).
var errReported = errors.New("reported")

// env holds what every command shares: streams and global flags.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	server         string
	data           string
	json           bool
	getenv         func(string) string
}

// Run executes the mcpes command line and returns the exit code.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv}
	root := newRoot(e)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errReported):
		return exitFailure
	case isUsage(err):
		fmt.Fprintf(stderr, "mcpes: %v\nRun 'mcpes --help' for usage.\n", err)
		return exitUsage
	}
	fmt.Fprintf(stderr, "mcpes: %v\n", err)
	return exitFailure
}

func isUsage(err error) bool {
	var ue usageError
	if errors.As(err, &ue) {
		return true
	}
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "unknown flag") ||
		strings.HasPrefix(msg, "unknown shorthand flag") || strings.Contains(msg, "required flag")
}

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "mcpes",
		Short: "mcpes manages connections to MCP servers and records every decision in a hash-chained log",
		Long: `mcpes manages connections to MCP (Model Context Protocol) servers for a multi-tenant
platform. Every config change, inspection and connection decision is an event in a
hash-chained log that can be verified, replayed, explained and exported.

'mcpes serve' runs the service. The other commands talk to a running service
(--server, token from MCPES_TOKEN) or, with --data DIR, read a stopped service's data
directory directly.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	defServer := "http://127.0.0.1:7300"
	if v := os.Getenv("MCPES_SERVER"); v != "" {
		defServer = v
	}
	pf.StringVar(&e.server, "server", defServer, "URL of a running mcpes (or $MCPES_SERVER; bearer token from $MCPES_TOKEN)")
	pf.BoolVar(&e.json, "json", false, "print JSON instead of tables")
	root.AddCommand(
		newServeCmd(e),
		newServersCmd(e),
		newReinspectCmd(e),
		newConnectionsCmd(e),
		newConnectCmd(e),
		newDisconnectCmd(e),
		newEventsCmd(e),
		newVerifyCmd(e),
		newReplayCmd(e),
		newExplainCmd(e),
		newExportCmd(e),
		newVerifyExportCmd(e),
		newInspectCmd(e),
		newTokenCmd(e),
		newStatusCmd(e),
	)
	return root
}

// dataFlag adds --data DIR (offline mode) to a reading command.
func dataFlag(c *cobra.Command, e *env) {
	c.Flags().StringVar(&e.data, "data", "", "read this data directory directly instead of asking --server (the service must be stopped)")
}

func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s: want %s, got %d argument(s)", c.CommandPath(), what, len(args))
		}
		return nil
	}
}

func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments, got %q", c.CommandPath(), args)
	}
	return nil
}
