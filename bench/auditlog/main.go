// Command auditlog writes a realistic, consistent mcpes log for audit benchmarks: it
// drives the real registry and connection repositories (owners, app and private
// servers, config changes, failed inspections and reinspections, removals, connects,
// refusals, breaker opens, explicit, stale, idle and dead evictions, lost
// connections, tool calls) against in-memory upstream sessions, into a bbolt store
// without fsync, until the log holds -events events. `mcpes verify --data DIR` on the
// result reports no problem.
//
//	go run ./bench/auditlog -events 1000000 -data /tmp/auditlog
//
// The process is CPU-bound (store writer, JSON, decisions); it prints the CPU time per
// event of the generation (user+sys), the figure that does not depend on the machine's
// other load. Generator-only tuning: GOGC 400 (-gcpercent) and uuid's random pool. Tool calls are recorded
// in bursts (-calls) in one append, as they are the cheapest events; an app-server
// change (-appchanges) checks the tool prefix against every owner's servers and is
// the dearest operation, so it is kept rare, as it is on a real platform.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/mcpes/mcpes/config"
	"github.com/mcpes/mcpes/connections"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/registry"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/bolt"
)

func main() {
	n := flag.Int("events", 100_000, "stop once the log holds this many events")
	dir := flag.String("data", "", "data directory to write (its mcpes.db must not exist)")
	owners := flag.Int("owners", 300, "number of owners")
	apps := flag.Int("apps", 40, "number of app servers")
	workers := flag.Int("workers", 256, "concurrent clients (more make larger group commits)")
	appChanges := flag.Int("appchanges", 200, "operations in 10,000 in which the admin changes an app server")
	calls := flag.Int("calls", 16, "most tool calls a client makes on a connection, recorded in one append")
	gcPercent := flag.Int("gcpercent", 400, "GOGC for the generator")
	seed := flag.Uint64("seed", 1, "random seed")
	indexEvery := flag.Int("indexevery", bulkIndexEvery, "bolt.Options.IndexEvery: stream index entries kept in memory between bulk writes")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "auditlog: -data DIR is required")
		os.Exit(2)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "auditlog:", err)
			os.Exit(1)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	debug.SetGCPercent(*gcPercent)
	// Generator-only tuning: event and connection ids (still the connection manager's
	// and registry's own UUIDv7s) take their random bits from a buffered pool instead
	// of one getrandom call each.
	uuid.EnableRandPool()
	if err := run(uint64(*n), *dir, *owners, *apps, *workers, *appChanges, *calls, *seed, *indexEvery); err != nil {
		fmt.Fprintln(os.Stderr, "auditlog:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// bulkIndexEvery is the generator's bolt.Options.IndexEvery.
const bulkIndexEvery = 1 << 18

// session is an upstream connection held in memory; dead servers' sessions end.
type session struct {
	done chan struct{}
	once sync.Once
	err  atomic.Value
}

func (s *session) Done() <-chan struct{} { return s.done }
func (s *session) Err() error {
	if e, ok := s.err.Load().(error); ok {
		return e
	}
	return nil
}
func (s *session) Close() error { s.once.Do(func() { close(s.done) }); return nil }
func (s *session) kill() {
	s.err.Store(errors.New("upstream exited"))
	_ = s.Close()
}

// world is the upstream side: which servers answer, and the open sessions.
type world struct {
	mu       sync.Mutex
	down     map[string]bool // by URL
	sessions []*session
}

func (w *world) isDown(url string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.down[url]
}

func (w *world) dial(_ context.Context, req connections.DialRequest) (connections.Session, error) {
	if w.isDown(req.Config.URL) {
		return nil, fmt.Errorf("dial %s: connection refused", req.Config.URL)
	}
	s := &session{done: make(chan struct{})}
	w.mu.Lock()
	w.sessions = append(w.sessions, s)
	w.mu.Unlock()
	return s, nil
}

// killOne ends a random open session (the upstream process died), dropping the
// sessions it meets that were closed already.
func (w *world) killOne(r *rand.Rand) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.sessions) > 0 {
		i := r.IntN(len(w.sessions))
		s := w.sessions[i]
		w.sessions[i] = w.sessions[len(w.sessions)-1]
		w.sessions = w.sessions[:len(w.sessions)-1]
		select {
		case <-s.done:
			continue
		default:
			s.kill()
			return
		}
	}
}

var tools = []domain.Tool{{Name: "search", Description: "search"}, {Name: "fetch", Description: "fetch"}}

func (w *world) inspect(_ context.Context, req registry.InspectRequest) domain.InspectionOutcome {
	if w.isDown(req.Config.URL) {
		return domain.InspectionOutcome{Class: domain.FailureUnreachable, Message: "connection refused"}
	}
	return domain.InspectionOutcome{OK: true, ServerName: req.Name, ServerVersion: "1.0", ProtocolVersion: "2025-11-25",
		Capabilities: domain.Capabilities{Tools: true}, Tools: tools}
}

func serverURL(scope domain.Scope, name string, gen int) string {
	return fmt.Sprintf("https://%s.example/%s/mcp?v=%d", name, scope, gen)
}

func run(target uint64, dir string, nOwners, nApps, nWorkers, appChanges, maxCalls int, seed uint64, indexEvery int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(dir, "mcpes.db")
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s exists", path)
	}
	ctx := context.Background()
	// A bulk load: no fsync, and the stream index written to the file in large steps
	// (each step rewrites a page per stream it touches, so few large ones cost far
	// less than the service's frequent small ones). The file is the same.
	st, err := bolt.Open(path, bolt.Options{NoSync: true, IndexEvery: indexEvery})
	if err != nil {
		return err
	}
	defer st.Close()
	servers, err := projections.Load(ctx, st, projections.Options{NoSnapshot: true})
	if err != nil {
		return err
	}
	log := slog.New(slog.DiscardHandler)
	w := &world{down: map[string]bool{}}
	reg, err := registry.New(st, servers, allowAll{}, registry.Options{InspectOnPut: registry.InspectSync,
		Inspector: w.inspect, Logger: log, ConflictRetries: 50})
	if err != nil {
		return err
	}
	defer reg.Close()
	mgr := connections.NewManager(st, servers, connections.Options{Dial: w.dial, Logger: log,
		IdleTimeout: 200 * time.Millisecond, IdleCheck: 50 * time.Millisecond, BackoffBase: 20 * time.Millisecond,
		BackoffMax: 200 * time.Millisecond, RefusalWindow: 5 * time.Millisecond})

	owners := make([]string, nOwners)
	for i := range owners {
		owners[i] = fmt.Sprintf("user-%04d", i)
	}
	owners = append(owners, "") // the shared repository
	no := false
	gens := sync.Map{} // scope/name -> generation of its config
	put := func(actor string, scope domain.Scope, name string, startup *bool) error {
		g, _ := gens.LoadOrStore(string(scope)+"/"+name, new(atomic.Int64))
		gen := int(g.(*atomic.Int64).Add(1))
		cfg := domain.ServerConfig{Type: domain.TransportStreamableHTTP, URL: serverURL(scope, name, gen),
			InitTimeoutMS: int64(5000 + gen%7), Startup: startup}
		_, err := reg.Put(ctx, actor, scope, name, cfg)
		return err
	}
	for i := range nApps {
		var startup *bool
		if i%10 == 9 {
			startup = &no // not for the shared repository
		}
		if err := put("admin", domain.AppScope, fmt.Sprintf("app-%02d", i), startup); err != nil {
			return err
		}
	}

	cpu0 := cpuTime()
	start := time.Now()
	var stop atomic.Bool
	var wg sync.WaitGroup
	var toolCalls atomic.Int64
	for wi := range nWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(wi)))
			for !stop.Load() {
				owner := owners[r.IntN(len(owners))]
				actor := "system"
				if owner != "" {
					actor = "owner:" + owner
				}
				repo := mgr.Repo(owner)
				name := fmt.Sprintf("app-%02d", r.IntN(nApps))
				if owner != "" && r.IntN(4) == 0 {
					name = fmt.Sprintf("own-%d", r.IntN(3))
				}
				cctx := connections.WithActor(ctx, actor)
				switch op := r.IntN(10_000); { // in ten-thousandths
				case op < 5500: // connect or reuse, and call tools
					if c, err := repo.Get(cctx, name); err == nil && r.IntN(3) == 0 {
						toolCalls.Add(int64(recordCalls(ctx, st, owner, c.Server, 1+r.IntN(maxCalls), r)))
					}
				case op < 7000:
					_ = repo.Disconnect(cctx, name)
				case op < 7600: // an owner registers or changes a private server
					if owner != "" {
						_ = put(actor, domain.UserScope(owner), fmt.Sprintf("own-%d", r.IntN(3)), nil)
					}
				case op < 7600+appChanges: // the admin changes an app server
					_ = put("admin", domain.AppScope, name, nil)
				case op < 7800:
					repo.Has(cctx, name)
				case op < 8000: // an upstream goes down (its sessions die) or comes back
					url := serverURL(domain.AppScope, name, 1)
					if v, ok := gens.Load(string(domain.AppScope) + "/" + name); ok {
						url = serverURL(domain.AppScope, name, int(v.(*atomic.Int64).Load()))
					}
					w.mu.Lock()
					w.down[url] = !w.down[url]
					w.mu.Unlock()
					if _, err := reg.Reinspect(ctx, "admin", domain.AppScope, name); err != nil {
						_, _ = reg.Inspect(ctx, domain.AppScope, name)
					}
				case op < 8200:
					w.killOne(r)
				case op < 8300: // an owner removes a private server
					if owner != "" {
						_ = reg.Remove(ctx, actor, domain.UserScope(owner), fmt.Sprintf("own-%d", r.IntN(3)))
					}
				default:
					repo.Has(cctx, name)
				}
			}
		}()
	}
	tick := time.NewTicker(200 * time.Millisecond)
	var head uint64
	for range tick.C {
		if head, _, err = st.Head(ctx); err != nil || head >= target {
			break
		}
		fmt.Fprintf(os.Stderr, "\r%d events, %.0f events/s   ", head, float64(head)/time.Since(start).Seconds())
	}
	tick.Stop()
	stop.Store(true)
	wg.Wait()
	reg.Wait()
	if cerr := mgr.Close(ctx); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	head, _, _ = st.Head(ctx)
	el := time.Since(start)
	cpu := cpuTime() - cpu0
	ss := st.Stats()
	fmt.Printf("\n%d events in %s: %.0f events/s, %.1f µs CPU/event (%d tool calls, %.1f events/commit) -> %s\n", head,
		el.Round(time.Millisecond), float64(head)/el.Seconds(), float64(cpu.Microseconds())/float64(max(head, 1)),
		toolCalls.Load(), float64(ss.Events)/float64(max(ss.Commits, 1)), path)
	// The as-of snapshots the service would have kept, for explain (after the timing).
	_, err = projections.BuildAsOf(ctx, st, config.DefaultSnapshotEvery, 0, log)
	return err
}

// recordCalls records n tool calls on one connection as the gateway's optional audit
// does, in one append (a burst of calls the store would group-commit anyway), and
// returns how many it recorded.
func recordCalls(ctx context.Context, st store.Store, owner, server string, n int, r *rand.Rand) int {
	evs := make([]events.Envelope, 0, n)
	for range n {
		outcome := "ok"
		if r.IntN(10) == 0 {
			outcome = "tool_error"
		}
		fact := domain.ToolCalled{Owner: owner, Server: server, Tool: tools[r.IntN(len(tools))].Name, Outcome: outcome,
			DurationMS: int64(r.IntN(400)), ArgsDigest: fmt.Sprintf("%016x", r.Uint64())}
		env, err := events.New(fact, events.Meta{ID: uuid.Must(uuid.NewV7()).String(), Source: "mcpes://auditlog",
			Time: time.Now(), Actor: "owner:" + owner})
		if err != nil {
			return 0
		}
		evs = append(evs, env)
	}
	if _, err := st.Append(ctx, evs[0].Subject, store.AnyVersion, evs...); err != nil {
		return 0
	}
	return n
}

// allowAll lets every URL through: the generator's servers are not dialled.
type allowAll struct{}

func (allowAll) CheckURL(context.Context, string) error { return nil }

// cpuTime is the process's user and system CPU time so far: the generator's CPU per
// event does not depend on what else the machine runs, unlike its events/s.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
