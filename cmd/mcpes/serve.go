package main

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcpes/mcpes/config"
)

// defaultConfigFile is read by serve when --config is not given and it exists.
const defaultConfigFile = "mcpes.yaml"

type serveOpts struct {
	configPath string
	data       string
	listen     string
	pubsub     string
	cluster    string
	logFormat  string
	logLevel   string
	drain      time.Duration
}

func newServeCmd(e *env) *cobra.Command {
	var o serveOpts
	c := &cobra.Command{
		Use:   "serve [--config FILE] [--data DIR] [--listen ADDR] [--pubsub URL]",
		Short: "Run the service: config file, event log, inspection, connections, HTTP API",
		Long: `serve opens the event log in the data directory, applies the config file (recording a
registration, change or removal only where the file differs from the log), inspects
every app server in the background (/readyz turns ready when done), and serves the HTTP
API (/healthz at once). SIGINT or SIGTERM stops accepting, drains in-flight requests,
records the shutdown of every open connection, stops the relay, snapshots the
projections and closes the log. SIGHUP reads the config file again and applies its
mcpServers in place (other settings need a restart).

App servers have a source: the config file, or the API (an admin's PUT). Applying
the file touches only the file's servers; the API may not change those (409 naming
the file and line). Without a config file nothing is applied and nothing removed;
an empty file is refused. Connections the log shows open from a previous run that
did not stop cleanly are recorded as lost (reason restart) before serving.

Defaults: ./mcpes.yaml if present, data directory ./mcpes-data, 127.0.0.1:7300,
in-process pub/sub. Flags override the config file; when neither sets them,
MCPES_DATA and MCPES_LISTEN from the environment override the defaults. Without any token configured
(auth.tokens or MCPES_ADMIN_TOKEN) serve refuses a non-loopback listen address.`,
		Example: `  mcpes serve --config examples/mcpes.yaml
  mcpes serve --data /var/lib/mcpes --listen 0.0.0.0:7300   # needs auth.tokens
  mcpes serve --pubsub nats://127.0.0.1:4222`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.serve(cmd, o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.configPath, "config", "", "config file (default ./mcpes.yaml if present)")
	f.StringVar(&o.data, "data", "", "data directory (default from the config file, else ./mcpes-data)")
	f.StringVar(&o.listen, "listen", "", "listen address (default from the config file, else 127.0.0.1:7300)")
	f.StringVar(&o.pubsub, "pubsub", "", "publish events to NATS JetStream at nats://HOST:PORT (default: in-process)")
	f.StringVar(&o.cluster, "cluster", "", "join the cluster sharing one replicated config log at nats://HOST:PORT[,...] (default: cluster.url)")
	f.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.DurationVar(&o.drain, "drain-timeout", 10*time.Second, "how long shutdown waits for in-flight requests")
	return c
}

func (e *env) serve(cmd *cobra.Command, o serveOpts) error {
	log, err := newLogger(e, o.logFormat, o.logLevel)
	if err != nil {
		return err
	}
	slog.SetDefault(log)
	cfg, path, err := loadServeConfig(log, o.configPath)
	if err != nil {
		return err
	}
	// Precedence: flag, then environment, then the config file, then the default.
	if o.data == "" && cfg.DataDir == config.DefaultDataDir {
		o.data = os.Getenv("MCPES_DATA")
	}
	if o.listen == "" && cfg.Listen == config.DefaultListen {
		o.listen = os.Getenv("MCPES_LISTEN")
	}
	if o.data != "" {
		cfg.DataDir = o.data
	}
	if o.listen != "" {
		cfg.Listen = o.listen
	}
	if o.pubsub != "" {
		cfg.PubSub = o.pubsub
	}
	if o.cluster != "" {
		cfg.Cluster.URL = o.cluster
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	m := &Main{Config: cfg, ConfigPath: path, NoConfigFile: path == "", Logger: log, DrainTimeout: o.drain}
	// SIGHUP reloads the config file in place (instead of killing the process).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ctx := cmd.Context()
	if err := m.Run(ctx); err != nil {
		return err
	}
	for ctx.Err() == nil {
		select {
		case <-hup:
			if rep, err := m.Reload(ctx); err != nil {
				log.Error("reload config file: nothing changed", "file", path, "err", err)
			} else {
				log.Info("config file reloaded", "file", path, "registered", rep.Registered, "changed", rep.Changed, "removed", rep.Removed)
			}
		case <-ctx.Done():
		}
	}
	log.Info("signal received")
	sctx, cancel := context.WithTimeout(context.Background(), o.drain+30*time.Second)
	defer cancel()
	return m.Close(sctx)
}

// loadServeConfig loads path, or ./mcpes.yaml when path is empty and it exists, or
// the defaults; it returns the path loaded ("" for none). Warnings are logged.
func loadServeConfig(log *slog.Logger, path string) (*config.Config, string, error) {
	explicit := path != ""
	if !explicit {
		path = defaultConfigFile
	}
	cfg, warns, err := config.Load(path)
	if !explicit && errors.Is(err, fs.ErrNotExist) {
		log.Info("no config file; using defaults, keeping the app servers in the log", "looked for", path)
		cfg = &config.Config{}
		cfg.SetDefaults()
		return cfg, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	for _, w := range warns {
		log.Warn("config file", "file", path, "warning", w.String())
	}
	log.Info("config file loaded", "file", path, "servers", len(cfg.MCPServers))
	return cfg, path, nil
}

func newLogger(e *env, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(e.stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(e.stderr, opts)), nil
	}
	return nil, usagef("--log-format %q: want text or json", format)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
