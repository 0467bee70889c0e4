package bolt

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/mcpes/mcpes/store"
)

// SwapSecret stores next under ref when the stored value equals prev: prev nil
// means ref must be absent, next nil deletes. It reports whether it swapped. The
// credential store builds overwrite, compare-and-swap and re-encryption on it.
func (s *Store) SwapSecret(ctx context.Context, ref string, prev, next []byte) (bool, error) {
	if ref == "" {
		return false, fmt.Errorf("%w: empty secret ref", store.ErrInvalid)
	}
	swapped := false
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bktSecrets)
		cur := b.Get([]byte(ref))
		if (cur == nil) != (prev == nil) || cur != nil && !bytes.Equal(cur, prev) {
			return nil
		}
		swapped = true
		if next == nil {
			return b.Delete([]byte(ref))
		}
		return b.Put([]byte(ref), slices.Clone(next))
	})
	return swapped, err
}

// RangeSecrets calls fn for every stored secret in ref order. The bytes are valid
// only during the call; an error from fn stops the scan and is returned.
func (s *Store) RangeSecrets(ctx context.Context, fn func(ref string, value []byte) error) error {
	return s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bktSecrets).ForEach(func(k, v []byte) error { return fn(string(k), v) })
	})
}
