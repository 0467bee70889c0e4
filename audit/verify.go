package audit

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/mcpes/mcpes/connections"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/store"
)

// VerifyReport is the outcome of VerifyAll, and the body of POST /v1/audit/verify.
type VerifyReport struct {
	// OK is true when the chain is intact, every checkpoint matches the log and every
	// decision replays the same.
	OK bool `json:"ok"`
	// Events counts the records whose chain was checked.
	Events int `json:"events"`
	// Decisions counts the connection decisions that were replayed.
	Decisions int `json:"decisions"`
	// Checkpoints counts the signed checkpoints the log was checked against.
	Checkpoints int `json:"checkpoints"`
	// Since is the size of the trusted checkpoint the check started after (0: the
	// whole log was checked).
	Since uint64 `json:"since,omitempty"`
	// Problems lists each chain defect, checkpoint mismatch and decision mismatch in
	// words.
	Problems []string `json:"problems"`
}

// VerifyOption adds checks to VerifyAll.
type VerifyOption func(*verifyConfig)

type verifyConfig struct {
	checkpoints []Checkpoint
	verifier    note.Verifier
	since       *Checkpoint
}

// WithSince checks only what came after a trusted checkpoint (its signature already
// checked): the chain and the Merkle tree from its size on, resumed from the tree the
// checkpointer stored with it, and the checkpoints after it. Decisions are not
// replayed (their projection is built from the start of the log).
func WithSince(c Checkpoint) VerifyOption {
	return func(cfg *verifyConfig) { cfg.since = &c }
}

// WithCheckpoints checks the log against published checkpoints (signatures already
// checked, e.g. by ReadWitnessFile): the log must reach each one's size and its
// Merkle tree must have each one's root there.
func WithCheckpoints(cps ...Checkpoint) VerifyOption {
	return func(c *verifyConfig) { c.checkpoints = append(c.checkpoints, cps...) }
}

// WithVerifier checks the signature of the newest checkpoint stored in the log's own
// file with v (without it, that checkpoint's tree head is compared unsigned).
func WithVerifier(v note.Verifier) VerifyOption {
	return func(c *verifyConfig) { c.verifier = v }
}

// VerifyAll checks the whole log: the hash chain (store.Verify: every stored byte is
// what was written, positions gap-free), the Merkle tree against the newest
// checkpoint stored in the file and every checkpoint given (WithCheckpoints), and
// every recorded connection decision, re-run against the config projection as of the
// position it read (connections.Replayer). It is one pass over the stored records:
// the chain, the tree and each record's seal on the reading goroutine, the records
// handed in order to decision replay on others (store.WithRecords), in memory that
// does not grow with the log. The decisions count only when the chain is intact, as
// a broken one would report consequences of the defect rather than the defect. Problems are in the report; the error is non-nil only when
// the check itself could not run (ctx ended, the store unreadable).
func VerifyAll(ctx context.Context, st store.Store, progress Progress, opts ...VerifyOption) (VerifyReport, error) {
	var cfg verifyConfig
	for _, o := range opts {
		o(&cfg)
	}
	rep := VerifyReport{Problems: []string{}}
	cps, probs := cfg.withStored(ctx, st)
	rep.Problems = append(rep.Problems, probs...)
	tree, err := st.Tree(ctx)
	if err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	sizes := []uint64{tree.Size()}
	for _, c := range cps {
		sizes = append(sizes, c.Size)
	}
	var walkOpts []store.VerifyOption
	if cfg.since != nil {
		start, err := startTree(ctx, st, *cfg.since)
		if err != nil {
			rep.Problems = append(rep.Problems, "since: "+err.Error())
			return rep, nil
		}
		walkOpts = append(walkOpts, store.WithStart(start))
		rep.Since = cfg.since.Size
		sizes = slices.DeleteFunc(sizes, func(s uint64) bool { return s <= cfg.since.Size })
		cps = slices.DeleteFunc(cps, func(c Checkpoint) bool { return c.Size <= cfg.since.Size })
	}
	slices.Sort(sizes)
	roots := map[uint64][32]byte{}
	// One pass over the records: the chain and the tree on this goroutine, decision
	// replay fed in order on another (store.WithRecords); the decisions count only
	// when the chain holds.
	var mu sync.Mutex
	report := func(stage string, pos, head uint64) {
		mu.Lock()
		defer mu.Unlock()
		progress.report(stage, pos, head)
	}
	var replayer *connections.Replayer
	if cfg.since == nil {
		replayer = connections.NewReplayer(tree.Size(), func(d, total uint64) { report("decisions", d, total) })
		walkOpts = append(walkOpts, store.WithRecords(replayer.Record))
		defer replayer.Close()
	}
	walkOpts = append(walkOpts, store.WithProgress(progressEvery, func(pos, head uint64) {
		report("chain", pos, head)
	}), store.WithRoots(slices.Compact(sizes), func(size uint64, root [32]byte) { roots[size] = root }))
	chain, err := store.Verify(ctx, st, walkOpts...)
	if err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	rep.Events = chain.Events
	for _, p := range chain.Problems {
		rep.Problems = append(rep.Problems, "chain: "+p.String())
	}
	if !chain.OK && len(chain.Problems) == 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("chain: the log is not intact from position %d", chain.FirstBad))
	}
	if r, ok := roots[tree.Size()]; (!ok && tree.Size() > rep.Since) || (ok && r != tree.Root()) {
		rep.Problems = append(rep.Problems, fmt.Sprintf("tree: the store's Merkle tree (size %d, root %x...) is not the records' tree", tree.Size(), tree.Root()))
	}
	rep.Checkpoints = len(cps)
	end := rep.Since + uint64(chain.Events) // the last position the walk reached
	for _, c := range cps {
		r, ok := roots[c.Size]
		switch {
		case !ok:
			rep.Problems = append(rep.Problems, fmt.Sprintf("checkpoint: %s: the log ends at position %d; the events up to %d it covers are missing (tail removed or log rolled back)",
				c, end, c.Size))
		case r != c.Root:
			rep.Problems = append(rep.Problems, fmt.Sprintf("checkpoint: %s: the log's tree at size %d has root %x...: an event at or before position %d was rewritten, or the log forked",
				c, c.Size, r[:6], c.Size))
		}
	}
	if !chain.OK {
		rep.Problems = append(rep.Problems, "decisions: not replayed, the chain is broken")
		return rep, nil
	}
	if replayer == nil {
		rep.OK = len(rep.Problems) == 0
		return rep, nil
	}
	dec, err := replayer.Finish(ctx, st)
	if err != nil {
		if ctx.Err() != nil {
			return rep, fmt.Errorf("verify: %w", err)
		}
		rep.Problems = append(rep.Problems, "decisions: replay failed: "+err.Error())
		return rep, nil
	}
	rep.Decisions = int(dec.Decisions)
	for _, m := range dec.Mismatches {
		rep.Problems = append(rep.Problems, "decision: "+m.String())
	}
	if dec.More > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("decision: %d more mismatches not listed", dec.More))
	}
	rep.OK = len(rep.Problems) == 0
	return rep, nil
}

// startTree returns the tree stored with a checkpoint, checked against it.
func startTree(ctx context.Context, st store.Store, c Checkpoint) (*store.Tree, error) {
	_, b, err := st.LoadSnapshot(ctx, treeSnapshot(c.Size))
	if err != nil {
		return nil, fmt.Errorf("no tree stored for %s: %w", c, err)
	}
	t, err := store.UnmarshalTree(b)
	if err != nil {
		return nil, fmt.Errorf("tree stored for %s: %w", c, err)
	}
	if t.Size() != c.Size || t.Root() != c.Root {
		return nil, fmt.Errorf("the tree stored for %s is not that checkpoint's", c)
	}
	return t, nil
}

// withStored returns the checkpoints to check: the given ones and the newest one
// stored in the log's file, with a problem when that one's signature fails.
func (cfg verifyConfig) withStored(ctx context.Context, st store.Store) ([]Checkpoint, []string) {
	cps := slices.Clone(cfg.checkpoints)
	_, msg, err := st.LoadSnapshot(ctx, SnapshotCheckpoint)
	if err != nil {
		return cps, nil // none stored yet (or unreadable: the chain walk will say)
	}
	var c Checkpoint
	if cfg.verifier != nil {
		c, err = OpenCheckpoint(msg, cfg.verifier)
	} else {
		c, err = parseUnverified(msg)
	}
	if err != nil {
		return cps, []string{"checkpoint: the checkpoint stored in the log does not verify: " + err.Error()}
	}
	if slices.ContainsFunc(cps, func(o Checkpoint) bool { return o.Size == c.Size && o.Root == c.Root }) {
		return cps, nil // also published: checked once
	}
	return append(cps, c), nil
}

// ServerSummary is one server stream's state in a ReplayResult.
type ServerSummary struct {
	Scope            domain.Scope         `json:"scope"`
	Name             string               `json:"name"`
	Exists           bool                 `json:"exists"`
	Version          uint64               `json:"version"`
	UpdatedAt        time.Time            `json:"updatedAt"`
	Inspected        bool                 `json:"inspected"`
	InspectionFailed bool                 `json:"inspectionFailed"`
	RequiresOAuth    bool                 `json:"requiresOAuth"`
	ToolCount        int                  `json:"toolCount"`
	Digest           string               `json:"digest,omitempty"`
	Config           *domain.ServerConfig `json:"config,omitempty"` // secrets redacted
}

// ReplayResult is the projections rebuilt from the log up to Position, and the
// recorded decisions re-run against them.
type ReplayResult struct {
	Position    uint64                 `json:"position"`
	Servers     []ServerSummary        `json:"servers"`
	Connections []OpenConnection       `json:"connections"`
	Decisions   int                    `json:"decisions"`
	Mismatches  []connections.Mismatch `json:"mismatches"`
}

// Replay rebuilds the server-config and connections projections from position 0 to
// until (0 or beyond the head: the head) and re-runs every decision recorded up to
// there, the two reading the log side by side (progress follows the decisions). Use PositionAt to replay to a time. Returns the store's error, or a
// decoding error from a log that does not fold (run VerifyAll for the details).
func Replay(ctx context.Context, st store.Store, until uint64, progress Progress) (ReplayResult, error) {
	head, _, err := st.Head(ctx)
	if err != nil {
		return ReplayResult{}, fmt.Errorf("replay: head: %w", err)
	}
	if until == 0 || until > head {
		until = head
	}
	res := ReplayResult{Position: until, Servers: []ServerSummary{}, Connections: []OpenConnection{},
		Mismatches: []connections.Mismatch{}}
	// The projections and the decisions are two reads of the log, side by side.
	type rebuilt struct {
		servers *projections.Servers
		conns   *projections.Connections
		err     error
	}
	done := make(chan rebuilt, 1)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		s, c, err := projections.Rebuild(rctx, st, until)
		done <- rebuilt{s, c, err}
	}()
	dec, derr := connections.ReplayDecisions(ctx, st, until, func(done, total uint64) {
		progress.report("replay", done, total)
	})
	if derr != nil {
		cancel()
		<-done
		return res, fmt.Errorf("replay: %w", derr)
	}
	rb := <-done
	if rb.err != nil {
		return res, fmt.Errorf("replay: %w", rb.err)
	}
	for _, s := range rb.servers.States() {
		sum := ServerSummary{Scope: s.Scope, Name: s.Name, Exists: s.Exists, Version: s.Version,
			UpdatedAt: s.UpdatedAt, Inspected: s.Inspected, InspectionFailed: s.InspectionFailed,
			RequiresOAuth: s.RequiresOAuth()}
		if s.LastSuccess != nil {
			sum.ToolCount, sum.Digest = len(s.LastSuccess.Tools), s.LastSuccess.Digest
		}
		if s.Exists {
			cfg := domain.RedactSecrets(s.Config)
			sum.Config = &cfg
		}
		res.Servers = append(res.Servers, sum)
	}
	for _, c := range rb.conns.All() {
		res.Connections = append(res.Connections, OpenConnection{Owner: c.Owner, Server: c.Server,
			ConnID: c.ConnID, ConfigVersion: c.ConfigVersion, Since: c.Since, Position: c.Position})
	}
	res.Decisions = int(dec.Decisions)
	if dec.Mismatches != nil {
		res.Mismatches = dec.Mismatches
	}
	return res, nil
}

// PositionAt is the log position in force at t (the last event at or before t), for
// replaying or explaining "as of" a time.
func PositionAt(ctx context.Context, st store.Store, t time.Time) (uint64, error) {
	pos, err := st.PositionAt(ctx, t)
	if err != nil {
		return 0, fmt.Errorf("position at %s: %w", t.UTC().Format(time.RFC3339Nano), err)
	}
	return pos, nil
}
