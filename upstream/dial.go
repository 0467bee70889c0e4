// Package upstream is mcpes's adapter to upstream MCP servers, built on mcp-go: it
// dials stdio, SSE and streamable-HTTP servers under the config's timeouts, keeps
// user-scope URLs behind the SSRF Guard, notices a lost connection without waiting
// for the next request, classifies failures, and inspects servers.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpes/mcpes/domain"
)

// Options are what Dial needs besides the config.
type Options struct {
	// Scope of the config: app configs may use ${VAR} placeholders (from Env) and
	// are trusted; user configs are dialled through Guard.
	Scope domain.Scope
	// Secrets resolves "secret:<hex>" references found in env and header values.
	Secrets func(ref string) (string, error)
	// Env looks up ${VAR} placeholders of app configs; nil means none is set.
	Env func(string) (string, bool)
	// Guard is the SSRF guard for user-scope URLs; nil means a zero Guard (block
	// every non-public address, no allowed domains).
	Guard *Guard
	// ClientName and ClientVersion are sent as the client's implementation info.
	ClientName, ClientVersion string
	// Logger receives debug and warning logs; nil means slog.Default().
	Logger *slog.Logger
	// ProtocolVersion pins a protocol revision (e.g. mcp.ProtocolVersion20251125);
	// empty lets mcp-go try 2026-07-28 first and fall back to the handshake.
	ProtocolVersion string
	// MaxMessageBytes bounds one message read from the server (a stdio line, a
	// JSON body, one SSE event); 0 means domain.DefaultMaxMessageBytes. A response
	// over it fails its call with a *TooLargeError message (see limit.go).
	MaxMessageBytes int64
	// WrapHTTP, when set, wraps the HTTP transport of SSE and streamable-HTTP
	// connections (inside the SSRF guard), e.g. to add an OAuth token.
	WrapHTTP func(http.RoundTripper) http.RoundTripper
	// ProbeInterval is how often an HTTP connection that has no event stream to
	// watch is probed with tools/list to notice loss; 0 means 15 s, negative never.
	ProbeInterval time.Duration
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ClientName == "" {
		o.ClientName = "mcpes"
	}
	if o.ClientVersion == "" {
		o.ClientVersion = "dev"
	}
	if o.ProbeInterval == 0 {
		o.ProbeInterval = 15 * time.Second
	}
	if o.Guard == nil {
		o.Guard = defaultGuard
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = domain.DefaultMaxMessageBytes
	}
}

var defaultGuard = &Guard{}

// appTransport is shared by app-scope HTTP connections, so they pool keep-alive
// sockets like mcp-go's own default.
var appTransport = http.DefaultTransport.(*http.Transport).Clone()

type unsupportedError struct{ transport string }

func (e *unsupportedError) Error() string {
	return fmt.Sprintf("transport %s not supported", e.transport)
}
func (e *unsupportedError) Unwrap() error { return ErrTransportUnsupported }

// Dial connects to the server name configured by cfg and initializes the session,
// both bounded by cfg.InitTimeout(). On failure it returns a *DialError whose Class
// says why (see Classify) and whose message contains no header or env value; a
// failed or timed-out Dial leaves no process, goroutine or socket behind. The Conn
// must be closed by the caller.
func Dial(ctx context.Context, name string, cfg domain.ServerConfig, opts Options) (*Conn, error) {
	opts.defaults()
	tt := cfg.TransportType()
	fail := func(class domain.FailureClass, err error) (*Conn, error) {
		return nil, &DialError{Server: name, Transport: tt, Class: class, Err: err}
	}
	switch tt {
	case domain.TransportStdio, domain.TransportSSE, domain.TransportStreamableHTTP, domain.TransportWebsocket:
	case "":
		return fail(domain.FailureUnsupported, fmt.Errorf("%w: no command or url", ErrConfig))
	default:
		return fail(domain.FailureUnsupported, &unsupportedError{tt})
	}
	if tt == domain.TransportStdio && !opts.Scope.IsApp() {
		return fail(domain.FailureRefused, fmt.Errorf("%w: stdio is not allowed outside the app scope", ErrConfig))
	}
	res, err := resolveConfig(cfg, opts)
	if err != nil {
		return fail(domain.FailureConfig, err)
	}
	red := newRedactor(append(res.secrets, secretValues(ctx)...))

	c := &Conn{
		name: name, transport: tt, logger: opts.Logger.With("server", name, "transport", tt),
		timeout: time.Duration(cfg.Timeout()) * time.Millisecond, red: red,
		done: make(chan struct{}), probeEvery: opts.ProbeInterval,
	}
	c.lifeCtx, c.lifeCancel = context.WithCancel(context.Background())

	initTimeout := time.Duration(cfg.InitTimeout()) * time.Millisecond
	initCtx, cancelInit := context.WithTimeoutCause(ctx, initTimeout,
		fmt.Errorf("initialize timed out after %s: %w", initTimeout, context.DeadlineExceeded))
	defer cancelInit()
	// Until initialize succeeds, the end of initCtx ends the connection's life too
	// (an SSE stream or a stdio child started under it).
	stopAfter := context.AfterFunc(initCtx, c.lifeCancel)

	var garbage atomic.Pointer[error]
	clientOpts := []client.ClientOption{client.WithDiscoverTimeout(min(5*time.Second, initTimeout/2))}
	if opts.ProtocolVersion != "" {
		clientOpts = append(clientOpts, client.WithProtocolVersion(opts.ProtocolVersion))
	}

	var tr transport.Interface
	switch tt {
	case domain.TransportStdio:
		ch, err := startChild(cfg.Command, res.args, res.env, childOpts{dir: res.cwd, stderr: res.stderr}, c.logger, func(err error) {
			garbage.CompareAndSwap(nil, &err)
			c.logger.Warn("stdio server broke the protocol", "err", red.err(err))
			if !c.ready.Load() {
				cancelInit()
			}
		})
		if err != nil {
			stopAfter()
			c.lifeCancel()
			return fail(domain.FailureUnreachable, red.err(err))
		}
		c.child = ch
		tr = transport.NewIO(limitLines(ch.stdout, opts.MaxMessageBytes, c.dropped), ch.stdin, nil)
	case domain.TransportSSE, domain.TransportStreamableHTTP, domain.TransportWebsocket:
		u, err := url.Parse(res.url)
		if err != nil || u.Host == "" {
			stopAfter()
			c.lifeCancel()
			return fail(domain.FailureUnreachable, red.err(fmt.Errorf("%w: bad url", ErrConfig)))
		}
		base := http.RoundTripper(appTransport)
		if res.proxy != nil && tt != domain.TransportWebsocket {
			base = proxyTransport(res.proxy)
		}
		hc := &http.Client{}
		if !opts.Scope.IsApp() {
			if err := opts.Guard.checkURLName(u); err != nil {
				stopAfter()
				c.lifeCancel()
				return fail(domain.FailureRefused, err)
			}
			base, hc.CheckRedirect = opts.Guard.Transport(), noRedirects
		}
		if opts.WrapHTTP != nil {
			base = opts.WrapHTTP(base)
		}
		if cfg.SSEReadTimeoutMS > 0 && tt != domain.TransportWebsocket {
			base = idleStreams{base: base, idle: time.Duration(cfg.SSEReadTimeoutMS) * time.Millisecond}
		}
		c.rec = &statusRecorder{base: base}
		hc.Transport = limitBodies(c.rec, opts.MaxMessageBytes, c.dropped)
		c.http, c.url, c.headers = hc, res.url, res.headers
		switch tt {
		case domain.TransportWebsocket:
			var ws *wsPipe
			wsClient := &http.Client{Transport: http1Only(base), CheckRedirect: hc.CheckRedirect}
			ws, err = dialWebsocket(initCtx, c.lifeCtx, res.url, res.headers, wsClient, func(err error, bad bool) {
				if bad {
					garbage.CompareAndSwap(nil, &err)
				}
				if !c.ready.Load() {
					cancelInit()
				}
				c.lose(fmt.Errorf("websocket lost: %w", err))
			})
			if err == nil {
				c.ws = ws
				tr = transport.NewIO(ws, ws, nil)
			}
		case domain.TransportSSE:
			sc := &http.Client{CheckRedirect: hc.CheckRedirect,
				Transport: sseRequests{base: hc.Transport, max: int(opts.MaxMessageBytes) + 1<<10, answer: func(b []byte) { go c.answerSSE(b) }}}
			tr, err = transport.NewSSE(res.url, transport.WithHTTPClient(sc), transport.WithHeaders(res.headers),
				transport.WithSSELogger(c.logger))
		default:
			tr, err = transport.NewStreamableHTTP(res.url, transport.WithHTTPBasicClient(hc),
				transport.WithHTTPHeaders(res.headers), transport.WithHTTPLogger(c.logger))
		}
		if err != nil {
			stopAfter()
			c.lifeCancel()
			class := domain.FailureUnreachable
			if tt == domain.TransportWebsocket {
				class = Classify(err) // the handshake ran: auth, protocol or network
				if errors.Is(context.Cause(initCtx), context.DeadlineExceeded) {
					class = domain.FailureTimeout
				}
			}
			return fail(class, red.err(err))
		}
	}
	c.client = client.NewClient(tr, clientOpts...)
	c.client.OnNotification(c.onNotification)
	c.client.OnConnectionLost(func(err error) {
		if err == nil {
			err = errors.New("event stream ended")
		}
		c.lose(fmt.Errorf("sse stream lost: %w", err))
	})

	init, err := c.start(initCtx, opts)
	if err == nil && !stopAfter() {
		err = context.Cause(initCtx) // the deadline won the race against success
	}
	if err != nil {
		if c.child != nil && (errors.Is(err, transport.ErrTransportClosed) || errors.Is(err, syscall.EPIPE)) {
			// stdout or stdin closed: the child is exiting; its exit status and
			// stderr say more than "transport closed" or "broken pipe".
			select {
			case <-c.child.exited:
			case <-time.After(time.Second):
			}
		}
		class := c.classifyInit(err, initCtx, garbage.Load())
		cause := c.initCause(err, initCtx, garbage.Load())
		c.teardown(true)
		return fail(class, red.err(cause))
	}
	c.init = init
	c.ready.Store(true)
	if c.child != nil {
		go c.watchChild()
	}
	if c.ws != nil {
		c.watchers.Add(1)
		go func() { defer c.watchers.Done(); c.ws.ping(c.probeEvery) }()
	}
	c.watchStream()
	c.logger.Debug("connected", "protocol", init.ProtocolVersion, "serverName", init.ServerInfo.Name)
	return c, nil
}

// start starts the transport under the connection's life context and initializes
// under ctx.
func (c *Conn) start(ctx context.Context, opts Options) (*mcp.InitializeResult, error) {
	if err := c.client.Start(c.lifeCtx); err != nil {
		return nil, err
	}
	// Requests of the server go to the client session they belong to (relay.go);
	// mcpes advertises what its clients may answer.
	if bt, ok := c.client.GetTransport().(transport.BidirectionalInterface); ok {
		bt.SetRequestHandler(c.onTransportRequest)
	}
	var in mcp.InitializeRequest
	in.Params.ClientInfo = mcp.Implementation{Name: opts.ClientName, Version: opts.ClientVersion}
	c.clientInfo = in.Params.ClientInfo
	in.Params.Capabilities = relayedCapabilities()
	in.Params.ProtocolVersion = opts.ProtocolVersion
	res, err := c.client.Initialize(ctx, in)
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, fmt.Errorf("%w: empty initialize result", ErrProtocol)
	}
	return res, nil
}

// relayedCapabilities are the client capabilities mcpes advertises upstream: the
// server-to-client requests it relays to its own clients (a client that lacks one
// answers with an error).
func relayedCapabilities() mcp.ClientCapabilities {
	var caps mcp.ClientCapabilities
	caps.Roots = &struct {
		ListChanged bool `json:"listChanged,omitempty"`
	}{ListChanged: true}
	caps.Sampling = &mcp.SamplingCapability{}
	caps.Elicitation = &mcp.ElicitationCapability{Form: &struct{}{}, URL: &struct{}{}}
	return caps
}

// classifyInit decides the class of a failed connect from what was seen while it
// ran: garbage on stdout, an HTTP 401/403, a child that exited, the deadline.
func (c *Conn) classifyInit(err error, initCtx context.Context, garbage *error) domain.FailureClass {
	switch {
	case garbage != nil:
		return domain.FailureProtocol
	case c.rec != nil && c.rec.authStatus() != 0:
		return domain.FailureAuth
	case c.childExited():
		return domain.FailureUnreachable
	case errors.Is(context.Cause(initCtx), context.DeadlineExceeded):
		return domain.FailureTimeout
	}
	return Classify(err)
}

// initCause returns the error to report for a failed connect: the most telling of
// the ones seen.
func (c *Conn) initCause(err error, initCtx context.Context, garbage *error) error {
	switch {
	case garbage != nil:
		return *garbage
	case c.rec != nil && c.rec.authStatus() != 0:
		return fmt.Errorf("%w: server answered HTTP %d: %w", ErrAuth, c.rec.authStatus(), err)
	case c.childExited():
		return c.child.exitError()
	case initCtx.Err() != nil && !errors.Is(err, context.Cause(initCtx)):
		return fmt.Errorf("%w (%v)", context.Cause(initCtx), err)
	}
	return err
}

// statusRecorder remembers whether any response was 401 or 403: mcp-go folds a
// 403 on initialize into "legacy SSE server", and the class must still be auth.
type statusRecorder struct {
	base   http.RoundTripper
	status atomic.Int32
}

func (s *statusRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := s.base.RoundTrip(r)
	if resp != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
		s.status.CompareAndSwap(0, int32(resp.StatusCode))
	}
	return resp, err
}

func (s *statusRecorder) authStatus() int { return int(s.status.Load()) }

var _ sync.Locker = (*sync.Mutex)(nil)
