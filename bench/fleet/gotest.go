package fleet

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// goBenchRegexp selects the mapping package's fleet benchmarks.
const goBenchRegexp = "^(BenchmarkLoad|BenchmarkLoadDiff|BenchmarkDiff)$"

// goBench is what `go test -bench` printed, per benchmark name without the
// GOMAXPROCS suffix ("BenchmarkLoad/100000"): one [benchLine] per -count.
type goBench struct {
	Args    []string
	Header  map[string]string // goos, goarch, pkg, cpu
	Results map[string][]benchLine
	Took    time.Duration
}

// benchLine is one result line: the iterations and each metric by unit
// ("ns/op", "B/op", "allocs/op", "MB/s", and any custom metric).
type benchLine struct {
	N       int64
	Metrics map[string]float64
}

// runGoBench runs the mapping package's fleet benchmarks count times.
func runGoBench(ctx context.Context, root string, count int, benchtime string) (*goBench, error) {
	args := []string{"test", "-run", "^$", "-bench", goBenchRegexp, "-benchmem",
		"-count", strconv.Itoa(count), "-benchtime", benchtime, "./mapping/"}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(t0)
	if err != nil {
		return nil, fmt.Errorf("go %s: %v: %s", strings.Join(args, " "), err, tail(out, 2000))
	}
	g, err := parseGoBench(string(out))
	if err != nil {
		return nil, fmt.Errorf("go %s: %v: %s", strings.Join(args, " "), err, tail(out, 2000))
	}
	g.Args, g.Took = append([]string{"go"}, args...), took
	return g, nil
}

// procSuffix is the "-<GOMAXPROCS>" go test appends to a benchmark's name.
var procSuffix = regexp.MustCompile(`-\d+$`)

// parseGoBench parses go test's benchmark output (the standard format:
// "BenchmarkX/sub-2   8   126162197 ns/op   42783972 B/op ...").
func parseGoBench(out string) (*goBench, error) {
	g := &goBench{Header: map[string]string{}, Results: map[string][]benchLine{}}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if k, v, ok := strings.Cut(line, ": "); ok && !strings.HasPrefix(line, "Benchmark") && !strings.ContainsAny(k, " \t") {
			g.Header[k] = strings.TrimSpace(v)
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		bl := benchLine{N: n, Metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("benchmark line %q: %v", line, err)
			}
			bl.Metrics[f[i+1]] = v
		}
		name := procSuffix.ReplaceAllString(f[0], "")
		g.Results[name] = append(g.Results[name], bl)
	}
	if len(g.Results) == 0 {
		return nil, fmt.Errorf("no benchmark results in the output")
	}
	return g, nil
}

// values returns the metric unit of every run of the benchmark name.
func (g *goBench) values(name, unit string) []float64 {
	var xs []float64
	for _, r := range g.Results[name] {
		if v, ok := r.Metrics[unit]; ok {
			xs = append(xs, v)
		}
	}
	return xs
}

// iterations returns the iteration counts of the runs of name.
func (g *goBench) iterations(name string) []int64 {
	var xs []int64
	for _, r := range g.Results[name] {
		xs = append(xs, r.N)
	}
	return xs
}

// customUnits returns the units of name's runs beyond go test's own
// (ns/op, B/op, allocs/op, MB/s), sorted.
func (g *goBench) customUnits(name string) []string {
	seen := map[string]bool{}
	var us []string
	for _, r := range g.Results[name] {
		for u := range r.Metrics {
			switch u {
			case "ns/op", "B/op", "allocs/op", "MB/s":
				continue
			}
			if !seen[u] {
				seen[u] = true
				us = append(us, u)
			}
		}
	}
	slices.Sort(us)
	return us
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
