package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpes/mcpes/domain"
)

// Inspect connects to the server (connect and initialize bounded by
// cfg.InitTimeout()), lists its tools, prompts and resources as far as it
// announced them (each under cfg.Timeout(); a list the server does not implement
// counts as empty), takes the instructions when cfg asks for them, and
// disconnects. It never returns an error: a failure is an outcome with OK false,
// its Class and Message, and RequiresOAuth set (class auth) when the server
// answered HTTP 401/403 or an OAuth challenge.
func Inspect(ctx context.Context, name string, cfg domain.ServerConfig, opts Options) domain.InspectionOutcome {
	start := time.Now()
	out := inspect(ctx, name, cfg, opts)
	out.Duration = time.Since(start)
	return out
}

func inspect(ctx context.Context, name string, cfg domain.ServerConfig, opts Options) domain.InspectionOutcome {
	c, err := Dial(ctx, name, cfg, opts)
	if err != nil {
		return failed(err)
	}
	defer c.Close()
	caps := c.Capabilities()
	out := domain.InspectionOutcome{
		OK:              true,
		ServerName:      c.ServerInfo().Name,
		ServerVersion:   c.ServerInfo().Version,
		ProtocolVersion: c.ProtocolVersion(),
		Capabilities: domain.Capabilities{
			Tools: caps.Tools != nil, Prompts: caps.Prompts != nil, Resources: caps.Resources != nil,
			Logging: caps.Logging != nil, Completions: caps.Completions != nil,
		},
	}
	if in := cfg.ServerInstructions; in != nil {
		switch {
		case in.Text != "":
			out.Instructions = in.Text
		case in.Fetch:
			out.Instructions = c.Instructions()
		}
	}
	if out.Capabilities.Tools {
		tools, err := c.ListTools(ctx)
		if err != nil && !isNotFound(err) {
			return failed(err)
		}
		out.Tools = make([]domain.Tool, 0, len(tools))
		for _, t := range tools {
			dt, err := toDomainTool(t)
			if err != nil {
				return failed(fmt.Errorf("%w: tool %q: %v", ErrProtocol, t.Name, err))
			}
			out.Tools = append(out.Tools, dt)
		}
	}
	if out.Capabilities.Prompts {
		prompts, err := c.ListPrompts(ctx)
		if err != nil && !isNotFound(err) {
			return failed(err)
		}
		for _, p := range prompts {
			out.Prompts = append(out.Prompts, domain.Prompt{Name: p.Name, Description: p.Description})
		}
	}
	if out.Capabilities.Resources {
		resources, err := c.ListResources(ctx)
		if err != nil && !isNotFound(err) {
			return failed(err)
		}
		for _, r := range resources {
			out.Resources = append(out.Resources, domain.Resource{URI: r.URI, Name: r.Name, MIMEType: r.MIMEType})
		}
	}
	return out
}

func failed(err error) domain.InspectionOutcome {
	class := Classify(err)
	return domain.InspectionOutcome{Class: class, Message: err.Error(), RequiresOAuth: class == domain.FailureAuth}
}

// toDomainTool maps an mcp.Tool to the catalogue entry: name, title, description
// and the input schema as compact JSON, exactly as the server sent it.
func toDomainTool(t mcp.Tool) (domain.Tool, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return domain.Tool{}, err
	}
	var raw struct {
		InputSchema json.RawMessage `json:"inputSchema"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return domain.Tool{}, err
	}
	dt := domain.Tool{Name: t.Name, Title: t.Title, Description: t.Description}
	if t.Annotations.Title != "" && dt.Title == "" {
		dt.Title = t.Annotations.Title
	}
	if len(raw.InputSchema) > 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw.InputSchema); err != nil {
			return domain.Tool{}, err
		}
		dt.InputSchema = buf.Bytes()
	}
	return dt, nil
}
