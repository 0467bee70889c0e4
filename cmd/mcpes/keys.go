package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/mcpes/mcpes/config"
	"github.com/mcpes/mcpes/credentials"
	"github.com/mcpes/mcpes/store/bolt"
)

// EnvSigningKey holds the private signed-note key of signed checkpoints.
const EnvSigningKey = "MCPES_SIGNING_KEY"

func newKeysCmd(e *env) *cobra.Command {
	c := &cobra.Command{Use: "keys", Short: "Encryption and signing keys",
		Long: `Secrets mcpes stores (header and env values, per-owner variables, OAuth client
credentials and tokens) are encrypted with AES-256-GCM under keys kept outside the
data directory: in MCPES_KEYS="k2:<base64>,k1:<base64>" (the first is active) or in a
0600 file named by credentials.keyFile in the config.`}
	var id, signing string
	gen := &cobra.Command{
		Use:   "gen",
		Short: "Print a new encryption key (or, with --signing NAME, an Ed25519 signing key pair)",
		Example: `  export MCPES_KEYS="$(mcpes keys gen)"                 # first key
  export MCPES_KEYS="$(mcpes keys gen),$MCPES_KEYS"     # new active key, then: mcpes keys rotate
  mcpes keys gen --signing mcpes-log                    # MCPES_SIGNING_KEY and its verifier key`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if signing != "" {
				skey, vkey, err := note.GenerateKey(rand.Reader, signing)
				if err != nil {
					return usagef("keys gen --signing: %v", err)
				}
				fmt.Fprintf(e.stdout, "%s=%s\n", EnvSigningKey, skey)
				fmt.Fprintf(e.stdout, "verifier key: %s\n", vkey)
				return nil
			}
			if id == "" {
				suffix := make([]byte, 2)
				_, _ = rand.Read(suffix)
				id = fmt.Sprintf("k%s-%x", time.Now().UTC().Format("20060102"), suffix)
			}
			k, err := credentials.GenerateKey(id)
			if err != nil {
				return usagef("keys gen: %v", err)
			}
			fmt.Fprintln(e.stdout, k)
			return nil
		},
	}
	gen.Flags().StringVar(&id, "id", "", "key id (default: k, the UTC date and 4 random hex digits)")
	gen.Flags().StringVar(&signing, "signing", "", "print a signed-note key pair with this signer name instead")

	var cfgPath string
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Re-encrypt every stored secret under the active key (the service must be stopped)",
		Long: `rotate opens the data directory (--data, default the config's dataDir), seals every
secret that is stored in clear or under an older key with the active key (the first
of MCPES_KEYS, or of credentials.keyFile), and reports what it did. Afterwards the
older keys may be dropped. 'mcpes serve' does the same at every start.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := loadServeConfig(slog.New(slog.DiscardHandler), cfgPath)
			if err != nil {
				return err
			}
			dir := e.data
			if dir == "" {
				dir = cfg.DataDir
			}
			keys, err := credentials.LoadKeys(os.Getenv(credentials.EnvKeys), cfg.Credentials.KeyFile)
			if err != nil {
				return err
			}
			st, err := bolt.Open(dbPath(dir), bolt.Options{Timeout: 500 * time.Millisecond})
			if errors.Is(err, bolt.ErrLocked) {
				return &inUseError{dir: dir, pid: "stop it first"}
			}
			if err != nil {
				return fmt.Errorf("open data directory %s: %w", dir, err)
			}
			defer st.Close()
			rep, err := credentials.New(st, keys).Rotate(cmd.Context())
			if err != nil {
				return err
			}
			if e.json {
				return json.NewEncoder(e.stdout).Encode(rep)
			}
			fmt.Fprintln(e.stdout, rotateSummary(rep))
			return nil
		},
	}
	rotate.Flags().StringVar(&cfgPath, "config", "", "config file (for dataDir and credentials.keyFile; default ./mcpes.yaml if present)")
	rotate.Flags().StringVar(&e.data, "data", "", "data directory (default: the config's dataDir)")
	c.AddCommand(gen, rotate)
	return c
}

// rotateSummary is one line a person reads after a rotation.
func rotateSummary(r credentials.RotateReport) string {
	var moved []string
	total := 0
	for id, n := range r.Resealed {
		moved = append(moved, fmt.Sprintf("%d from %s", n, id))
		total += n
	}
	s := fmt.Sprintf("active key %s: %d re-encrypted", r.Active, total+r.Encrypted)
	if len(moved) > 0 {
		s += " (" + strings.Join(moved, ", ") + ")"
	}
	if r.Encrypted > 0 {
		s += fmt.Sprintf(", %d were stored in clear", r.Encrypted)
	}
	return s + fmt.Sprintf(", %d already under %s", r.Unchanged, r.Active)
}

// openCredentials builds the credential store of a serving data directory: with keys
// it seals whatever an older mcpes left in clear or under an older key; without keys
// it refuses a data directory that holds secrets.
func openCredentials(ctx context.Context, st credentials.Backend, dir string, cfg *config.Config) (*credentials.Store, credentials.RotateReport, error) {
	keys, err := credentials.LoadKeys(os.Getenv(credentials.EnvKeys), cfg.Credentials.KeyFile)
	if err != nil && !errors.Is(err, credentials.ErrNoKey) {
		return nil, credentials.RotateReport{}, err
	}
	cs := credentials.New(st, keys)
	if keys == nil {
		n, err := cs.Count(ctx)
		if err != nil {
			return nil, credentials.RotateReport{}, err
		}
		if n > 0 {
			return nil, credentials.RotateReport{}, fmt.Errorf("data directory %s holds %d secrets and no encryption key is configured: "+
				"set %s to the key they were stored under (or, for a data directory from before encryption, a new one: "+
				"export %s=\"$(mcpes keys gen)\"), or name a 0600 key file in credentials.keyFile",
				dir, n, credentials.EnvKeys, credentials.EnvKeys)
		}
		return cs, credentials.RotateReport{}, nil
	}
	rep, err := cs.Rotate(ctx)
	return cs, rep, err
}
