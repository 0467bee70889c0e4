package bolt_test

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/bolt"
	"github.com/mcpes/mcpes/store/storetest"
)

var seedFlag = flag.Uint64("seed", 0, "seed of the randomised store tests (0: from the clock)")

func testSeed(t *testing.T) uint64 {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -seed=%d)", seed, seed)
	return seed
}

const tamperEvents = 20

// tamperFile writes tamperEvents events over a few streams to a new file, checks it,
// and closes it.
func tamperFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.db")
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range tamperEvents {
		stream := []string{"server/app/a", "conn/u1/a", "server/app/b"}[i%3]
		if _, err := s.Append(context.Background(), stream, store.AnyVersion, storetest.Event(t, stream, i)); err != nil {
			t.Fatal(err)
		}
	}
	checkAndClose(t, s)
	return path
}

// rawLog edits the log bucket of a closed store file directly with bbolt.
func rawLog(t *testing.T, path string, edit func(log *bbolt.Bucket) error) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bbolt.Tx) error { return edit(tx.Bucket([]byte("log"))) }); err != nil {
		t.Fatal(err)
	}
}

func key(pos uint64) []byte { return binary.BigEndian.AppendUint64(nil, pos) }

// verifyTampered opens the file read-only and asserts that Verify and Check both fail,
// Verify naming wantFirst as the first bad position.
func verifyTampered(t *testing.T, path string, wantFirst uint64) {
	t.Helper()
	s, err := bolt.Open(path, bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rep, err := store.Verify(context.Background(), s)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if rep.OK || rep.FirstBad != wantFirst || len(rep.Problems) == 0 {
		t.Fatalf("verify: ok=%v first bad %d (want %d), problems %v", rep.OK, rep.FirstBad, wantFirst, rep.Problems)
	}
	if rep.Problems[0].Position != wantFirst {
		t.Fatalf("first problem %v, want position %d", rep.Problems[0], wantFirst)
	}
	if err := s.Check(context.Background()); !errors.Is(err, bolt.ErrInconsistent) {
		t.Fatalf("check of a tampered file: %v, want ErrInconsistent", err)
	}
}

func TestVerify_FlippedByte(t *testing.T) {
	// given a closed store file
	path := tamperFile(t)
	rng := rand.New(rand.NewPCG(testSeed(t), 1))
	for trial := range 40 {
		// when one byte of one stored event is flipped (header, hash or JSON)
		pos := uint64(rng.IntN(tamperEvents)) + 1
		var off int
		var orig byte
		rawLog(t, path, func(log *bbolt.Bucket) error {
			v := slices.Clone(log.Get(key(pos)))
			off = rng.IntN(len(v))
			orig = v[off]
			v[off] ^= byte(1 + rng.IntN(255))
			return log.Put(key(pos), v)
		})
		// then Verify names that position
		t.Run("", func(t *testing.T) {
			t.Logf("trial %d: position %d byte %d", trial, pos, off)
			verifyTampered(t, path, pos)
		})
		rawLog(t, path, func(log *bbolt.Bucket) error {
			v := slices.Clone(log.Get(key(pos)))
			v[off] = orig
			return log.Put(key(pos), v)
		})
	}
	// and the restored file verifies again
	s := openAt(t, path, bolt.Options{})
	rep, err := store.Verify(context.Background(), s)
	if err != nil || !rep.OK || rep.Events != tamperEvents {
		t.Fatalf("restored file: %+v %v", rep, err)
	}
}

func TestVerify_DeletedEvent(t *testing.T) {
	for _, pos := range []uint64{1, 7, tamperEvents} {
		// given a closed store file, when the event at pos is deleted
		path := tamperFile(t)
		rawLog(t, path, func(log *bbolt.Bucket) error { return log.Delete(key(pos)) })
		// then Verify names pos
		verifyTampered(t, path, pos)
	}
}

func TestVerify_SwappedEvents(t *testing.T) {
	for _, pair := range [][2]uint64{{3, 4}, {5, 17}, {1, tamperEvents}} {
		// given a closed store file, when two events swap places
		path := tamperFile(t)
		rawLog(t, path, func(log *bbolt.Bucket) error {
			a, b := slices.Clone(log.Get(key(pair[0]))), slices.Clone(log.Get(key(pair[1])))
			if err := log.Put(key(pair[0]), b); err != nil {
				return err
			}
			return log.Put(key(pair[1]), a)
		})
		// then Verify names the earlier one
		verifyTampered(t, path, pair[0])
	}
}

func TestVerify_ReplacedEventResealed(t *testing.T) {
	// given a closed store file, when an event is replaced by a validly sealed other
	// event at the same position (a forger who can hash but not rewrite the rest)
	path := tamperFile(t)
	other := tamperFile(t)
	var forged []byte
	db, err := bbolt.Open(other, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = db.View(func(tx *bbolt.Tx) error { forged = slices.Clone(tx.Bucket([]byte("log")).Get(key(5))); return nil })
	db.Close()
	rawLog(t, path, func(log *bbolt.Bucket) error { return log.Put(key(5), forged) })
	// then the break shows at the replaced position
	verifyTampered(t, path, 5)
}
