package connections

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/examples/servers/clock/clockserver"
	"github.com/mcpes/mcpes/store/bolt"
	"github.com/mcpes/mcpes/upstream"
)

var sinkConn *Connection

func TestRepository_Get_HotPathDoesNotAllocate(t *testing.T) {
	// given a live, fresh connection
	srv := newMCPServer(t)
	e := newEnv(t, nil)
	e.put(domain.AppScope, "clock", httpConfig(srv.URL))
	repo := e.m.Repo("alice")
	ctx := context.Background()
	if _, err := repo.Get(ctx, "clock"); err != nil {
		t.Fatal(err)
	}
	// when it is got again, then nothing is allocated
	allocs := testing.AllocsPerRun(1000, func() { sinkConn, _ = repo.Get(ctx, "clock") })
	if allocs != 0 {
		t.Fatalf("hot-path Get allocates %.1f times", allocs)
	}
	// nor when the log moved (another server registered), nor when the decision
	// is re-run on the projection's view
	e.put(domain.AppScope, "other", httpConfig(srv.URL))
	c, _ := repo.Get(ctx, "clock")
	if moved := testing.AllocsPerRun(1000, func() {
		sinkConn, _ = repo.Get(ctx, "clock")
	}); moved != 0 {
		t.Fatalf("Get after the log moved allocates %.1f times", moved)
	}
	if re := testing.AllocsPerRun(1000, func() {
		c.checkedGen.Store(0)
		sinkConn, _ = repo.Get(ctx, "clock")
	}); re != 0 {
		t.Fatalf("Get re-deciding allocates %.1f times", re)
	}
	if sinkConn != c {
		t.Fatal("the hot path returned another connection")
	}
	if has := testing.AllocsPerRun(1000, func() { repo.Has(ctx, "clock") }); has != 0 {
		t.Fatalf("Has allocates %.1f times", has)
	}
}

// BenchmarkGetHot measures Get of a live, fresh connection beside a plain
// sync.RWMutex+map lookup of the same connection in the same run (ratio).
func BenchmarkGetHot(b *testing.B) {
	srv := newMCPServer(b)
	e := newEnv(b, nil)
	for i := range 100 {
		e.put(domain.AppScope, fmt.Sprintf("s%02d", i), httpConfig(srv.URL))
	}
	e.put(domain.UserScope("alice"), "clock", httpConfig(srv.URL))
	repo := e.m.Repo("alice")
	ctx := context.Background()
	c, err := repo.Get(ctx, "clock")
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.RWMutex
	plain := map[string]*Connection{"clock": c}
	for i := range 100 {
		plain[fmt.Sprintf("s%02d", i)] = c
	}
	b.ReportAllocs()

	b.ResetTimer()
	start := time.Now()
	for range b.N {
		mu.RLock()
		sinkConn = plain["clock"]
		mu.RUnlock()
	}
	baseline := time.Since(start)
	start = time.Now()
	for range b.N {
		_, sinkView, _ = e.servers.Effective("alice", "clock")
	}
	eff := time.Since(start)
	start = time.Now()
	for range b.N {
		sinkConn, err = repo.Get(ctx, "clock")
	}
	got := time.Since(start)
	// and when this server's name changed too: the decision is re-run on the
	// projection's Effective view
	start = time.Now()
	for range b.N {
		c.checkedGen.Store(0)
		sinkConn, err = repo.Get(ctx, "clock")
	}
	recheck := time.Since(start)
	b.StopTimer()
	if err != nil || sinkConn != c {
		b.Fatalf("hot get: %v", err)
	}
	nsGet := float64(got.Nanoseconds()) / float64(b.N)
	nsBase := float64(baseline.Nanoseconds()) / float64(b.N)
	b.ReportMetric(nsGet, "get-ns/op")
	b.ReportMetric(nsBase, "rwmap-ns/op")
	b.ReportMetric(nsGet/nsBase, "ratio")
	b.ReportMetric(float64(eff.Nanoseconds())/float64(b.N), "effective-ns/op")
	b.ReportMetric(float64(recheck.Nanoseconds())/float64(b.N), "get-recheck-ns/op")
	b.ReportMetric(float64(recheck.Nanoseconds())/float64(baseline.Nanoseconds()), "recheck-ratio")
}

var sinkView domain.ConfigView

// BenchmarkGetHotParallel is BenchmarkGetHot from every P at once.
func BenchmarkGetHotParallel(b *testing.B) {
	srv := newMCPServer(b)
	e := newEnv(b, nil)
	e.put(domain.AppScope, "clock", httpConfig(srv.URL))
	repo := e.m.Repo("alice")
	ctx := context.Background()
	if _, err := repo.Get(ctx, "clock"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := repo.Get(ctx, "clock"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkConnect measures a cold connect through the repository (decision, dial,
// opened event appended to a durable bbolt store) beside a bare upstream.Dial of
// the same streamable-HTTP in-process server, in the same run (ratio). Closing is
// outside both measurements.
func BenchmarkConnect(b *testing.B) {
	srv := newMCPServer(b)
	st, err := bolt.Open(filepath.Join(b.TempDir(), "log.db"), bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	e := newEnvOn(b, st, nil)
	cfg := httpConfig(srv.URL)
	e.put(domain.AppScope, "clock", cfg)
	repo := e.m.Repo("")
	ctx := context.Background()
	var viaRepo, bare time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := repo.Get(ctx, "clock"); err != nil {
			b.Fatal(err)
		}
		viaRepo += time.Since(t0)
		if err := repo.Disconnect(ctx, "clock"); err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		c, err := upstream.Dial(ctx, "clock", cfg, upstream.Options{Scope: domain.AppScope})
		if err != nil {
			b.Fatal(err)
		}
		bare += time.Since(t0)
		_ = c.Close()
	}
	b.StopTimer()
	r := float64(viaRepo.Nanoseconds()) / float64(b.N) / 1e6
	d := float64(bare.Nanoseconds()) / float64(b.N) / 1e6
	b.ReportMetric(r, "repo-ms/op")
	b.ReportMetric(d, "dial-ms/op")
	b.ReportMetric(r/d, "ratio")
}

// inprocSession adapts an mcp-go in-process client to Session.
type inprocSession struct {
	c    *client.Client
	done chan struct{}
	once sync.Once
}

func (s *inprocSession) Done() <-chan struct{} { return s.done }

func (s *inprocSession) Err() error {
	select {
	case <-s.done:
		return errors.New("closed")
	default:
		return nil
	}
}

func (s *inprocSession) Close() error {
	s.once.Do(func() { close(s.done) })
	return s.c.Close()
}

func inprocDial(servers []*server.MCPServer) DialFunc {
	return func(ctx context.Context, req DialRequest) (Session, error) {
		var idx int
		_, _ = fmt.Sscanf(req.Name, "s%d", &idx)
		c, err := client.NewInProcessClient(servers[idx%len(servers)])
		if err != nil {
			return nil, err
		}
		if err := c.Start(ctx); err != nil {
			return nil, err
		}
		var in mcp.InitializeRequest
		in.Params.ClientInfo = mcp.Implementation{Name: "bench", Version: "0"}
		if _, err := c.Initialize(ctx, in); err != nil {
			_ = c.Close()
			return nil, err
		}
		return &inprocSession{c: c, done: make(chan struct{})}, nil
	}
}

// BenchmarkManyConnections opens 10,000 connections (100 owners x 100 app servers,
// in-process clock servers, decisions in a bbolt store without fsync) and reports
// the heap and stack bytes per open connection, repository and client included.
func BenchmarkManyConnections(b *testing.B) {
	const owners, names = 100, 100
	for range b.N {
		servers := make([]*server.MCPServer, names)
		for i := range servers {
			servers[i] = clockserver.New()
		}
		st, err := bolt.Open(filepath.Join(b.TempDir(), "log.db"), bolt.Options{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		e := newEnvOn(b, st, func(o *Options) { o.Dial = inprocDial(servers) })
		all := make([]string, names)
		for i := range all {
			all[i] = fmt.Sprintf("s%03d", i)
			e.put(domain.AppScope, all[i], domain.ServerConfig{Type: domain.TransportStreamableHTTP, URL: "http://in-process.invalid/mcp"})
		}
		before := memUse()
		ctx := context.Background()
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for o := range owners {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				_, errs := e.m.Repo(fmt.Sprintf("owner%03d", o)).GetMany(ctx, all)
				for n, err := range errs {
					b.Errorf("owner%03d %s: %v", o, n, err)
				}
			}()
		}
		wg.Wait()
		open := e.m.Stats().Alive
		after := memUse()
		if open != owners*names {
			b.Fatalf("%d connections open, want %d", open, owners*names)
		}
		b.ReportMetric(float64(after-before)/float64(open), "bytes/conn")
		b.ReportMetric(float64(after-before)/(1<<20), "MiB-total")
	}
}

func memUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc + ms.StackInuse
}
