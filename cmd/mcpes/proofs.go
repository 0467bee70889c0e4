package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/mcpes/mcpes/audit"
)

// verifierFrom returns the checkpoint verifier: --key (a verifier key, or a file
// holding one), else the one derived from MCPES_SIGNING_KEY; nil when neither is set.
func verifierFrom(key string) (note.Verifier, error) {
	if key == "" {
		skey := os.Getenv("MCPES_SIGNING_KEY")
		if strings.TrimSpace(skey) == "" {
			return nil, nil
		}
		k, err := audit.ParseSigningKey(skey)
		if err != nil {
			return nil, fmt.Errorf("MCPES_SIGNING_KEY: %w", err)
		}
		key = k.VerifierKey
	} else if b, err := readSmall(key); err == nil {
		key = string(b)
	}
	return audit.ParseVerifierKey(key)
}

// readSmall reads a file of at most audit.MaxCheckpointBytes.
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, audit.MaxCheckpointBytes+1))
	if err == nil && len(b) > audit.MaxCheckpointBytes {
		err = fmt.Errorf("%s: larger than %d bytes", path, audit.MaxCheckpointBytes)
	}
	return b, err
}

// readCheckpoint reads a checkpoint from a file holding the signed note, or one line
// of a witness file, and checks its signature with v.
func readCheckpoint(path string, v note.Verifier) (audit.Checkpoint, error) {
	b, err := readSmall(path)
	if err != nil {
		return audit.Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
	}
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		var rec struct {
			Checkpoint string `json:"checkpoint"`
		}
		if err := json.Unmarshal(t, &rec); err != nil {
			return audit.Checkpoint{}, fmt.Errorf("checkpoint %s: %w", path, err)
		}
		b = []byte(rec.Checkpoint)
	}
	cp, err := audit.OpenCheckpoint(b, v)
	if err != nil {
		return audit.Checkpoint{}, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return cp, nil
}

func newVerifyExportCmd(e *env) *cobra.Command {
	var cpPath, key string
	c := &cobra.Command{
		Use:   "verify-export FILE --checkpoint C --key PUB",
		Short: "Check an excerpt exported with --proofs against a signed checkpoint, without the log",
		Long: `verify-export checks each event of FILE (from mcpes export --proofs): its hash must be
SHA-256 of its prevhash and the event, and its inclusion proof must put it at its sequence
in the Merkle tree of checkpoint C (a file with the signed note, or one line of a witness
file), whose signature must verify with PUB (a note verifier key, or a file holding one).
Exit 0 when every event is proven, 1 otherwise.`,
		Example: `  mcpes verify-export alice.jsonl --checkpoint cp.txt --key 'mcpes.example/log+1b2c3d4e+A...'`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cpPath == "" || key == "" {
				return usagef("verify-export needs --checkpoint C and --key PUB")
			}
			v, err := verifierFrom(key)
			if err != nil {
				return err
			}
			cp, err := readCheckpoint(cpPath, v)
			if err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			rep, err := audit.VerifyExcerpt(f, cp)
			if err != nil {
				return err
			}
			return e.report(rep, rep.Problems, rep.OK, func(status string) string {
				return fmt.Sprintf("verify-export %s: %d events, %d proven in %s", status, rep.Events, rep.Proven, cp)
			})
		},
	}
	c.Flags().StringVar(&cpPath, "checkpoint", "", "file with the signed checkpoint note (or a witness file line)")
	c.Flags().StringVar(&key, "key", "", "the checkpoint signer's verifier key, or a file holding it")
	return c
}
