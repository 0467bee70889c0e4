package cluster

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/store"
)

// secretsSuffix names the key-value bucket of write-once secrets after the log
// stream (MCPES_LOG_SECRETS by default).
const secretsSuffix = "_SECRETS"

// ErrNoSwap is returned by SwapSecret and RangeSecrets when the replica cannot list
// or replace secrets.
var ErrNoSwap = errors.New("the replica cannot replace or list secrets")

// awaitLanded calls landed (which retries its own reads) until it reports done, for up to
// attemptTimeout: after losing a compare-and-set to a write that is still being
// replicated, until that write can be read.
func awaitLanded(ctx context.Context, landed func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	for {
		done, err := landed(ctx)
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the winning write never became readable: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
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
		// The winner's write may still be replicating (10164): until it lands, the
		// key reads as absent.
		var e jetstream.KeyValueEntry
		err = awaitLanded(ctx, func(ctx context.Context) (bool, error) {
			err := retry(ctx, func(ctx context.Context) (err error) {
				e, err = s.secrets.Get(ctx, claimKey(ref))
				return err
			})
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				return false, nil
			}
			return err == nil, err
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
// it, from the cluster's secrets bucket (kept in the replica from then on). A shared
// record (domain.SharedRecord) is read from the cluster's records bucket every time.
func (s *Store) Secret(ctx context.Context, ref string) ([]byte, error) {
	if domain.SharedRecord(ref) {
		v, _, err := s.record(ctx, ref)
		if err == nil && v == nil {
			err = store.ErrNotFound
		}
		return v, err
	}
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

// recordsSuffix names the key-value bucket of the shared mutable records (OAuth
// grants and flows, domain.SharedRecord) after the log stream (MCPES_LOG_RECORDS).
const recordsSuffix = "_RECORDS"

// record reads a shared record: its value and revision (nil, 0 when absent).
func (s *Store) record(ctx context.Context, ref string) ([]byte, uint64, error) {
	var e jetstream.KeyValueEntry
	err := retry(ctx, func(ctx context.Context) (err error) {
		e, err = s.records.Get(ctx, claimKey(ref))
		return err
	})
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, 0, nil
	case err != nil:
		return nil, 0, fmt.Errorf("cluster: record %s: %w", ref, err)
	}
	return e.Value(), e.Revision(), nil
}

// swapRecord is SwapSecret for a shared record: a compare-and-set on the key's
// revision in the records bucket, so two nodes changing one record at once cannot
// both win (the loser's credential store reads the winner's value and decides again).
func (s *Store) swapRecord(ctx context.Context, ref string, prev, next []byte) (bool, error) {
	cur, rev, err := s.record(ctx, ref)
	if err != nil {
		return false, err
	}
	if (cur == nil) != (prev == nil) || !bytes.Equal(cur, prev) {
		return false, nil
	}
	key := claimKey(ref)
	err = retry(ctx, func(ctx context.Context) error {
		var err error
		switch {
		case next == nil && cur == nil:
		case next == nil:
			err = s.records.Delete(ctx, key, jetstream.LastRevision(rev))
		case cur == nil:
			_, err = s.records.Create(ctx, key, next)
		default:
			_, err = s.records.Update(ctx, key, next, rev)
		}
		return err
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch), isConflict(err):
		// Lost: return once the winner's write reads back, so the caller's next read
		// decides on it rather than on the value it already lost with.
		err = awaitLanded(ctx, func(ctx context.Context) (bool, error) {
			_, now, err := s.record(ctx, ref)
			return now != rev, err
		})
		if err == nil {
			return false, nil
		}
	}
	return false, fmt.Errorf("cluster: record %s: %w", ref, err)
}

// swapper is the part of a replica (store/bolt) that replaces and lists secrets.
type swapper interface {
	SwapSecret(ctx context.Context, ref string, prev, next []byte) (bool, error)
	RangeSecrets(ctx context.Context, fn func(ref string, value []byte) error) error
}

// SwapSecret replaces a secret: a shared record (domain.SharedRecord: OAuth grants and
// flows) in the cluster's records bucket, anything else (re-sealing under a new key)
// in the replica only.
func (s *Store) SwapSecret(ctx context.Context, ref string, prev, next []byte) (bool, error) {
	if domain.SharedRecord(ref) {
		return s.swapRecord(ctx, ref, prev, next)
	}
	sw, ok := s.Store.(swapper)
	if !ok {
		return false, ErrNoSwap
	}
	return sw.SwapSecret(ctx, ref, prev, next)
}

// RangeSecrets lists the replica's secrets and the cluster's shared records, in ref
// order.
func (s *Store) RangeSecrets(ctx context.Context, fn func(ref string, value []byte) error) error {
	sw, ok := s.Store.(swapper)
	if !ok {
		return ErrNoSwap
	}
	type item struct {
		ref   string
		value []byte
	}
	var all []item
	err := sw.RangeSecrets(ctx, func(ref string, value []byte) error {
		if !domain.SharedRecord(ref) { // a copy from before the node joined is not the record
			all = append(all, item{ref, bytes.Clone(value)})
		}
		return nil
	})
	if err != nil {
		return err
	}
	var keys []string
	err = retry(ctx, func(ctx context.Context) error {
		lister, err := s.records.ListKeys(ctx)
		if err != nil {
			return err
		}
		keys = keys[:0]
		for k := range lister.Keys() {
			keys = append(keys, k)
		}
		_ = lister.Stop() // the listing ended: nothing is left to stop
		return nil
	})
	if err != nil {
		return fmt.Errorf("cluster: records: %w", err)
	}
	for _, k := range keys {
		ref, err := base64.RawURLEncoding.DecodeString(k)
		if err != nil || !domain.SharedRecord(string(ref)) {
			continue // not a record this store wrote
		}
		v, _, err := s.record(ctx, string(ref))
		if err != nil {
			return err
		}
		if v != nil {
			all = append(all, item{string(ref), v})
		}
	}
	slices.SortFunc(all, func(a, b item) int { return strings.Compare(a.ref, b.ref) })
	for _, it := range all {
		if err := fn(it.ref, it.value); err != nil {
			return err
		}
	}
	return nil
}
