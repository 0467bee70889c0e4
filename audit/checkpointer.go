package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/mcpes/mcpes/store"
)

// Snapshot names under which the checkpointer keeps its state in the store.
const (
	// SnapshotCheckpoint holds the newest signed checkpoint note.
	SnapshotCheckpoint = "audit/checkpoint"
	// snapshotTreePrefix + the zero-padded size holds the tree (store.Tree's
	// MarshalBinary) at each checkpoint, from which `verify --since` resumes.
	snapshotTreePrefix = "audit/tree/"
)

func treeSnapshot(size uint64) string { return fmt.Sprintf("%s%020d", snapshotTreePrefix, size) }

// CheckpointerOptions tune a Checkpointer. Zero values take the defaults noted.
type CheckpointerOptions struct {
	// Every is the number of events after which a checkpoint is due (10,000).
	Every uint64
	// Interval is how long after the last checkpoint one is due when the log moved (1 min).
	Interval time.Duration
	// Witness receives every checkpoint; nil for none.
	Witness Witness
	Clock   func() time.Time
	Logger  *slog.Logger
}

// Checkpointer signs the log's Merkle tree head every Every events or Interval,
// stores the checkpoint in the store and publishes it to the witness.
type Checkpointer struct {
	st     store.Store
	signer note.Signer
	o      CheckpointerOptions
	last   uint64 // size of the last checkpoint made or found
}

// NewCheckpointer returns a checkpointer of st signing with signer. It panics on a
// nil store or signer.
func NewCheckpointer(st store.Store, signer note.Signer, o CheckpointerOptions) *Checkpointer {
	if st == nil || signer == nil {
		panic("audit: NewCheckpointer needs a store and a signer")
	}
	if o.Every == 0 {
		o.Every = 10_000
	}
	if o.Interval <= 0 {
		o.Interval = time.Minute
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Checkpointer{st: st, signer: signer, o: o}
	if size, _, err := st.LoadSnapshot(context.Background(), SnapshotCheckpoint); err == nil {
		c.last = size
	}
	return c
}

// Checkpoint signs the tree at the head now, unless it has not moved since the last
// checkpoint (ok false). The checkpoint and the tree are stored before the witness is
// told, so a published checkpoint is always one the file has. A witness failure is
// returned after the checkpoint is stored; the next checkpoint covers it.
func (c *Checkpointer) Checkpoint(ctx context.Context) (cp Checkpoint, ok bool, err error) {
	tree, err := c.st.Tree(ctx)
	if err != nil {
		return cp, false, fmt.Errorf("checkpoint: %w", err)
	}
	if tree.Size() == 0 || tree.Size() == c.last {
		return cp, false, nil
	}
	cp, err = SignCheckpoint(c.signer, tree.Size(), tree.Root(), c.o.Clock())
	if err != nil {
		return cp, false, err
	}
	tb, _ := tree.MarshalBinary()
	if err := c.st.SaveSnapshot(ctx, treeSnapshot(cp.Size), cp.Size, tb); err != nil {
		return cp, false, fmt.Errorf("checkpoint %d: %w", cp.Size, err)
	}
	if err := c.st.SaveSnapshot(ctx, SnapshotCheckpoint, cp.Size, []byte(cp.Note)); err != nil {
		return cp, false, fmt.Errorf("checkpoint %d: %w", cp.Size, err)
	}
	c.last = cp.Size
	if c.o.Witness != nil {
		if err := c.o.Witness.Publish(ctx, cp); err != nil {
			return cp, true, fmt.Errorf("checkpoint %d: publish: %w", cp.Size, err)
		}
	}
	return cp, true, nil
}

// Run makes a checkpoint whenever Every events were appended since the last one, or
// Interval passed and the log moved, until ctx ends or the store closes.
func (c *Checkpointer) Run(ctx context.Context) {
	for {
		wctx, cancel := context.WithTimeout(ctx, c.o.Interval)
		_, err := c.st.Wait(wctx, c.last+c.o.Every-1)
		cancel()
		switch {
		case ctx.Err() != nil, errors.Is(err, store.ErrClosed):
			return
		case err != nil && !errors.Is(err, context.DeadlineExceeded):
			c.o.Logger.Error("checkpointer: wait", "err", err)
			return
		}
		cp, ok, err := c.Checkpoint(ctx)
		if err != nil {
			if errors.Is(err, store.ErrClosed) {
				return
			}
			c.o.Logger.Error("checkpoint", "err", err)
		}
		if ok {
			c.o.Logger.Info("checkpoint signed", "size", cp.Size, "origin", cp.Origin)
		}
	}
}
