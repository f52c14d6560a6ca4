// Package fleet is the benchmark suite "fleet" (issue 5's fleet-mapping
// figure, figure 3): what loading, validating and diffing a large
// generated mapping costs, at 10,000 and 100,000 VMs (2 IPs each), and how
// that cost grows between the two sizes.
//
// It measures two ways:
//
//   - the mapping package's Go benchmarks BenchmarkLoad, BenchmarkLoadDiff
//     and BenchmarkDiff (mapping/bench_test.go), run with `go test -bench
//     -benchmem -count N`: time, bytes and allocations per operation, the
//     median of the N runs;
//   - the real binary: `virtbgp check --config F` (config load, then
//     mapping load and validation) on the same generated mapping, N times
//     per size: wall time, and peak RSS from GNU time (the child's rusage).
//
// Figures are reported against issue 5's targets (<= 1 s, <= 150 MB at
// 100,000 VMs) with whether they are met; the suite never fails on them.
// ExaBGP has no equivalent: it keeps no mapping to load or validate.
package fleet

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/virtbgp/virtbgp/bench"
)

func init() { bench.Register(&suite{}) }

// sizes are the fleet sizes measured, in VMs; they are the sub-benchmarks
// of mapping/bench_test.go's fleet benchmarks.
var sizes = []int{10_000, 100_000}

// Issue 5's targets, at the larger size.
const (
	targetTime  = time.Second
	targetBytes = 150_000_000 // 150 MB
)

type suite struct {
	count     int
	benchtime string
}

func (*suite) Name() string  { return "fleet" }
func (*suite) Title() string { return "Fleet mapping: load, validate, diff (issue 5, figure 3)" }
func (*suite) Order() int    { return 30 }

func (s *suite) Flags(fs *flag.FlagSet) {
	fs.IntVar(&s.count, "fleet.count", 5, "runs of each measurement (go test -count, and `virtbgp check` runs per size); medians are reported")
	fs.StringVar(&s.benchtime, "fleet.benchtime", "1s", "go test -benchtime of the mapping benchmarks")
}

// results is everything one run measured.
type results struct {
	Count      int
	Benchtime  string
	LoadStart  string
	LoadEnd    string
	GoGC       string // GOGC and GOMEMLIMIT as the children saw them
	GoMemLimit string
	Fixtures   map[int]*fixture
	Checks     map[int][]checkRun // by VMs; 1 is the baseline
	Go         *goBench
	CheckTook  time.Duration
}

func (s *suite) Run(ctx context.Context, env *bench.Env) (*bench.Section, error) {
	if s.count < 1 {
		return nil, fmt.Errorf("-fleet.count must be at least 1")
	}
	r := &results{
		Count: s.count, Benchtime: s.benchtime, LoadStart: bench.Load(),
		GoGC: envOr("GOGC", "unset (100)"), GoMemLimit: envOr("GOMEMLIMIT", "unset"),
		Fixtures: map[int]*fixture{}, Checks: map[int][]checkRun{},
	}
	tmp, err := os.MkdirTemp("", "virtbgp-bench-fleet-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	env.Log.Info("fleet: building virtbgp")
	bin, err := buildVirtbgp(ctx, env.Root, tmp)
	if err != nil {
		return nil, err
	}
	// A 1-VM mapping gives the process's floor: runtime, config, binary.
	all := append([]int{1}, sizes...)
	for _, n := range all {
		fx, err := makeFixture(tmp, n)
		if err != nil {
			return nil, fmt.Errorf("generate the %d-VM mapping: %w", n, err)
		}
		r.Fixtures[n] = fx
	}

	env.Log.Info("fleet: virtbgp check", "runs_per_size", s.count)
	t0 := time.Now()
	for _, n := range all { // one unmeasured run each: page cache, binary
		if _, err := runCheck(ctx, bin, r.Fixtures[n]); err != nil {
			return nil, err
		}
	}
	for range s.count { // round robin, so a drift of the load hits every size
		for _, n := range all {
			c, err := runCheck(ctx, bin, r.Fixtures[n])
			if err != nil {
				return nil, err
			}
			r.Checks[n] = append(r.Checks[n], c)
		}
	}
	r.CheckTook = time.Since(t0)
	// The go test benchmarks generate their own mappings.
	os.RemoveAll(tmp)

	env.Log.Info("fleet: go test -bench", "count", s.count, "regexp", goBenchRegexp)
	r.Go, err = runGoBench(ctx, env.Root, s.count, s.benchtime)
	if err != nil {
		return nil, err
	}
	r.LoadEnd = bench.Load()
	return r.section(), nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
