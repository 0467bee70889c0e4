package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/store"
)

var connColumns = []column{
	{header: "OWNER", key: "owner", format: func(v any, _ map[string]any) string {
		s, _ := v.(string)
		return domain.OwnerWord(s)
	}},
	{header: "SERVER", key: "server"},
	// The log position of the config the connection was built from (the API's
	// configPosition; the log's own record, read with --data, calls it configVersion).
	{header: "CONFIG-POSITION", key: "configPosition", format: func(v any, r map[string]any) string {
		if v == nil {
			v = r["configVersion"]
		}
		return cell(v)
	}},
	{header: "SINCE", key: "openedAt", format: func(v any, r map[string]any) string {
		if v == nil {
			v = r["since"]
		}
		return cell(v)
	}},
}

func newConnectionsCmd(e *env) *cobra.Command {
	var owner string
	c := &cobra.Command{
		Use:   "connections [--owner ID]",
		Short: "Open connections: the shared repository's, or an owner's with --owner",
		Long: `connections lists the open connections of the shared (app-level) repository, or of
one owner with --owner (an owner token always lists its own). With --data it reads
them from the log of a stopped service: every owner's unless --owner is given.`,
		Example: `  mcpes connections
  mcpes connections --owner alice --json
  mcpes connections --data ./mcpes-data`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			load := func(ctx context.Context, st store.Store) (any, error) {
				conns, err := projections.LoadConnections(ctx, st, projections.Options{})
				if err != nil {
					return nil, err
				}
				if cmd.Flags().Changed("owner") {
					if ownerArg(owner) == domain.SharedOwner {
						return conns.Open(""), nil
					}
					return conns.Open(owner), nil
				}
				return conns.All(), nil
			}
			return e.printListFrom(cmd.Context(), load, "/v1/connections", ownerQuery(owner), connColumns, "connections")
		},
	}
	c.Flags().StringVar(&owner, "owner", "", "owner whose connections to list (admin only)")
	dataFlag(c, e)
	return c
}

func newConnectCmd(e *env) *cobra.Command {
	var owner string
	c := &cobra.Command{
		Use:   "connect NAME [--owner ID]",
		Short: "Get or open the connection of an owner (or the shared repository) to a server",
		Long: `connect asks the service for a connection to NAME through the owner's connection
repository: an existing live, fresh connection is reused; a stale or dead one is
evicted and rebuilt; a refusal names the rule. Every decision is recorded.`,
		Example: `  mcpes connect clock
  mcpes connect clock --owner alice`,
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, _, err := e.change(cmd.Context(), "connect", "POST", "/v1/connections/"+url.PathEscape(args[0]), ownerQuery(owner), nil, nil)
			if err != nil {
				return err
			}
			if e.json {
				return e.writeRaw(raw)
			}
			var info map[string]any
			_ = json.Unmarshal(raw, &info)
			fmt.Fprintf(e.stdout, "connected to %s (config at log position %s)\n", args[0], cell(lookup(info, "configPosition")))
			return nil
		},
	}
	c.Flags().StringVar(&owner, "owner", "", "owner whose repository connects (admin only; default: shared)")
	return c
}

func newDisconnectCmd(e *env) *cobra.Command {
	var owner string
	c := &cobra.Command{
		Use:     "disconnect NAME [--owner ID]",
		Short:   "Close an owner's connection to a server (recorded as an explicit eviction)",
		Example: `  mcpes disconnect clock`,
		Args:    exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ans struct {
				Disconnected bool `json:"disconnected"`
			}
			if _, _, err := e.change(cmd.Context(), "disconnect", "DELETE", "/v1/connections/"+url.PathEscape(args[0]), ownerQuery(owner), nil, &ans); err != nil {
				return err
			}
			if !ans.Disconnected {
				fmt.Fprintf(e.stdout, "no open connection to %s: nothing to disconnect\n", args[0])
				return nil
			}
			fmt.Fprintf(e.stdout, "disconnected from %s\n", args[0])
			return nil
		},
	}
	c.Flags().StringVar(&owner, "owner", "", "owner whose connection to close (admin only)")
	return c
}
