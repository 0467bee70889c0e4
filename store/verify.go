package store

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"math"

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
	records  func(pos uint64, canonical []byte)
}

// WithRecords makes Verify hand every record it reads (position and canonical bytes,
// valid only during the call) to fn, in order, on another goroutine, so that a
// consumer such as decision replay runs on a second core in the same pass over the
// store. fn sees a record whether or not it verified: a caller reads fn's results
// only when the Report is OK. Verify returns after fn's last call.
func WithRecords(fn func(pos uint64, canonical []byte)) VerifyOption {
	return func(c *verifyConfig) { c.records = fn }
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
		tree *walkTree
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
		tree = newWalkTree(cfg.start)
		for len(cfg.sizes) > 0 && cfg.sizes[0] == 0 {
			cfg.root(0, tree.root())
			cfg.sizes = cfg.sizes[1:]
		}
	}
	var feed *feeder
	if cfg.records != nil {
		feed = newFeeder(cfg.records)
	}
	link := newLinker()
	err = st.ReadRecords(ctx, last+1, func(pos uint64, rec []byte) error {
		rep.Events++
		switch {
		case pos == last+1:
		case pos > last+1:
			add(last+1, "positions %d to %d are missing", last+1, pos-1)
		default:
			add(pos, "position %d follows %d (out of order)", pos, last)
		}
		hash, canon, cerr := link.check(prev, rec)
		if cerr != nil {
			add(pos, "chain broken: %v", cerr)
		}
		seal, derr := scanSeal(canon)
		switch {
		case derr != nil:
			add(pos, "does not decode: %v", derr)
		case seal.sequence != pos:
			add(pos, "record says sequence %d", seal.sequence)
		case !hexIs(seal.prevHash, prev):
			add(pos, "prevhash %.16s... is not the previous record's hash %x...", seal.prevHash, prev[:8])
		}
		last, prev = pos, hash
		if tree != nil && len(cfg.sizes) > 0 {
			tree.append(hash)
			for len(cfg.sizes) > 0 && cfg.sizes[0] == tree.size {
				cfg.root(tree.size, tree.root())
				cfg.sizes = cfg.sizes[1:]
			}
		}
		if cfg.progress != nil && pos%cfg.every == 0 {
			cfg.progress(pos, head)
		}
		if feed != nil && canon != nil {
			return feed.add(ctx, pos, canon)
		}
		return nil
	})
	if feed != nil {
		feed.close()
	}
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

// seal is the part of a record Verify compares.
type seal struct {
	sequence uint64
	prevHash []byte
}

// scanSeal reads the sequence and prevhash of canonical envelope bytes with the
// envelope scanner (events.EachEnvelopeField), without decoding the event: the chain
// hash already proves the bytes are those written, and the scan checks the envelope
// is an object that holds both fields and no hash of its own.
func scanSeal(canon []byte) (seal, error) {
	var s seal
	if canon == nil {
		return s, fmt.Errorf("%w: no canonical bytes", events.ErrCorrupt)
	}
	var seq, prev, hash bool
	err := events.EachEnvelopeField(canon, func(key, val []byte) bool {
		switch string(key) {
		case "sequence":
			n, ok := parseSequence(val)
			s.sequence, seq = n, ok
		case "prevhash":
			s.prevHash, prev = events.Unquote(val), true
		case "hash":
			hash = true
		}
		return true
	})
	switch {
	case err != nil:
		return s, err
	case hash:
		return s, fmt.Errorf("%w: hash inside canonical bytes", events.ErrCorrupt)
	case !seq || !prev:
		return s, fmt.Errorf("%w: envelope without a sequence or prevhash", events.ErrCorrupt)
	}
	return s, nil
}

// parseSequence reads a sequence written as a (zero-padded) decimal string or a bare
// number, as events.Sequence does.
func parseSequence(v []byte) (uint64, bool) {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	if len(v) == 0 || len(v) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (math.MaxUint64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// linker is events.CheckRecord with one reused hasher, so a long walk does not
// allocate a digest per record.
type linker struct {
	h    hash.Hash
	sum  []byte
	prev [32]byte // a field, so writing it to the hasher does not allocate
}

func newLinker() *linker { return &linker{h: sha256.New(), sum: make([]byte, 0, sha256.Size)} }

// check returns the record's stored hash and canonical bytes, and an error wrapping
// events.ErrCorrupt unless SHA-256(prev || canonical) is that hash. canonical is nil
// when the record has no valid header.
func (l *linker) check(prev [32]byte, rec []byte) ([32]byte, []byte, error) {
	stored, canon, err := events.SplitRecord(rec)
	if err != nil {
		return stored, nil, err
	}
	l.prev = prev
	l.h.Reset()
	l.h.Write(l.prev[:])
	l.h.Write(canon)
	l.sum = l.h.Sum(l.sum[:0])
	if [32]byte(l.sum) != stored {
		return stored, canon, fmt.Errorf("%w: hash does not match content and previous hash", events.ErrCorrupt)
	}
	return stored, canon, nil
}

// hexIs reports whether s is the lower-case hex of h, without allocating.
func hexIs(s []byte, h [32]byte) bool {
	const digits = "0123456789abcdef"
	if len(s) != 2*len(h) {
		return false
	}
	for i, b := range h {
		if s[2*i] != digits[b>>4] || s[2*i+1] != digits[b&0x0f] {
			return false
		}
	}
	return true
}
