package bench_test

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/bench"
	_ "github.com/virtbgp/virtbgp/bench/bulk"
	_ "github.com/virtbgp/virtbgp/bench/churn"
	_ "github.com/virtbgp/virtbgp/bench/event"
	_ "github.com/virtbgp/virtbgp/bench/failover"
	_ "github.com/virtbgp/virtbgp/bench/fleet"
	_ "github.com/virtbgp/virtbgp/bench/footprint"
	_ "github.com/virtbgp/virtbgp/bench/migration"
)

// Every suite of `make bench` runs on this machine (a new one in CI) and
// produces its section with both speakers where both apply: a small run of
// each, so that `make bench` is known to work. The figures of a small run
// mean nothing and are not checked; the structure is.
func TestSuitesRun(t *testing.T) {
	if testing.Short() {
		t.Skip("the suites run the real-world lab, libvirtd, BIRD, FRR and ExaBGP; not with -short")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		suite string
		args  []string
		want  []string // in the section's Markdown
	}{
		{"event", []string{"-event.n=5", "-event.rounds=1"}, []string{"| virtbgp | 5 |", "| virtbgp, from the event | 5 |", "| ExaBGP | 5 |",
			"| virtbgp, metadata | 5 |", "| virtbgp, metadata, from the event | 5 |", "What the metadata read adds per event",
			"| virtbgp, resume | 5 |", "| virtbgp, metadata, resume | 5 |"}},
		{"bulk", []string{"-bulk.sizes=20,40", "-bulk.runs=1", "-bulk.before=HEAD"}, []string{"| 20 | virtbgp cold start |", "| 40 | virtbgp reload |",
			"| 40 | virtbgp reload, before (", "| 40 | ExaBGP lines |", "| 40 | floor: encoded UPDATEs, one write |", "Growth from 20 to 40"}},
		{"fleet", []string{"-fleet.count=1", "-fleet.benchtime=1x"}, []string{"100000", "10000"}},
		{"churn", []string{"-churn.routes=20"}, []string{
			"| virtbgp | one-line edit (MED of one IP), file watch | 1 | 1 | 0 | exactly 1: met |",
			"| virtbgp | reload with no change (SIGHUP) | 0 | 0 | 0 | exactly 0: met |",
			"| ExaBGP | one announce line with the new MED | 1 | 1 | 0 |"}},
		{"footprint", []string{"-footprint.routes=20", "-footprint.window=2s", "-footprint.settle=1s"}, []string{"| virtbgp | virtbgp (", "| ExaBGP | exabgp ("}},
		{"migration", []string{"-migration.n=2", "-migration.variants=after", "-migration.settle=200ms"}, []string{"after"}},
		{"migration", []string{"-migration.n=2", "-migration.variants=metadata", "-migration.settle=200ms"}, []string{"| metadata (", "in 3 of 3 checks"}},
		{"failover", []string{"-failover.runs=1", "-failover.variants=after", "-failover.failures=link-down"}, []string{"| link-down | BIRD | ", "| link-down | FRR | ", "| 1 (hvA dies: 1) |"}},
	} {
		t.Run(tc.suite, func(t *testing.T) {
			s, ok := bench.Lookup(tc.suite)
			if !ok {
				t.Fatalf("no suite %q", tc.suite)
			}
			fs := flag.NewFlagSet(tc.suite, flag.ContinueOnError)
			s.Flags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			log := slog.New(slog.DiscardHandler)
			if testing.Verbose() {
				log = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("suite", tc.suite)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			sec, err := s.Run(ctx, &bench.Env{Root: root, Log: log, Machine: bench.ProbeMachine(), Command: "go test ./bench/"})
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(sec.Markdown, w) {
					t.Errorf("section lacks %q:\n%s", w, sec.Markdown)
				}
			}
			if len(sec.Summary) == 0 {
				t.Error("no summary lines")
			}
		})
	}
}
