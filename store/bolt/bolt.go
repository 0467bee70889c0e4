// Package bolt is the durable store.Store on a bbolt file: one hash-chained log with
// its indexes, appended through a single writer goroutine that group-commits
// concurrent appends (one transaction and one fsync pair for many appends).
//
// Layout (bucket: key -> value), all integers big-endian:
//
//	log:         position -> record (events.EncodeRecord)
//	stream:      stream 0x00 version -> position
//	streams:     stream -> version (the head of each stream)
//	ids:         event id -> position (idempotency, for ever)
//	time:        running-max event time (unix nanos, sign flipped) | position -> nil
//
// The stream, streams, ids and time buckets cover positions up to meta "indexed";
// the entries after it are held in memory (see index.go).
//
//	checkpoints: name -> position
//	snapshots:   name -> position | data
//	secrets:     ref -> value
//	meta:        "head" -> position | hash | running-max time; "indexed" -> position;
//	             "format" -> "mcpes-store-1"
package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/mcpes/mcpes/store"
)

var _ store.Store = (*Store)(nil)

var (
	bktLog         = []byte("log")
	bktStream      = []byte("stream")
	bktStreams     = []byte("streams")
	bktIDs         = []byte("ids")
	bktTime        = []byte("time")
	bktCheckpoints = []byte("checkpoints")
	bktSnapshots   = []byte("snapshots")
	bktSecrets     = []byte("secrets")
	bktMeta        = []byte("meta")
	allBuckets     = [][]byte{bktLog, bktStream, bktStreams, bktIDs, bktTime, bktCheckpoints, bktSnapshots, bktSecrets, bktMeta}

	keyHead   = []byte("head")
	keyTree   = []byte("tree")
	keyFormat = []byte("format")
	format    = []byte("mcpes-store-1")
)

// DefaultMaxBatch is the number of events one group commit takes at most.
const DefaultMaxBatch = 256

// Options configure Open. The zero value is a durable, writable store.
type Options struct {
	// ReadOnly opens the file with a shared lock, for offline tools; writes fail with
	// ErrReadOnly.
	ReadOnly bool
	// Timeout bounds the wait for the file lock (default 1s). A file held by another
	// process gives ErrLocked.
	Timeout time.Duration
	// NoSync skips fsync. Commits are then not durable: for tests and benchmarks only.
	NoSync bool
	// MaxBatch bounds the events of one group commit (default DefaultMaxBatch).
	MaxBatch int
	// IndexEvery is how many events the stream index keeps in memory before it is
	// written to the file (default 4096, see index.go). Small values are for tests.
	IndexEvery int
	// Logger receives commit failures (default: discarded).
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.IndexEvery <= 0 {
		o.IndexEvery = indexFlushEvery
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Store is the bbolt event store. It is safe for concurrent use; open it with Open.
type Store struct {
	db     *bolt.DB
	path   string
	opts   Options
	closed atomic.Bool

	reqs      chan *request // unbuffered: a send succeeds only when the writer takes it
	pending   atomic.Int64  // appends announced and not yet taken by the writer
	closing   chan struct{}
	writerEnd chan struct{}
	closeOnce sync.Once

	mu        sync.RWMutex // guards the fields below
	head      uint64
	headHash  [32]byte
	tree      *store.Tree // the Merkle tree up to head; replaced, never changed, by a commit
	timeMax   int64
	observers store.Observers
	notify    chan struct{} // closed and replaced on every commit
	indexed   uint64        // the stream bucket covers positions <= indexed
	recent    recentIndex   // index entries of positions after indexed
	commits   uint64
	appended  uint64

	arena     []byte // writer-only scratch for keys and records of one batch
	idsMax    string // writer-only: no key of the ids bucket sorts after it
	idsTop    string // writer-only: no stored id (bucket or recent index) sorts after it
	treeStale bool   // Open rebuilt the tree from the records
}

// Open opens (creating when absent and not read-only) the store at path. Returns an
// error wrapping ErrLocked when another process holds the file, ErrNotStore for a
// bbolt file that is not an event store, and a *FileError (ErrBadFile) for an
// existing file that is empty, truncated, foreign or has damaged meta pages (such a
// file is never mapped or written) or whose pages read at open are damaged. Reads
// that meet a damaged page later fail with a *FileError too (see guarded).
func Open(path string, opts Options) (*Store, error) {
	opts.setDefaults()
	if err := checkFile(path); err != nil {
		return nil, err
	}
	var db *bolt.DB
	err := guarded(path, func() (err error) {
		db, err = bolt.Open(path, 0o600, &bolt.Options{
			Timeout:      opts.Timeout,
			ReadOnly:     opts.ReadOnly,
			NoSync:       opts.NoSync,
			FreelistType: bolt.FreelistMapType,
			// The freelist is persisted (unlike the events spec's suggestion): with
			// NoFreelistSync, every writable open scans the whole file to rebuild it, which
			// took seconds on a 1,000,000-event log and broke the 1 s startup target; an
			// append-only log's freelist is tiny, so writing it costs little per commit.
			NoFreelistSync: false,
		})
		return err
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open %s: %w (waited %s: %w)", path, ErrLocked, opts.Timeout, err)
	}
	if fe := (*FileError)(nil); errors.As(err, &fe) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s := &Store{db: db, path: path, opts: opts, notify: make(chan struct{})}
	ready := false // a store already set up needs no write (and no fsync) at open
	err = guarded(path, func() error {
		return db.View(func(tx *bolt.Tx) error {
			ready = tx.Bucket(bktMeta) != nil && string(tx.Bucket(bktMeta).Get(keyFormat)) == string(format)
			for _, name := range allBuckets {
				ready = ready && tx.Bucket(name) != nil
			}
			return nil
		})
	})
	if err == nil && !opts.ReadOnly && !ready {
		err = db.Update(func(tx *bolt.Tx) error {
			if tx.Bucket(bktMeta) == nil {
				foreign := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
					return fmt.Errorf("%w: it has a bucket %q and no meta", ErrNotStore, name)
				})
				if foreign != nil {
					return foreign
				}
			}
			for _, name := range allBuckets {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return err
				}
			}
			meta := tx.Bucket(bktMeta)
			if meta.Get(keyFormat) == nil {
				return meta.Put(keyFormat, format)
			}
			return nil
		})
	}
	if err == nil {
		err = guarded(path, func() error { return db.View(s.loadMeta) })
	}
	if err == nil && s.treeStale && !opts.ReadOnly {
		// A file written before the tree was kept: store the tree rebuilt from it.
		err = db.Update(func(tx *bolt.Tx) error {
			b, _ := s.tree.MarshalBinary()
			return tx.Bucket(bktMeta).Put(keyTree, b)
		})
	}
	if err != nil {
		_ = db.Close()
		if fe := (*FileError)(nil); errors.As(err, &fe) {
			return nil, err
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if !opts.ReadOnly {
		s.reqs = make(chan *request)
		s.closing = make(chan struct{})
		s.writerEnd = make(chan struct{})
		go s.writer()
	}
	return s, nil
}

func (s *Store) loadMeta(tx *bolt.Tx) error {
	for _, name := range allBuckets {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("%w: bucket %q missing", ErrNotStore, name)
		}
	}
	meta := tx.Bucket(bktMeta)
	if f := meta.Get(keyFormat); string(f) != string(format) {
		return fmt.Errorf("%w: format %q", ErrNotStore, f)
	}
	if v := meta.Get(keyHead); v != nil {
		head, hash, tmax, err := decodeHead(v)
		if err != nil {
			return err
		}
		s.head, s.headHash, s.timeMax = head, hash, tmax
	}
	if err := s.loadTree(tx); err != nil {
		return err
	}
	return s.loadRecent(tx)
}

// Path returns the data file's path.
func (s *Store) Path() string { return s.path }

// Close stops the writer (appends already taken are committed, later ones fail with
// ErrClosed), releases waiters with ErrClosed and closes the file. Closing twice is a
// no-op.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		if s.closing != nil {
			close(s.closing)
			<-s.writerEnd
		}
		s.observers.Close()
		s.mu.Lock()
		close(s.notify)
		s.mu.Unlock()
		err = s.flushIndexAtClose()
		if cerr := s.db.Close(); err == nil {
			err = cerr
		}
	})
	if err != nil {
		return fmt.Errorf("close %s: %w", s.path, err)
	}
	return nil
}

// flushIndexAtClose writes the index entries kept in memory (those after the last
// flush, up to IndexEvery of them), so that the next Open, read-only ones included,
// does not rebuild them by reading and decoding the log's tail. Called after the
// writer ended.
func (s *Store) flushIndexAtClose() error {
	if s.closing == nil || len(s.recent.times) == 0 {
		return nil
	}
	st := batchState{pos: s.head}
	return guarded(s.path, func() error {
		return s.db.Update(func(tx *bolt.Tx) error {
			_, err := s.flushIndex(buckets(tx), &st, nil)
			return err
		})
	})
}

// Stats are counters of the writer since Open.
type Stats struct {
	// Commits is the number of append transactions.
	Commits uint64
	// Events is the number of events appended.
	Events uint64
	// Writes is the number of page writes bbolt made (all transactions).
	Writes int64
	// WriteTime is the time bbolt spent writing pages, fsync included.
	WriteTime time.Duration
}

// Stats returns the writer's counters; Events/Commits is the mean group-commit size.
func (s *Store) Stats() Stats {
	ts := s.db.Stats().TxStats
	s.mu.RLock()
	defer s.mu.RUnlock()
	return Stats{Commits: s.commits, Events: s.appended, Writes: ts.GetWrite(), WriteTime: ts.GetWriteTime()}
}

func u64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

func putU64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// timeKey orders unix nanos as unsigned big-endian bytes.
func timeKey(nanos int64) uint64 { return uint64(nanos) ^ (1 << 63) }

func encodeHead(pos uint64, hash [32]byte, tmax int64) []byte {
	b := make([]byte, 48)
	binary.BigEndian.PutUint64(b, pos)
	copy(b[8:], hash[:])
	binary.BigEndian.PutUint64(b[40:], timeKey(tmax))
	return b
}

func decodeHead(b []byte) (pos uint64, hash [32]byte, tmax int64, err error) {
	if len(b) != 48 {
		return 0, hash, 0, fmt.Errorf("%w: head meta of %d bytes", ErrInconsistent, len(b))
	}
	copy(hash[:], b[8:40])
	return u64(b), hash, int64(u64(b[40:]) ^ (1 << 63)), nil
}

// mapErr turns bbolt's closed-database error into store.ErrClosed.
func mapErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return store.ErrClosed
	}
	return err
}
