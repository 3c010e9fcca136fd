//go:build linux

// Command bench measures paynorm against a plain Caddy reverse_proxy in one
// run on one machine: `go run ./bench`.
//
// It builds ./cmd/paynorm and starts processes of that binary: the GMO
// sandbox simulator, a plain `reverse_proxy` in front of it, and one paynorm
// per store in front of it (-stores, default journal, bolt and memory). It
// then measures, side by side, (a) SearchTrade straight at the simulator,
// (b) the same call through reverse_proxy, (c) create-payment and (d)
// capture through each paynorm: maximum throughput with a closed loop (the
// stores taking turns), then latency at one fixed rate for every row (half
// the memory store's maximum), and CPU per request from /proc/<pid>/stat.
// Last, 5,000 payments are held in flight against a simulator that answers
// ExecTran after 500 ms, by a fresh paynorm per store, and the peak RSS
// (VmHWM) and the errors are reported. The targets are judged on the first
// store (the default) against the memory store; the others are printed for
// reference. Linux only (/proc).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type config struct {
	duration, fixed, warmup time.Duration
	conc, inflight          int
	delay                   time.Duration
	load                    float64
	bin, cpuprofile         string
	keep, strict, memOnly   bool
	heapprofile, stores     string
}

func main() {
	var cfg config
	flag.DurationVar(&cfg.duration, "duration", 15*time.Second, "length of each maximum-throughput phase")
	flag.DurationVar(&cfg.fixed, "fixed", 10*time.Second, "length of each fixed-rate (50% load) phase")
	flag.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "unmeasured warm-up before each maximum-throughput phase")
	flag.IntVar(&cfg.conc, "conc", 64, "concurrent workers in the maximum-throughput phases")
	flag.IntVar(&cfg.inflight, "inflight", 5000, "payments held in flight by the memory test")
	flag.DurationVar(&cfg.delay, "delay", 500*time.Millisecond, "simulator ExecTran latency during the memory test")
	flag.Float64Var(&cfg.load, "load", 0.5, "fraction of the maximum throughput for the fixed-rate phases (the target is defined at 0.5)")
	flag.StringVar(&cfg.bin, "bin", "", "use this paynorm binary instead of building ./cmd/paynorm")
	flag.StringVar(&cfg.cpuprofile, "cpuprofile", "", "write a CPU profile of the paynorm process (create phase) to this file; the other stores' go to this file with the store's name appended")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the temp dir with Caddyfiles and server logs")
	flag.StringVar(&cfg.stores, "stores", "journal,bolt,memory", "paynorm stores to measure side by side, one process each; the first is the one the targets judge, memory (no durability) is the reference")
	flag.BoolVar(&cfg.strict, "strict", false, "exit 1 when a target fails")
	flag.BoolVar(&cfg.memOnly, "memory-only", false, "run only the memory test (for profiling)")
	flag.StringVar(&cfg.heapprofile, "heapprofile", "", "write paynorm's heap profile, goroutines and memstats at the memory test's peak RSS to this file (and .goroutines.txt, .memstats.txt)")
	flag.Parse()
	// The generator shares the CPUs with the servers it measures: fewer
	// collections of its own garbage leave them more of the machine.
	debug.SetGCPercent(400)
	ok, err := run(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if !ok && cfg.strict {
		os.Exit(1)
	}
}

func nproc() int { return runtime.NumCPU() }

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// scenario is one measured request kind.
type scenario struct {
	label string
	calls int     // provider (simulator) calls per request
	front *server // the process that serves the request
	max   sample
}

// instance is one paynorm process with its own store, and the payments it
// authorized for its capture scenario.
type instance struct {
	store            string
	srv              *server
	admin            int
	o                *orders
	create, capture  *scenario
	createOp, capOp  op
	halfCreate, half *halfRun // the fixed-rate samples (create, capture)
	// journal is what a journal store did in each phase.
	journal map[string]*journalUse
}

// journalUse is what the journal store did during a phase: its fdatasyncs
// and how many of its groups were held back to fill while paynorm was
// CPU-bound, from paynorm's metrics.
type journalUse struct{ syncs, gathered, requests float64 }

// watchJournal counts what the journal did while run ran, under phase.
func (in *instance) watchJournal(phase string, run func() sample) sample {
	if in.store != "journal" {
		return run()
	}
	s0, g0, ok0 := journalCounters(in.admin)
	smp := run()
	s1, g1, ok1 := journalCounters(in.admin)
	if ok0 && ok1 {
		if in.journal == nil {
			in.journal = map[string]*journalUse{}
		}
		u := in.journal[phase]
		if u == nil {
			u = &journalUse{}
			in.journal[phase] = u
		}
		u.syncs += s1 - s0
		u.gathered += g1 - g0
		u.requests += float64(smp.n)
	}
	return smp
}

// journalCounters reads paynorm_journal_fdatasyncs_total and
// paynorm_journal_gathered_total from paynorm's admin metrics.
func journalCounters(admin int) (syncs, gathered float64, ok bool) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", admin))
	if err != nil {
		return 0, 0, false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, false
	}
	found := 0
	for _, line := range strings.Split(string(b), "\n") {
		name, val, _ := strings.Cut(line, " ")
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch name {
		case "paynorm_journal_fdatasyncs_total":
			syncs, found = v, found+1
		case "paynorm_journal_gathered_total":
			gathered, found = v, found+1
		}
	}
	return syncs, gathered, found == 2
}

// halfRun is one fixed-rate phase: every paynorm instance, the simulator
// and the proxy at the same request rate.
type halfRun struct {
	rate        float64
	direct, hop sample
	// hopCalls runs the proxy at paynorm's provider-call rate, so the
	// simulator does the same work as behind paynorm.
	hopCalls sample
	paynorm  map[string]*sample         // by store
	perRound map[string][]time.Duration // added p99 of each 1 s round, by store
}

// durable reports whether a store keeps its records across a crash.
func durable(kind string) bool { return kind != "memory" }

func run(cfg config) (bool, error) {
	began := time.Now()
	stores := strings.Split(cfg.stores, ",")
	if !slices.Contains(stores, "memory") || len(stores) < 2 {
		return false, fmt.Errorf("-stores must name memory (the reference) and at least one durable store, got %q", cfg.stores)
	}
	defaultStore := stores[0]
	nofile, err := raiseNoFile()
	if err != nil {
		return false, fmt.Errorf("raising RLIMIT_NOFILE: %v", err)
	}
	if need := uint64(2*(cfg.inflight+cfg.inflight/50) + 1024); nofile < need {
		logf("warning: RLIMIT_NOFILE is %d; the memory test needs about %d (raise the hard limit: ulimit -Hn)", nofile, need)
	}
	root, err := moduleRoot()
	if err != nil {
		return false, err
	}
	dir, err := os.MkdirTemp("", "paynorm-bench-")
	if err != nil {
		return false, err
	}
	if cfg.keep {
		logf("temp dir kept: %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	bin := cfg.bin
	if bin == "" {
		logf("building ./cmd/paynorm ...")
		if bin, err = buildPaynorm(root, dir); err != nil {
			return false, fmt.Errorf("go build ./cmd/paynorm: %v", err)
		}
	}

	simPort, err := freePort()
	if err != nil {
		return false, err
	}
	proxyPort, err := freePort()
	if err != nil {
		return false, err
	}
	global := "{\n\tadmin off\n\tauto_https off\n\tpersist_config off\n}\n"
	sim, err := startServer(bin, dir, "simulator", global+fmt.Sprintf(":%d {\n\tpaynorm_sandbox\n}\n", simPort), simPort, "/sandbox/ledger")
	if err != nil {
		return false, err
	}
	defer sim.stop()
	// Caddy keeps 32 idle upstream connections per host by default; the
	// benchmark's concurrency needs more or the proxy churns connections,
	// and its memory test as many as it holds in flight, or the burst's
	// thousands of dials overflow the simulator's listen queue.
	proxy, err := startServer(bin, dir, "reverse_proxy", global+fmt.Sprintf(
		":%d {\n\treverse_proxy 127.0.0.1:%d {\n\t\ttransport http {\n\t\t\tkeepalive_idle_conns_per_host %d\n\t\t}\n\t}\n}\n",
		proxyPort, simPort, max(1024, 2*cfg.inflight)), proxyPort, "/sandbox/ledger")
	if err != nil {
		return false, err
	}
	defer proxy.stop()
	// No rate_limit line: paynorm's limiter is off, as the proxy has none.
	// startPaynorm starts a paynorm named name on free ports, with a store
	// of kind in a file of its own; it returns the server and its admin
	// port.
	startPaynorm := func(name, kind string) (*server, int, error) {
		port, err := freePort()
		if err != nil {
			return nil, 0, err
		}
		admin, err := freePort()
		if err != nil {
			return nil, 0, err
		}
		conf := fmt.Sprintf("{\n\tadmin 127.0.0.1:%d\n\tauto_https off\n\tpersist_config off\n}\n:%d {\n\tpaynorm {\n\t\taccount gmo {\n\t\t\ttype gmo\n\t\t\tthree_d_secure off\n\t\t\tendpoint http://127.0.0.1:%d\n\t\t\tshop_id %s\n\t\t\tshop_pass %s\n\t\t\ttimeout 10s\n\t\t}\n\t\tstore %s\n\t}\n}\n",
			admin, port, simPort, shopID, shopPass, storeLine(kind, filepath.Join(dir, name+".store")))
		srv, err := startServer(bin, dir, name, conf, port, "/v1/health")
		return srv, admin, err
	}
	client := newClient(1024, 1024)
	servers := []*server{sim, proxy}
	run := "B" + strconv.FormatInt(time.Now().Unix()%100000, 10)
	var pns []*instance
	byStore := map[string]*instance{}
	for _, kind := range stores {
		srv, admin, err := startPaynorm("paynorm-"+kind, kind)
		if err != nil {
			return false, err
		}
		defer srv.stop()
		in := &instance{store: kind, srv: srv, admin: admin, o: &orders{run: run + kind[:1] + "-"}}
		in.create = &scenario{label: fmt.Sprintf("(c) paynorm create, %s store", kind), calls: 2, front: srv}
		in.capture = &scenario{label: fmt.Sprintf("(d) paynorm capture, %s store", kind), calls: 2, front: srv}
		in.createOp = createPayment(client, srv.base(), in.o)
		in.capOp = capturePayment(client, srv.base(), in.o)
		pns = append(pns, in)
		byStore[kind] = in
		servers = append(servers, srv)
	}
	ref := byStore["memory"]

	const seed = "BENCHSEED1"
	if err := seedOrder(client, sim.base(), seed); err != nil {
		return false, fmt.Errorf("seeding the simulator: %v", err)
	}
	direct := &scenario{label: "(a) simulator direct: SearchTrade", calls: 1, front: sim}
	hop := &scenario{label: "(b) reverse_proxy hop: SearchTrade", calls: 1, front: proxy}
	directOp, hopOp := searchTrade(client, sim.base(), seed), searchTrade(client, proxy.base(), seed)

	measure := func(do op, f func(op) sample) sample {
		before := cpuAll(servers)
		s := f(do)
		s.cpu = cpuDelta(before, cpuAll(servers))
		return s
	}
	maxPhase := func(sc *scenario, do op, prof *profileFetch) {
		logf("max throughput: %s, %d workers, %s", sc.label, cfg.conc, cfg.duration)
		closedLoop(cfg.conc, cfg.warmup, do)
		sc.max = measure(do, func(do op) sample { return closedLoop(cfg.conc, cfg.duration, do) })
		if prof != nil {
			prof.wait()
		}
		logf("  %.0f req/s, p50 %s, p99 %s, %d errors", sc.max.rate(), ms(sc.max.pct(50)), ms(sc.max.pct(99)), sc.max.errs)
	}
	if !cfg.memOnly {
		// Maximum throughput, closed loop.
		maxPhase(direct, directOp, nil)
		maxPhase(hop, hopOp, nil)
		// The stores take turns in slices, so a drift of the machine's speed
		// (another tenant, the page cache, a warming CPU) hits them alike.
		const turns = 3
		slice := cfg.duration / turns
		for _, capture := range []bool{false, true} {
			if capture {
				for _, in := range pns {
					// Enough authorized payments for the whole phase.
					if err := topUp(in.o, in.create, in.createOp, cfg.conc, 30000); err != nil {
						return false, err
					}
				}
			}
			for turn := range turns {
				for _, in := range pns {
					sc, do := in.create, in.createOp
					if capture {
						sc, do = in.capture, in.capOp
					}
					if turn == 0 {
						logf("max throughput: %s, %d workers, %d turns of %s", sc.label, cfg.conc, turns, slice)
						closedLoop(cfg.conc, cfg.warmup, do)
					}
					var prof *profileFetch
					if !capture && turn == 0 && cfg.cpuprofile != "" {
						path := cfg.cpuprofile
						if in.store != defaultStore {
							path += "." + in.store // one profile per store, to compare
						}
						prof = fetchProfile(in.admin, slice-500*time.Millisecond, path)
					}
					phase := "create, maximum"
					if capture {
						phase = "capture, maximum"
					}
					sc.max.merge(in.watchJournal(phase, func() sample {
						return measure(do, func(do op) sample { return closedLoop(cfg.conc, slice, do) })
					}))
					if prof != nil {
						prof.wait()
					}
				}
			}
			for _, in := range pns {
				sc := in.create
				if capture {
					sc = in.capture
				}
				sc.max.sort()
				logf("  %s: %.0f req/s, p50 %s, p99 %s, %d errors", sc.label, sc.max.rate(), ms(sc.max.pct(50)), ms(sc.max.pct(99)), sc.max.errs)
			}
		}
		// Latency at a fixed rate: half of the memory store's maximum, the
		// same for every store, the simulator and the proxy.
		for _, capture := range []bool{false, true} {
			sc, calls := ref.create, 2
			if capture {
				sc = ref.capture
			}
			h := &halfRun{rate: sc.max.rate() * cfg.load, paynorm: map[string]*sample{}, perRound: map[string][]time.Duration{}}
			if h.rate < 1 {
				return false, fmt.Errorf("%s reached no throughput: %v", sc.label, sc.max.firstErr)
			}
			for _, in := range pns {
				h.paynorm[in.store] = &sample{}
				if capture {
					in.half = h
					if err := topUp(in.o, in.create, in.createOp, cfg.conc, int(h.rate*cfg.fixed.Seconds()*1.2)); err != nil {
						return false, err
					}
				} else {
					in.halfCreate = h
				}
			}
			what := "create"
			if capture {
				what = "capture"
			}
			logf("fixed rate %.0f req/s (%.0f%% of the memory store's %s max), %s each: simulator, reverse_proxy, paynorm on %s", h.rate, 100*cfg.load, what, cfg.fixed, cfg.stores)
			// One-second slices in turn, so a burst of load from elsewhere on
			// the machine hits every row alike instead of one whole phase.
			rounds := max(1, int(cfg.fixed/time.Second))
			slice := cfg.fixed / time.Duration(rounds)
			for range rounds {
				d := measure(directOp, func(do op) sample { return fixedRate(h.rate, slice, do) })
				p := measure(hopOp, func(do op) sample { return fixedRate(h.rate, slice, do) })
				for _, in := range pns {
					do := in.createOp
					if capture {
						do = in.capOp
					}
					n := in.watchJournal(what+", fixed rate", func() sample {
						return measure(do, func(do op) sample { return fixedRate(h.rate, slice, do) })
					})
					h.perRound[in.store] = append(h.perRound[in.store], addedP99(n, p, d, calls))
					h.paynorm[in.store].merge(n)
				}
				pc := measure(hopOp, func(do op) sample { return fixedRate(h.rate*float64(calls), slice, do) })
				h.direct.merge(d)
				h.hop.merge(p)
				h.hopCalls.merge(pc)
			}
			h.hopCalls.sort()
			h.direct.sort()
			h.hop.sort()
			for _, s := range h.paynorm {
				s.sort()
			}
		}
	}

	// 2% more than the target are sent: the generator needs longer than the
	// simulator's delay to dispatch thousands of requests on a shared CPU,
	// so the first answers arrive before the last requests leave.
	sent := cfg.inflight + cfg.inflight/50
	// Each store's memory test gets a paynorm of its own, a fresh process
	// with a fresh store, alone: its peak is then what the payments in
	// flight cost, not what the earlier phases left behind.
	for _, in := range pns {
		in.srv.stop()
	}
	memStores := stores
	if cfg.memOnly {
		memStores = stores[:1]
	}
	mems := map[string]memResult{}
	for _, kind := range memStores {
		logf("memory test: %d create-payments sent at once for %d in flight, simulator ExecTran answers after %s, %s store", sent, cfg.inflight, cfg.delay, kind)
		pnMem, memAdmin, err := startPaynorm("paynorm-memtest-"+kind, kind)
		if err != nil {
			return false, err
		}
		memClient := newClient(sent+16, 0)
		memOrders := &orders{run: run + "x" + kind[:1] + "-"} // apart from every instance's orders
		heap := ""
		if kind == defaultStore {
			heap = cfg.heapprofile
		}
		m, err := memoryTest(pnMem, sim, get(memClient, pnMem.base()+"/v1/health"), createPayment(memClient, pnMem.base(), memOrders), "ExecTran", sent, cfg.delay, memAdmin, heap)
		memClient.CloseIdleConnections()
		pnMem.stop()
		if err != nil {
			return false, err
		}
		mems[kind] = m
	}
	mem := mems[defaultStore]
	// The same load through the plain reverse_proxy: what Caddy itself needs
	// to hold that many slow requests.
	logf("memory baseline: %d SearchTrades sent at once through reverse_proxy, simulator answers after %s", sent, cfg.delay)
	proxyClient := newClient(sent+16, 0)
	memProxy, err := memoryTest(proxy, sim, searchTrade(proxyClient, proxy.base(), seed), searchTrade(proxyClient, proxy.base(), seed), "SearchTrade", sent, cfg.delay, 0, "")
	if err != nil {
		return false, err
	}
	proxyClient.CloseIdleConnections()
	if cfg.memOnly {
		fmt.Printf("paynorm (%s store): peak in flight %d, errors %d (%v), wall %s, p50 %s, p99 %s, RSS before %.1f MB, VmHWM %.1f MB\n", defaultStore, mem.peak, mem.s.errs, mem.s.firstErr,
			mem.s.elapsed.Round(time.Millisecond), ms(mem.s.pct(50)), ms(mem.s.pct(99)), float64(mem.rssBefore)/1024, float64(mem.hwm)/1024)
		fmt.Printf("reverse_proxy: peak in flight %d, errors %d (%v), wall %s, RSS before %.1f MB, VmHWM %.1f MB\n", memProxy.peak, memProxy.s.errs, memProxy.s.firstErr,
			memProxy.s.elapsed.Round(time.Millisecond), float64(memProxy.rssBefore)/1024, float64(memProxy.hwm)/1024)
		return true, nil
	}

	// The disk's sync latency bounds what a durable store can do.
	syncs, err := syncLatency(dir, 200, false)
	if err != nil {
		logf("warning: timing fdatasync: %v", err)
	}
	overs, err := syncLatency(dir, 200, true)
	if err != nil {
		logf("warning: timing fdatasync: %v", err)
	}

	// Report.
	fmt.Printf("\npaynorm benchmark, %s\nmachine: %s\nGo %s, GOMAXPROCS per process %d; generator and all servers share these CPUs.\n",
		time.Now().Format("2006-01-02 15:04"), machine(), runtime.Version(), runtime.GOMAXPROCS(0))
	fmt.Printf("RLIMIT_NOFILE raised to %d (inherited by the servers). paynorm stores: %s (one process each; %s is the default).\n", nofile, cfg.stores, defaultStore)
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		fmt.Printf("GOMEMLIMIT=%s from the environment (the servers inherit it).\n", v)
	} else {
		fmt.Printf("GOMEMLIMIT unset here: the servers run with GOMEMLIMIT=%s (the binary's default; a cgroup limit would replace it).\n", binaryEnv(bin, "GOMEMLIMIT"))
	}
	if syncs.n > 0 {
		fmt.Printf("Disk under the temp dir, idle: 4 KiB append + fdatasync p50 %s, p99 %s; 4 KiB into preallocated space + fdatasync p50 %s, p99 %s.\n"+
			"A journal group does one fdatasync (into preallocated space); a bolt commit two.\n", ms(syncs.pct(50)), ms(syncs.pct(99)), ms(overs.pct(50)), ms(overs.pct(99)))
	}
	fmt.Println()
	fmt.Printf("Maximum throughput (closed loop, %d workers, %s per scenario)\n", cfg.conc, cfg.duration)
	header()
	row(direct.label, direct.calls, direct.max, sim, sim)
	row(hop.label, hop.calls, hop.max, proxy, sim)
	for _, in := range pns {
		row(in.create.label, 2, in.create.max, in.srv, sim)
	}
	for _, in := range pns {
		row(in.capture.label, 2, in.capture.max, in.srv, sim)
	}
	fmt.Printf("\nAt %.0f%% of the memory store's maximum, the same rate for every row (open loop, %s per row in 1 s turns; latency from the scheduled send time)\n", 100*cfg.load, cfg.fixed)
	header()
	for _, capture := range []bool{false, true} {
		h := ref.halfCreate
		if capture {
			h = ref.half
		}
		fmt.Printf("  at %.0f req/s:\n", h.rate)
		row(direct.label, 1, h.direct, sim, sim)
		row(hop.label, 1, h.hop, proxy, sim)
		for _, in := range pns {
			sc := in.create
			if capture {
				sc = in.capture
			}
			row(sc.label, 2, *h.paynorm[in.store], in.srv, sim)
		}
		row("(b) reverse_proxy at 2x: same calls/s", 1, h.hopCalls, proxy, sim)
	}
	for _, in := range pns {
		if len(in.journal) == 0 {
			continue
		}
		fmt.Printf("\nThe journal's fdatasyncs (paynorm_journal_fdatasyncs_total; held back: groups that waited to fill while paynorm was CPU-bound)\n")
		for _, phase := range []string{"create, maximum", "capture, maximum", "create, fixed rate", "capture, fixed rate"} {
			if u := in.journal[phase]; u != nil && u.requests > 0 {
				fmt.Printf("  %-20s %6.3f per request, %5.1f%% of them held back\n", phase, u.syncs/u.requests, 100*u.gathered/max(1, u.syncs))
			}
		}
	}
	fmt.Printf("\nMemory: %d create-payments sent at once for a target of %d in flight (simulator ExecTran delayed %s), a fresh paynorm process and store each\n", sent, cfg.inflight, cfg.delay)
	for _, kind := range memStores {
		m := mems[kind]
		fmt.Printf("  %-8s peak in flight %d, errors %d, wall %s, p50 %s, p99 %s; RSS before %.1f MB, peak VmHWM %.1f MB (%s); sampled peaks: anonymous %.1f MB, file-backed %.1f MB\n",
			kind, m.peak, m.s.errs, m.s.elapsed.Round(time.Millisecond), ms(m.s.pct(50)), ms(m.s.pct(99)),
			float64(m.rssBefore)/1024, float64(m.hwm)/1024, hwmScope(m), float64(m.anonPeak)/1024, float64(m.filePeak)/1024)
		if m.s.firstErr != nil {
			fmt.Printf("    first error: %v\n", m.s.firstErr)
		}
	}
	fmt.Printf("  baseline, plain reverse_proxy with %d SearchTrades sent at once (simulator delayed %s): peak in flight %d, errors %d, RSS before %.1f MB, peak VmHWM %.1f MB (%s)\n",
		sent, cfg.delay, memProxy.peak, memProxy.s.errs, float64(memProxy.rssBefore)/1024, float64(memProxy.hwm)/1024, hwmScope(memProxy))

	fmt.Printf("\nTargets (PASS/FAIL for the default %s store; ref: the other stores, for comparison)\n", defaultStore)
	pass := true
	check := func(kind string, ok bool, format string, args ...any) {
		verdict := "PASS"
		if !ok {
			verdict = "FAIL"
		}
		if kind != defaultStore {
			verdict = "ref "
		} else if !ok {
			pass = false
		}
		fmt.Printf("  %s  %s\n", verdict, fmt.Sprintf(format, args...))
	}
	for _, in := range pns {
		if !durable(in.store) {
			continue
		}
		for _, capture := range []bool{false, true} {
			sc, rsc, h := in.create, ref.create, in.halfCreate
			if capture {
				sc, rsc, h = in.capture, ref.capture, in.half
			}
			got, base := h.paynorm[in.store].pct(50), h.paynorm["memory"].pct(50)
			check(in.store, got <= base+1500*time.Microsecond && h.paynorm[in.store].errs == 0,
				"%s at %.0f req/s: p50 %s <= memory store p50 %s + 1.5 ms (adds %s), %d errors", sc.label, h.rate, ms(got), ms(base), ms(got-base), h.paynorm[in.store].errs)
			ratio := sc.max.rate() / rsc.max.rate()
			check(in.store, ratio >= 0.9 && sc.max.errs == 0, "%s max throughput %.0f req/s = %.2f x the memory store's %.0f (target >= 0.90), %d errors",
				sc.label, sc.max.rate(), ratio, rsc.max.rate(), sc.max.errs)
		}
	}
	for _, capture := range []bool{false, true} {
		in := byStore[defaultStore]
		sc, h := in.create, in.halfCreate
		if capture {
			sc, h = in.capture, in.half
		}
		perCall := sc.max.rate() * float64(sc.calls)
		ratio := perCall / hop.max.rate()
		check(defaultStore, ratio >= 0.7, "%s: %.0f provider calls/s = %.2f x reverse_proxy's %.0f req/s (target >= 0.70)",
			sc.label, perCall, ratio, hop.max.rate())
		// paynorm's extra provider calls are charged at the simulator's
		// median; what remains is paynorm's own cost at p99.
		s := *h.paynorm[defaultStore]
		added := addedP99(s, h.hop, h.direct, sc.calls)
		rounds := slices.Clone(h.perRound[defaultStore])
		slices.Sort(rounds)
		check(defaultStore, added < 2*time.Millisecond && s.errs == 0, "%s at %.0f req/s (%.0f%% load): added p99 %s = p99 %s - proxy p99 %s - %d x simulator p50 %s (target < 2 ms), %d errors; median of the %d one-second rounds %s",
			sc.label, h.rate, 100*cfg.load, ms(added), ms(s.pct(99)), ms(h.hop.pct(99)), sc.calls-1, ms(h.direct.pct(50)), s.errs,
			len(rounds), ms(rounds[len(rounds)/2]))
		fmt.Printf("        for reference, the proxy at paynorm's provider-call rate (%.0f req/s): p99 %s, so paynorm p99 - that = %s\n",
			h.rate*float64(sc.calls), ms(h.hopCalls.pct(99)), ms(s.pct(99)-h.hopCalls.pct(99)))
	}
	for _, kind := range memStores {
		m := mems[kind]
		check(kind, m.peak >= cfg.inflight && m.s.errs == 0 && m.hwm < 300*1024,
			"%d in flight (peak %d), %s store: %d errors, paynorm peak RSS %.1f MB (target 0 errors, < 300 MB)",
			cfg.inflight, m.peak, kind, m.s.errs, float64(m.hwm)/1024)
	}
	fmt.Printf("\nTotal run time %s.\n", time.Since(began).Round(time.Second))
	return pass, nil
}

// addedP99 is paynorm's own share of its p99: its p99 minus the proxy hop's
// p99, minus the simulator's median for each provider call beyond the one
// the proxy also makes.
func addedP99(paynorm, hop, direct sample, calls int) time.Duration {
	return paynorm.pct(99) - hop.pct(99) - time.Duration(calls-1)*direct.pct(50)
}

func header() {
	fmt.Printf("  %-40s %5s %9s %9s %9s %9s %9s %7s %12s %12s\n", "scenario", "calls", "req/s", "calls/s", "p50", "p99", "p99.9", "errors", "CPU/req", "sim CPU/req")
}

// row prints one scenario; CPU/req is the serving process's CPU time per
// request, sim CPU/req the simulator's share.
func row(label string, calls int, s sample, front, sim *server) {
	perReq := func(name string) string {
		if s.n == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f us", float64(s.cpu[name].Microseconds())/float64(s.n))
	}
	simCol := perReq(sim.name)
	if front == sim {
		simCol = "(same)"
	}
	fmt.Printf("  %-40s %5d %9.0f %9.0f %9s %9s %9s %7d %12s %12s\n", label, calls, s.rate(), s.rate()*float64(calls),
		ms(s.pct(50)), ms(s.pct(99)), ms(s.pct(99.9)), s.errs, perReq(front.name), simCol)
	if s.firstErr != nil {
		fmt.Printf("    first error: %v\n", s.firstErr)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

func cpuAll(servers []*server) map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, s := range servers {
		t, err := cpuTime(s.pid())
		if err != nil {
			logf("warning: %v", err)
		}
		out[s.name] = t
	}
	return out
}

func cpuDelta(before, after map[string]time.Duration) map[string]time.Duration {
	out := map[string]time.Duration{}
	for k, v := range after {
		out[k] = v - before[k]
	}
	return out
}

// topUp creates authorized payments through paynorm (unmeasured) until at
// least n are waiting to be captured.
func topUp(o *orders, create *scenario, do op, conc, n int) error {
	need := n - o.ready()
	if need <= 0 {
		return nil
	}
	logf("preparing %d more authorized payments for the capture phases", need)
	var left atomic.Int64
	left.Store(int64(need))
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if err := do(context.Background()); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("preparing payments via %s: %v", create.label, firstErr)
	}
	return nil
}

type memResult struct {
	s              sample
	peak           int
	rssBefore, hwm int64
	hwmReset       bool // VmHWM was reset before the test; else it covers the whole run
	// The largest anonymous (heap, stacks) and file-backed (binary, mapped
	// store) parts of the RSS, sampled every 50 ms.
	anonPeak, filePeak int64
}

// memoryTest holds n requests in flight at once through front: the
// simulator delays each call of api, so every request waits inside front
// with its inbound and outbound connections open.
//
// warm runs n times at once first, so the generator holds n open keep-alive
// connections and the burst does not dial: thousands of dials at once slow
// the generator's dispatch and overflow listen queues.
func memoryTest(front, sim *server, warm, do op, api string, n int, delay time.Duration, adminPort int, heapprofile string) (memResult, error) {
	var res memResult
	var warmErrs atomic.Int64
	var wwg sync.WaitGroup
	for range n {
		wwg.Go(func() {
			if warm(context.Background()) != nil {
				warmErrs.Add(1)
			}
		})
	}
	wwg.Wait()
	if e := warmErrs.Load(); e > 0 {
		logf("warning: %d of %d warm-up requests to %s failed", e, n, front.name)
	}
	fault := fmt.Sprintf(`{"api":%q,"kind":"delay","delay_ms":%d,"count":%d}`, api, delay.Milliseconds(), n)
	resp, err := http.Post(sim.base()+"/sandbox/faults", "application/json", strings.NewReader(fault))
	if err != nil {
		return res, err
	}
	resp.Body.Close()
	defer func() {
		req, _ := http.NewRequest(http.MethodDelete, sim.base()+"/sandbox/faults", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	res.rssBefore, _ = statusKB(front.pid(), "VmRSS")
	// The peak is this test's own: earlier phases may have raised VmHWM.
	res.hwmReset = resetPeakRSS(front.pid()) == nil
	var rec recorder
	var inflight, peak atomic.Int64
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-gate
			t0 := time.Now()
			if cur := inflight.Add(1); cur > peak.Load() {
				for p := peak.Load(); cur > p && !peak.CompareAndSwap(p, cur); p = peak.Load() {
				}
			}
			err := do(context.Background())
			inflight.Add(-1)
			rec.add(time.Since(t0), err)
		})
	}
	// Every 50 ms: the largest anonymous and file-backed RSS, and with
	// heapprofile, paynorm's profiles retaken at each new high of its RSS,
	// so the files describe the peak, not a moment of the ramp.
	sampled := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(sampled)
		var best int64
		for {
			if v, err := statusKB(front.pid(), "RssAnon"); err == nil {
				res.anonPeak = max(res.anonPeak, v)
			}
			if v, err := statusKB(front.pid(), "RssFile"); err == nil {
				res.filePeak = max(res.filePeak, v)
			}
			if rss, err := statusKB(front.pid(), "VmRSS"); heapprofile != "" && err == nil && rss >= best+best/20 {
				best = rss
				logf("heap profile at RSS %.1f MB", float64(rss)/1024)
				saveProfile(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap", adminPort), heapprofile)
				saveProfile(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/goroutine?debug=1", adminPort), heapprofile+".goroutines.txt")
				saveProfile(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap?debug=1", adminPort), heapprofile+".memstats.txt")
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	close(gate)
	wg.Wait()
	close(stopSampling)
	<-sampled
	res.s = rec.sample(time.Since(start))
	res.peak = int(peak.Load())
	res.hwm, err = statusKB(front.pid(), "VmHWM")
	return res, err
}

// hwmScope says what the reported peak RSS covers.
func hwmScope(m memResult) string {
	if m.hwmReset {
		return "during this test"
	}
	return "whole run: the peak could not be reset"
}

// profileFetch pulls a CPU profile from paynorm's admin endpoint while a
// phase runs.
type profileFetch struct{ done chan struct{} }

func (p *profileFetch) wait() { <-p.done }

func fetchProfile(adminPort int, d time.Duration, path string) *profileFetch {
	p := &profileFetch{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		url := fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", adminPort, max(1, int(d.Seconds())))
		resp, err := http.Get(url)
		if err != nil {
			logf("cpuprofile: %v", err)
			return
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		if _, err := io.Copy(&buf, resp.Body); err != nil || resp.StatusCode != http.StatusOK {
			logf("cpuprofile: HTTP %d %v", resp.StatusCode, err)
			return
		}
		abs, _ := filepath.Abs(path)
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			logf("cpuprofile: %v", err)
			return
		}
		logf("cpuprofile of paynorm written to %s (go tool pprof %s)", abs, abs)
	}()
	return p
}

// saveProfile stores one pprof answer of paynorm's admin endpoint.
func saveProfile(url, path string) {
	resp, err := http.Get(url)
	if err != nil {
		logf("profile: %v", err)
		return
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		logf("profile: HTTP %d %v", resp.StatusCode, err)
		return
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		logf("profile: %v", err)
		return
	}
	abs, _ := filepath.Abs(path)
	logf("profile written to %s", abs)
}

// storeLine is the store directive of paynorm's Caddyfile: the store's
// file lives in the run's temp dir so runs never share records.
func storeLine(kind, path string) string {
	if kind == "memory" {
		return "memory"
	}
	return kind + " " + path
}
