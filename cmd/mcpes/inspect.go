package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcpes/mcpes/config"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/registry"
)

func newInspectCmd(e *env) *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "inspect -f FILE",
		Short: "Inspect one server config without registering it: capabilities and tools, or the failure",
		Long: `inspect connects to the server FILE describes (YAML or JSON, the fields of one
mcpServers entry) as the operator would (${VAR} placeholders expand from this
environment), initializes, lists its tools, prompts and resources, and disconnects.
Nothing is recorded. Exit 1 when the inspection fails.`,
		Example: `  mcpes inspect -f clock-http.yaml
  mcpes inspect -f server.json --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := e.readServerFile("inspect", file)
			if err != nil {
				return err
			}
			name := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
			if domain.ValidateServerName(name) != nil {
				name = "inspected"
			}
			if probs := config.ServerProblems(domain.AppScope, name, cfg); len(probs) > 0 {
				return &config.Error{File: file, Problems: probs}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Duration(cfg.InitTimeout())*time.Millisecond+5*time.Second)
			defer cancel()
			out := registry.UpstreamInspector(ctx, registry.InspectRequest{Scope: domain.AppScope, Name: name,
				Config: cfg, LookupEnv: os.LookupEnv,
				Secret: func(ref string) (string, error) { return "", fmt.Errorf("no secret store for %s", ref) }})
			if e.json {
				if err := printJSON(e.stdout, out); err != nil {
					return err
				}
			} else {
				printOutcome(e, out)
			}
			if !out.OK {
				return errReported
			}
			return nil
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "YAML or JSON file with one server config")
	return c
}

func printOutcome(e *env, o domain.InspectionOutcome) {
	w := e.stdout
	if !o.OK {
		fmt.Fprintf(w, "inspection failed (%s) after %s: %s\n", o.Class, o.Duration.Round(time.Millisecond), o.Message)
		if o.RequiresOAuth {
			fmt.Fprintln(w, "the server requires OAuth (HTTP 401/403)")
		}
		return
	}
	fmt.Fprintf(w, "server %s %s, protocol %s, inspected in %s\n", o.ServerName, o.ServerVersion, o.ProtocolVersion,
		o.Duration.Round(time.Millisecond))
	var caps []string
	for name, on := range map[string]bool{"tools": o.Capabilities.Tools, "prompts": o.Capabilities.Prompts,
		"resources": o.Capabilities.Resources, "logging": o.Capabilities.Logging} {
		if on {
			caps = append(caps, name)
		}
	}
	fmt.Fprintf(w, "capabilities: %s\n", strings.Join(sortStrings(caps), ", "))
	if o.Instructions != "" {
		fmt.Fprintf(w, "instructions: %s\n", o.Instructions)
	}
	fmt.Fprintf(w, "tools (%d):\n", len(o.Tools))
	for _, t := range o.Tools {
		fmt.Fprintf(w, "  %-24s %s\n", t.Name, t.Description)
	}
	if len(o.Prompts) > 0 {
		fmt.Fprintf(w, "prompts (%d):\n", len(o.Prompts))
		for _, p := range o.Prompts {
			fmt.Fprintf(w, "  %s\n", p.Name)
		}
	}
	if len(o.Resources) > 0 {
		fmt.Fprintf(w, "resources (%d):\n", len(o.Resources))
		for _, r := range o.Resources {
			fmt.Fprintf(w, "  %s\n", r.URI)
		}
	}
}

func sortStrings(s []string) []string {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}
