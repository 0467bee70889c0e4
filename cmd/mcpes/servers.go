package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/store"
)

var serverColumns = []column{
	{header: "NAME", key: "name"},
	{header: "SCOPE", key: "scope"},
	{header: "STATE", key: "", format: func(_ any, r map[string]any) string { return serverState(r) }},
	{header: "VERSION", key: "version"},
	{header: "UPDATED", key: "updatedAt"},
	{header: "TOOLS", key: "toolCount"},
}

// serverState summarises an entry's inspection state in one word.
func serverState(r map[string]any) string {
	if st, ok := r["state"].(string); ok && st != "" && r["inspectionFailed"] != true {
		if r["shadowed"] == true {
			return "shadowed"
		}
		return st
	}
	switch {
	case r["shadowed"] == true:
		return "shadowed"
	case r["inspectionFailed"] == true:
		if c, ok := r["failureClass"].(string); ok && c != "" {
			return "failed (" + c + ")"
		}
		return "failed"
	case r["requiresOAuth"] == true:
		return "needs-oauth"
	case r["inspected"] == true:
		return "ok"
	}
	return "pending"
}

func newServersCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "servers",
		Short: "List, register, change and remove MCP server configs",
		Example: `  mcpes servers list --owner alice
  mcpes servers put notes -f notes.yaml --owner alice
  mcpes servers rm notes --owner alice`,
	}
	c.AddCommand(newServersListCmd(e), newServersPutCmd(e), newServersRmCmd(e), newServersVarsCmd(e))
	return c
}

func newServersListCmd(e *env) *cobra.Command {
	var owner string
	c := &cobra.Command{
		Use:   "list [--owner ID]",
		Short: "Servers visible to an owner (or the app-level servers), with state, version, updatedAt and tool count",
		Example: `  mcpes servers list
  mcpes servers list --owner alice --json
  mcpes servers list --data ./mcpes-data`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			load := func(ctx context.Context, st store.Store) (any, error) {
				proj, err := projections.Load(ctx, st, projections.Options{})
				if err != nil {
					return nil, err
				}
				return proj.List(owner), nil
			}
			return e.printListFrom(cmd.Context(), load, "/v1/servers", ownerQuery(owner), serverColumns, "servers")
		},
	}
	c.Flags().StringVar(&owner, "owner", "", "owner whose view to list (admin only; default: app level)")
	dataFlag(c, e)
	return c
}

func newServersPutCmd(e *env) *cobra.Command {
	var owner, file string
	c := &cobra.Command{
		Use:   "put NAME -f FILE [--owner ID]",
		Short: "Register or change a server from a YAML or JSON file holding one server config",
		Example: `  mcpes servers put clock-http -f clock-http.yaml
  mcpes servers put notes -f notes.json --owner alice`,
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := e.refuseOffline("servers put"); err != nil {
				return err
			}
			cfg, err := e.readServerFile("servers put", file)
			if err != nil {
				return err
			}
			body, err := json.Marshal(cfg)
			if err != nil {
				return err
			}
			raw, status, err := e.call(cmd.Context(), "PUT", "/v1/servers/"+url.PathEscape(args[0]), ownerQuery(owner), body, nil)
			if err != nil {
				return err
			}
			if e.json {
				return e.writeRaw(raw)
			}
			verb := "changed"
			if status == 201 {
				verb = "registered"
			}
			var ans map[string]any
			_ = json.Unmarshal(raw, &ans)
			if ch, ok := ans["changed"].([]any); ok && len(ch) == 0 && status != 201 {
				verb = "unchanged"
			} else if ok && status != 201 {
				verb = "changed (" + cell(ch) + ")"
			}
			fmt.Fprintf(e.stdout, "server %s %s\n", args[0], verb)
			return nil
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "YAML or JSON file with one server config (the fields of an mcpServers entry)")
	c.Flags().StringVar(&owner, "owner", "", "owner to register it for (admin only; default: app level)")
	return c
}

func newServersRmCmd(e *env) *cobra.Command {
	var owner string
	c := &cobra.Command{
		Use:     "rm NAME [--owner ID]",
		Short:   "Remove a server config (open connections to it are evicted)",
		Example: `  mcpes servers rm clock-http`,
		Args:    exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, _, err := e.change(cmd.Context(), "servers rm", "DELETE", "/v1/servers/"+url.PathEscape(args[0]), ownerQuery(owner), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "server %s removed\n", args[0])
			return nil
		},
	}
	c.Flags().StringVar(&owner, "owner", "", "owner whose server to remove (admin only)")
	return c
}

func newReinspectCmd(e *env) *cobra.Command {
	var owner string
	c := &cobra.Command{
		Use:   "reinspect NAME [--owner ID]",
		Short: "Reinspect a server whose inspection failed; exit 1 when it is still unreachable",
		Example: `  mcpes reinspect clock-http
  mcpes reinspect notes --owner alice --json`,
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res struct {
				Server string `json:"server"`
				OK     bool   `json:"ok"`
				Reason string `json:"reason"`
			}
			raw, _, err := e.change(cmd.Context(), "reinspect", "POST", "/v1/servers/"+url.PathEscape(args[0])+"/reinspect", ownerQuery(owner), nil, &res)
			if err != nil {
				return err
			}
			if e.json {
				_ = e.writeRaw(raw)
			} else if res.OK {
				fmt.Fprintf(e.stdout, "server %s reinspected: ok\n", args[0])
			} else {
				fmt.Fprintf(e.stdout, "server %s still failing: %s\n", args[0], res.Reason)
			}
			if !res.OK {
				return errReported
			}
			return nil
		},
	}
	c.Flags().StringVar(&owner, "owner", "", "owner whose server to reinspect (admin only)")
	return c
}
