package relay_test

import (
	"os"
	"strconv"
	"testing"
)

// volume is the event count of the big JetStream test: 100,000, or 20,000 under the
// race detector (which instruments the embedded NATS server too and makes the full
// run take minutes on two cores), 5,000 with -short. MCPES_RELAY_EVENTS overrides.
func volume() int {
	if v, err := strconv.Atoi(os.Getenv("MCPES_RELAY_EVENTS")); err == nil && v > 0 {
		return v
	}
	switch {
	case testing.Short():
		return 5_000
	case raceEnabled:
		return 20_000
	}
	return 100_000
}
