//go:build !linux

package bolt

import bolt "go.etcd.io/bbolt"

// span, dropPages and prefetch release the file's mapped pages and read ahead on
// Linux only (see pages_linux.go).
type span struct{}

func (*span) add([]byte) {}

func dropPages(*bolt.Tx, span) {}

func prefetch(*bolt.Tx, span, *uintptr) {}
