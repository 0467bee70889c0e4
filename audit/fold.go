package audit

import (
	"context"
	"fmt"
	"time"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// pageSize is how many events one ReadAll call fetches while scanning the log.
const pageSize = 512

// scan calls fn for every event with position in [from, to] (to == 0: up to the head
// at the time of the call), in position order. It stops at the first error of fn.
func scan(ctx context.Context, st store.Store, from, to uint64, fn func(events.Envelope) error) error {
	if to == 0 {
		head, _, err := st.Head(ctx)
		if err != nil {
			return fmt.Errorf("head: %w", err)
		}
		to = head
	}
	from = max(from, 1)
	for from <= to {
		page, err := st.ReadAll(ctx, from, pageSize)
		if err != nil {
			return fmt.Errorf("read from %d: %w", from, err)
		}
		if len(page) == 0 {
			return nil
		}
		for _, e := range page {
			pos := uint64(e.Sequence)
			if pos > to {
				return nil
			}
			if err := fn(e); err != nil {
				return err
			}
			from = pos + 1
		}
	}
	return nil
}

// OpenConnection is a connection the log says is open at a position.
type OpenConnection struct {
	// Owner is "" for the shared (app-level) repository.
	Owner         string    `json:"owner"`
	Server        string    `json:"server"`
	ConnID        string    `json:"connId"`
	ConfigVersion uint64    `json:"configVersion"`
	Since         time.Time `json:"since"`
	// Position is where the connection.opened event is in the log.
	Position uint64 `json:"position"`
}
