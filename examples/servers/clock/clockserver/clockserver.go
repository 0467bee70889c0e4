// Package clockserver builds the "clock" example MCP server: a few small tools, one
// prompt and one resource that need no network. The binary in the parent folder
// serves it over stdio, streamable HTTP or SSE; tests import this package to run the
// same server in-process.
package clockserver

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// Name and Version are what the server reports in its implementation info.
const (
	Name    = "clock"
	Version = "0.1.0"
)

// Instructions is the text the server announces to clients.
const Instructions = "Read the time in any IANA zone, echo text, add numbers, or sleep for a while."

// ResourceURI is the URI of the server's only resource.
const ResourceURI = "clock://zones"

// New returns a clock server with its tools, prompt and resource registered. Extra
// options are applied after the defaults (tool list_changed, prompts, resources,
// logging, recovery and the instructions).
func New(opts ...server.ServerOption) *server.MCPServer {
	base := []server.ServerOption{
		server.WithToolCapabilities(true),
		server.WithPromptCapabilities(false),
		server.WithResourceCapabilities(false, false),
		server.WithLogging(),
		server.WithRecovery(),
		server.WithInstructions(Instructions),
	}
	s := server.NewMCPServer(Name, Version, append(base, opts...)...)
	s.AddTool(mcp.NewTool("now",
		mcp.WithDescription("The current time in an IANA time zone, RFC 3339."),
		mcp.WithString("zone", mcp.Description("IANA zone name, e.g. Europe/Paris; UTC when empty"))),
		now)
	s.AddTool(mcp.NewTool("echo",
		mcp.WithDescription("Returns its text unchanged."),
		mcp.WithString("text", mcp.Required(), mcp.Description("text to echo"))),
		echo)
	s.AddTool(mcp.NewTool("add",
		mcp.WithDescription("Adds two numbers."),
		mcp.WithNumber("a", mcp.Required()),
		mcp.WithNumber("b", mcp.Required())),
		add)
	s.AddTool(mcp.NewTool("sleep",
		mcp.WithDescription("Sleeps for ms milliseconds, reporting progress when asked; stops when cancelled."),
		mcp.WithNumber("ms", mcp.Required(), mcp.Description("milliseconds to sleep"))),
		sleep)
	s.AddPrompt(mcp.NewPrompt("time-in",
		mcp.WithPromptDescription("Ask for the time in a city."),
		mcp.WithArgument("city", mcp.RequiredArgument(), mcp.ArgumentDescription("a city name"))),
		timeIn)
	s.AddResource(mcp.NewResource(ResourceURI, "zones",
		mcp.WithResourceDescription("A few well-known IANA zone names."),
		mcp.WithMIMEType("text/plain")),
		zones)
	return s
}

func now(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	zone := req.GetString("zone", "UTC")
	if zone == "" {
		zone = "UTC"
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return mcp.NewToolResultError(fmt.Sprintf("unknown zone %q", zone)), nil
	}
	return mcp.NewToolResultText(time.Now().In(loc).Format(time.RFC3339)), nil
}

func echo(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	text, err := req.RequireString("text")
	if err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	return mcp.NewToolResultText(text), nil
}

func add(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	a, errA := req.RequireFloat("a")
	b, errB := req.RequireFloat("b")
	if errA != nil || errB != nil {
		return mcp.NewToolResultError("a and b must be numbers"), nil
	}
	return mcp.NewToolResultText(strconv.FormatFloat(a+b, 'f', -1, 64)), nil
}

// sleep waits ms milliseconds in ten steps, sending a progress notification after
// each step when the request carries a progress token.
func sleep(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	ms, err := req.RequireFloat("ms")
	if err != nil || ms < 0 {
		return mcp.NewToolResultError("ms must be a non-negative number"), nil
	}
	var token mcp.ProgressToken
	if req.Params.Meta != nil {
		token = req.Params.Meta.ProgressToken
	}
	const steps = 10
	step := time.Duration(ms * float64(time.Millisecond) / steps)
	t := time.NewTimer(step)
	defer t.Stop()
	for i := 1; i <= steps; i++ {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
		if token != nil {
			if srv := server.ServerFromContext(ctx); srv != nil {
				_ = srv.SendNotificationToClient(ctx, string(mcp.MethodNotificationProgress), map[string]any{
					"progressToken": token, "progress": i, "total": steps,
				})
			}
		}
		t.Reset(step)
	}
	return mcp.NewToolResultText(fmt.Sprintf("slept %gms", ms)), nil
}

func timeIn(_ context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	city := req.Params.Arguments["city"]
	if city == "" {
		return nil, fmt.Errorf("argument city is required")
	}
	return mcp.NewGetPromptResult("the time in "+city, []mcp.PromptMessage{
		mcp.NewPromptMessage(mcp.RoleUser, mcp.NewTextContent("What time is it in "+city+"? Use the now tool.")),
	}), nil
}

func zones(_ context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
	return []mcp.ResourceContents{mcp.TextResourceContents{
		URI: req.Params.URI, MIMEType: "text/plain",
		Text: "UTC\nEurope/Paris\nAmerica/New_York\nAsia/Tokyo\n",
	}}, nil
}
