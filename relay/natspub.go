package relay

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of NATSConfig.
const (
	DefaultDuplicates     = 2 * time.Minute
	DefaultPublishTimeout = 5 * time.Second
	DefaultReconnectWait  = 250 * time.Millisecond
)

// NATSConfig configures the JetStream publisher.
type NATSConfig struct {
	// URL is the NATS server, e.g. nats://127.0.0.1:4222. Required.
	URL string
	// Duplicates is each stream's de-duplication window: a second message with the
	// same event id inside it is dropped by the server. Default 2 minutes.
	Duplicates time.Duration
	// MaxAge bounds how long a stream keeps messages; 0 keeps them for ever (the log
	// is the source of truth, the streams are a copy).
	MaxAge time.Duration
	// PublishTimeout bounds the wait for each message's acknowledgement. Default 5s.
	PublishTimeout time.Duration
	// NatsOptions are appended to the defaults (reconnect for ever, every 250ms).
	NatsOptions []nats.Option
	// Logger is for watermill's publisher. Default: nothing is logged.
	Logger watermill.LoggerAdapter
}

func (c *NATSConfig) setDefaults() {
	if c.Duplicates <= 0 {
		c.Duplicates = DefaultDuplicates
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
}

// StreamConfig returns the JetStream stream of a topic: durable, file storage,
// subject = name = topic, with the de-duplication window of c.
func (c NATSConfig) StreamConfig(topic string) jetstream.StreamConfig {
	c.setDefaults()
	return jetstream.StreamConfig{
		Name:        topic,
		Description: "mcpes events (" + topic + "), published by the mcpes relay",
		Subjects:    []string{topic},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxAge:      c.MaxAge,
		Duplicates:  c.Duplicates,
		Replicas:    1,
	}
}

// EnsureStreams creates or updates the stream of every topic in Topics. Returns the
// first JetStream error, wrapped.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, c NATSConfig) error {
	for _, t := range Topics {
		if _, err := js.CreateOrUpdateStream(ctx, c.StreamConfig(t)); err != nil {
			return fmt.Errorf("ensure stream %s: %w", t, err)
		}
	}
	return nil
}

// NATSPublisher publishes to NATS JetStream through watermill-nats (pkg/nats in
// JetStream mode) with the event id as the JetStream message id. It implements
// message.Publisher; Publish returns once JetStream acknowledged every message.
type NATSPublisher struct {
	cfg NATSConfig
	nc  *nats.Conn
	js  jetstream.JetStream
	pub *wmnats.Publisher
	// reprovision is set after a failed Publish: the server may have come back empty,
	// so the next Publish recreates the streams first (one round trip per topic, and
	// only after failures; the publisher itself never provisions).
	reprovision atomic.Bool
}

var _ message.Publisher = (*NATSPublisher)(nil)

// NewNATSPublisher connects to cfg.URL and creates or updates the streams (see
// EnsureStreams). The connection reconnects for ever; while it is down Publish fails
// after PublishTimeout and the relay retries. Returns ErrInvalidConfig (wrapped)
// without a URL, or the connection or JetStream error.
func NewNATSPublisher(ctx context.Context, cfg NATSConfig) (*NATSPublisher, error) {
	cfg.setDefaults()
	if cfg.URL == "" {
		return nil, fmt.Errorf("%w: NATS URL is required", ErrInvalidConfig)
	}
	nc, err := connectNATS(cfg.URL, "mcpes-relay", cfg.NatsOptions)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(cfg.PublishTimeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if err := EnsureStreams(ctx, js, cfg); err != nil {
		nc.Close()
		return nil, err
	}
	pub, err := wmnats.NewPublisherWithNatsConn(nc, wmnats.PublisherPublishConfig{
		Marshaler:         &wmnats.NATSMarshaler{},
		SubjectCalculator: wmnats.DefaultSubjectCalculator,
		JetStream: wmnats.JetStreamConfig{
			AutoProvision:  false,
			TrackMsgId:     true,
			ConnectOptions: []nats.JSOpt{nats.MaxWait(cfg.PublishTimeout)},
		},
	}, cfg.Logger)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("watermill nats publisher: %w", err)
	}
	return &NATSPublisher{cfg: cfg, nc: nc, js: js, pub: pub}, nil
}

func connectNATS(url, name string, extra []nats.Option) (*nats.Conn, error) {
	opts := append([]nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(DefaultReconnectWait),
	}, extra...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return nc, nil
}

// Publish sends msgs to topic's stream in order and returns after JetStream
// acknowledged each (a duplicate event id is acknowledged as a duplicate). Returns the
// first failure, wrapped; the caller retries the whole call.
func (p *NATSPublisher) Publish(topic string, msgs ...*message.Message) error {
	if p.reprovision.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.PublishTimeout)
		err := EnsureStreams(ctx, p.js, p.cfg)
		cancel()
		if err != nil {
			return err
		}
		p.reprovision.Store(false)
	}
	if err := p.pub.Publish(topic, msgs...); err != nil {
		p.reprovision.Store(true)
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}

// Close closes the connection. It returns nil.
func (p *NATSPublisher) Close() error { return p.pub.Close() }
