package connections

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/upstream"
)

// Session is what the repository needs from an open upstream connection: a channel
// closed when it dies, the reason, and a way to close it. *upstream.Conn satisfies it.
type Session interface {
	Done() <-chan struct{}
	Err() error
	Close() error
}

// DialRequest is what a DialFunc is asked to connect: the effective config of Name
// for Owner, which came from Scope (the app config or the owner's private one).
type DialRequest struct {
	Owner  string
	Name   string
	Scope  domain.Scope
	Config domain.ServerConfig
	// OAuth is set when the server requires OAuth and the owner's grant is to be used.
	OAuth bool
}

// GrantSource is what a Manager needs of the OAuth grants: which grant an owner holds
// for a server (a decision input), and requests that carry its token.
type GrantSource interface {
	// GrantID returns the id of owner's current grant for server, "" when none. It
	// must be fast: it is read on every decision about an OAuth server.
	GrantID(owner, server string) string
	// Transport wraps base so that requests to server carry owner's access token
	// (refreshed as needed).
	Transport(owner, server string, base http.RoundTripper) http.RoundTripper
}

// DialFunc connects and initializes one upstream within ctx. ctx bounds the connect
// only; the returned session must outlive it.
type DialFunc func(ctx context.Context, req DialRequest) (Session, error)

// Options configures a Manager. Zero values take the documented defaults.
type Options struct {
	// Dial connects an upstream. Default: UpstreamDial(Upstream).
	Dial DialFunc
	// UserValues, when set, gives an owner's per-owner values of a server and the
	// owner's profile attributes; every dial for an owner of a config that needs
	// them substitutes them first (see WithUserValues).
	UserValues UserValuesFunc
	// InspectOwner, when set, is called (on its own goroutine) after an owner's
	// successful connect of an on-demand server (domain.OnDemand), so that the
	// server is inspected with that owner's values (see WithOwnerInspection).
	InspectOwner func(owner, server string)
	// Upstream is the template of the default Dial's upstream.Options: the Secrets
	// resolver, Env, and the SSRF Guard applied to user-scope configs. Its Scope is
	// set per dial from the config's scope.
	Upstream upstream.Options
	// Classify gives the failure class of a connect error. Default: upstream.Classify.
	Classify func(error) domain.FailureClass
	// Grants are the owners' OAuth grants. Nil: no grants, and OAuth servers are
	// decided as before grants existed (owners may try, the upstream refuses).
	Grants GrantSource
	// StaleNode, when set, says whether this cluster node is past cluster.maxStaleness:
	// new connects are then refused with rule stale_node (alive connections are reused).
	StaleNode func() bool

	// MaxConcurrentConnects bounds the connects one GetMany runs at once. Default 3.
	MaxConcurrentConnects int
	// IdleTimeout closes a user repository's connections unused for longer. Default 15 min.
	IdleTimeout time.Duration
	// IdleCheck is how often the idle timer looks. Default IdleTimeout/4, at most 1 min.
	IdleCheck time.Duration

	// BreakerThreshold is the number of consecutive failed connects of one (owner,
	// server) after which the breaker opens. Default 1.
	BreakerThreshold int
	// BackoffBase is the breaker's first open period; each further failure doubles it,
	// up to BackoffMax; each period is jittered to [d/2, d). Defaults 100 ms and 30 s.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// RefusalWindow is the time identical refusals are coalesced into one event.
	// Default 1 s.
	RefusalWindow time.Duration

	// Clock returns the current time. Default time.Now.
	Clock func() time.Time
	// NewID returns a new event or connection id. Default: a UUIDv7 string.
	NewID func() string
	// Jitter returns a number in [0, 1). Default math/rand/v2.
	Jitter func() float64
	// Source is the CloudEvents source of the decision events. Default "mcpes://local".
	Source string
	// Logger receives operational logs. Default slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	o.setDefaults()
	return o
}

func (o *Options) setDefaults() {
	if o.MaxConcurrentConnects <= 0 {
		o.MaxConcurrentConnects = 3
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 15 * time.Minute
	}
	if o.IdleCheck <= 0 {
		o.IdleCheck = min(o.IdleTimeout/4, time.Minute)
	}
	if o.IdleCheck <= 0 {
		o.IdleCheck = time.Millisecond
	}
	if o.BreakerThreshold <= 0 {
		o.BreakerThreshold = 1
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = 100 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 30 * time.Second
	}
	if o.BackoffMax < o.BackoffBase {
		o.BackoffMax = o.BackoffBase
	}
	if o.RefusalWindow <= 0 {
		o.RefusalWindow = time.Second
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.NewID == nil {
		o.NewID = func() string { return uuid.Must(uuid.NewV7()).String() }
	}
	if o.Jitter == nil {
		o.Jitter = randFloat
	}
	if o.Source == "" {
		o.Source = "mcpes://local"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

type ctxKey int

const (
	actorKey ctxKey = iota
	correlationKey
)

// WithActor returns a context whose decisions are recorded as made by actor
// ("admin", "owner:<id>"); without it they are recorded as "system".
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey, actor)
}

// WithCorrelationID returns a context whose decision events carry id as their
// correlation id (e.g. the HTTP request id).
func WithCorrelationID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, correlationKey, id)
}

// origin is who asked for a decision, captured from the caller's context.
type origin struct {
	actor       string
	correlation string
}

func originOf(ctx context.Context) origin {
	o := origin{actor: "system"}
	if v, ok := ctx.Value(actorKey).(string); ok && v != "" {
		o.actor = v
	}
	if v, ok := ctx.Value(correlationKey).(string); ok {
		o.correlation = v
	}
	return o
}
