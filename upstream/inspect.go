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
		entries, err := c.listAll(ctx, "tools/list", "tools")
		if err != nil {
			return failed(err)
		}
		out.Tools = make([]domain.Tool, 0, len(entries))
		for _, e := range entries {
			var t mcp.Tool
			if err := json.Unmarshal(e, &t); err != nil {
				return failed(fmt.Errorf("%w: tool entry: %v", ErrProtocol, err))
			}
			dt, err := toDomainTool(t)
			if err != nil {
				return failed(fmt.Errorf("%w: tool %q: %v", ErrProtocol, t.Name, err))
			}
			dt.Entry = e
			out.Tools = append(out.Tools, dt)
		}
	}
	if out.Capabilities.Prompts {
		entries, err := c.listAll(ctx, "prompts/list", "prompts")
		if err != nil {
			return failed(err)
		}
		for _, e := range entries {
			var p mcp.Prompt
			if err := json.Unmarshal(e, &p); err != nil {
				return failed(fmt.Errorf("%w: prompt entry: %v", ErrProtocol, err))
			}
			out.Prompts = append(out.Prompts, domain.Prompt{Name: p.Name, Description: p.Description, Entry: e})
		}
	}
	if out.Capabilities.Resources {
		entries, err := c.listAll(ctx, "resources/list", "resources")
		if err != nil {
			return failed(err)
		}
		for _, e := range entries {
			var r mcp.Resource
			if err := json.Unmarshal(e, &r); err != nil {
				return failed(fmt.Errorf("%w: resource entry: %v", ErrProtocol, err))
			}
			out.Resources = append(out.Resources, domain.Resource{URI: r.URI, Name: r.Name, MIMEType: r.MIMEType, Entry: e})
		}
		if out.ResourceTemplates, err = c.listAll(ctx, "resources/templates/list", "resourceTemplates"); err != nil {
			return failed(err)
		}
	}
	return out
}

// maxListPages bounds the pages of one list an inspection follows.
const maxListPages = 100

// listAll returns every entry of a paginated list (key is the result's array),
// each compacted, as the server sent it. A server that does not know the method
// has none.
func (c *Conn) listAll(ctx context.Context, method, key string) ([]domain.RawJSON, error) {
	var out []domain.RawJSON
	cursor := ""
	for range maxListPages {
		params := json.RawMessage("{}")
		if cursor != "" {
			params, _ = json.Marshal(map[string]string{"cursor": cursor})
		}
		rctx, cancel := c.reqCtx(ctx)
		resp, err := c.Relay(rctx, method, params, nil)
		cancel()
		if err != nil {
			if isNotFound(err) {
				return out, nil
			}
			return nil, err
		}
		if resp.Error != nil {
			if resp.Error.Code == mcp.METHOD_NOT_FOUND {
				return out, nil
			}
			return nil, fmt.Errorf("%s: %w", method, resp.Error)
		}
		var page map[string]json.RawMessage
		if err := json.Unmarshal(resp.Result, &page); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrProtocol, method, err)
		}
		var items []json.RawMessage
		if raw := page[key]; len(raw) > 0 {
			if err := json.Unmarshal(raw, &items); err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrProtocol, method, err)
			}
		}
		for _, it := range items {
			var buf bytes.Buffer
			if err := json.Compact(&buf, it); err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrProtocol, method, err)
			}
			out = append(out, buf.Bytes())
		}
		if err := json.Unmarshal(page["nextCursor"], &cursor); err != nil || cursor == "" {
			return out, nil
		}
	}
	return out, nil
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
