// Package bulk is the benchmark suite "bulk" (issue 5, figure 2): how long
// until BIRD has every route of a host's table, at two table sizes, for
// virtbgp from a cold start and from a mapping reload that adds the routes,
// beside ExaBGP fed the same routes as announce lines, on the same BIRD
// session (package rig).
package bulk

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/virtbgp/virtbgp/bench"
	"github.com/virtbgp/virtbgp/bench/rig"
)

func init() { bench.Register(&suite{}) }

type suite struct {
	sizes  string
	ways   string
	before string
	perVM  int
	runs   int
}

func (*suite) Name() string  { return "bulk" }
func (*suite) Title() string { return "Bulk: a whole table reaching BIRD (issue 5, figure 2)" }
func (*suite) Order() int    { return 20 }

func (s *suite) Flags(fs *flag.FlagSet) {
	fs.StringVar(&s.sizes, "bulk.sizes", "1000,10000", "table sizes (routes), comma-separated, each a multiple of -bulk.per-vm")
	fs.StringVar(&s.ways, "bulk.ways", "cold,reload,exabgp,floor", "ways to measure, comma-separated: cold (virtbgp cold start), reload (virtbgp SIGHUP reload), exabgp (ExaBGP lines), floor (encoded UPDATEs in one write)")
	fs.StringVar(&s.before, "bulk.before", "8437287", "git revision of virtbgp to measure beside the working tree (cold start and reload); the default is the tree before issue 5's profiling fixes; empty: none")
	fs.IntVar(&s.perVM, "bulk.per-vm", 10, "service IPs per domain")
	fs.IntVar(&s.runs, "bulk.runs", 5, "runs per size and way (medians are reported)")
}

const target = 300 * time.Millisecond

// Kinds of ways of getting a table to BIRD (the -bulk.ways names).
const (
	kindCold   = "cold"
	kindReload = "reload"
	kindExa    = "exabgp"
	kindFloor  = "floor"
)

var kindNames = map[string]string{
	kindCold:   "virtbgp cold start",
	kindReload: "virtbgp reload",
	kindExa:    "ExaBGP lines",
	kindFloor:  "floor: encoded UPDATEs, one write",
}

// way is one way measured: a kind, and for virtbgp the binary (empty: the
// working tree's, the lab's).
type way struct {
	kind, name string
	bin, rev   string // an earlier revision's virtbgp
}

func (w way) current() bool { return (w.kind == kindCold || w.kind == kindReload) && w.bin == "" }

// result is one run: when the work began (t0; for a cold start, BIRD's
// session up), the first and the last arrival, and for a cold start how
// long from the process start to the session up.
type result struct {
	way           way
	size          int
	t0            time.Time
	first, last   time.Time
	sessionUpFrom time.Duration // process start -> session up (cold start)
	// CPU time over the measurement: of the speaker (reload: virtbgp;
	// ExaBGP; -1 where not measured) and of BIRD.
	speakerCPU, birdCPU time.Duration
}

// cpuMeter measures the CPU time of a speaker process and of BIRD from
// start to stop.
type cpuMeter struct {
	speaker, bird int
	s0, b0        time.Duration
}

func startCPU(speaker, bird int) (*cpuMeter, error) {
	m := &cpuMeter{speaker: speaker, bird: bird}
	var err error
	if speaker > 0 {
		if m.s0, err = bench.CPUTime([]int{speaker}); err != nil {
			return nil, err
		}
	}
	m.b0, err = bench.CPUTime([]int{bird})
	return m, err
}

// stop stores the CPU time since start in res.
func (m *cpuMeter) stop(res *result) error {
	res.speakerCPU = -1
	if m.speaker > 0 {
		s1, err := bench.CPUTime([]int{m.speaker})
		if err != nil {
			return err
		}
		res.speakerCPU = s1 - m.s0
	}
	b1, err := bench.CPUTime([]int{m.bird})
	res.birdCPU = b1 - m.b0
	return err
}

func (r result) took() time.Duration { return r.last.Sub(r.t0) }

func (s *suite) Run(ctx context.Context, env *bench.Env) (*bench.Section, error) {
	var sizes []int
	for _, f := range strings.Split(s.sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < s.perVM || n%s.perVM != 0 || n/s.perVM > 62500 {
			return nil, fmt.Errorf("-bulk.sizes: %q is not a multiple of %d routes (at most 62500 domains)", f, s.perVM)
		}
		sizes = append(sizes, n)
	}
	var ways []way
	for _, f := range strings.Split(s.ways, ",") {
		k := strings.TrimSpace(f)
		name, ok := kindNames[k]
		if !ok {
			return nil, fmt.Errorf("-bulk.ways: unknown way %q (cold, reload, exabgp, floor)", f)
		}
		ways = append(ways, way{kind: k, name: name})
	}
	if s.perVM < 1 || s.perVM > 250 || s.runs < 1 {
		return nil, fmt.Errorf("-bulk.per-vm must be 1..250, -bulk.runs at least 1")
	}
	r, err := rig.Up(ctx, env, rig.Options{})
	if err != nil {
		return nil, err
	}
	defer r.Down()
	if s.before != "" {
		bin, rev, err := bench.BuildVirtbgp(ctx, env, s.before, r.Dir)
		if err != nil {
			return nil, err
		}
		for _, w := range slices.Clone(ways) {
			if w.kind == kindCold || w.kind == kindReload {
				ways = append(ways, way{kind: w.kind, name: w.name + ", before (" + rev + ")", bin: bin, rev: rev})
			}
		}
		rank := map[string]int{kindCold: 0, kindReload: 1, kindExa: 2, kindFloor: 3}
		slices.SortStableFunc(ways, func(a, b way) int { return rank[a.kind] - rank[b.kind] })
	}
	largest := slices.Max(sizes)
	if err := r.RunDomains(largest / s.perVM); err != nil {
		return nil, err
	}
	loadStart := bench.Load()
	var results []result
	// The last reload of the largest table runs with a CPU profile.
	profile := filepath.Join(r.Dir, "reload.pprof")
	var profiled bool
	for _, size := range sizes {
		routes := rig.Routes(size/s.perVM, s.perVM)
		for run := 1; run <= s.runs; run++ {
			env.Log.Info("bulk", "size", size, "run", run)
			for _, way := range ways {
				prof := ""
				if way.kind == kindReload && way.bin == "" && run == s.runs && size == largest {
					prof, profiled = profile, true
				}
				res, err := s.once(ctx, r, way, routes, prof)
				for try := 2; errors.Is(err, rig.ErrLost) && try <= 3; try++ {
					env.Log.Warn("bulk: the route monitor lost events; measuring again", "way", way.name, "size", size, "try", try)
					// A failed virtbgp measurement leaves virtbgp running (the
					// floor and ExaBGP clean up after themselves).
					if err = r.StopVirtbgp(ctx); err == nil {
						res, err = s.once(ctx, r, way, routes, prof)
					}
				}
				if err != nil {
					return nil, fmt.Errorf("%s, %d routes, run %d: %w", way.name, size, run, err)
				}
				res.size = size
				env.Log.Info("bulk", "way", way.name, "size", size, "took", res.took())
				results = append(results, res)
				// Let the route monitor and BIRD finish with the
				// withdrawals before the next way.
				time.Sleep(500 * time.Millisecond)
			}
		}
	}
	loadEnd := bench.Load()
	var shares []bench.Share
	var total time.Duration
	if profiled {
		if shares, total, err = bench.ProfileShares(ctx, profile, reloadBuckets); err != nil {
			return nil, err
		}
	}
	section := s.report(sizes, ways, results, loadStart, loadEnd)
	if profiled {
		section.Markdown += profileTable(largest, shares, total)
	}
	return section, nil
}

// reloadBuckets are where a reload's CPU goes, by the functions that own
// the work.
var reloadBuckets = []bench.Bucket{
	{Name: "mapping parse (yaml.v3, in parallel chunks)", Func: "github.com/virtbgp/virtbgp/mapping.parseChunks.func1"},
	{Name: "reconciler: diff, paths for GoBGP, AddPath calls", Func: "github.com/virtbgp/virtbgp/internal/reconcile.(*Reconciler).Run"},
	{Name: "GoBGP server: taking each path (RIB, best path, export policy)", Func: "github.com/osrg/gobgp/v3/pkg/server.(*BgpServer).Serve"},
	{Name: "GoBGP session: encoding and writing each UPDATE", Func: "github.com/osrg/gobgp/v3/pkg/server.(*fsmHandler).sendMessageloop"},
	{Name: "Go garbage collector (background marking)", Func: "runtime.gcBgMarkWorker"},
}

func profileTable(size int, shares []bench.Share, total time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, `
Where virtbgp's CPU goes in a reload of %d routes: the last reload above ran
with `+"`VIRTBGP_CPUPROFILE`"+` (the profile covers the whole process: its start with
an empty mapping and its stop add a little), read with `+"`go tool pprof -top -cum`"+`:

| part (function) | CPU | share |
|---|---:|---:|
`, size)
	var sum time.Duration
	for _, sh := range shares {
		sum += sh.CPU
		fmt.Fprintf(&b, "| %s (`%s`) | %s | %.0f %% |\n", sh.Name, sh.Func[strings.LastIndexByte(sh.Func, '/')+1:], sec(sh.CPU), pct(sh.CPU, total))
	}
	fmt.Fprintf(&b, "| the rest (start, stop, libvirt, signals, allocation outside the parts) | %s | %.0f %% |\n", sec(max(total-sum, 0)), pct(max(total-sum, 0), total))
	fmt.Fprintf(&b, "| **total** | %s | |\n", sec(total))
	return b.String()
}

func pct(d, total time.Duration) float64 {
	if total <= 0 {
		return 0
	}
	return 100 * float64(d) / float64(total)
}

// emptyMapping names a domain that does not exist: virtbgp runs with no
// route.
const emptyMapping = "version: 1\nvms:\n  nobody:\n    ips: [192.0.2.254]\n"

// once measures one way; a reload with a profile path runs virtbgp with a
// CPU profile written there. Each way leaves BIRD's table empty.
func (s *suite) once(ctx context.Context, r *rig.Rig, way way, routes [][]rig.Route, profile string) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	m := measure{r: r, res: result{way: way}, flat: rig.Flat(routes), mapping: filepath.Join(r.Dir, "mapping.yaml")}
	m.want = rig.Prefixes(m.flat)
	var err error
	switch way.kind {
	case kindCold:
		err = m.cold(ctx, routes)
	case kindReload:
		err = m.reload(ctx, routes, profile)
	case kindFloor:
		err = m.floor(ctx)
	default:
		err = m.exabgp(ctx)
	}
	return m.res, err
}

// measure is one measurement in progress.
type measure struct {
	r       *rig.Rig
	res     result
	flat    []rig.Route
	want    []netip.Prefix
	mapping string
	from    int // the route monitor's index at the start
	cpu     *cpuMeter
}

// begin notes where the route monitor stands and starts the CPU meter.
func (m *measure) begin(speakerPID int) error {
	m.from = m.r.Mon.Len()
	var err error
	m.cpu, err = startCPU(speakerPID, m.r.Lab.BIRD.PID())
	return err
}

// arrived waits for the whole table in BIRD and records the times and
// the CPU.
func (m *measure) arrived(ctx context.Context) error {
	got, err := m.r.Arrivals(ctx, m.from, m.want)
	if err != nil {
		return err
	}
	m.res.first, m.res.last = first(got), rig.Last(got)
	return m.cpu.stop(&m.res)
}

// cold: virtbgp starts with the whole mapping; the clock starts at BIRD's
// session up.
func (m *measure) cold(ctx context.Context, routes [][]rig.Route) error {
	if err := m.r.WriteMapping(m.mapping, rig.MappingYAML(routes)); err != nil {
		return err
	}
	birdLog := rig.FileSize(m.r.Lab.BIRD.Log)
	if err := m.begin(0); err != nil {
		return err
	}
	start, err := m.r.StartVirtbgp(ctx, rig.Virtbgp{Mapping: m.mapping, Binary: m.res.way.bin})
	if err != nil {
		return err
	}
	if err := m.arrived(ctx); err != nil {
		return err
	}
	up, err := sessionUp(m.r.Lab.BIRD.Log, birdLog, "hvA4")
	if err != nil {
		return err
	}
	m.res.t0, m.res.sessionUpFrom = up, up.Sub(start)
	return m.r.StopVirtbgp(ctx)
}

// reload: virtbgp runs with an empty mapping and is sent SIGHUP after the
// whole one was written; the clock starts at the signal.
func (m *measure) reload(ctx context.Context, routes [][]rig.Route, profile string) error {
	if err := m.r.WriteMapping(m.mapping, emptyMapping); err != nil {
		return err
	}
	if _, err := m.r.StartVirtbgp(ctx, rig.Virtbgp{Mapping: m.mapping, Binary: m.res.way.bin, CPUProfile: profile}); err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond) // first sync done, session quiet
	if err := m.r.WriteMapping(m.mapping, rig.MappingYAML(routes)); err != nil {
		return err
	}
	if err := m.begin(m.r.Host.VirtbgpPID()); err != nil {
		return err
	}
	m.res.t0 = time.Now()
	if err := m.r.Host.SignalVirtbgp(syscall.SIGHUP); err != nil {
		return err
	}
	if err := m.arrived(ctx); err != nil {
		return err
	}
	return m.r.StopVirtbgp(ctx)
}

// floor: the encoded UPDATEs in one write on a bare session; the clock
// starts at BIRD's session up.
func (m *measure) floor(ctx context.Context) (err error) {
	updates, err := m.r.EncodeUpdates(m.flat)
	if err != nil {
		return err
	}
	birdLog := rig.FileSize(m.r.Lab.BIRD.Log)
	if err := m.begin(0); err != nil {
		return err
	}
	f, err := m.r.StartFloor(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = m.r.WaitTableEmpty(ctx)
		}
	}()
	if err := f.Write(updates); err != nil {
		return err
	}
	if err := m.arrived(ctx); err != nil {
		return err
	}
	m.res.t0, err = sessionUp(m.r.Lab.BIRD.Log, birdLog, "hvA4")
	return err
}

// exabgp: one announce line per route in one write to ExaBGP's API
// process; the clock starts at the write.
func (m *measure) exabgp(ctx context.Context) (err error) {
	e, err := m.r.StartExaBGP(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err == nil {
			err = m.r.StopExaBGP(ctx, e)
		} else {
			_ = e.Stop(ctx)
		}
	}()
	lines := rig.Lines(m.flat)
	if err := m.begin(e.PID()); err != nil {
		return err
	}
	m.res.t0 = time.Now()
	if err := e.Write(lines...); err != nil {
		return err
	}
	return m.arrived(ctx)
}

func first(ts map[netip.Prefix]time.Time) time.Time {
	var f time.Time
	for _, t := range ts {
		if f.IsZero() || t.Before(f) {
			f = t
		}
	}
	return f
}

// sessionUp finds when BIRD logged protocol proto's session up, in its log
// from byte offset on ("2026-11-21 07:50:05.888 <TRACE> hvA4: State changed
// to up"; millisecond timestamps in local time).
func sessionUp(path string, offset int64, proto string) (time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return time.Time{}, fmt.Errorf("bird log: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, 0); err != nil {
		return time.Time{}, fmt.Errorf("bird log: %w", err)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, " "+proto+": State changed to up") || len(line) < 23 {
			continue
		}
		t, err := time.ParseInLocation("2006-01-02 15:04:05.000", line[:23], time.Local)
		if err != nil {
			return time.Time{}, fmt.Errorf("bird log: %q: %w", line, err)
		}
		return t, nil
	}
	return time.Time{}, fmt.Errorf("bird log %s: no %q session up", path, proto)
}

func (s *suite) report(sizes []int, ways []way, results []result, loadStart, loadEnd string) *bench.Section {
	took := func(w way, size int) []time.Duration {
		var xs []time.Duration
		for _, r := range results {
			if r.way == w && r.size == size {
				xs = append(xs, r.took())
			}
		}
		return xs
	}
	var b strings.Builder
	fmt.Fprintf(&b, `The same BIRD session (hvA's, IPv4) gets a table of /32s with MED and two
communities each, %d per domain (package bench/rig: BIRD 2 alone in the lab's
tor namespace, FRR not started so that its zebra does not read BIRD's
routes on the same 2 cores; a test-driver libvirtd with the domains
running). Every route has its own attribute set, so every way sends one
UPDATE per route. %d runs per size and way; the table shows medians
(min–max).

- **%s**: virtbgp starts with the mapping of the running domains; the
  clock starts when BIRD logs the session up (its log, ms), because before
  that both speakers wait for the session alike (virtbgp's process start to
  session up is shown apart: GoBGP's first connect waits 1–2 s at random).
- **%s**: virtbgp runs with a mapping naming none of them; the full
  mapping is written (rename) and SIGHUP sent; the clock starts at the
  signal (the file watch would add its 300 ms debounce).
- **%s**: ExaBGP 4.2 with its session up is fed one announce line per route
  (`+"`announce route P next-hop self med M community [..]`"+`) through its API
  process in one write; the clock starts at the write.
- **%s**: not a product but the measure of the peer: a bare session
  (package bench/rig, Floor) that has the same UPDATEs encoded before the
  session comes up and hands them to the socket in one write; the clock
  starts at BIRD's session up, as for the cold start. No speaker can be
  faster on this BIRD and machine.
- **Done** when the last of the routes is in BIRD's kernel table 100 via hvA
  (`+"`ip -ts monitor route`"+` in the tor namespace, µs). Target for virtbgp: ≤ %s.
`, s.perVM, s.runs, kindNames[kindCold], kindNames[kindReload], kindNames[kindExa], kindNames[kindFloor], bench.Ms(target))
	var rev string
	for _, w := range ways {
		if w.rev != "" {
			rev = w.rev
		}
	}
	if rev != "" {
		fmt.Fprintf(&b, `- **…, before (%s)**: the same, with virtbgp built at %s (`+"`-bulk.before`"+`), in
  the same run: the tree before the fixes that profiling this suite led
  to (a summary instead of one info line per route for a big pass; paths
  handed to GoBGP as wire bytes instead of anypb; all domain states in one
  libvirt RPC instead of two per domain).
`, rev, rev)
	}
	b.WriteString(`- **CPU**: user + system time (/proc, 10 ms ticks) over the measurement,
  medians: of the speaker for a reload (virtbgp, from the signal) and for
  ExaBGP (from the write); of BIRD for every way (for a cold start and the
  floor from before the session, which costs BIRD next to nothing). On 2
  shared cores the wall times vary by ±30 % from run to run; CPU time is
  the steadier measure of a speaker's own cost.
`)
	b.WriteString(`- **× floor**: the median over the floor's median at the same size, in
  the same run: how much a way adds to what the peer needs. The machine's
  speed changes from run to run (a shared host); this ratio changes less.
`)
	b.WriteString("\n| routes | way | to the last route | × floor | to the first route | speaker CPU | BIRD CPU | target |\n|---:|---|---:|---:|---:|---:|---:|---|\n")
	var summary []string
	for _, size := range sizes {
		var floor time.Duration
		for _, w := range ways {
			if w.kind == kindFloor {
				floor = bench.Quantile(took(w, size), 0.5)
			}
		}
		for _, w := range ways {
			xs := took(w, size)
			ratio := "—"
			if floor > 0 {
				ratio = fmt.Sprintf("%.1f×", float64(bench.Quantile(xs, 0.5))/float64(floor))
			}
			var firsts, spk, bird []time.Duration
			for _, r := range results {
				if r.way == w && r.size == size {
					firsts = append(firsts, r.first.Sub(r.t0))
					if r.speakerCPU >= 0 {
						spk = append(spk, r.speakerCPU)
					}
					bird = append(bird, r.birdCPU)
				}
			}
			spkCPU := "—"
			if len(spk) > 0 {
				spkCPU = sec(bench.Quantile(spk, 0.5))
			}
			tgt := "—"
			if w.current() {
				tgt = bench.Met(bench.Quantile(xs, 0.5) <= target)
			}
			fmt.Fprintf(&b, "| %d | %s | %s (%s–%s) | %s | %s | %s | %s | %s |\n", size, w.name, sec(bench.Quantile(xs, 0.5)),
				sec(bench.Min(xs)), sec(bench.Max(xs)), ratio, bench.Ms(bench.Quantile(firsts, 0.5)), spkCPU, sec(bench.Quantile(bird, 0.5)), tgt)
			summary = append(summary, fmt.Sprintf("bulk %d routes, %s: %s (median of %d)", size, w.name, sec(bench.Quantile(xs, 0.5)), len(xs)))
		}
	}
	if len(sizes) >= 2 {
		lo, hi := sizes[0], sizes[len(sizes)-1]
		fmt.Fprintf(&b, "\nGrowth from %d to %d routes (%.0f×), ratio of the medians:\n\n| way | ratio |\n|---|---:|\n", lo, hi, float64(hi)/float64(lo))
		for _, w := range ways {
			a, z := bench.Quantile(took(w, lo), 0.5), bench.Quantile(took(w, hi), 0.5)
			if a > 0 {
				fmt.Fprintf(&b, "| %s | %.1f× |\n", w.name, float64(z)/float64(a))
			}
		}
	}
	var ups []time.Duration
	for _, r := range results {
		if r.way.kind == kindCold && r.way.bin == "" {
			ups = append(ups, r.sessionUpFrom)
		}
	}
	if len(ups) > 0 {
		fmt.Fprintf(&b, "\nvirtbgp cold start, process start to BIRD's session up: median %s (%s–%s).\n",
			sec(bench.Quantile(ups, 0.5)), sec(bench.Min(ups)), sec(bench.Max(ups)))
	}
	return &bench.Section{
		Markdown: b.String(),
		Summary:  summary,
		Notes:    []string{fmt.Sprintf("load `%s` at the start, `%s` at the end", loadStart, loadEnd)},
	}
}

func sec(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }
