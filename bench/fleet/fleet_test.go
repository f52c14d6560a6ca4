package fleet

import (
	"strings"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/internal/config"
)

func TestFixtureConfig(t *testing.T) {
	dir := t.TempDir()
	fx, err := makeFixture(dir, 10)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(fx.Config)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mapping.Path != fx.Mapping {
		t.Errorf("mapping.path = %q, want %q", cfg.Mapping.Path, fx.Mapping)
	}
}

const sampleOutput = `goos: linux
goarch: amd64
pkg: github.com/virtbgp/virtbgp/mapping
cpu: Intel(R) Xeon(R) Processor @ 2.80GHz
BenchmarkLoad/10000-2 	       8	 126162197 ns/op	  10.74 MB/s	42783972 B/op	  679707 allocs/op
BenchmarkLoad/100000-2         	       1	1438155099 ns/op	   9.49 MB/s	422360648 B/op	 6795110 allocs/op
BenchmarkLoad/10000-2 	       9	 120000000 ns/op	  10.74 MB/s	42783972 B/op	  679707 allocs/op	 91.5 peak-RSS-MB
BenchmarkDiff/100000-2                	      84	  13657083 ns/op	   35184 B/op	      11 allocs/op
PASS
ok  	github.com/virtbgp/virtbgp/mapping	11.208s
`

func TestParseGoBench(t *testing.T) {
	g, err := parseGoBench(sampleOutput)
	if err != nil {
		t.Fatal(err)
	}
	if g.Header["cpu"] != "Intel(R) Xeon(R) Processor @ 2.80GHz" || g.Header["pkg"] != "github.com/virtbgp/virtbgp/mapping" {
		t.Errorf("header %v", g.Header)
	}
	if got := g.values("BenchmarkLoad/10000", "ns/op"); len(got) != 2 || got[0] != 126162197 || got[1] != 120000000 {
		t.Errorf("Load/10000 ns/op = %v", got)
	}
	if got := g.iterations("BenchmarkLoad/10000"); len(got) != 2 || got[0] != 8 || got[1] != 9 {
		t.Errorf("Load/10000 iterations = %v", got)
	}
	if got := g.values("BenchmarkLoad/100000", "allocs/op"); len(got) != 1 || got[0] != 6795110 {
		t.Errorf("Load/100000 allocs/op = %v", got)
	}
	if got := g.customUnits("BenchmarkLoad/10000"); len(got) != 1 || got[0] != "peak-RSS-MB" {
		t.Errorf("custom units = %v", got)
	}
	if got := g.values("BenchmarkDiff/100000", "B/op"); len(got) != 1 || got[0] != 35184 {
		t.Errorf("Diff/100000 B/op = %v", got)
	}
	if _, err := parseGoBench("PASS\nok x 1s\n"); err == nil {
		t.Error("no results: no error")
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		want float64
	}{{[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2}, {[]float64{5}, 5}} {
		if got := median(c.xs); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.xs, got, c.want)
		}
	}
	if got := count(6795110); got != "6,795,110" {
		t.Errorf("count = %q", got)
	}
}

func TestShellJoin(t *testing.T) {
	got := shellJoin([]string{"go", "test", "-run", "^$", "-bench", goBenchRegexp, "./mapping/", "it's"})
	want := `go test -run '^$' -bench '^(BenchmarkLoad|BenchmarkLoadDiff|BenchmarkDiff)$' ./mapping/ 'it'\''s'`
	if got != want {
		t.Errorf("shellJoin = %s, want %s", got, want)
	}
}

func TestSection(t *testing.T) {
	g, err := parseGoBench(sampleOutput + "BenchmarkLoadDiff/10000-2 9 110000000 ns/op 42783972 B/op 679707 allocs/op\n")
	if err != nil {
		t.Fatal(err)
	}
	r := &results{Count: 1, Benchtime: "1s", Go: g, Fixtures: map[int]*fixture{}, Checks: map[int][]checkRun{}}
	for _, n := range append([]int{1}, sizes...) {
		r.Fixtures[n] = &fixture{VMs: n, Bytes: int64(n) * 136}
		r.Checks[n] = []checkRun{{Wall: time.Duration(n) * 9 * time.Microsecond, MaxRSS: 30e6 + int64(n)*1500}}
	}
	sec := r.section()
	for _, want := range []string{"| ratio 100k / 10k |", "<= 150 MB: **missed**", "ExaBGP", "load + diff came out below load alone"} {
		if !strings.Contains(sec.Markdown, want) {
			t.Errorf("section lacks %q:\n%s", want, sec.Markdown)
		}
	}
	if len(sec.Summary) != len(sizes)+2 {
		t.Errorf("summary: %q", sec.Summary)
	}
}
