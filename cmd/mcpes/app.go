package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mcpes/mcpes/audit"
	"github.com/mcpes/mcpes/cluster"
	"github.com/mcpes/mcpes/config"
	"github.com/mcpes/mcpes/connections"
	"github.com/mcpes/mcpes/credentials"
	"github.com/mcpes/mcpes/handlers"
	"github.com/mcpes/mcpes/handlers/gateway"
	"github.com/mcpes/mcpes/oauth"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/registry"
	"github.com/mcpes/mcpes/relay"
	"github.com/mcpes/mcpes/store/bolt"
	"github.com/mcpes/mcpes/upstream"
)

// Main is the running service: it wires the store, projections, registry,
// connection manager, relay and HTTP API from a Config. Run starts it; Close stops it
// in order (stop accepting, drain, record shutdown evictions, stop the relay, snapshot
// the projections, close the store).
type Main struct {
	Config *config.Config
	// ConfigPath is the file Config was loaded from: named in messages, and read
	// again by Reload (SIGHUP).
	ConfigPath string
	// NoConfigFile is set when serve found no config file: the app servers the log
	// holds are then kept as they are (an absent file never removes anything).
	NoConfigFile bool
	Logger       *slog.Logger
	// DrainTimeout bounds the wait for in-flight requests at Close (default 10s).
	DrainTimeout time.Duration
	// SnapshotInterval is how often the projections are snapshotted while the log
	// moves (default 1m), so that a restart after a crash replays only a short tail.
	SnapshotInterval time.Duration

	store    *bolt.Store
	creds    *credentials.Store
	metered  *meteredStore
	servers  *projections.Servers
	conns    *projections.Connections
	registry *registry.Service
	manager  *connections.Manager
	gateway  *gateway.Gateway
	oauth    *oauth.Broker
	relay    *relay.Relay
	inproc   *relay.InProcess
	natsPub  *relay.NATSPublisher
	http     *http.Server
	ln       net.Listener
	metrics  *metrics

	// cluster is the shared log when cluster.url is set (nil on a single node).
	cluster     *cluster.Store
	clusterConn *nats.Conn
	// checkpointer signs the log's tree head (nil without a signing key).
	checkpointer *audit.Checkpointer

	bgCancel      context.CancelFunc
	inspectCancel context.CancelFunc
	bg            sync.WaitGroup
	streamsCancel context.CancelFunc
	pidPath       string
	closeOnce     sync.Once
	closeErr      error
}

// Addr returns the address the API listens on (after Run).
func (m *Main) Addr() string { return m.ln.Addr().String() }

// Run opens the data directory and starts every part; it returns once the API
// accepts connections (startup inspection goes on in the background; /readyz says
// when it is done). On error, whatever was opened is closed again.
func (m *Main) Run(ctx context.Context) (err error) {
	if m.Config == nil {
		panic("mcpes: Main.Config is nil")
	}
	if m.Logger == nil {
		m.Logger = slog.Default()
	}
	if m.DrainTimeout <= 0 {
		m.DrainTimeout = 10 * time.Second
	}
	if m.SnapshotInterval <= 0 {
		m.SnapshotInterval = time.Minute
	}
	defer func() {
		if err != nil {
			m.abort()
		}
	}()
	cfg, log := m.Config, m.Logger

	auth, err := handlers.NewAuth(authTokens(cfg.Auth.Tokens), os.Getenv("MCPES_ADMIN_TOKEN"))
	if err != nil {
		return err
	}
	if err := handlers.RequireTokensFor(cfg.Listen, auth); err != nil {
		return err
	}
	if err := m.openStore(); err != nil {
		return err
	}
	if m.servers, err = projections.Load(ctx, m.metered, projections.Options{Logger: log}); err != nil {
		return err
	}
	if m.conns, err = projections.LoadConnections(ctx, m.metered, projections.Options{Logger: log}); err != nil {
		return err
	}
	nodeID := cfg.NodeID
	if nodeID == "" {
		nodeID = registry.DefaultNodeID
	}
	// Every event this process writes names the node and the version that wrote it.
	source := "mcpes://" + nodeID + "?version=" + url.QueryEscape(version())
	guard := &upstream.Guard{AllowedDomains: cfg.MCPSettings.AllowedDomains}
	ropts := registry.Options{NodeID: nodeID, Source: source, Logger: log,
		StartupConcurrency: cfg.Inspection.Concurrency, MaxMessageBytes: cfg.Connections.MaxMessageBytes}
	if m.cluster != nil {
		ropts.Claims = m.cluster
	}
	m.registry, err = registry.New(m.metered, m.servers, guard, ropts)
	if err != nil {
		return err
	}
	if m.NoConfigFile {
		log.Info("no config file: the app servers in the log are kept as they are")
	} else {
		rep, err := m.registry.Reconcile(ctx, registry.ConfigFile{Path: m.ConfigPath, Servers: cfg.MCPServers, Lines: cfg.ServerLines})
		if err != nil {
			return fmt.Errorf("apply config file: %w", err)
		}
		log.Info("config file reconciled", "registered", rep.Registered, "changed", rep.Changed, "removed", rep.Removed)
	}

	m.oauth = newBroker(m, guard, nodeID, log)
	// Observed before the grants are read, so a grant another node changes meanwhile is
	// read again, not missed.
	m.metered.Observe(m.oauth.Observe)
	if err := m.oauth.Load(ctx); err != nil {
		return err
	}

	secrets := func(ref string) (string, error) {
		b, err := m.metered.Secret(context.Background(), ref)
		return string(b), err
	}
	m.manager = connections.NewManager(m.metered, m.servers, connections.Options{
		Upstream: upstream.Options{Secrets: secrets, Env: os.LookupEnv, Guard: guard, Logger: log,
			ProtocolVersion: upstreamProtocol(cfg.Connections.ProtocolVersion),
			MaxMessageBytes: cfg.Connections.MaxMessageBytes},
		Grants:                m.oauth,
		StaleNode:             m.staleNode,
		MaxConcurrentConnects: cfg.Connections.MaxConcurrentConnects,
		IdleTimeout:           cfg.Connections.IdleTimeout.D(),
		BreakerThreshold:      cfg.Connections.Breaker.Failures,
		BackoffMax:            cfg.Connections.Breaker.OpenDuration.D(),
		Source:                source,
		Logger:                log,
		UserValues:            m.registry.OwnerValues(m.servers),
		InspectOwner:          m.registry.InspectOwnerAsync,
	})
	// Connections the log shows open were held by a process that is gone: say so
	// before anything else reads the log.
	if n, err := m.manager.RecoverRestart(ctx, m.conns.All()); err != nil {
		return fmt.Errorf("record connections lost at restart: %w", err)
	} else if n > 0 {
		log.Warn("connections left open by the previous run recorded as lost", "count", n, "reason", "restart")
	}

	bg, cancel := context.WithCancel(context.Background())
	m.bgCancel = cancel
	if err := m.startRelay(ctx, bg); err != nil {
		return err
	}
	limiter, err := handlers.NewLimiter(cfg.Limits.Owner.Rate, cfg.Limits.Owner.Burst, nil)
	if err != nil {
		return err
	}
	m.metrics = newMetrics(m)
	m.metrics.reg.MustRegister(limiter.Collector())

	m.ln, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	streams, streamsCancel := context.WithCancel(context.Background())
	m.streamsCancel = streamsCancel
	setPublicURL(m.oauth.Client, cfg.OAuth.PublicURL, m.ln.Addr().String())
	m.bg.Go(func() { m.oauth.Run(bg, 5*time.Second) })
	m.gateway = gateway.New(gateway.Deps{Store: m.metered, Servers: m.servers, Manager: m.manager, Authorize: m.oauth.Authorize, StepUp: m.oauth.StepUp,
		Inspector: m.registry, AuditToolCalls: cfg.Audit.ToolCalls, Source: source, Logger: log,
		MaxTimeout: time.Duration(cfg.Connections.MaxRequestTimeout)})
	listenHost, _, _ := net.SplitHostPort(cfg.Listen)
	var clusterDecisions func(context.Context) (map[string]int, []string, error)
	var recentDecisions func(context.Context, string, uint64, int) (cluster.DecisionPage, error)
	if m.cluster != nil {
		clusterDecisions, recentDecisions = m.verifyDecisions, m.cluster.RecentDecisions
	}
	api := handlers.New(handlers.Deps{
		ClusterDecisions: clusterDecisions, RecentDecisions: recentDecisions,
		Store: m.metered, Servers: m.servers, Registry: m.registry, Manager: m.manager,
		ConnProjection: m.conns, Auth: auth, Metrics: m.metrics.handler(), Logger: log,
		Ready:   m.readiness,
		Gateway: m.gateway,
		Protection: &handlers.Protection{ListenHost: listenHost, AllowedHosts: allowedHosts(cfg),
			AllowedOrigins: cfg.HTTP.AllowedOrigins},
		Limiter: limiter,
		Version: version(),
		OAuth:   m.oauth, ClientMetadata: clientMetadata(m.oauth.Client),
	})
	m.http = &http.Server{Handler: endStreams(streams, api), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	m.bg.Go(func() {
		if err := m.http.Serve(m.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "err", err)
		}
	})
	log.Info("mcpes listening", "addr", m.ln.Addr().String(), "data", cfg.DataDir, "servers", len(cfg.MCPServers),
		"pubsub", pubsubName(cfg.PubSub), "tokens", auth.Configured())

	m.bg.Go(func() { m.snapshotLoop(bg, m.SnapshotInterval) })
	m.bg.Go(func() { projections.RunAsOf(bg, m.store, uint64(cfg.Audit.SnapshotEvery), log) })
	if err := m.startCheckpointer(bg); err != nil {
		return err
	}

	inspectCtx, inspectCancel := context.WithCancel(bg)
	m.inspectCancel = inspectCancel
	m.bg.Go(func() {
		start := time.Now()
		// The registry logs each outcome; metrics count them from the log.
		err := m.registry.StartupInspect(inspectCtx, cfg.Inspection.Concurrency, nil)
		switch {
		case inspectCtx.Err() != nil:
			log.Info("startup inspection cancelled")
		case err != nil:
			log.Error("startup inspection", "err", err)
		default:
			log.Info("startup inspection done, ready", "duration", time.Since(start).Round(time.Millisecond))
		}
	})
	return nil
}

// Reload reads the config file again and reconciles its servers (SIGHUP): changes
// apply in place, and the connections of removed or now disallowed servers are
// evicted. Only mcpServers is reapplied; other settings need a restart. A bad (or
// empty) file changes nothing and returns its problems.
func (m *Main) Reload(ctx context.Context) (registry.ReconcileReport, error) {
	if m.NoConfigFile || m.ConfigPath == "" {
		return registry.ReconcileReport{}, errors.New("no config file to reload (serve was started without one)")
	}
	cfg, warns, err := config.Load(m.ConfigPath)
	if err != nil {
		return registry.ReconcileReport{}, err
	}
	for _, w := range warns {
		m.Logger.Warn("config file", "file", m.ConfigPath, "warning", w.String())
	}
	rep, err := m.registry.Reconcile(ctx, registry.ConfigFile{Path: m.ConfigPath, Servers: cfg.MCPServers, Lines: cfg.ServerLines})
	if err != nil {
		return rep, err
	}
	changed := append(append(slices.Clone(rep.Changed), rep.Removed...), rep.Registered...)
	return rep, m.manager.Sweep(ctx, changed...)
}

// snapshotLoop snapshots both projections every interval while the log moves.
func (m *Main) snapshotLoop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	last := m.servers.Position()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if pos := m.servers.Position(); pos != last {
			if err := m.snapshot(ctx); err != nil {
				m.Logger.Warn("periodic snapshot", "err", err)
				continue
			}
			last = pos
		}
	}
}

// snapshot saves both projections' snapshots.
func (m *Main) snapshot(ctx context.Context) error {
	if err := m.servers.Snapshot(ctx, m.metered); err != nil {
		return fmt.Errorf("snapshot servers: %w", err)
	}
	if err := m.conns.Snapshot(ctx, m.metered); err != nil {
		return fmt.Errorf("snapshot connections: %w", err)
	}
	return nil
}

// readiness says whether startup inspection is done, with the relay's lag as detail.
func (m *Main) readiness() (bool, any) {
	detail := readyDetail{Inspection: "running", Relay: m.relay.Name(), Storage: "ok"}
	ready := m.registry.IsReady()
	if ready {
		detail.Inspection = "done"
	}
	if m.metered != nil {
		if p := m.metered.storageProblem(); p != "" {
			ready, detail.Storage = false, p
		}
	}
	if m.cluster != nil {
		head := m.cluster.SharedHead()
		detail.Cluster, detail.ClusterHead = "fresh", &head
		switch {
		case m.cluster.Forked() != nil:
			ready, detail.Cluster = false, "forked"
		case m.staleNode():
			ready, detail.Cluster = false, "stale_node"
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if lag, err := m.relay.Lag(ctx); err == nil {
		detail.RelayLagEvents, detail.RelayLagSeconds = lag.Events, lag.Age.Seconds()
	}
	return ready, detail
}

// readyDetail is the detail object of GET /readyz.
type readyDetail struct {
	Inspection string `json:"inspection"`
	// Storage is "ok", or why the event log cannot be written (a full disk).
	Storage         string  `json:"storage"`
	Relay           string  `json:"relay"`
	RelayLagEvents  uint64  `json:"relayLagEvents"`
	RelayLagSeconds float64 `json:"relayLagSeconds"`

	// Cluster is "fresh", "stale_node" past cluster.maxStaleness, or "forked" when
	// another node reported a different shared log (absent on a single node).
	Cluster string `json:"cluster,omitempty"`
	// ClusterHead is the shared log's head this node has applied: the same on every
	// node that has applied as much.
	ClusterHead *cluster.Head `json:"clusterHead,omitempty"`
}

// allowedHosts are http.allowedHosts and the host of oauth.publicURL, where browsers
// come back from authorization servers.
func allowedHosts(cfg *config.Config) []string {
	hosts := slices.Clone(cfg.HTTP.AllowedHosts)
	if u, err := url.Parse(cfg.OAuth.PublicURL); err == nil && u.Host != "" {
		hosts = append(hosts, u.Host)
	}
	return hosts
}

// upstreamProtocol maps connections.protocolVersion to the revision the upstream
// adapter pins ("" lets mcp-go negotiate its newest).
func upstreamProtocol(v string) string {
	if v == config.ProtocolLatest {
		return ""
	}
	return v
}

func pubsubName(u string) string {
	if u == "" {
		return "in-process"
	}
	return config.RedactURLs(u)
}

func authTokens(in []config.Token) []handlers.TokenConfig {
	out := make([]handlers.TokenConfig, len(in))
	for i, t := range in {
		out[i] = handlers.TokenConfig{SHA256: t.SHA256, Role: t.Role, Owner: t.Owner}
	}
	return out
}

// openStore creates the data directory and opens its store, writing our pid next to
// it so offline commands can say who holds it.
func (m *Main) openStore() error {
	dir := m.Config.DataDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	st, err := bolt.Open(dbPath(dir), bolt.Options{Timeout: time.Second, Logger: m.Logger})
	if errors.Is(err, bolt.ErrLocked) {
		pid := "pid unknown"
		if b, rerr := os.ReadFile(filepath.Join(dir, pidFile)); rerr == nil {
			pid = "pid " + strings.TrimSpace(string(b))
		}
		return fmt.Errorf("data directory %s is in use by another mcpes (%s): %w", dir, pid, err)
	}
	if err != nil {
		return err
	}
	m.store = st
	// On a cluster the credential store seals secrets above the shared log, so that
	// only sealed values leave the node.
	var backend credentials.Backend = st
	if m.Config.Cluster.URL != "" {
		cl, err := m.joinCluster(context.Background(), st)
		if err != nil {
			return err
		}
		m.cluster, backend = cl, cl
	}
	creds, rep, err := openCredentials(context.Background(), backend, dir, m.Config)
	if err != nil {
		return err
	}
	if rep.Active != "" {
		m.Logger.Info("credential store", "key", rep.Active, "summary", rotateSummary(rep))
	}
	m.creds = creds
	m.metered = newMeteredStore(st, creds)
	m.pidPath = filepath.Join(dir, pidFile)
	if err := os.WriteFile(m.pidPath, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		m.Logger.Warn("cannot write pid file", "path", m.pidPath, "err", err)
	}
	return nil
}

// startRelay publishes the log to the in-process pub/sub or to NATS JetStream.
func (m *Main) startRelay(ctx, bg context.Context) error {
	cfg := relay.Config{Store: m.metered, Logger: m.Logger}
	if u := m.Config.PubSub; u != "" {
		pub, err := relay.NewNATSPublisher(ctx, relay.NATSConfig{URL: u})
		if err != nil {
			return fmt.Errorf("pubsub %s: %w", config.RedactURLs(u), err)
		}
		m.natsPub = pub
		cfg.Publisher, cfg.Name = pub, "relay:nats"
	} else {
		m.inproc = relay.NewInProcess(nil)
		cfg.Publisher, cfg.Name, cfg.StartAtHead = m.inproc.Publisher(), "relay:inprocess", true
	}
	r, err := relay.New(cfg)
	if err != nil {
		return err
	}
	m.relay = r
	m.bg.Go(func() {
		if err := r.Run(bg); err != nil && bg.Err() == nil {
			m.Logger.Error("relay stopped", "relay", r.Name(), "err", err)
		}
	})
	return nil
}

// endStreams cancels long-lived event streams (GET requests asking for
// text/event-stream: the events feed and MCP listen streams) when the server shuts
// down, so that draining waits for ordinary requests only. MCP tool calls are POSTs
// that also accept text/event-stream; they are drained, not cut off.
func endStreams(streams context.Context, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
			ctx, cancel := context.WithCancel(r.Context())
			defer cancel()
			stop := context.AfterFunc(streams, cancel)
			defer stop()
			r = r.WithContext(ctx)
		}
		next.ServeHTTP(w, r)
	})
}

// Close stops the service in order. It is safe to call more than once.
func (m *Main) Close(ctx context.Context) error {
	m.closeOnce.Do(func() { m.closeErr = m.shutdown(ctx) })
	return m.closeErr
}

func (m *Main) shutdown(ctx context.Context) error {
	log := m.Logger
	var errs []error
	log.Info("shutting down: draining requests")
	if m.streamsCancel != nil {
		m.streamsCancel()
	}
	if m.http != nil {
		dctx, cancel := context.WithTimeout(ctx, m.DrainTimeout)
		if err := m.http.Shutdown(dctx); err != nil {
			log.Warn("drain timed out; closing remaining requests", "err", err)
			_ = m.http.Close()
		}
		cancel()
	}
	if m.inspectCancel != nil {
		m.inspectCancel()
	}
	if m.gateway != nil {
		if err := m.gateway.Close(ctx); err != nil {
			log.Warn("close gateway", "err", err)
		}
	}
	if m.registry != nil {
		_ = m.registry.Close()
	}
	if m.manager != nil {
		if err := m.manager.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close connections: %w", err))
		}
	}
	if m.bgCancel != nil {
		m.bgCancel()
	}
	m.bg.Wait()
	if m.inproc != nil {
		_ = m.inproc.Close()
	}
	if m.natsPub != nil {
		_ = m.natsPub.Close()
	}
	if err := m.finalCheckpoint(ctx); err != nil {
		errs = append(errs, err)
	}
	if m.servers != nil && m.conns != nil {
		if err := m.snapshot(ctx); err != nil {
			errs = append(errs, err)
		} else if head, _, err := m.store.Head(ctx); err == nil {
			log.Info("projections snapshotted", "position", head)
		}
	}
	if err := m.closeCluster(); err != nil {
		errs = append(errs, fmt.Errorf("close cluster: %w", err))
	}
	if m.store != nil {
		if err := m.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close store: %w", err))
		}
		_ = os.Remove(m.pidPath)
	}
	if len(errs) == 0 {
		log.Info("mcpes stopped")
	}
	return errors.Join(errs...)
}

// abort closes what a failed Run opened.
func (m *Main) abort() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = m.Close(ctx)
}
