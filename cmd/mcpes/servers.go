package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/store"
)

var serverColumns = []column{
	{header: "NAME", key: "name"},
	{header: "SCOPE", key: "scope"},
	{header: "SOURCE", key: "source"},
	{header: "STATE", key: "state", format: func(v any, r map[string]any) string {
		if r["shadowed"] == true {
			return "shadowed"
		}
		return cell(v)
	}},
	{header: "CONFIG-VERSION", key: "configVersion"},
	{header: "UPDATED", key: "updatedAt"},
	{header: "TOOLS", key: "toolCount"},
	{header: "REASON", key: "reason", format: func(v any, r map[string]any) string {
		if r["shadowed"] == true {
			return "hidden by the app server of the same name"
		}
		return cell(v)
	}},
}

func newServersCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "servers",
		Short: "List, register, change and remove MCP server configs",
		Example: `  mcpes servers list --owner alice
  mcpes servers put notes -f notes.yaml --owner alice
  mcpes servers rm notes --owner alice`,
	}
	c.AddCommand(newServersListCmd(e), newServersGetCmd(e), newServersPutCmd(e), newServersRmCmd(e), newServersVarsCmd(e))
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
				var out []serverRow
				for _, en := range proj.List(owner) {
					if st, ok := proj.State(en.Scope, en.Name); ok && st.Exists {
						out = append(out, serverRow{Name: st.Name, Scope: st.Scope, Source: st.AppSource(),
							State: st.Status(), Reason: st.Reason(), ConfigVersion: st.ConfigVersion,
							UpdatedAt: st.UpdatedAt, ToolCount: toolCount(st), Shadowed: en.Shadowed})
					}
				}
				return out, nil
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
		Short:   "Remove a server config; every owner's open connection to it is evicted (and recorded) before it returns",
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
		Short: "Reinspect a server whose inspection failed; exit 0 when it is ready, 1 when still failing or it requires OAuth",
		Example: `  mcpes reinspect clock-http
  mcpes reinspect notes --owner alice --json`,
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res struct {
				Server string        `json:"server"`
				State  domain.Status `json:"state"`
				Reason string        `json:"reason"`
			}
			raw, _, err := e.change(cmd.Context(), "reinspect", "POST", "/v1/servers/"+url.PathEscape(args[0])+"/reinspect", ownerQuery(owner), nil, &res)
			if err != nil {
				return err
			}
			switch {
			case e.json:
				_ = e.writeRaw(raw)
			case res.State == domain.StatusReady:
				fmt.Fprintf(e.stdout, "server %s reinspected: ready\n", args[0])
			case res.State == domain.StatusRequiresOAuth:
				fmt.Fprintf(e.stdout, "server %s reinspected: requires_oauth (%s)\n", args[0], res.Reason)
			default:
				fmt.Fprintf(e.stdout, "server %s still failing: %s\n", args[0], res.Reason)
			}
			if res.State != domain.StatusReady {
				return errReported
			}
			return nil
		},
	}
	c.Flags().StringVar(&owner, "owner", "", "owner whose server to reinspect (admin only)")
	return c
}

// serverRow is a server as `servers list --data` prints it: the API's fields of the
// list, read from the log.
type serverRow struct {
	Name          string        `json:"name"`
	Scope         domain.Scope  `json:"scope"`
	Source        domain.Source `json:"source,omitempty"`
	State         domain.Status `json:"state"`
	Reason        string        `json:"reason,omitempty"`
	ConfigVersion uint64        `json:"configVersion"`
	UpdatedAt     time.Time     `json:"updatedAt"`
	ToolCount     int           `json:"toolCount"`
	Shadowed      bool          `json:"shadowed,omitempty"`
}

func toolCount(st domain.ServerState) int {
	if st.LastSuccess == nil {
		return 0
	}
	return len(st.LastSuccess.Tools)
}

func newServersGetCmd(e *env) *cobra.Command {
	var owner string
	c := &cobra.Command{
		Use:   "get NAME [--owner ID]",
		Short: "One server: config (secrets redacted), source, state and reason, tools, last inspection, ignored fields",
		Example: `  mcpes servers get clock
  mcpes servers get notes --owner alice --json`,
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := e.refuseOffline("servers get"); err != nil {
				return err
			}
			raw, _, err := e.call(cmd.Context(), "GET", "/v1/servers/"+url.PathEscape(args[0]), ownerQuery(owner), nil, nil)
			if err != nil {
				return err
			}
			if e.json {
				return e.writeRaw(raw)
			}
			return printServer(e.stdout, raw)
		},
	}
	c.Flags().StringVar(&owner, "owner", "", "owner whose view to show (admin only; default: app level)")
	return c
}

// printServer prints GET /v1/servers/{name} for a reader.
func printServer(w io.Writer, raw []byte) error {
	var s struct {
		Name          string              `json:"name"`
		Scope         string              `json:"scope"`
		Source        string              `json:"source"`
		Config        domain.ServerConfig `json:"config"`
		ConfigVersion uint64              `json:"configVersion"`
		Position      uint64              `json:"position"`
		UpdatedAt     time.Time           `json:"updatedAt"`
		State         string              `json:"state"`
		Reason        string              `json:"reason"`
		MayConnect    bool                `json:"mayConnect"`
		Rule          string              `json:"rule"`
		Tools         []domain.Tool       `json:"tools"`
		Inspection    *struct {
			ServerName      string `json:"serverName"`
			ServerVersion   string `json:"serverVersion"`
			ProtocolVersion string `json:"protocolVersion"`
			DurationMS      int64  `json:"durationMs"`
		} `json:"inspection"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("decode server: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("name:", s.Name)
	row("scope:", s.Scope)
	if s.Source != "" {
		row("source:", s.Source)
	}
	state := s.State
	if s.Reason != "" {
		state += " (" + s.Reason + ")"
	}
	row("state:", state)
	row("config version:", fmt.Sprintf("%d (log position %d, %s)", s.ConfigVersion, s.Position, cell(s.UpdatedAt.Format(time.RFC3339Nano))))
	verdict := "may connect"
	if !s.MayConnect {
		verdict = "refused by policy (rule " + s.Rule + ")"
	}
	row("this view:", verdict)
	if in := s.Inspection; in != nil {
		row("last inspection:", fmt.Sprintf("%s %s, protocol %s, %d ms", in.ServerName, in.ServerVersion, in.ProtocolVersion, in.DurationMS))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	cfg, err := json.MarshalIndent(s.Config, "  ", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "config (secrets redacted):\n  %s\n", cfg)
	for _, p := range domain.ConfigWarnings(s.Name, s.Config) {
		fmt.Fprintf(w, "ignored field %s: kept with the config, but mcpes does not act on it\n", p.Field)
	}
	fmt.Fprintf(w, "tools (%d):\n", len(s.Tools))
	for _, t := range s.Tools {
		fmt.Fprintf(w, "  %s\t%s\n", t.Name, truncate(t.Description, 100))
	}
	return nil
}
