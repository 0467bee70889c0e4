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

// usageError marks a command-line mistake (exit 2); cmd is the command path whose
// help to point at ("" for the root).
type usageError struct {
	err error
	cmd string
}

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{err: fmt.Errorf(format, args...)} }

// failure is an error already reported to the user (exit 1, nothing more printed).
var errReported = errors.New("reported")

// env holds what every command shares: streams and global flags.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	url            string
	data           string
	json           bool
	getenv         func(string) string
}

// Run executes the mcpes command line and returns the exit code.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv}
	root := newRoot(e)
	// The command usage errors point at: the deepest one the arguments name.
	helpOf := "mcpes"
	if c, _, ferr := root.Find(args); ferr == nil && c != nil {
		helpOf = c.CommandPath()
	}
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
		var ue usageError
		if errors.As(err, &ue) && ue.cmd != "" {
			helpOf = ue.cmd
		}
		fmt.Fprintf(stderr, "mcpes: %v\nRun '%s --help' for usage.\n", err, helpOf)
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
(--url, or $MCPES_URL; token from $MCPES_TOKEN) or, with --data DIR, read a stopped
service's data directory directly. --server always names an MCP server.

Exit codes: 0 done; 1 failed (the message says what happened: refused, unreachable,
still failing, verify found a problem, the event stream ended); 2 usage.`,
		Version:       version(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("mcpes {{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err: err, cmd: c.CommandPath()} })
	pf := root.PersistentFlags()
	defURL := "http://127.0.0.1:7300"
	if v := os.Getenv("MCPES_URL"); v != "" {
		defURL = v
	}
	pf.StringVar(&e.url, "url", defURL, "URL of a running mcpes (or $MCPES_URL; bearer token from $MCPES_TOKEN)")
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
		newSnapshotsCmd(e),
		newExportCmd(e),
		newVerifyExportCmd(e),
		newInspectCmd(e),
		newTokenCmd(e),
		newKeysCmd(e),
		newAuthorizeCmd(e),
		newStatusCmd(e),
	)
	return root
}

// dataFlag adds --data DIR (offline mode) to a reading command.
func dataFlag(c *cobra.Command, e *env) {
	c.Flags().StringVar(&e.data, "data", "", "read this data directory directly instead of asking --url (the service must be stopped)")
}

func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{err: fmt.Errorf("%s: want %s, got %d argument(s)", c.CommandPath(), what, len(args)), cmd: c.CommandPath()}
		}
		return nil
	}
}

func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{err: fmt.Errorf("%s takes no arguments, got %q", c.CommandPath(), args), cmd: c.CommandPath()}
	}
	return nil
}
