package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpes/mcpes/domain"
)

// Conn is one initialized connection to an upstream MCP server. Its methods are
// safe for concurrent use. Done is closed as soon as the connection is noticed
// lost (child exit, event stream ended, failed probe) or closed.
type Conn struct {
	name, transport string
	logger          *slog.Logger
	timeout         time.Duration
	red             redactor
	client          *client.Client
	init            *mcp.InitializeResult
	child           *child
	ws              *wsPipe
	rec             *statusRecorder
	http            *http.Client
	url             string
	headers         map[string]string
	probeEvery      time.Duration

	lifeCtx    context.Context
	lifeCancel context.CancelFunc
	ready      atomic.Bool
	watchers   sync.WaitGroup

	done     chan struct{}
	doneOnce sync.Once
	errMu    sync.Mutex
	err      error

	closeOnce sync.Once
	closeErr  error

	listenAcked atomic.Bool

	progressSeq atomic.Uint64
	progress    sync.Map // token string -> func(Progress)

	handlersMu    sync.Mutex
	toolsHandlers []func()

	relay      relayState
	clientInfo mcp.Implementation // what mcpes said it is, for 2026-07-28 requests
}

// Progress is one progress notification of a tool call.
type Progress struct {
	Progress float64
	Total    float64 // 0 when unknown
	Message  string
}

// ProtocolVersion returns the negotiated protocol version.
func (c *Conn) ProtocolVersion() string { return c.init.ProtocolVersion }

// ServerInfo returns the server's implementation name and version.
func (c *Conn) ServerInfo() mcp.Implementation { return c.init.ServerInfo }

// Capabilities returns the capabilities the server announced.
func (c *Conn) Capabilities() mcp.ServerCapabilities { return c.init.Capabilities }

// Instructions returns the instructions the server announced, if any.
func (c *Conn) Instructions() string { return c.init.Instructions }

// Transport returns the transport type dialled ("stdio", "sse", "streamable-http").
func (c *Conn) Transport() string { return c.transport }

// Pid returns the stdio server's process id, or 0 for other transports.
func (c *Conn) Pid() int {
	if c.child == nil {
		return 0
	}
	return c.child.cmd.Process.Pid
}

// Done returns a channel closed when the connection is lost or closed.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection was lost (wrapping ErrChildExited, a transport
// error, ...) or ErrClosed after Close; nil while it is alive.
func (c *Conn) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

// Alive reports whether the connection is neither lost nor closed.
func (c *Conn) Alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// lose records err as the reason the connection ended and closes Done. Only the
// first call counts.
func (c *Conn) lose(err error) {
	c.doneOnce.Do(func() {
		err = c.red.err(err)
		c.errMu.Lock()
		c.err = err
		c.errMu.Unlock()
		close(c.done)
		if !errors.Is(err, ErrClosed) {
			c.logger.Info("upstream connection lost", "err", err)
		}
	})
}

// OnToolsChanged registers f to be called (on its own goroutine) whenever the
// server sends notifications/tools/list_changed.
func (c *Conn) OnToolsChanged(f func()) {
	c.handlersMu.Lock()
	c.toolsHandlers = append(c.toolsHandlers, f)
	c.handlersMu.Unlock()
}

// onNotification is mcp-go's notification handler: the notification goes the way
// a relayed one goes (see relay.go).
func (c *Conn) onNotification(n mcp.JSONRPCNotification) {
	params, err := json.Marshal(n.Params)
	if err != nil {
		return
	}
	c.notification(n.Method, params, nil)
}

// typedProgress hands a progress notification to the CallTool that asked for it.
func (c *Conn) typedProgress(params json.RawMessage) {
	var f map[string]any
	if json.Unmarshal(params, &f) != nil {
		return
	}
	tok := fmt.Sprint(f["progressToken"])
	if h, ok := c.progress.Load(tok); ok {
		p := Progress{Progress: num(f["progress"]), Total: num(f["total"])}
		p.Message, _ = f["message"].(string)
		h.(func(Progress))(p)
	}
}

func num(v any) float64 {
	switch t := v.(type) {
	case float64:
		return t
	case int:
		return float64(t)
	case int64:
		return float64(t)
	case string:
		f, _ := strconv.ParseFloat(t, 64)
		return f
	}
	return 0
}

func (c *Conn) childExited() bool {
	if c.child == nil {
		return false
	}
	select {
	case <-c.child.exited:
		return true
	default:
		return false
	}
}

// watchChild notices the stdio child's exit the moment it is reaped.
func (c *Conn) watchChild() {
	select {
	case <-c.child.exited:
		c.lose(c.child.exitError())
	case <-c.lifeCtx.Done():
	}
}

// Close ends the connection: it closes the mcp-go client, stops any event stream,
// stops and reaps a stdio child (stdin closed, SIGTERM, SIGKILL) and closes Done
// with Err() == ErrClosed unless it was lost before. Idempotent; later calls
// return the first result.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.lose(ErrClosed)
		c.closeErr = c.teardown(false)
	})
	return c.closeErr
}

// teardown releases everything; hard kills a stdio child at once (a failed Dial).
func (c *Conn) teardown(hard bool) error {
	c.lifeCancel()
	var err error
	if c.client != nil {
		err = c.client.Close()
	}
	if c.child != nil {
		if hard {
			c.child.kill()
		} else {
			c.child.stop()
		}
		err = nil // closing stdin of a child that already left is not a failure
	}
	c.watchers.Wait()
	return c.red.err(err)
}

// reqCtx bounds a request by the connection's per-request timeout unless ctx
// already ends earlier.
func (c *Conn) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= c.timeout {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.timeout)
}

// check returns an error wrapping ErrConnLost (or ErrClosed) when the connection
// is no longer usable.
func (c *Conn) check() error {
	select {
	case <-c.done:
		err := c.Err()
		if errors.Is(err, ErrClosed) {
			return ErrClosed
		}
		return fmt.Errorf("%w: %w", ErrConnLost, err)
	default:
		return nil
	}
}

// wrap redacts err and, when the connection was lost meanwhile, says so.
func (c *Conn) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if lost := c.check(); lost != nil && !errors.Is(err, ErrConnLost) {
		err = fmt.Errorf("%w (%w)", lost, err)
	}
	return c.red.err(fmt.Errorf("%s %s: %w", op, c.name, err))
}

// ListTools lists every tool of the server (all pages). Returns an error wrapping
// ErrConnLost or ErrClosed on a dead connection, or the transport's error.
func (c *Conn) ListTools(ctx context.Context) ([]mcp.Tool, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	ctx, cancel := c.reqCtx(ctx)
	defer cancel()
	res, err := c.client.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		return nil, c.wrap("list tools of", err)
	}
	return res.Tools, nil
}

// CallTool calls tool name with args. When progress is not nil the request carries
// a progress token and progress receives the server's progress notifications. The
// per-request timeout applies unless ctx ends earlier; cancelling ctx cancels the
// call upstream. A tool-level error is a result with IsError set, not an error.
func (c *Conn) CallTool(ctx context.Context, name string, args any, progress func(Progress)) (*mcp.CallToolResult, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	ctx, cancel := c.reqCtx(ctx)
	defer cancel()
	var req mcp.CallToolRequest
	req.Params.Name, req.Params.Arguments = name, args
	if progress != nil {
		tok := "mcpes-" + strconv.FormatUint(c.progressSeq.Add(1), 10)
		c.progress.Store(tok, progress)
		defer c.progress.Delete(tok)
		req.Params.Meta = &mcp.Meta{ProgressToken: tok}
	}
	res, err := c.client.CallTool(ctx, req)
	if err != nil {
		return nil, c.wrap("call tool "+name+" on", err)
	}
	return res, nil
}

// ListPrompts lists the server's prompts (all pages).
func (c *Conn) ListPrompts(ctx context.Context) ([]mcp.Prompt, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	ctx, cancel := c.reqCtx(ctx)
	defer cancel()
	res, err := c.client.ListPrompts(ctx, mcp.ListPromptsRequest{})
	if err != nil {
		return nil, c.wrap("list prompts of", err)
	}
	return res.Prompts, nil
}

// GetPrompt renders prompt name with args.
func (c *Conn) GetPrompt(ctx context.Context, name string, args map[string]string) (*mcp.GetPromptResult, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	ctx, cancel := c.reqCtx(ctx)
	defer cancel()
	var req mcp.GetPromptRequest
	req.Params.Name, req.Params.Arguments = name, args
	res, err := c.client.GetPrompt(ctx, req)
	if err != nil {
		return nil, c.wrap("get prompt "+name+" of", err)
	}
	return res, nil
}

// ListResources lists the server's resources (all pages).
func (c *Conn) ListResources(ctx context.Context) ([]mcp.Resource, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	ctx, cancel := c.reqCtx(ctx)
	defer cancel()
	res, err := c.client.ListResources(ctx, mcp.ListResourcesRequest{})
	if err != nil {
		return nil, c.wrap("list resources of", err)
	}
	return res.Resources, nil
}

// ReadResource reads the resource at uri.
func (c *Conn) ReadResource(ctx context.Context, uri string) (*mcp.ReadResourceResult, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	ctx, cancel := c.reqCtx(ctx)
	defer cancel()
	var req mcp.ReadResourceRequest
	req.Params.URI = uri
	res, err := c.client.ReadResource(ctx, req)
	if err != nil {
		return nil, c.wrap("read resource "+uri+" of", err)
	}
	return res, nil
}

// Health asks the server for its tool list (tools/list; Ping sends nothing on
// protocol 2026-07-28). Returns nil when it answered. A failure that shows the
// server cannot be reached also marks the connection lost.
func (c *Conn) Health(ctx context.Context) error {
	if err := c.check(); err != nil {
		return err
	}
	ctx, cancel := c.reqCtx(ctx)
	defer cancel()
	_, err := c.client.ListToolsByPage(ctx, mcp.ListToolsRequest{})
	if err != nil && isNotFound(err) {
		err = nil // a server without tools still answered
	}
	if err != nil {
		err = c.wrap("health of", err)
		if Classify(err) == domain.FailureUnreachable {
			c.lose(err)
		}
	}
	return err
}
