//go:build !linux

package bolt

import bolt "go.etcd.io/bbolt"

// span and dropPages release the file's mapped pages on Linux only (see
// pages_linux.go).
type span struct{}

func (*span) add([]byte) {}

func dropPages(*bolt.Tx, span) {}
