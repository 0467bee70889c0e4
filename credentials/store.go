package credentials

import (
	"context"
	"errors"
	"fmt"

	"github.com/mcpes/mcpes/store"
)

// Backend is a store.Store whose secrets can be listed and replaced, which
// store/bolt provides. Store builds the encrypted credential store on it.
type Backend interface {
	store.Store
	// SwapSecret stores next under ref if the stored value equals prev (prev nil:
	// ref must be absent; next nil: delete). It reports whether it swapped.
	SwapSecret(ctx context.Context, ref string, prev, next []byte) (bool, error)
	// RangeSecrets calls fn for every stored secret in ref order; the bytes are valid
	// only during the call.
	RangeSecrets(ctx context.Context, fn func(ref string, value []byte) error) error
}

// Store is a store.Store whose PutSecret and Secret seal and open values with a
// Keyring; everything else goes to the backend unchanged. It also offers the
// overwrite, compare-and-swap and delete that tokens and flow records need.
type Store struct {
	Backend
	keys *Keyring
}

// New returns the credential store on b. keys may be nil: then any secret stored or
// read fails with ErrNoKey, which is what a data directory without secrets needs.
func New(b Backend, keys *Keyring) *Store {
	if b == nil {
		panic("credentials: nil backend")
	}
	return &Store{Backend: b, keys: keys}
}

// Keys returns the keyring (nil when none is configured).
func (s *Store) Keys() *Keyring { return s.keys }

// PutSecret implements store.Store: the value is sealed under ref. As in the
// backend, the first value stored under a ref is kept.
func (s *Store) PutSecret(ctx context.Context, ref string, value []byte) error {
	sealed, err := s.keys.Seal(ref, value)
	if err != nil {
		return fmt.Errorf("secret %s: %w", ref, err)
	}
	return s.Backend.PutSecret(ctx, ref, sealed)
}

// Secret implements store.Store: the value under ref, opened. Returns
// store.ErrNotFound when absent and this package's errors when it does not open.
func (s *Store) Secret(ctx context.Context, ref string) ([]byte, error) {
	raw, err := s.Backend.Secret(ctx, ref)
	if err != nil {
		return nil, err
	}
	plain, _, err := s.keys.Open(ref, raw)
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", ref, err)
	}
	return plain, nil
}

// maxSwapTries bounds Update's compare-and-swap retries under contention.
const maxSwapTries = 16

// ErrContention is returned by Update when the record kept changing under it.
var ErrContention = errors.New("credential record changed concurrently too often")

// Update replaces the value under ref with fn's result, atomically with respect to
// other writers: fn gets the current plaintext (nil, false when absent) and returns
// the next value (nil deletes). When another writer changed the record between the
// read and the write, fn runs again on the new value. An error from fn aborts.
func (s *Store) Update(ctx context.Context, ref string, fn func(cur []byte, ok bool) ([]byte, error)) error {
	for range maxSwapTries {
		raw, err := s.Backend.Secret(ctx, ref)
		var cur []byte
		switch {
		case errors.Is(err, store.ErrNotFound):
			raw = nil
		case err != nil:
			return err
		default:
			if cur, _, err = s.keys.Open(ref, raw); err != nil {
				return fmt.Errorf("secret %s: %w", ref, err)
			}
		}
		next, err := fn(cur, raw != nil)
		if err != nil {
			return err
		}
		var sealed []byte
		if next != nil {
			if sealed, err = s.keys.Seal(ref, next); err != nil {
				return fmt.Errorf("secret %s: %w", ref, err)
			}
		} else if raw == nil {
			return nil
		}
		ok, err := s.Backend.SwapSecret(ctx, ref, raw, sealed)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
	}
	return fmt.Errorf("secret %s: %w", ref, ErrContention)
}

// Delete removes the value under ref (no error when absent).
func (s *Store) Delete(ctx context.Context, ref string) error {
	return s.Update(ctx, ref, func([]byte, bool) ([]byte, error) { return nil, nil })
}

// Count returns how many secrets are stored (sealed or not).
func (s *Store) Count(ctx context.Context) (int, error) {
	n := 0
	err := s.RangeSecrets(ctx, func(string, []byte) error { n++; return nil })
	return n, err
}

// RotateReport says what Rotate did.
type RotateReport struct {
	// Active is the key id everything is sealed under afterwards.
	Active string `json:"active"`
	// Resealed counts values moved from an older key, by that key's id.
	Resealed map[string]int `json:"resealed"`
	// Encrypted counts values that were stored in clear (written before encryption).
	Encrypted int `json:"encrypted"`
	// Unchanged counts values already sealed under the active key.
	Unchanged int `json:"unchanged"`
}

// Rotate re-seals every stored secret under the active key: values sealed under an
// older key and values stored in clear by an older mcpes. Values already under the
// active key are left alone, so it is cheap to run at every start. A value that does
// not open (unknown key, tampered) stops it with that error and nothing after it is
// changed.
func (s *Store) Rotate(ctx context.Context) (RotateReport, error) {
	rep := RotateReport{Active: s.keys.Active(), Resealed: map[string]int{}}
	if rep.Active == "" {
		return rep, ErrNoKey
	}
	type item struct {
		ref string
		raw []byte
	}
	var todo []item
	err := s.RangeSecrets(ctx, func(ref string, v []byte) error {
		todo = append(todo, item{ref, append([]byte(nil), v...)})
		return nil
	})
	if err != nil {
		return rep, err
	}
	for _, it := range todo {
		plain, id, err := s.keys.Open(it.ref, it.raw)
		switch {
		case errors.Is(err, ErrPlaintext):
			plain = it.raw
		case err != nil:
			return rep, fmt.Errorf("secret %s: %w", it.ref, err)
		case id == rep.Active:
			rep.Unchanged++
			continue
		}
		sealed, err := s.keys.Seal(it.ref, plain)
		if err != nil {
			return rep, err
		}
		ok, err := s.Backend.SwapSecret(ctx, it.ref, it.raw, sealed)
		if err != nil {
			return rep, err
		}
		if !ok { // a writer changed it meanwhile; what it wrote is sealed under the active key
			rep.Unchanged++
			continue
		}
		if id == "" {
			rep.Encrypted++
		} else {
			rep.Resealed[id]++
		}
	}
	return rep, nil
}
