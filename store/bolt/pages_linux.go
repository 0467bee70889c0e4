package bolt

import (
	"os"
	"syscall"
	"unsafe"

	bolt "go.etcd.io/bbolt"
)

// span is the address range of the mapped file that a scan has read since its last
// dropPages.
type span struct{ lo, hi uintptr }

// add widens the span to cover v, a value read from the mapping.
func (s *span) add(v []byte) {
	if len(v) == 0 {
		return
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(v)))
	hi := lo + uintptr(len(v))
	if s.hi == 0 || lo < s.lo {
		s.lo = lo
	}
	s.hi = max(s.hi, hi)
}

var pageSize = uintptr(os.Getpagesize())

// dropPages tells the kernel that the process no longer needs the pages of the file
// in s. bbolt reads through a read-only shared mapping of the whole file, and a scan
// of the log would otherwise keep every page it touched resident in the process (RSS
// grows with the log although the page cache holds the same pages). A later read
// faults a dropped page back in from the page cache; nothing is lost. It must run
// inside the read transaction that read s, which keeps bbolt from remapping the file
// meanwhile; s is clamped to the mapping. An error (e.g. a locked mapping) is
// ignored: the pages just stay.
func dropPages(tx *bolt.Tx, s span) {
	base := tx.DB().Info().Data
	end := base + uintptr(tx.Size())
	lo, hi := max(s.lo, base)&^(pageSize-1), min(s.hi, end)
	if hi <= lo {
		return
	}
	_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, lo, hi-lo, syscall.MADV_DONTNEED)
}
