package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// InclusionProof proves that the event at Sequence is in the log's tree of TreeSize
// events: Hashes are the RFC 6962 audit path, base64. In an export with proofs each
// event line is followed by a line {"proof": {...}}.
type InclusionProof struct {
	Sequence events.Sequence `json:"sequence"`
	TreeSize uint64          `json:"treeSize"`
	Hashes   []string        `json:"hashes"`
}

type proofLine struct {
	Proof *InclusionProof `json:"proof"`
}

// MaxExcerptLine bounds one line of an excerpt read by VerifyExcerpt.
const MaxExcerptLine = 16 << 20

// ExportProofs is Export of the events up to cp.Size, each event line followed by
// its inclusion proof against cp. It reads the log twice (the excerpt, then the
// tree's hashes up to cp.Size) and holds the excerpt's events in memory. Returns an
// error when the log's tree at cp.Size is not cp's: the proofs would not verify.
func ExportProofs(ctx context.Context, st store.Store, f Filter, cp Checkpoint, w io.Writer, progress Progress) (int, error) {
	var buf bytes.Buffer
	var positions []uint64
	n, err := exportTo(ctx, st, f, cp.Size, &buf, func(e events.Envelope) { positions = append(positions, uint64(e.Sequence)) }, progress)
	if err != nil || n == 0 {
		return 0, err
	}
	proofs, root, err := store.InclusionProofs(ctx, st, cp.Size, positions)
	if err != nil {
		return 0, fmt.Errorf("export: %w", err)
	}
	if root != cp.Root {
		return 0, fmt.Errorf("export: the log's tree at size %d is not %s (verify the log)", cp.Size, cp)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	sc := bufio.NewScanner(&buf)
	sc.Buffer(make([]byte, 0, 64<<10), MaxExcerptLine)
	for i := 0; sc.Scan(); i++ {
		pos := positions[i]
		pl := proofLine{Proof: &InclusionProof{Sequence: events.Sequence(pos), TreeSize: cp.Size}}
		for _, h := range proofs[pos] {
			pl.Proof.Hashes = append(pl.Proof.Hashes, base64.StdEncoding.EncodeToString(h[:]))
		}
		b, _ := json.Marshal(pl)
		bw.Write(sc.Bytes())
		bw.WriteByte('\n')
		bw.Write(b)
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		return 0, fmt.Errorf("export: write: %w", err)
	}
	return n, nil
}

// ExcerptReport is the outcome of VerifyExcerpt.
type ExcerptReport struct {
	OK bool `json:"ok"`
	// Events counts the event lines; Proven those whose hash and inclusion proof check.
	Events   int      `json:"events"`
	Proven   int      `json:"proven"`
	Problems []string `json:"problems"`
}

// VerifyExcerpt checks an export with proofs against a checkpoint, without the log:
// each event line's hash must be SHA-256(its prevhash || the line without its hash
// member), and the proof after it must put that hash at its sequence in the tree of
// cp.Size events with cp's root. Lines are bounded by MaxExcerptLine. Problems name
// the line; the error is non-nil only when r cannot be read.
func VerifyExcerpt(r io.Reader, cp Checkpoint) (ExcerptReport, error) {
	rep := ExcerptReport{Problems: []string{}}
	add := func(line int, format string, args ...any) {
		if len(rep.Problems) < 100 {
			rep.Problems = append(rep.Problems, fmt.Sprintf("line %d: ", line)+fmt.Sprintf(format, args...))
		}
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxExcerptLine)
	var (
		pending   *excerptEvent // the event line awaiting its proof
		pendingAt int
	)
	unproven := func() {
		if pending != nil {
			add(pendingAt, "event %d has no inclusion proof", pending.seq)
		}
		pending = nil
	}
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var pl proofLine
		if bytes.HasPrefix(b, []byte(`{"proof":`)) {
			if err := json.Unmarshal(b, &pl); err != nil || pl.Proof == nil {
				add(line, "not a proof: %v", err)
				continue
			}
			if pending == nil {
				add(line, "a proof with no event before it")
				continue
			}
			if err := checkProof(*pl.Proof, *pending, cp); err != nil {
				add(line, "event %d: %v", pending.seq, err)
			} else {
				rep.Proven++
			}
			pending = nil
			continue
		}
		unproven()
		rep.Events++
		ev, err := parseExcerptEvent(b)
		if err != nil {
			add(line, "%v", err)
			continue
		}
		pending, pendingAt = &ev, line
	}
	unproven()
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			add(line+1, "longer than %d bytes", MaxExcerptLine)
		} else {
			return rep, fmt.Errorf("verify excerpt: %w", err)
		}
	}
	rep.OK = len(rep.Problems) == 0 && rep.Proven == rep.Events
	return rep, nil
}

type excerptEvent struct {
	seq  uint64
	hash [32]byte
}

// parseExcerptEvent checks an event line's own hash: the line must end with its hash
// member, and SHA-256(prevhash || the line without it) must be that hash.
func parseExcerptEvent(b []byte) (excerptEvent, error) {
	const hashTail = len(`,"hash":"`) + 64 + len(`"}`)
	if len(b) < hashTail || !bytes.HasPrefix(b[len(b)-hashTail:], []byte(`,"hash":"`)) || !bytes.HasSuffix(b, []byte(`"}`)) {
		return excerptEvent{}, errors.New("not an event line ending with its hash")
	}
	var fields struct {
		Sequence events.Sequence `json:"sequence"`
		PrevHash string          `json:"prevhash"`
		Hash     string          `json:"hash"`
	}
	if err := json.Unmarshal(b, &fields); err != nil {
		return excerptEvent{}, fmt.Errorf("not an event: %v", err)
	}
	hash, err := events.ParseHash(fields.Hash)
	if err != nil {
		return excerptEvent{}, err
	}
	prev, err := events.ParseHash(fields.PrevHash)
	if err != nil {
		return excerptEvent{}, err
	}
	canonical := append(bytes.Clone(b[:len(b)-hashTail]), '}')
	h := sha256.New()
	h.Write(prev[:])
	h.Write(canonical)
	if !bytes.Equal(h.Sum(nil), hash[:]) {
		return excerptEvent{}, fmt.Errorf("event %d: hash %s... is not SHA-256(prevhash || the event)", uint64(fields.Sequence), hex.EncodeToString(hash[:6]))
	}
	return excerptEvent{seq: uint64(fields.Sequence), hash: hash}, nil
}

func checkProof(p InclusionProof, ev excerptEvent, cp Checkpoint) error {
	switch {
	case uint64(p.Sequence) != ev.seq:
		return fmt.Errorf("the proof is for sequence %d", uint64(p.Sequence))
	case p.TreeSize != cp.Size:
		return fmt.Errorf("the proof is for a tree of %d events, the checkpoint has %d", p.TreeSize, cp.Size)
	case len(p.Hashes) > 64:
		return fmt.Errorf("a proof of %d hashes", len(p.Hashes))
	}
	hs := make([][32]byte, len(p.Hashes))
	for i, s := range p.Hashes {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != 32 {
			return fmt.Errorf("proof hash %d is not 32 bytes of base64", i)
		}
		copy(hs[i][:], b)
	}
	if err := store.VerifyInclusion(ev.seq, cp.Size, ev.hash, hs, cp.Root); err != nil {
		return fmt.Errorf("not in %s: %v", cp, err)
	}
	return nil
}
