package bolt

import (
	"os"
	"syscall"
	"unsafe"

	bolt "go.etcd.io/bbolt"
)

// span is the address range of the mapped file that a scan has read since its last
// dropPages. Addresses noted in an earlier read transaction may belong to a mapping
// bbolt has since replaced (the file grew): dropPages and prefetch clamp to the
// current mapping, so such a range costs a few refaults at worst.
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

// readAhead is how far past the pages a scan has read it asks the kernel to read
// the file ahead.
const readAhead = 16 << 20

// prefetch asks the kernel to read the file ahead of the pages in s a scan has read,
// from *ahead on (what an earlier call asked for already), and moves *ahead. bbolt
// maps the file for random access (no read-ahead), which suits its tree lookups; but
// the log's records lie in roughly ascending pages, and a scan of a log that is not
// in the page cache would otherwise wait for the disk one page at a time. Like
// dropPages it must run inside a read transaction; errors are ignored.
func prefetch(tx *bolt.Tx, s span, ahead *uintptr) {
	base := tx.DB().Info().Data
	end := base + uintptr(tx.Size())
	lo := max(s.hi, base) &^ (pageSize - 1)
	hi := min(lo+readAhead, end)
	if *ahead > lo && *ahead <= hi {
		lo = *ahead // only what no earlier call covered
	}
	if hi <= lo+readAhead/4 {
		return // most of it asked for already
	}
	*ahead = hi
	_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, lo, hi-lo, syscall.MADV_WILLNEED)
}
