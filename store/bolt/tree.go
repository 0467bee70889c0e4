package bolt

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// loadTree reads the Merkle tree kept with the head. When it is missing or does not
// end at the head (a file from before the tree was kept), it is rebuilt from the
// records' hashes, and Open stores it.
func (s *Store) loadTree(tx *bolt.Tx) error {
	if v := tx.Bucket(bktMeta).Get(keyTree); v != nil {
		t, err := store.UnmarshalTree(v)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInconsistent, err)
		}
		if t.Size() == s.head {
			s.tree = t
			return nil
		}
	}
	t, err := treeOf(tx, s.head)
	if err != nil {
		return err
	}
	s.opts.Logger.Info("event store: merkle tree rebuilt from the log", "path", s.path, "size", t.Size())
	s.tree, s.treeStale = t, true
	return nil
}

// treeOf folds the hashes of the records at positions 1..upTo into a tree.
func treeOf(tx *bolt.Tx, upTo uint64) (*store.Tree, error) {
	t := store.NewTree()
	c := tx.Bucket(bktLog).Cursor()
	for k, v := c.First(); k != nil && u64(k) <= upTo; k, v = c.Next() {
		if u64(k) != t.Size()+1 {
			return nil, fmt.Errorf("%w: merkle tree: position %d follows %d", ErrInconsistent, u64(k), t.Size())
		}
		hash, _, err := events.SplitRecord(v)
		if err != nil {
			return nil, fmt.Errorf("%w: merkle tree at %d: %v", ErrInconsistent, u64(k), err)
		}
		t.Append(hash)
	}
	if t.Size() != upTo {
		return nil, fmt.Errorf("%w: merkle tree: log ends at %d, head is %d", ErrInconsistent, t.Size(), upTo)
	}
	return t, nil
}

// Tree implements store.Store.
func (s *Store) Tree(ctx context.Context) (*store.Tree, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tree.Clone(), ctx.Err()
}
