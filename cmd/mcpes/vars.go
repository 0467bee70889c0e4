package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

// varsColumns are the columns of `mcpes servers vars`.
var varsColumns = []column{{header: "NAME", key: "name"}, {header: "SET", key: "set"},
	{header: "SENSITIVE", key: "sensitive"}, {header: "TITLE", key: "title"}}

func newServersVarsCmd(e *env) *cobra.Command {
	var owner string
	var set, unset []string
	c := &cobra.Command{
		Use:   "vars NAME [--set K=V]... [--unset K]... [--owner ID]",
		Short: "An owner's values for a server's customUserVars / user apiKey: list (names and whether set), set, unset",
		Long: `Without --set or --unset, lists the server's per-owner variables and whether each
is set; values are never shown. --set K=- reads the value from stdin (one line), so
it stays out of the shell history. --unset with no --set clears the named values.`,
		Example: `  mcpes servers vars github --set GITHUB_PAT=-
  mcpes servers vars github --unset GITHUB_PAT
  mcpes servers vars "google calendar" --owner alice --json`,
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/v1/servers/" + url.PathEscape(args[0]) + "/vars"
			q := ownerQuery(owner)
			var raw []byte
			if len(unset) > 0 {
				dq := ownerQuery(owner)
				for _, k := range unset {
					dq.Add("name", k)
				}
				var err error
				if raw, _, err = e.change(cmd.Context(), "servers vars", "DELETE", path, dq, nil, nil); err != nil {
					return err
				}
			}
			if len(set) > 0 {
				values, err := parseAssignments(set, e)
				if err != nil {
					return err
				}
				body, _ := json.Marshal(values)
				if raw, _, err = e.change(cmd.Context(), "servers vars", "PUT", path, q, body, nil); err != nil {
					return err
				}
			}
			if raw == nil {
				var err error
				if raw, _, err = e.call(cmd.Context(), "GET", path, q, nil, nil); err != nil {
					return err
				}
			}
			return e.printList(raw, varsColumns, "vars")
		},
	}
	c.Flags().StringVar(&owner, "owner", "", "owner whose values to change (admin only; owners act for themselves)")
	c.Flags().StringArrayVar(&set, "set", nil, "K=V: set a value (V \"-\" reads it from stdin)")
	c.Flags().StringArrayVar(&unset, "unset", nil, "K: clear a value")
	return c
}

// parseAssignments turns K=V flags into a map; a value "-" is read from stdin.
func parseAssignments(set []string, e *env) (map[string]string, error) {
	out := map[string]string{}
	var in *bufio.Reader
	for _, kv := range set {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--set %q: want NAME=VALUE", kv)
		}
		if v == "-" {
			if in == nil {
				in = bufio.NewReader(e.stdin)
			}
			line, err := in.ReadString('\n')
			if err != nil && line == "" {
				return nil, fmt.Errorf("--set %s=-: read stdin: %w", k, err)
			}
			v = strings.TrimRight(line, "\r\n")
		}
		out[k] = v
	}
	return out, nil
}
