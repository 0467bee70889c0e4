package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mcpes/mcpes/store"
)

// secretsSuffix names the key-value bucket of write-once secrets after the log
// stream (MCPES_LOG_SECRETS by default).
const secretsSuffix = "_SECRETS"

// ErrNoSwap is returned by SwapSecret and RangeSecrets when the replica cannot list
// or replace secrets.
var ErrNoSwap = errors.New("the replica cannot replace or list secrets")

// openSecrets creates or binds the secrets bucket.
func openSecrets(ctx context.Context, js jetstream.JetStream, opts Options) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	err := retry(ctx, func(ctx context.Context) (err error) {
		kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: opts.Stream + secretsSuffix, History: 1, MaxValueSize: maxMessage - 1024,
			Storage: jetstream.FileStorage, Replicas: opts.Replicas,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: secrets bucket: %w", err)
	}
	return kv, nil
}

// PutSecret stores value under ref in the cluster's secrets bucket, where every node
// finds it (Secret), and in the replica. Values come here sealed by the credential
// store above (so every node needs the same keys) and are written once cluster-wide:
// when another node stored ref first, its value is the one kept, here too (two nodes
// creating the same key at once agree on it).
func (s *Store) PutSecret(ctx context.Context, ref string, value []byte) error {
	err := retry(ctx, func(ctx context.Context) error {
		_, err := s.secrets.Create(ctx, claimKey(ref), value)
		return err
	})
	if errors.Is(err, jetstream.ErrKeyExists) {
		var e jetstream.KeyValueEntry
		err = retry(ctx, func(ctx context.Context) (err error) {
			e, err = s.secrets.Get(ctx, claimKey(ref))
			return err
		})
		if err == nil {
			value = e.Value()
		}
	}
	if err != nil {
		return fmt.Errorf("cluster: secret %s: %w", ref, err)
	}
	return s.Store.PutSecret(ctx, ref, value)
}

// Secret returns the value under ref from the replica or, when another node stored
// it, from the cluster's secrets bucket (kept in the replica from then on).
func (s *Store) Secret(ctx context.Context, ref string) ([]byte, error) {
	v, err := s.Store.Secret(ctx, ref)
	if !errors.Is(err, store.ErrNotFound) {
		return v, err
	}
	var e jetstream.KeyValueEntry
	err = retry(ctx, func(ctx context.Context) (err error) {
		e, err = s.secrets.Get(ctx, claimKey(ref))
		return err
	})
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, store.ErrNotFound
	case err != nil:
		return nil, fmt.Errorf("cluster: secret %s: %w", ref, err)
	}
	if err := s.Store.PutSecret(ctx, ref, e.Value()); err != nil {
		return nil, err
	}
	return e.Value(), nil
}

// swapper is the part of a replica (store/bolt) that replaces and lists secrets.
type swapper interface {
	SwapSecret(ctx context.Context, ref string, prev, next []byte) (bool, error)
	RangeSecrets(ctx context.Context, fn func(ref string, value []byte) error) error
}

// SwapSecret replaces a secret in the replica only: the records that change (OAuth
// tokens and flows, re-sealing under a new key) stay on their node.
func (s *Store) SwapSecret(ctx context.Context, ref string, prev, next []byte) (bool, error) {
	sw, ok := s.Store.(swapper)
	if !ok {
		return false, ErrNoSwap
	}
	return sw.SwapSecret(ctx, ref, prev, next)
}

// RangeSecrets lists the replica's secrets.
func (s *Store) RangeSecrets(ctx context.Context, fn func(ref string, value []byte) error) error {
	sw, ok := s.Store.(swapper)
	if !ok {
		return ErrNoSwap
	}
	return sw.RangeSecrets(ctx, fn)
}
