// Package e2e holds the end-to-end tests of mcpes: they build the real binary once,
// run `mcpes serve` on a free loopback port with a temporary data directory, and drive
// it only through its HTTP API and its command line (the README walk-through among
// them). The package has no non-test code besides this comment.
package e2e
