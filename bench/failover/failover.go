// Package failover is the benchmark suite "failover" (issue 11's figures):
// a hypervisor dies with a VM on it, in each way its ToRs can see it (the
// lab's Failures: link down, silent, TCP reset, killed), the VM is started
// on the other hypervisor at once, and per ToR (BIRD, FRR) the suite times
// when the ToR noticed (its session with the dead host down) and when its
// kernel table forwarded the VM's IPs to the live host alone, from the
// failure and from the live host's announcement; for virtbgp with the
// graceful-restart settings of an earlier revision ("before") and of the
// working tree ("after"), side by side. It runs the scenario of
// integration/failover_test.go's TestHostDeathFailover, many times in one
// lab per variant: after each run the dead host comes back (its virtbgp
// restarted, its stale routes gone at its End-of-RIB) and the next run
// kills the other host.
package failover

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/virtbgp/virtbgp/bench"
	"github.com/virtbgp/virtbgp/integration/lab"
)

func init() { bench.Register(&suite{}) }

type suite struct {
	runs, beforeRuns int
	failures         string
	variants         string
	before           string
	timeout          time.Duration
	// after is the "after" variant's settings: a zero field leaves the
	// working tree's shipped default.
	after settings
}

func (*suite) Name() string  { return "failover" }
func (*suite) Title() string { return "Failover: a dead hypervisor's VM started on another (issue 11)" }
func (*suite) Order() int    { return 70 }

func (s *suite) Flags(fs *flag.FlagSet) {
	fs.IntVar(&s.runs, "failover.runs", 10, `runs per failure of the "after" variant (alternating: the host with the VM dies)`)
	fs.IntVar(&s.beforeRuns, "failover.before-runs", 2, `runs per failure of the "before" variant (a run with graceful restart waits out its 120 s restart time); `+
		`2: one with each host dying, as BIRD breaks ties by router ID`)
	fs.StringVar(&s.failures, "failover.failures", failureNames(lab.Failures), "comma-separated failures: "+failureNames(lab.Failures))
	fs.StringVar(&s.variants, "failover.variants", "before,after", `variants to run: "before" (virtbgp at -failover.before with its defaults), "after" (the working tree)`)
	fs.StringVar(&s.before, "failover.before", "62d0fd9", `git revision of the "before" variant: virtbgp with the graceful-restart defaults before issue 11`)
	fs.DurationVar(&s.timeout, "failover.timeout", 6*time.Minute, "per run: the longest wait for both ToRs to notice and to switch; a run that takes longer is reported as \"> timeout\"")
	fs.DurationVar(&s.after.RestartTime, "failover.after-restart-time", 0,
		`graceful-restart.restart-time of the "after" variant; 0: the working tree's default`)
	fs.DurationVar(&s.after.LongLivedStaleTime, "failover.after-long-lived-stale-time", 0,
		`graceful-restart.long-lived-stale-time of the "after" variant; 0: the working tree's default`)
	fs.DurationVar(&s.after.HoldTime, "failover.after-hold-time", 0,
		`hold-time of the "after" variant's sessions; 0: the lab's 9s`)
}

// settings are the graceful-restart and hold settings a variant's config
// sets; a zero field is left out of the config (the binary's default;
// HoldTime: the lab's 9 s, which always sets one).
type settings struct {
	RestartTime, LongLivedStaleTime, HoldTime time.Duration
}

// config is the lab config of a variant's virtbgps.
func (st settings) config(mapping string) lab.VirtbgpConfig {
	return lab.VirtbgpConfig{
		Mapping:            mapping,
		RestartTime:        st.RestartTime,
		LongLivedStaleTime: st.LongLivedStaleTime,
		HoldTime:           st.HoldTime,
		LogLevel:           "info",
	}
}

// beforeSettings are the defaults of virtbgp before issue 11: restart-time
// 120 s and no LLGR (the revision's defaults: left out), hold-time 90 s
// (set: the lab's default would be 9 s).
var beforeSettings = settings{HoldTime: 90 * time.Second}

func failureNames(fs []lab.Failure) string {
	var n []string
	for _, f := range fs {
		n = append(n, f.String())
	}
	return strings.Join(n, ",")
}

func parseFailures(list string) ([]lab.Failure, error) {
	var out []lab.Failure
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		i := slices.IndexFunc(lab.Failures, func(f lab.Failure) bool { return f.String() == n })
		if i < 0 {
			return nil, fmt.Errorf("unknown failure %q (%s)", n, failureNames(lab.Failures))
		}
		if !slices.Contains(out, lab.Failures[i]) {
			out = append(out, lab.Failures[i])
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no failure to run")
	}
	return out, nil
}

const guestName = "bench-fo"

var prefixes = []netip.Prefix{netip.MustParsePrefix("192.0.2.85/32"), netip.MustParsePrefix("2001:db8:85::85/128")}

const mappingYAML = `version: 1
vms:
  bench-fo:
    ips: [192.0.2.85, "2001:db8:85::85"]
`

// variant is one virtbgp build under test, with its settings.
type variant struct {
	Key, Label string
	// Binary is a prebuilt virtbgp; "" lets the lab build the working tree.
	Binary string
	Rev    string
	Set    settings
	Runs   int // per failure
}

func (s *suite) Run(ctx context.Context, env *bench.Env) (*bench.Section, error) {
	if s.runs < 1 || s.beforeRuns < 1 {
		return nil, fmt.Errorf("-failover.runs and -failover.before-runs must be at least 1")
	}
	if s.timeout <= 0 {
		return nil, fmt.Errorf("-failover.timeout must be positive")
	}
	failures, err := parseFailures(s.failures)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "virtbgp-bench-failover-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	mp := filepath.Join(tmp, "mapping.yaml")
	if err := os.WriteFile(mp, []byte(mappingYAML), 0o644); err != nil {
		return nil, err
	}

	var variants []variant
	for _, k := range strings.Split(s.variants, ",") {
		switch strings.TrimSpace(k) {
		case "before":
			bin, rev, err := bench.BuildVirtbgp(ctx, env, s.before, tmp)
			if err != nil {
				return nil, err
			}
			variants = append(variants, variant{Key: "before", Label: "before (" + rev + ")", Binary: bin, Rev: rev, Set: beforeSettings, Runs: s.beforeRuns})
		case "after":
			rev := bench.Describe(env.Root)
			variants = append(variants, variant{Key: "after", Label: "after (" + rev + ")", Rev: rev, Set: s.after, Runs: s.runs})
		case "":
		default:
			return nil, fmt.Errorf("unknown variant %q (before, after)", k)
		}
	}
	if len(variants) == 0 {
		return nil, fmt.Errorf("no variant to run")
	}

	var results []*variantResult
	for _, v := range variants {
		r, err := s.runVariant(ctx, env, v, failures, mp)
		if err != nil {
			return nil, fmt.Errorf("variant %s: %w", v.Key, err)
		}
		results = append(results, r)
	}
	return s.section(results, failures), nil
}

// variantResult is one variant's lab and runs.
type variantResult struct {
	V                  variant
	KVM                bool
	LoadStart, LoadEnd string
	Runs               []*runRecord
	// Stopped is why the runs stopped early (the lab in an unknown
	// state), "" if every run ran.
	Stopped             string
	SetupTook, RunsTook time.Duration
}

func (s *suite) runVariant(ctx context.Context, env *bench.Env, v variant, failures []lab.Failure, mp string) (res *variantResult, err error) {
	log := env.Log.With("variant", v.Key)
	res = &variantResult{V: v, LoadStart: bench.Load()}
	log.Info("lab up", "load", res.LoadStart)
	t0 := time.Now()
	l, err := lab.Up(ctx, lab.Options{VirtbgpBinary: v.Binary, SourceRoot: env.Root, Log: log})
	if err != nil {
		return nil, err
	}
	defer func() {
		if derr := l.Down(context.WithoutCancel(ctx)); derr != nil {
			err = errors.Join(err, derr)
		}
		res.LoadEnd = bench.Load()
		log.Info("lab down", "load", res.LoadEnd)
	}()
	res.KVM = l.KVM
	cfg := v.Set.config(mp)
	if err := l.StartVirtbgpAll(ctx, cfg); err != nil {
		return res, err
	}
	mon, err := l.MonitorRoutes(ctx)
	if err != nil {
		return res, err
	}
	defer mon.Close()
	if err := l.A.CreateGuest(ctx, lab.Guest{Name: guestName}); err != nil {
		return res, err
	}
	if err := onlyVia(ctx, l, l.A, 2*time.Minute); err != nil {
		return res, fmt.Errorf("the guest's routes via hvA: %w", err)
	}
	res.SetupTook = time.Since(t0)

	t0 = time.Now()
	x := l.A
	for _, f := range failures {
		for i := range v.Runs {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			rec := s.runOnce(ctx, l, mon, cfg, f, i, x, l.Other(x))
			res.Runs = append(res.Runs, rec)
			log.Info("failover run", rec.logAttrs()...)
			if rec.Err != "" {
				res.Stopped = fmt.Sprintf("%s run %d (%s dies): %s", f, i+1, rec.From, rec.Err)
				log.Warn("failover runs stopped", "failure", f.String(), "run", i+1, "error", rec.Err)
				res.RunsTook = time.Since(t0)
				return res, nil
			}
			x = l.Other(x)
		}
	}
	res.RunsTook = time.Since(t0)
	return res, nil
}
