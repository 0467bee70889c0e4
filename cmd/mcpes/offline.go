package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mcpes/mcpes/store/bolt"
)

// Files inside a data directory.
const (
	dbFile  = "mcpes.db"
	pidFile = "mcpes.pid"
)

// inUseError is returned by openData when a running mcpes holds the data directory.
type inUseError struct{ dir, pid string }

func (e *inUseError) Error() string {
	return fmt.Sprintf("data directory %s is in use by a running mcpes (%s) — use --url or stop it", e.dir, e.pid)
}

func dbPath(dir string) string { return filepath.Join(dir, dbFile) }

// openData opens the store of a data directory read-only, for offline commands.
// Returns an *inUseError, naming the pid when known, when a running mcpes holds it.
func openData(dir string) (*bolt.Store, error) {
	path := dbPath(dir)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("data directory %s: no event store (%s): %w", dir, dbFile, err)
	}
	st, err := bolt.Open(path, bolt.Options{ReadOnly: true, Timeout: 500 * time.Millisecond})
	if errors.Is(err, bolt.ErrLocked) {
		pid := "pid unknown"
		if b, rerr := os.ReadFile(filepath.Join(dir, pidFile)); rerr == nil {
			pid = "pid " + strings.TrimSpace(string(b))
		}
		return nil, &inUseError{dir: dir, pid: pid}
	}
	if err != nil {
		return nil, fmt.Errorf("open data directory %s: %w", dir, err)
	}
	return st, nil
}

// refuseOffline is for commands that change state: they need the running service.
func (e *env) refuseOffline(what string) error {
	if e.data != "" {
		return usagef("%s changes state and needs a running service; drop --data and use --url", what)
	}
	return nil
}
