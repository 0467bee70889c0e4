//go:build race

package e2e

// raceEnabled builds the binaries under test with -race when the tests run with it,
// so races in the real service fail the tests too (a raced child exits 66).
const raceEnabled = true
