package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"runtime/debug"
)

// bbolt's file format (go.etcd.io/bbolt v1.5.0, internal/common): two meta pages,
// pages 0 and 1, each a 16-byte page header followed by the meta fields, in the
// machine's byte order. A writer flips between them, so after a torn meta write one
// of the two is still valid; bbolt uses the valid one with the higher txid.
const (
	boltMagic     = 0xED0CDAED
	boltVersion   = 2
	pageHeaderLen = 16
	metaLen       = 64 // magic .. checksum
	metaSumLen    = 56 // the bytes the checksum covers: magic .. txid
	noFreelist    = ^uint64(0)
	minPageSize   = 1024
	maxPageSize   = 16 << 20 // the largest page size bbolt looks for
)

// boltMeta is one decoded meta page.
type boltMeta struct {
	magic, version, pageSize uint32
	root, freelist, pgid     uint64
	txid, checksum           uint64
	sum                      uint64 // the checksum computed over the page
}

func decodeMeta(b []byte) (boltMeta, bool) {
	if len(b) < pageHeaderLen+metaLen {
		return boltMeta{}, false
	}
	m := b[pageHeaderLen : pageHeaderLen+metaLen]
	e := binary.NativeEndian
	h := fnv.New64a()
	_, _ = h.Write(m[:metaSumLen])
	return boltMeta{
		magic: e.Uint32(m[0:]), version: e.Uint32(m[4:]), pageSize: e.Uint32(m[8:]),
		root: e.Uint64(m[16:]), freelist: e.Uint64(m[32:]), pgid: e.Uint64(m[40:]),
		txid: e.Uint64(m[48:]), checksum: e.Uint64(m[56:]), sum: h.Sum64(),
	}, true
}

// problem says what is wrong with one meta page, or "" when it is usable.
func (m boltMeta) problem() string {
	switch {
	case m.magic != boltMagic:
		return "no bbolt magic number (not a bbolt database)"
	case m.version != boltVersion:
		return fmt.Sprintf("bbolt format version %d, want %d", m.version, boltVersion)
	case m.checksum != m.sum:
		return "meta page checksum mismatch"
	case m.pageSize < minPageSize || m.pageSize > maxPageSize || m.pageSize&(m.pageSize-1) != 0:
		return fmt.Sprintf("meta page gives an impossible page size %d", m.pageSize)
	case m.pgid < 4 || m.root >= m.pgid || m.root < 2 || (m.freelist != noFreelist && (m.freelist >= m.pgid || m.freelist < 2)):
		return fmt.Sprintf("meta page points outside its own %d pages", m.pgid)
	}
	return ""
}

// checkFile looks at an existing data file before bbolt maps it: bbolt trusts the
// file's size and meta pages, and a file shorter than its meta pages say faults
// (SIGBUS) or panics on first use, while an empty file is silently initialised. It
// only reads. Returns nil when path does not exist (Open creates it), else a
// *FileError for an empty, truncated or foreign file or one whose meta pages are
// both damaged.
func checkFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return &FileError{Path: path, Problem: "not a regular file"}
	}
	size := info.Size()
	if size == 0 {
		return &FileError{Path: path, Problem: "empty (0 bytes); an mcpes store is never empty — restore it from a backup, or remove it to start a new log"}
	}
	problem := checkMeta(f, size)
	if problem == "" {
		return nil
	}
	return &FileError{Path: path, Problem: problem}
}

// checkMeta returns what is wrong with the file of size bytes read through r, or "".
func checkMeta(r io.ReaderAt, size int64) string {
	buf := make([]byte, pageHeaderLen+metaLen)
	if n, _ := r.ReadAt(buf, 0); int64(n) < int64(len(buf)) {
		return fmt.Sprintf("%d bytes, too short to be a bbolt database", size)
	}
	m0, _ := decodeMeta(buf)
	metas := []boltMeta{m0}
	first := m0.problem()
	// The second meta page sits one page in; with the first one damaged the page
	// size is unknown, so try every size bbolt could have used, as bbolt does.
	offsets := []int64{int64(m0.pageSize)}
	if first != "" {
		offsets = offsets[:0]
		for ps := int64(minPageSize); ps <= maxPageSize; ps <<= 1 {
			offsets = append(offsets, ps)
		}
	}
	for _, off := range offsets {
		if off+int64(len(buf)) > size {
			break
		}
		if n, _ := r.ReadAt(buf, off); n == len(buf) {
			if m, ok := decodeMeta(buf); ok && m.problem() == "" && int64(m.pageSize) == off {
				metas = append(metas, m)
			}
		}
	}
	var best *boltMeta
	for i := range metas {
		if metas[i].problem() == "" && (best == nil || metas[i].txid > best.txid) {
			best = &metas[i]
		}
	}
	if best == nil {
		return first
	}
	ps := int64(best.pageSize)
	if size < 2*ps {
		return fmt.Sprintf("truncated: %d bytes, shorter than its two meta pages of %d bytes", size, ps)
	}
	if need := int64(best.pgid) * ps; size < need {
		return fmt.Sprintf("truncated: %d bytes, but its meta page says the data reaches %d bytes (%d pages of %d bytes)",
			size, need, best.pgid, ps)
	}
	return ""
}

// guarded runs f, a transaction on the mapped file, turning what a damaged page
// raises into a *FileError: bbolt trusts the pages it maps, and a damaged page in
// a file of the right size fails one of bbolt's assertions (a panic with a string)
// or points past the end of the file (a memory fault, made a panic with an address
// by debug.SetPanicOnFault). Any other panic is a bug, not damage, and goes on.
// bbolt's View and Update roll their transaction back on the way out.
func guarded(path string, f func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		r := recover()
		switch r.(type) {
		case nil:
		case string, interface{ Addr() uintptr }:
			err = &FileError{Path: path, Problem: fmt.Sprintf("damaged page (%v)", r)}
		default:
			panic(r)
		}
	}()
	return f()
}
