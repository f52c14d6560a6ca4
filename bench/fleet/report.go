package fleet

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/virtbgp/virtbgp/bench"
)

// median is the 0.5 quantile by nearest rank, as [bench.Quantile]: with an
// even count, the lower of the two middle samples. NaN for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)+1)/2-1]
}

func durations(ns []float64) []time.Duration {
	var ds []time.Duration
	for _, v := range ns {
		ds = append(ds, time.Duration(v))
	}
	return ds
}

// dur renders d as "1.23 s" from a second on, else in ms.
func dur(d time.Duration) string {
	if d >= time.Second {
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return bench.Ms(d)
}

// mb renders bytes in MB (10^6 bytes), the unit of issue 5's target.
func mb(b float64) string {
	if math.IsNaN(b) {
		return "n/a"
	}
	if b < 100_000 {
		return fmt.Sprintf("%.1f kB", b/1e3)
	}
	return fmt.Sprintf("%.1f MB", b/1e6)
}

// count renders n with thousands separators: 6,795,110.
func count(n float64) string {
	if math.IsNaN(n) {
		return "n/a"
	}
	s := strconv.FormatInt(int64(math.Round(n)), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func ratio(big, small float64) string {
	if small <= 0 || math.IsNaN(big) || math.IsNaN(small) {
		return "n/a"
	}
	return fmt.Sprintf("%.1f×", big/small)
}

// sizeFigures are one size's medians.
type sizeFigures struct {
	Load, LoadDiff, Diff     time.Duration // go test ns/op
	LoadB, LoadAllocs        float64
	LoadDiffB, LoadDiffAlloc float64
	DiffB, DiffAllocs        float64
	CheckWall, CheckCPU      time.Duration
	CheckRSS                 float64 // bytes
}

func (r *results) benchName(fn string, n int) string {
	return fmt.Sprintf("%s/%d", fn, n)
}

func (r *results) medDur(fn string, n int) time.Duration {
	xs := r.Go.values(r.benchName(fn, n), "ns/op")
	if len(xs) == 0 {
		return 0
	}
	return time.Duration(median(xs))
}

func (r *results) figures(n int) sizeFigures {
	f := sizeFigures{
		Load:          r.medDur("BenchmarkLoad", n),
		LoadDiff:      r.medDur("BenchmarkLoadDiff", n),
		Diff:          r.medDur("BenchmarkDiff", n),
		LoadB:         median(r.Go.values(r.benchName("BenchmarkLoad", n), "B/op")),
		LoadAllocs:    median(r.Go.values(r.benchName("BenchmarkLoad", n), "allocs/op")),
		LoadDiffB:     median(r.Go.values(r.benchName("BenchmarkLoadDiff", n), "B/op")),
		LoadDiffAlloc: median(r.Go.values(r.benchName("BenchmarkLoadDiff", n), "allocs/op")),
		DiffB:         median(r.Go.values(r.benchName("BenchmarkDiff", n), "B/op")),
		DiffAllocs:    median(r.Go.values(r.benchName("BenchmarkDiff", n), "allocs/op")),
	}
	var wall, cpu []time.Duration
	var rss []float64
	for _, c := range r.Checks[n] {
		wall = append(wall, c.Wall)
		cpu = append(cpu, c.CPU)
		rss = append(rss, float64(c.MaxRSS))
	}
	f.CheckWall, f.CheckCPU, f.CheckRSS = bench.Quantile(wall, 0.5), bench.Quantile(cpu, 0.5), median(rss)
	return f
}

func durOrNA(d time.Duration) string {
	if d == 0 {
		return "n/a"
	}
	return dur(d)
}

func (r *results) section() *bench.Section {
	sec := &bench.Section{Notes: []string{
		fmt.Sprintf("load `%s` at the start, `%s` at the end", loadAvg(r.LoadStart), loadAvg(r.LoadEnd)),
	}}
	small, big := sizes[0], sizes[len(sizes)-1]
	figs := map[int]sizeFigures{}
	for _, n := range sizes {
		figs[n] = r.figures(n)
	}
	fs, fb := figs[small], figs[big]
	var b strings.Builder

	fmt.Fprintf(&b, `What it costs to load (read, parse, validate) and diff a generated fleet
mapping of %s and %s VMs, and how the cost grows between the two sizes
(linear growth would be 10×).

- **The mapping**: one YAML file, as internal/fleetgen writes it for the mapping benchmarks
  generates it (the suite's copy writes the same bytes): N VMs with 2 IPs each
  (one IPv4 host address in 10/8, one IPv6 in 2001:db8::/32), so %s and %s
  routes; file defaults communities `+"`65001:100`"+` and med 10; each entry a
  local-pref (100-102) and one community of 50; entries keyed by name
  (`+"`vm-000042`"+`), every 10th by UUID instead and every 10th pinned to a UUID;
  every 5th entry's IPv4 is a `+"`prefix:`"+` mapping with its own med and
  as-path-prepend. %s bytes at %s VMs, %s bytes at %s.
- **go test** (Go benchmarks in mapping/bench_test.go, in-process, no process
  start): `+"`%s`"+`, from the module root: %d runs of each, median
  (nearest rank: with an even count the lower middle) of ns/op, B/op and
  allocs/op. **Load** is `+"`mapping.Load`"+` (read, parse, validate, build the
  lookup indexes); **load + diff** is a reload: load the new mapping and
  `+"`mapping.Diff`"+` it against the one in force, which differs in 1%% of the
  entries (every 100th entry's local-pref); **diff** is `+"`mapping.Diff`"+` alone
  on two loaded mappings. B/op is everything allocated per operation, garbage
  included, not the peak heap: the memory target is for the peak RSS below.
  With -benchtime %s, a run of load + diff at %s VMs is %s iteration(s)
  (all runs' counts are below).
- **virtbgp check**: the real binary (`+"`go build ./cmd/virtbgp`"+` of this tree) run as
  `+"`virtbgp check --config F`"+`, with the smallest config it accepts (version, bgp
  asn and router-id, mapping.path). It loads and validates that config first (a
  few lines; the 1-VM row below shows that floor), then loads and validates the
  mapping as the daemon does at start, and prints the counts (the suite checks
  them); it does not diff. One unmeasured run per size, then %d runs per size,
  the sizes in turn, each under GNU time; **wall** is from the start of
  `+"`/usr/bin/time`"+` to its exit as the suite sees it, **peak RSS** is the
  check's `+"`ru_maxrss`"+` as GNU time reads it (`+"`%%M`"+`, KiB; not this process's own
  wait4, in which Linux would count the suite's peak, see check.go), median
  of the runs. Go's GC at its defaults: GOGC %s, GOMEMLIMIT %s.
- MB are 10^6 bytes.

`,
		count(float64(small)), count(float64(big)),
		count(float64(2*small)), count(float64(2*big)),
		count(float64(r.Fixtures[small].Bytes)), count(float64(small)), count(float64(r.Fixtures[big].Bytes)), count(float64(big)),
		shellJoin(r.Go.Args), r.Count, r.Benchtime, count(float64(big)), iterRange(r.Go.iterations(r.benchName("BenchmarkLoadDiff", big))),
		r.Count, r.GoGC, r.GoMemLimit)

	b.WriteString("| VMs (IPs) | load | load + diff | diff | load B/op | load allocs/op | `virtbgp check` wall | `virtbgp check` peak RSS |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, n := range sizes {
		f := figs[n]
		fmt.Fprintf(&b, "| %s (%s) | %s | %s | %s | %s | %s | %s | %s |\n",
			count(float64(n)), count(float64(2*n)), durOrNA(f.Load), durOrNA(f.LoadDiff), durOrNA(f.Diff),
			mb(f.LoadB), count(f.LoadAllocs), dur(f.CheckWall), mb(f.CheckRSS))
	}
	fmt.Fprintf(&b, "| ratio %s / %s | %s | %s | %s | %s | %s | %s | %s |\n",
		short(big), short(small),
		ratio(float64(fb.Load), float64(fs.Load)), ratio(float64(fb.LoadDiff), float64(fs.LoadDiff)), ratio(float64(fb.Diff), float64(fs.Diff)),
		ratio(fb.LoadB, fs.LoadB), ratio(fb.LoadAllocs, fs.LoadAllocs), ratio(float64(fb.CheckWall), float64(fs.CheckWall)), ratio(fb.CheckRSS, fs.CheckRSS))
	okLD := fb.LoadDiff > 0 && fb.LoadDiff <= targetTime
	okWall := fb.CheckWall <= targetTime
	okRSS := fb.CheckRSS <= targetBytes
	fmt.Fprintf(&b, "| target (issue 5, at %s VMs) | — | <= 1 s: %s | — | — | — | <= 1 s: %s | <= 150 MB: %s |\n",
		count(float64(big)), bench.Met(okLD), bench.Met(okWall), bench.Met(okRSS))

	for _, n := range sizes {
		if f := figs[n]; f.LoadDiff > 0 && f.LoadDiff < f.Load {
			fmt.Fprintf(&b, "\nAt %s VMs load + diff came out below load alone: probably the GC, as the reload benchmark keeps the old mapping live, which raises the heap target (GOGC) so that it collects less often during the load.\n", count(float64(n)))
		}
	}
	base := r.figures(1)
	fmt.Fprintf(&b, "\nFloor of the process: `virtbgp check` of a 1-VM mapping takes %s wall and peaks at %s RSS (median of %d).\n",
		dur(base.CheckWall), mb(base.CheckRSS), len(r.Checks[1]))
	fmt.Fprintf(&b, "\nExaBGP: no equivalent figure; it has no mapping (the REST pattern keeps no validated inventory), so there is nothing to load, validate or diff.\n")

	// Spread.
	fmt.Fprintf(&b, "\n### All runs\n\n")
	b.WriteString("| measurement | VMs | runs | iterations per run | time min / median / max | B/op (median) | allocs/op (median) | other |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, bn := range []string{"BenchmarkLoad", "BenchmarkLoadDiff", "BenchmarkDiff"} {
		for _, n := range sizes {
			name := r.benchName(bn, n)
			ns := durations(r.Go.values(name, "ns/op"))
			if len(ns) == 0 {
				fmt.Fprintf(&b, "| go test %s | %s | 0 | — | n/a | n/a | n/a | |\n", name, count(float64(n)))
				continue
			}
			var other []string
			if v := r.Go.values(name, "MB/s"); len(v) > 0 {
				other = append(other, fmt.Sprintf("%.2f MB/s", median(v)))
			}
			for _, u := range r.Go.customUnits(name) {
				other = append(other, fmt.Sprintf("%g %s", median(r.Go.values(name, u)), u))
			}
			fmt.Fprintf(&b, "| go test %s | %s | %d | %s | %s | %s | %s | %s |\n",
				name, count(float64(n)), len(ns), iterRange(r.Go.iterations(name)), triple(ns),
				mb(median(r.Go.values(name, "B/op"))), count(median(r.Go.values(name, "allocs/op"))), strings.Join(other, ", "))
		}
	}
	for _, n := range append([]int{1}, sizes...) {
		var wall, cpu []time.Duration
		var rss []float64
		for _, c := range r.Checks[n] {
			wall, cpu, rss = append(wall, c.Wall), append(cpu, c.CPU), append(rss, float64(c.MaxRSS))
		}
		fmt.Fprintf(&b, "| `virtbgp check` | %s | %d | — | %s | — | — | peak RSS %s / %s / %s; CPU (user + sys) median %s |\n",
			count(float64(n)), len(wall), triple(wall), mb(slices.Min(rss)), mb(median(rss)), mb(slices.Max(rss)), dur(bench.Quantile(cpu, 0.5)))
	}
	fmt.Fprintf(&b, "\ngo test took %s in all (with its own mapping generation and warm-up); the `virtbgp check` runs %s. go test's header: %s.\n",
		r.Go.Took.Round(time.Second), r.CheckTook.Round(100*time.Millisecond), header(r.Go.Header))

	sec.Markdown = b.String()
	for _, n := range sizes {
		f := figs[n]
		sec.Summary = append(sec.Summary, fmt.Sprintf("%7s VMs: load %s, load+diff %s, diff %s, load %s/op; check %s wall, %s peak RSS",
			count(float64(n)), durOrNA(f.Load), durOrNA(f.LoadDiff), durOrNA(f.Diff), mb(f.LoadB), dur(f.CheckWall), mb(f.CheckRSS)))
	}
	sec.Summary = append(sec.Summary,
		fmt.Sprintf("ratio %s/%s: load %s, load+diff %s, diff %s, check wall %s, peak RSS %s",
			short(big), short(small), ratio(float64(fb.Load), float64(fs.Load)), ratio(float64(fb.LoadDiff), float64(fs.LoadDiff)),
			ratio(float64(fb.Diff), float64(fs.Diff)), ratio(float64(fb.CheckWall), float64(fs.CheckWall)), ratio(fb.CheckRSS, fs.CheckRSS)),
		fmt.Sprintf("targets at %s VMs: load+diff <= 1 s %s (%s), check <= 1 s %s (%s), peak RSS <= 150 MB %s (%s)",
			short(big), strings.Trim(bench.Met(okLD), "*"), durOrNA(fb.LoadDiff), strings.Trim(bench.Met(okWall), "*"), dur(fb.CheckWall),
			strings.Trim(bench.Met(okRSS), "*"), mb(fb.CheckRSS)))
	return sec
}

func triple(xs []time.Duration) string {
	if len(xs) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%s / %s / %s", dur(bench.Min(xs)), dur(bench.Quantile(xs, 0.5)), dur(bench.Max(xs)))
}

// shellJoin renders args as a shell command line, single-quoting the
// arguments that need it.
func shellJoin(args []string) string {
	var q []string
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t$^|()*?[]{}<>&;'\"\\`!#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q = append(q, a)
	}
	return strings.Join(q, " ")
}

// short renders a size as "10k", "100k".
func short(n int) string {
	if n >= 1000 && n%1000 == 0 {
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

// iterRange renders iteration counts: "1" or "8-9".
func iterRange(xs []int64) string {
	if len(xs) == 0 {
		return "n/a"
	}
	lo, hi := slices.Min(xs), slices.Max(xs)
	if lo == hi {
		return strconv.FormatInt(lo, 10)
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}

func header(h map[string]string) string {
	var parts []string
	for _, k := range []string{"goos", "goarch", "pkg", "cpu"} {
		if v, ok := h[k]; ok {
			parts = append(parts, k+" "+v)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// loadAvg is the "a, b, c" of an uptime line.
func loadAvg(s string) string {
	if _, v, ok := strings.Cut(s, "load average: "); ok {
		return v
	}
	return s
}
