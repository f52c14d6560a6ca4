// Command virtbgp-bench runs virtbgp's benchmark suites (package bench),
// writes each suite's section to bench/results/<suite>.md, assembles
// BENCHMARKS.md from all sections and prints a summary.
//
//	go run ./bench/cmd/virtbgp-bench [-suite migration,...] [suite flags]
//
// Run it from the module root as root (the lab suites need namespaces,
// libvirtd, BIRD and FRR). `make bench` runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/virtbgp/virtbgp/bench"
	_ "github.com/virtbgp/virtbgp/bench/api"       // suite "api"
	_ "github.com/virtbgp/virtbgp/bench/bulk"      // suite "bulk"
	_ "github.com/virtbgp/virtbgp/bench/churn"     // suite "churn"
	_ "github.com/virtbgp/virtbgp/bench/event"     // suite "event"
	_ "github.com/virtbgp/virtbgp/bench/failover"  // suite "failover"
	_ "github.com/virtbgp/virtbgp/bench/fleet"     // suite "fleet"
	_ "github.com/virtbgp/virtbgp/bench/footprint" // suite "footprint"
	_ "github.com/virtbgp/virtbgp/bench/migration" // suite "migration"
)

func main() {
	fs := flag.NewFlagSet("virtbgp-bench", flag.ExitOnError)
	suiteList := fs.String("suite", strings.Join(bench.Names(), ","), "comma-separated suites to run: "+strings.Join(bench.Names(), ", "))
	root := fs.String("root", ".", "the virtbgp module root; results go to <root>/bench/results and <root>/BENCHMARKS.md")
	verbose := fs.Bool("v", false, "log progress at debug level")
	for _, s := range bench.Suites() {
		s.Flags(fs)
	}
	_ = fs.Parse(os.Args[1:])

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	var run []bench.Suite
	for _, n := range strings.Split(*suiteList, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		s, ok := bench.Lookup(n)
		if !ok {
			fmt.Fprintf(os.Stderr, "virtbgp-bench: no suite %q (suites: %s)\n", n, strings.Join(bench.Names(), ", "))
			os.Exit(2)
		}
		run = append(run, s)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	absRoot, err := filepath.Abs(*root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "virtbgp-bench:", err)
		os.Exit(2)
	}
	*root = absRoot
	env := &bench.Env{Root: *root, Log: log, Machine: bench.ProbeMachine(), Command: command(fs)}
	var summary []string
	var errs []error
	for _, s := range run {
		log.Info("suite", "name", s.Name())
		t0 := time.Now()
		sec, err := s.Run(ctx, env)
		if err != nil {
			log.Error("suite failed", "name", s.Name(), "error", err)
			errs = append(errs, fmt.Errorf("%s: %w", s.Name(), err))
			continue
		}
		p, err := bench.WriteSection(*root, s, env, sec, time.Since(t0))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Name(), err))
			continue
		}
		log.Info("section written", "suite", s.Name(), "file", p)
		summary = append(summary, "== "+s.Title())
		summary = append(summary, sec.Summary...)
	}
	if p, err := bench.Assemble(*root); err != nil {
		errs = append(errs, err)
	} else {
		log.Info("assembled", "file", p)
	}
	fmt.Println(strings.Join(summary, "\n"))
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(os.Stderr, "virtbgp-bench:", err)
		os.Exit(1)
	}
}

// command is the command line of this run with the flags that were set,
// except -suite (each section names its own suite).
func command(fs *flag.FlagSet) string {
	args := []string{"go", "run", "./bench/cmd/virtbgp-bench"}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "v" || f.Name == "root" || f.Name == "suite" {
			return
		}
		args = append(args, "-"+f.Name+"="+f.Value.String())
	})
	return strings.Join(args, " ")
}
