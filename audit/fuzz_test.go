package audit_test

import (
	"bytes"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/mcpes/mcpes/audit"
)

// fuzzVerifier is a fixed verifier key, so that committed seeds stay meaningful.
const fuzzVerifierKey = "mcpes.test/log+46572cb7+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs"

// fuzzSignedSeed is a checkpoint signed by fuzzVerifierKey's private key.
const fuzzSignedSeed = "mcpes.test/log\n5\nAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\ntime 2026-12-04T14:02:00Z\n\n— mcpes.test/log RlcstzrjSl2E4m41j+Ibyyow3F7bw/f9i/kVgaBCP6mfZYzVPg/3cIfoWsMPst10TSj3DNw/y6bQofnyDL9bFIBc6Ac=\n"

// FuzzOpenCheckpoint: a hostile checkpoint note never panics, and anything accepted
// re-reads the same.
func FuzzOpenCheckpoint(f *testing.F) {
	f.Add([]byte(fuzzSignedSeed))
	f.Add([]byte("x\n\n"))
	f.Add([]byte("mcpes.test/log\n18446744073709551615\n\n\n— a b\n"))
	v, err := note.NewVerifier(fuzzVerifierKey)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := audit.OpenCheckpoint([]byte(fuzzSignedSeed), v); err != nil {
		f.Fatalf("the signed seed does not open: %v", err)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		c, err := audit.OpenCheckpoint(msg, v)
		if err != nil {
			return
		}
		again, err := audit.OpenCheckpoint([]byte(c.Note), v)
		if err != nil || again.Size != c.Size || again.Root != c.Root {
			t.Fatalf("re-read %+v %v, first %+v", again, err, c)
		}
	})
}

// FuzzVerifyExcerpt: a hostile excerpt never panics and is never OK without proofs
// against the checkpoint (here one nothing can be proven in: size 0).
func FuzzVerifyExcerpt(f *testing.F) {
	f.Add([]byte(`{"specversion":"1.0","sequence":"00000000000000000001","prevhash":"0000000000000000000000000000000000000000000000000000000000000000","data":{},"hash":"0000000000000000000000000000000000000000000000000000000000000000"}` + "\n" + `{"proof":{"sequence":"1","treeSize":1,"hashes":[]}}` + "\n"))
	f.Add([]byte(`{"proof":{"sequence":"1","treeSize":1,"hashes":["AAAA"]}}`))
	f.Add([]byte("\n\n{}\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		rep, err := audit.VerifyExcerpt(bytes.NewReader(in), audit.Checkpoint{Size: 0})
		if err != nil {
			t.Fatalf("reading from memory failed: %v", err)
		}
		if rep.OK && rep.Events > 0 {
			t.Fatalf("an excerpt of %d events verified against an empty tree", rep.Events)
		}
	})
}
