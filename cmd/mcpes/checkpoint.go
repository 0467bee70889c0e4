package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/mcpes/mcpes/audit"
	"github.com/mcpes/mcpes/config"
)

// maxKeyFile bounds a signing key file (a note signer key is under 200 bytes).
const maxKeyFile = 4096

// loadSigningKey returns the checkpoint signing key from MCPES_SIGNING_KEY or
// audit.signingKeyFile (the environment wins); ok is false when neither is set. The
// key is never logged or echoed in errors.
func loadSigningKey(cfg *config.Config) (k audit.SigningKey, ok bool, err error) {
	skey, from := os.Getenv("MCPES_SIGNING_KEY"), "MCPES_SIGNING_KEY"
	if strings.TrimSpace(skey) == "" {
		if cfg.Audit.SigningKeyFile == "" {
			return k, false, nil
		}
		from = cfg.Audit.SigningKeyFile
		f, err := os.Open(from)
		if err != nil {
			return k, false, fmt.Errorf("audit.signingKeyFile: %w", err)
		}
		defer f.Close()
		b := make([]byte, maxKeyFile+1)
		n, _ := f.Read(b)
		if n > maxKeyFile {
			return k, false, fmt.Errorf("audit.signingKeyFile %s: larger than %d bytes", from, maxKeyFile)
		}
		skey = string(b[:n])
	}
	k, err = audit.ParseSigningKey(skey)
	if err != nil {
		return k, false, fmt.Errorf("signing key from %s: %w", from, err)
	}
	return k, true, nil
}

// startCheckpointer signs checkpoints of the log when a signing key is configured.
func (m *Main) startCheckpointer(bg context.Context) error {
	cfg := m.Config.Audit
	k, ok, err := loadSigningKey(m.Config)
	if err != nil {
		return err
	}
	if !ok {
		if cfg.Witness != "" {
			return fmt.Errorf("audit.witness is set but there is no signing key (MCPES_SIGNING_KEY or audit.signingKeyFile)")
		}
		m.Logger.Warn("no signing key: the log is not checkpointed; a cut tail would go unnoticed (see `mcpes keys gen --signing`)")
		return nil
	}
	opts := audit.CheckpointerOptions{Every: uint64(cfg.CheckpointEvery.Events), Interval: cfg.CheckpointEvery.Interval.D(),
		Logger: m.Logger}
	if cfg.Witness != "" {
		if opts.Witness, err = audit.NewWitness(cfg.Witness, nil); err != nil {
			return err
		}
	}
	m.checkpointer = audit.NewCheckpointer(m.metered, k.Signer, opts)
	m.Logger.Info("checkpoints signed", "origin", k.Signer.Name(), "verifierKey", k.VerifierKey,
		"every", cfg.CheckpointEvery.Events, "interval", cfg.CheckpointEvery.Interval.D(), "witness", cfg.Witness)
	m.bg.Go(func() { m.checkpointer.Run(bg) })
	return nil
}

// finalCheckpoint covers the last events at shutdown.
func (m *Main) finalCheckpoint(ctx context.Context) error {
	if m.checkpointer == nil {
		return nil
	}
	if _, _, err := m.checkpointer.Checkpoint(ctx); err != nil {
		return fmt.Errorf("final checkpoint: %w", err)
	}
	return nil
}
