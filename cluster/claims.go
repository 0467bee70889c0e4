package cluster

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

const (
	// claimsSuffix names the key-value bucket of inspection claims after the log
	// stream (MCPES_LOG_CLAIMS by default).
	claimsSuffix = "_CLAIMS"
	// ClaimTTL is how long a claim lives: a node that died holding one delays the
	// others' inspection of that config by at most this much, and a settled claim
	// spares the others that inspection for as long.
	ClaimTTL     = 2 * time.Minute
	claimPending = "pending:"
	claimDone    = "done:"
)

// openBucket creates or binds the key-value bucket named by suffix after the log
// stream, with one value a key, file storage and the stream's replicas.
func openBucket(ctx context.Context, js jetstream.JetStream, opts Options, suffix string, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	cfg.Bucket, cfg.History, cfg.Storage, cfg.Replicas = opts.Stream+suffix, 1, jetstream.FileStorage, opts.Replicas
	var kv jetstream.KeyValue
	err := retry(ctx, func(ctx context.Context) (err error) {
		kv, err = js.CreateOrUpdateKeyValue(ctx, cfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// claimKey is key as a bucket key.
func claimKey(key string) string { return base64.RawURLEncoding.EncodeToString([]byte(key)) }

// Claim takes key for this node when no node holds it (compare-and-set: the bucket
// creates a key only when it is absent, deleted or expired).
func (s *Store) Claim(ctx context.Context, key string) (bool, error) {
	_, err := s.claims.Create(ctx, claimKey(key), []byte(claimPending+s.opts.Node))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyExists):
		return false, nil
	default:
		return false, err
	}
}

// Settle marks this node's claim of key done; it expires after ClaimTTL.
func (s *Store) Settle(ctx context.Context, key string) error {
	_, err := s.claims.Put(ctx, claimKey(key), []byte(claimDone+s.opts.Node))
	return err
}

// Settled reports whether key's claim is settled, and whether it is held at all.
func (s *Store) Settled(ctx context.Context, key string) (settled, held bool, err error) {
	e, err := s.claims.Get(ctx, claimKey(key))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, false, nil
	case err != nil:
		return false, false, err
	}
	return strings.HasPrefix(string(e.Value()), claimDone), true, nil
}
