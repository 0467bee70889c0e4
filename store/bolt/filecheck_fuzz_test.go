package bolt

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sparseFile is a file of size bytes holding head at offset 0 and second at
// offset at, zeros elsewhere: small fuzz inputs that still describe whole files.
type sparseFile struct {
	head, second []byte
	at, size     int64
}

func (s sparseFile) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for ; n < len(p) && off+int64(n) < s.size; n++ {
		o := off + int64(n)
		switch {
		case o < int64(len(s.head)):
			p[n] = s.head[o]
		case o >= s.at && o-s.at < int64(len(s.second)):
			p[n] = s.second[o-s.at]
		default:
			p[n] = 0
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// FuzzCheckMeta feeds arbitrary meta pages and file sizes to the meta check: it
// never panics, answers in one line, and a file it accepts holds at least two meta
// pages.
func FuzzCheckMeta(f *testing.F) {
	path := filepath.Join(f.TempDir(), "seed.db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	if err := s.Close(); err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	const ps, n = 4096, pageHeaderLen + metaLen
	f.Add(good[:n], good[ps:ps+n], int64(ps), int64(len(good)))
	f.Add(good[:n], good[ps:ps+n], int64(ps), int64(ps+100))
	f.Add(good[:10], good[ps:ps+n], int64(ps), int64(len(good)))
	f.Add([]byte{}, []byte{}, int64(0), int64(0))
	f.Fuzz(func(t *testing.T, head, second []byte, at, size int64) {
		if size < 0 || size > 1<<40 || at < 0 {
			return
		}
		problem := checkMeta(sparseFile{head: head, second: second, at: at, size: size}, size)
		if problem == "" && size < 2*minPageSize {
			t.Fatalf("accepted %d bytes, less than two meta pages", size)
		}
		if strings.ContainsAny(problem, "\n\r") {
			t.Fatalf("problem %q is not one line", problem)
		}
	})
}
