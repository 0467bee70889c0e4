package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/mcpes/mcpes/store"
)

// Defaults of Config.
const (
	DefaultBatchSize  = 256
	DefaultMinBackoff = 50 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
)

// Config configures a Relay.
type Config struct {
	// Store is the log to publish. Required.
	Store store.Store
	// Publisher receives the events. Required. The relay does not close it.
	Publisher message.Publisher
	// Name is the checkpoint name, e.g. "relay:nats" or "relay:inprocess"; one per
	// target, so that two targets move independently. Required.
	Name string
	// BatchSize is how many events are read and published per step; the checkpoint
	// moves once per batch. Default 256.
	BatchSize int
	// MinBackoff and MaxBackoff bound the exponential backoff (with jitter) between
	// retries of a failing publisher or store. Defaults 50ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// StartAtHead makes a relay without a stored checkpoint start after the current
	// head instead of at the first event (for live-only targets such as GoChannel).
	StartAtHead bool
	// Logger receives retries and failures. Default slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports an unusable config as ErrInvalidConfig (wrapped).
func (c Config) Validate() error {
	if c.Name == "" {
		return fmt.Errorf("%w: checkpoint name is required", ErrInvalidConfig)
	}
	if c.MinBackoff > c.MaxBackoff {
		return fmt.Errorf("%w: min backoff %s above max %s", ErrInvalidConfig, c.MinBackoff, c.MaxBackoff)
	}
	return nil
}

// Relay publishes the log to one target, from its checkpoint on. Create with New,
// start with Run. Its methods are safe for concurrent use.
type Relay struct {
	cfg Config

	running   atomic.Bool
	pos       atomic.Uint64 // last position published and checkpointed
	loaded    atomic.Bool   // pos holds the checkpoint
	published atomic.Uint64
	retries   atomic.Uint64

	mu        sync.Mutex
	lastErr   error
	lastErrAt time.Time
}

// New returns a relay. It panics when Store or Publisher is nil and returns
// ErrInvalidConfig (wrapped) for a bad config.
func New(cfg Config) (*Relay, error) {
	if cfg.Store == nil || cfg.Publisher == nil {
		panic("relay.New: Store and Publisher are required")
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Relay{cfg: cfg}, nil
}

// Name returns the relay's checkpoint name.
func (r *Relay) Name() string { return r.cfg.Name }

// Run publishes events until ctx ends, then returns nil. Publisher and store failures
// are retried with backoff and never skip an event; Run returns an error only when the
// store is closed (store.ErrClosed, wrapped) or when the relay is already running
// (ErrRunning). A batch published but not yet checkpointed when the process dies is
// published again by the next Run: delivery is at-least-once. On a clean stop the
// checkpoint of everything acknowledged is written before Run returns.
//
// Reading the next batch, publishing one and checkpointing the one before overlap: the
// checkpoint write (an fsync) is off the publishing path, and it only ever names a
// position whose events were all acknowledged.
//
// Publish calls take no context: a publisher that blocks (a GoChannel subscriber that
// never acks) delays the stop until it returns.
func (r *Relay) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer r.running.Store(false)

	bo := backoff{min: r.cfg.MinBackoff, max: r.cfg.MaxBackoff}
	pos, err := r.start(ctx, &bo)
	if err != nil {
		return stopErr(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []outgoing, 2)
	readDone := make(chan error, 1)
	go func() { readDone <- r.read(ctx, pos, batches) }()
	cp := newCheckpointer(r, pos)
	cpDone := make(chan error, 1)
	go func() { cpDone <- cp.run(ctx) }()

	var runErr error
	for evs := range batches {
		if ctx.Err() != nil {
			break // a batch read ahead is left for the next Run
		}
		if err := r.publish(ctx, evs, &bo); err != nil {
			runErr = err
			break
		}
		last := evs[len(evs)-1].seq
		r.pos.Store(last)
		r.published.Add(uint64(len(evs)))
		bo.reset()
		r.clearErr()
		cp.set(last)
	}
	cancel()
	for range batches { //nolint:revive // drain so the reader can exit
	}
	readErr := <-readDone
	cpErr := <-cpDone
	for _, err := range []error{runErr, readErr, cpErr} {
		if err := stopErr(err); err != nil {
			return err
		}
	}
	return nil
}

// read sends batches of events after pos to out until ctx ends or the store is
// closed, waiting for commits when it is at the head. It closes out.
func (r *Relay) read(ctx context.Context, pos uint64, out chan<- []outgoing) error {
	defer close(out)
	bo := backoff{min: r.cfg.MinBackoff, max: r.cfg.MaxBackoff}
	for ctx.Err() == nil {
		batch, err := readBatch(ctx, r.cfg.Store, pos+1, r.cfg.BatchSize)
		if err != nil {
			if err := r.retry(ctx, &bo, "read log", err); err != nil {
				return err
			}
			continue
		}
		if len(batch) == 0 {
			if _, err := r.cfg.Store.Wait(ctx, pos); err != nil {
				if err := r.retry(ctx, &bo, "wait for commit", err); err != nil {
					return err
				}
			}
			continue
		}
		bo.reset()
		select {
		case out <- batch:
			pos = batch[len(batch)-1].seq
		case <-ctx.Done():
		}
	}
	return ctx.Err()
}

// stopErr maps the reason Run stops to its result: nil for a cancelled context.
func stopErr(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

// start loads the checkpoint (or the head, with StartAtHead), retrying store errors.
func (r *Relay) start(ctx context.Context, bo *backoff) (uint64, error) {
	for {
		pos, err := r.cfg.Store.Checkpoint(ctx, r.cfg.Name)
		if errors.Is(err, store.ErrNotFound) {
			pos, err = 0, nil
			if r.cfg.StartAtHead {
				pos, _, err = r.cfg.Store.Head(ctx)
			}
		}
		if err == nil {
			r.pos.Store(pos)
			r.loaded.Store(true)
			return pos, nil
		}
		if err := r.retry(ctx, bo, "load checkpoint", err); err != nil {
			return 0, err
		}
	}
}

// retry records err and waits the next backoff. It returns the error that must stop
// Run: ctx's error, or a closed store.
func (r *Relay) retry(ctx context.Context, bo *backoff, what string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, store.ErrClosed) {
		return fmt.Errorf("relay %s: %s: %w", r.cfg.Name, what, err)
	}
	r.retries.Add(1)
	r.mu.Lock()
	r.lastErr, r.lastErrAt = fmt.Errorf("%s: %w", what, err), time.Now()
	r.mu.Unlock()
	r.cfg.Logger.Warn("relay retrying", "relay", r.cfg.Name, "step", what, "err", err)
	return bo.wait(ctx)
}

func (r *Relay) clearErr() {
	r.mu.Lock()
	r.lastErr = nil
	r.mu.Unlock()
}

// publish sends one batch to every topic it touches, retrying until each topic
// accepted it. Topics are independent streams, so they are published concurrently
// (order is kept within each topic, where each Publish waits for its acks); a topic
// that accepted the batch is not sent it again while another one retries.
func (r *Relay) publish(ctx context.Context, batch []outgoing, bo *backoff) error {
	var wg sync.WaitGroup
	errs := make([]error, len(Topics))
	for i, topic := range Topics[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tbo := backoff{min: bo.min, max: bo.max}
			errs[i+1] = r.publishTopic(ctx, topic, batch, &tbo)
		}()
	}
	errs[0] = r.publishTopic(ctx, AllTopic, batch, bo)
	wg.Wait()
	return errors.Join(errs...)
}

// publishTopic publishes the events of batch that belong to topic, retrying with
// backoff until the publisher accepts them or ctx ends.
func (r *Relay) publishTopic(ctx context.Context, topic string, batch []outgoing, bo *backoff) error {
	for {
		msgs := make([]*message.Message, 0, len(batch))
		for i := range batch {
			if topic == AllTopic || batch[i].area == topic {
				msgs = append(msgs, batch[i].message())
			}
		}
		if len(msgs) == 0 {
			return nil
		}
		err := r.cfg.Publisher.Publish(topic, msgs...)
		if err == nil {
			return nil
		}
		if err := r.retry(ctx, bo, "publish to "+topic, err); err != nil {
			return err
		}
	}
}

// Lag is how far a relay is behind the log.
type Lag struct {
	// Head is the last committed position.
	Head uint64
	// Published is the relay's checkpoint: every event up to it was acknowledged.
	Published uint64
	// Events is Head - Published.
	Events uint64
	// Age is how long ago the oldest unpublished event happened (0 when none).
	Age time.Duration
}

// Lag reads the head and the oldest unpublished event. Before Run loaded the
// checkpoint it reads the stored one. Returns the store's error.
func (r *Relay) Lag(ctx context.Context) (Lag, error) {
	head, _, err := r.cfg.Store.Head(ctx)
	if err != nil {
		return Lag{}, fmt.Errorf("relay %s lag: %w", r.cfg.Name, err)
	}
	pub := r.pos.Load()
	if !r.loaded.Load() {
		pub, err = r.cfg.Store.Checkpoint(ctx, r.cfg.Name)
		if errors.Is(err, store.ErrNotFound) {
			pub, err = 0, nil
		}
		if err != nil {
			return Lag{}, fmt.Errorf("relay %s lag: %w", r.cfg.Name, err)
		}
	}
	l := Lag{Head: head, Published: min(pub, head)}
	l.Events = head - l.Published
	if l.Events > 0 {
		evs, err := r.cfg.Store.ReadAll(ctx, l.Published+1, 1)
		if err != nil {
			return l, fmt.Errorf("relay %s lag: %w", r.cfg.Name, err)
		}
		if len(evs) > 0 {
			l.Age = max(time.Since(evs[0].Time), 0)
		}
	}
	return l, nil
}

// Stats are a relay's counters since it was created.
type Stats struct {
	// Published counts events published and checkpointed.
	Published uint64
	// Retries counts failed steps that were retried.
	Retries uint64
	// LastError is the failure being retried now ("" when the last step succeeded).
	LastError string
	// LastErrorAt is when LastError happened.
	LastErrorAt time.Time
	// Running reports whether Run is active.
	Running bool
}

// Stats returns the relay's counters.
func (r *Relay) Stats() Stats {
	s := Stats{Published: r.published.Load(), Retries: r.retries.Load(), Running: r.running.Load()}
	r.mu.Lock()
	if r.lastErr != nil {
		s.LastError, s.LastErrorAt = r.lastErr.Error(), r.lastErrAt
	}
	r.mu.Unlock()
	return s
}
