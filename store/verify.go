package store

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/mcpes/mcpes/events"
)

// Report is the outcome of Verify.
type Report struct {
	// OK is true when no problem was found.
	OK bool
	// Events counts the records read.
	Events int
	// Head is the position the store reports as its last.
	Head uint64
	// Problems lists what is wrong, in position order (at most MaxProblems).
	Problems []Problem
	// FirstBad is the first position at which the log is not what was written (0 when
	// OK). Everything before it verified.
	FirstBad uint64
}

// Problem is one defect found by Verify.
type Problem struct {
	Position uint64
	Message  string
}

func (p Problem) String() string { return fmt.Sprintf("position %d: %s", p.Position, p.Message) }

// MaxProblems bounds Report.Problems; the walk goes on, counting events, after it.
const MaxProblems = 100

// VerifyOption tunes Verify.
type VerifyOption func(*verifyConfig)

type verifyConfig struct {
	progress func(pos, head uint64)
	every    uint64
	sizes    []uint64
	root     func(size uint64, root [32]byte)
	start    *Tree
}

// WithStart makes Verify begin after the events t covers, trusting them (t is the
// tree of a signed checkpoint): the walk starts at t.Size()+1, chained to the event at
// t.Size() (checked against t's right edge, see TailHash), and WithRoots' tree grows
// from t.
func WithStart(t *Tree) VerifyOption {
	return func(c *verifyConfig) { c.start = t }
}

// WithRoots makes Verify fold the records' hashes into the Merkle tree (see Tree) and
// call fn with the tree's root at each of sizes (ascending) that the walk reaches, so
// that signed checkpoints are checked in the same pass as the chain.
func WithRoots(sizes []uint64, fn func(size uint64, root [32]byte)) VerifyOption {
	return func(c *verifyConfig) { c.sizes, c.root = sizes, fn }
}

// WithProgress makes Verify call fn(pos, head) after every `every` records and once at
// the end.
func WithProgress(every uint64, fn func(pos, head uint64)) VerifyOption {
	return func(c *verifyConfig) { c.progress, c.every = fn, max(every, 1) }
}

// Verify walks every stored record from position 1 and checks that the log is the
// one that was written: positions are gap-free from 1 to the head, each record chains
// to the one before (events.CheckRecord), decodes, and carries its own position as
// sequence and the previous record's hash as prevhash, and the last record is the
// store's head. Problems are reported in the Report; the error is non-nil only when
// the walk itself failed (ctx ended, the store is closed or unreadable).
func Verify(ctx context.Context, st Store, opts ...VerifyOption) (Report, error) {
	var cfg verifyConfig
	for _, o := range opts {
		o(&cfg)
	}
	head, headHash, err := st.Head(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("verify: head: %w", err)
	}
	rep := Report{Head: head}
	bad := false
	add := func(pos uint64, format string, args ...any) {
		if !bad || pos < rep.FirstBad {
			bad = true
			rep.FirstBad = pos
		}
		if len(rep.Problems) < MaxProblems {
			rep.Problems = append(rep.Problems, Problem{Position: pos, Message: fmt.Sprintf(format, args...)})
		}
	}
	var (
		last uint64
		prev = events.ZeroHash
		tree *Tree
	)
	if cfg.start != nil {
		if cfg.start.Size() > head {
			add(head+1, "positions %d to %d of the trusted tree are missing (head is %d)", head+1, cfg.start.Size(), head)
			return rep, nil
		}
		if prev, err = TailHash(ctx, st, cfg.start); err != nil {
			add(cfg.start.Size(), "%v", err)
			return rep, nil
		}
		last = cfg.start.Size()
	}
	if cfg.root != nil {
		tree = NewTree()
		if cfg.start != nil {
			tree = cfg.start.Clone()
		}
		for len(cfg.sizes) > 0 && cfg.sizes[0] == 0 {
			cfg.root(0, tree.Root())
			cfg.sizes = cfg.sizes[1:]
		}
	}
	err = st.ReadRecords(ctx, last+1, func(pos uint64, rec []byte) error {
		rep.Events++
		switch {
		case pos == last+1:
		case pos > last+1:
			add(last+1, "positions %d to %d are missing", last+1, pos-1)
		default:
			add(pos, "position %d follows %d (out of order)", pos, last)
		}
		hash, cerr := events.CheckRecord(prev, rec)
		if cerr != nil {
			add(pos, "chain broken: %v", cerr)
		}
		seal, derr := decodeSeal(rec)
		switch {
		case derr != nil:
			add(pos, "does not decode: %v", derr)
		case uint64(seal.Sequence) != pos:
			add(pos, "record says sequence %d", uint64(seal.Sequence))
		case seal.PrevHash != hex.EncodeToString(prev[:]):
			add(pos, "prevhash %.16s... is not the previous record's hash %x...", seal.PrevHash, prev[:8])
		}
		last, prev = pos, hash
		if tree != nil && len(cfg.sizes) > 0 {
			tree.Append(hash)
			for len(cfg.sizes) > 0 && cfg.sizes[0] == tree.Size() {
				cfg.root(tree.Size(), tree.Root())
				cfg.sizes = cfg.sizes[1:]
			}
		}
		if cfg.progress != nil && pos%cfg.every == 0 {
			cfg.progress(pos, head)
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("verify: read at %d: %w", last+1, err)
	}
	switch {
	case last < head:
		add(last+1, "positions %d to %d are missing (head is %d)", last+1, head, head)
	case last > head:
		add(head+1, "records beyond the head %d (last record %d)", head, last)
	case prev != headHash:
		add(head, "head hash %x... is not the last record's hash %x...", headHash[:8], prev[:8])
	}
	if cfg.progress != nil {
		cfg.progress(last, head)
	}
	rep.OK = !bad
	return rep, nil
}

// seal is the part of a record Verify compares; decoding only it still checks that
// the whole record is valid JSON, without copying the rest.
type seal struct {
	Sequence events.Sequence `json:"sequence"`
	PrevHash string          `json:"prevhash"`
	Hash     string          `json:"hash"`
}

func decodeSeal(rec []byte) (seal, error) {
	var s seal
	_, canon, err := events.SplitRecord(rec)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(canon, &s); err != nil {
		return s, fmt.Errorf("%w: %v", events.ErrCorrupt, err)
	}
	if s.Hash != "" {
		return s, fmt.Errorf("%w: hash inside canonical bytes", events.ErrCorrupt)
	}
	return s, nil
}
