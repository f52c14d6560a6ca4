// Package bench is virtbgp's benchmark framework: `make bench` runs
// cmd/virtbgp-bench, which runs the chosen suites, writes each suite's
// section to results/<suite>.md and assembles BENCHMARKS.md at the module
// root from every section present (so sections measured in different runs
// are kept side by side until a suite is run again).
//
// A suite is a [Suite] registered with [Register] (from an init function
// of its own package, imported by cmd/virtbgp-bench). It measures and
// returns a [Section]: its Markdown and a few summary lines for the
// terminal. Benchmarks report figures; they never fail on a threshold.
//
// Adding a suite (issue 5's event-to-route, bulk, fleet mapping, edit
// churn and footprint, each with ExaBGP beside virtbgp):
//
//  1. a package bench/<suite> with a type implementing [Suite]: its flags
//     named "<suite>.<flag>", Run measuring and returning the section's
//     Markdown (its own method text, tables, per-run load via [Load]) and
//     summary lines; helpers: [Quantile], [Max], [Ms];
//  2. func init() { bench.Register(&suite{}) } in it;
//  3. a blank import of the package in cmd/virtbgp-bench.
//
// `make bench BENCH_SUITES=<suite>` then runs it alone and rewrites only
// its section; Order places the section in BENCHMARKS.md.
package bench

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
)

// Suite is one benchmark suite.
type Suite interface {
	// Name is the suite's name on the command line (-suite) and the base
	// name of its results file: lower case, no spaces.
	Name() string
	// Title is the heading of its section in BENCHMARKS.md.
	Title() string
	// Order places its section in BENCHMARKS.md (ascending).
	Order() int
	// Flags registers the suite's own flags, named "<name>.<flag>".
	Flags(fs *flag.FlagSet)
	// Run measures and returns the section. It must clean up everything
	// it started, also on error.
	Run(ctx context.Context, env *Env) (*Section, error)
}

// Section is what a suite run produced.
type Section struct {
	// Markdown is the section's body (without its heading; the framework
	// adds the heading, the run's machine, date, load and command).
	Markdown string
	// Summary lines are printed at the end of the run.
	Summary []string
	// Notes are added to the run line of the section (for example the
	// guests' virtualisation: KVM or TCG).
	Notes []string
}

// Env is what the framework gives a suite.
type Env struct {
	// Root is the module root (the virtbgp source tree).
	Root string
	// Log receives progress.
	Log *slog.Logger
	// Machine describes the machine, measured once per run.
	Machine Machine
	// Command is the command line of the run without -suite: each
	// section adds its own -suite to it.
	Command string
}

var (
	regMu  sync.Mutex
	suites = map[string]Suite{}
)

// Register adds a suite; it panics on a duplicate name.
func Register(s Suite) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := suites[s.Name()]; dup {
		panic(fmt.Sprintf("bench: suite %q registered twice", s.Name()))
	}
	suites[s.Name()] = s
}

// Suites returns the registered suites in section order.
func Suites() []Suite {
	regMu.Lock()
	defer regMu.Unlock()
	var out []Suite
	for _, s := range suites {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Order() != out[j].Order() {
			return out[i].Order() < out[j].Order()
		}
		return out[i].Name() < out[j].Name()
	})
	return out
}

// Lookup returns the suite called name.
func Lookup(name string) (Suite, bool) {
	regMu.Lock()
	defer regMu.Unlock()
	s, ok := suites[name]
	return s, ok
}

// Names returns the names of the registered suites in section order.
func Names() []string {
	var n []string
	for _, s := range Suites() {
		n = append(n, s.Name())
	}
	return slices.Clip(n)
}
