package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/mcpes/mcpes/store"
)

// Checkpoint is a signed head of the log's Merkle tree (store.Tree): its size (the
// log position it covers), its RFC 6962 root and when it was signed. Note is the
// signed note as published, in the C2SP tlog-checkpoint format:
//
//	<origin>
//	<size>
//	<base64 root>
//	time <RFC 3339>
//
//	— <origin> <base64 signature>
//
// The origin is the signing key's name.
type Checkpoint struct {
	Origin string    `json:"origin"`
	Size   uint64    `json:"size"`
	Root   [32]byte  `json:"-"`
	Time   time.Time `json:"time"`
	Note   string    `json:"checkpoint"`
}

// MarshalJSON writes the root as base64, as in the note.
func (c Checkpoint) MarshalJSON() ([]byte, error) {
	type plain Checkpoint
	return json.Marshal(struct {
		plain
		Root string `json:"root"`
	}{plain(c), base64.StdEncoding.EncodeToString(c.Root[:])})
}

func (c Checkpoint) String() string {
	return fmt.Sprintf("checkpoint %s size %d root %x... signed %s", c.Origin, c.Size, c.Root[:6],
		c.Time.UTC().Format(time.RFC3339))
}

// MaxCheckpointBytes bounds a checkpoint note read from a witness or a file.
const MaxCheckpointBytes = 4096

// SignCheckpoint signs the tree head (size, root) at time at with s.
func SignCheckpoint(s note.Signer, size uint64, root [32]byte, at time.Time) (Checkpoint, error) {
	at = at.UTC()
	body := fmt.Sprintf("%s\n%d\n%s\ntime %s\n", s.Name(), size, base64.StdEncoding.EncodeToString(root[:]),
		at.Format(time.RFC3339Nano))
	msg, err := note.Sign(&note.Note{Text: body}, s)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("sign checkpoint %d: %w", size, err)
	}
	return Checkpoint{Origin: s.Name(), Size: size, Root: root, Time: at, Note: string(msg)}, nil
}

// OpenCheckpoint checks the signature of a checkpoint note with v and parses it.
// Returns an error wrapping ErrCheckpoint for a note that is not signed by v, too
// large, or not a checkpoint.
func OpenCheckpoint(msg []byte, v note.Verifier) (Checkpoint, error) {
	if len(msg) > MaxCheckpointBytes {
		return Checkpoint{}, fmt.Errorf("%w: %d bytes (at most %d)", ErrCheckpoint, len(msg), MaxCheckpointBytes)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrCheckpoint, err)
	}
	c, err := parseCheckpointBody(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != v.Name() {
		return Checkpoint{}, fmt.Errorf("%w: origin %q is not the key's name %q", ErrCheckpoint, c.Origin, v.Name())
	}
	c.Note = string(msg)
	return c, nil
}

func parseCheckpointBody(text string) (Checkpoint, error) {
	bad := func(format string, args ...any) (Checkpoint, error) {
		return Checkpoint{}, fmt.Errorf("%w: "+format, append([]any{ErrCheckpoint}, args...)...)
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return bad("%d lines, want origin, size and root", len(lines))
	}
	c := Checkpoint{Origin: lines[0]}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		return bad("size %q", lines[1])
	}
	c.Size = size
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != 32 {
		return bad("root %q", lines[2])
	}
	copy(c.Root[:], root)
	for _, l := range lines[3:] {
		if v, ok := strings.CutPrefix(l, "time "); ok {
			if c.Time, err = time.Parse(time.RFC3339Nano, v); err != nil {
				return bad("time %q", v)
			}
		}
	}
	return c, nil
}

// SigningKey is a note signer key as `mcpes keys gen --signing NAME` prints it
// (note.GenerateKey's private key), with the verifier key that goes with it.
type SigningKey struct {
	Signer note.Signer
	// VerifierKey is the public key string to give verifiers (`--key`).
	VerifierKey string
}

// ParseSigningKey parses a note signer key ("PRIVATE+KEY+name+hash+key"). Returns an
// error wrapping ErrCheckpoint for anything else (the key itself is never echoed).
func ParseSigningKey(skey string) (SigningKey, error) {
	skey = strings.TrimSpace(skey)
	s, err := note.NewSigner(skey)
	if err != nil {
		return SigningKey{}, fmt.Errorf("%w: signing key: %v", ErrCheckpoint, err)
	}
	// NewSigner accepted it, so after PRIVATE+KEY+name+hash comes base64 of the
	// algorithm byte and an Ed25519 seed (base64 may hold '+' too).
	fields := strings.SplitN(skey, "+", 5)
	raw, _ := base64.StdEncoding.DecodeString(fields[4])
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(s.Name(), pub)
	if err != nil {
		return SigningKey{}, fmt.Errorf("%w: verifier key: %v", ErrCheckpoint, err)
	}
	return SigningKey{Signer: s, VerifierKey: vkey}, nil
}

// ParseVerifierKey parses a note verifier key ("name+hash+key"). Returns an error
// wrapping ErrCheckpoint when it is not one.
func ParseVerifierKey(vkey string) (note.Verifier, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return nil, fmt.Errorf("%w: verifier key: %v", ErrCheckpoint, err)
	}
	return v, nil
}

// parseWitnessLine decodes one JSON line of a witness file and opens its note.
func parseWitnessLine(line []byte, v note.Verifier) (Checkpoint, error) {
	var rec struct {
		Checkpoint string `json:"checkpoint"`
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&rec); err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrCheckpoint, err)
	}
	return OpenCheckpoint([]byte(rec.Checkpoint), v)
}

// ParseCheckpoint reads a signed checkpoint note WITHOUT checking its signature, for
// a caller that checked it already (OpenCheckpoint checks it).
func ParseCheckpoint(msg []byte) (Checkpoint, error) { return parseUnverified(msg) }

// parseUnverified reads a signed checkpoint note without checking its signature.
func parseUnverified(msg []byte) (Checkpoint, error) {
	if len(msg) > MaxCheckpointBytes {
		return Checkpoint{}, fmt.Errorf("%w: %d bytes (at most %d)", ErrCheckpoint, len(msg), MaxCheckpointBytes)
	}
	body, _, ok := strings.Cut(string(msg), "\n\n")
	if !ok {
		return Checkpoint{}, fmt.Errorf("%w: no signature block", ErrCheckpoint)
	}
	c, err := parseCheckpointBody(body + "\n")
	c.Note = string(msg)
	return c, err
}

// StoredCheckpoint returns the newest checkpoint stored in the log's file, its
// signature not checked (whoever relies on it checks it with the public key).
// Returns store.ErrNotFound (wrapped) when none was made yet.
func StoredCheckpoint(ctx context.Context, st store.Store) (Checkpoint, error) {
	_, msg, err := st.LoadSnapshot(ctx, SnapshotCheckpoint)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("stored checkpoint: %w", err)
	}
	return parseUnverified(msg)
}
