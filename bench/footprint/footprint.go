// Package footprint is the benchmark suite "footprint" (issue 5, figure 5):
// the resident memory and CPU time of a speaker holding a table of routes
// on an idle BGP session, virtbgp beside ExaBGP (package rig).
package footprint

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/virtbgp/virtbgp/bench"
	"github.com/virtbgp/virtbgp/bench/rig"
)

func init() { bench.Register(&suite{}) }

type suite struct {
	routes int
	perVM  int
	window time.Duration
	settle time.Duration
}

func (*suite) Name() string  { return "footprint" }
func (*suite) Title() string { return "Footprint: idle memory and CPU (issue 5, figure 5)" }
func (*suite) Order() int    { return 50 }

func (s *suite) Flags(fs *flag.FlagSet) {
	fs.IntVar(&s.routes, "footprint.routes", 1000, "routes announced (a multiple of -footprint.per-vm)")
	fs.IntVar(&s.perVM, "footprint.per-vm", 10, "service IPs per domain")
	fs.DurationVar(&s.window, "footprint.window", 60*time.Second, "how long each speaker is measured, idle")
	fs.DurationVar(&s.settle, "footprint.settle", 5*time.Second, "idle time after the table reached BIRD, before the window")
}

// usage is one speaker's measurement over the window.
type usage struct {
	speaker string
	procs   string
	rssEnd  int64 // KiB, at the end of the window
	rssMax  int64 // KiB, the largest sample
	cpu     time.Duration
	window  time.Duration
}

func (s *suite) Run(ctx context.Context, env *bench.Env) (*bench.Section, error) {
	if s.perVM < 1 || s.perVM > 250 || s.routes < s.perVM || s.routes%s.perVM != 0 || s.window < time.Second {
		return nil, fmt.Errorf("-footprint.routes must be a multiple of -footprint.per-vm (1..250), -footprint.window at least 1s")
	}
	r, err := rig.Up(ctx, env, rig.Options{})
	if err != nil {
		return nil, err
	}
	defer r.Down()
	n := s.routes / s.perVM
	if err := r.RunDomains(n); err != nil {
		return nil, err
	}
	routes := rig.Routes(n, s.perVM)
	flat := rig.Flat(routes)
	loadStart := bench.Load()

	mapping := filepath.Join(r.Dir, "mapping.yaml")
	if err := r.WriteMapping(mapping, rig.MappingYAML(routes)); err != nil {
		return nil, err
	}
	if _, err := r.StartVirtbgp(ctx, rig.Virtbgp{Mapping: mapping, Watch: true}); err != nil {
		return nil, err
	}
	if err := r.WaitTable(ctx, rig.Prefixes(flat)); err != nil {
		return nil, err
	}
	env.Log.Info("footprint: virtbgp", "routes", len(flat), "window", s.window)
	vb, err := s.measure(ctx, "virtbgp", r.Host.VirtbgpPID())
	if err != nil {
		return nil, err
	}
	if err := r.StopVirtbgp(ctx); err != nil {
		return nil, err
	}

	e, err := r.StartExaBGP(ctx)
	if err != nil {
		return nil, err
	}
	defer e.Stop(context.WithoutCancel(ctx))
	lines := rig.Lines(flat)
	if err := e.Write(lines...); err != nil {
		return nil, err
	}
	if err := r.WaitTable(ctx, rig.Prefixes(flat)); err != nil {
		return nil, err
	}
	env.Log.Info("footprint: exabgp", "routes", len(flat), "window", s.window)
	exa, err := s.measure(ctx, "ExaBGP", e.PID())
	if err != nil {
		return nil, err
	}
	if err := r.StopExaBGP(ctx, e); err != nil {
		return nil, err
	}
	return s.report([]usage{vb, exa}, loadStart, bench.Load()), nil
}

// measure samples the process pid and its children once a second over the
// window, after the settle time.
func (s *suite) measure(ctx context.Context, speaker string, pid int) (usage, error) {
	u := usage{speaker: speaker, window: s.window}
	if pid == 0 {
		return u, fmt.Errorf("%s does not run", speaker)
	}
	select {
	case <-time.After(s.settle):
	case <-ctx.Done():
		return u, ctx.Err()
	}
	pids := append([]int{pid}, children(pid)...)
	var names []string
	for _, p := range pids {
		names = append(names, fmt.Sprintf("%s (%d)", comm(p), p))
	}
	u.procs = strings.Join(names, " + ")
	cpu0, err := bench.CPUTime(pids)
	if err != nil {
		return u, err
	}
	t0 := time.Now()
	for time.Since(t0) < s.window {
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return u, ctx.Err()
		}
		rss, err := rssKiB(pids)
		if err != nil {
			return u, err
		}
		u.rssEnd = rss
		u.rssMax = max(u.rssMax, rss)
	}
	cpu1, err := bench.CPUTime(pids)
	if err != nil {
		return u, err
	}
	u.cpu = cpu1 - cpu0
	u.window = time.Since(t0)
	return u, nil
}

// children lists the child processes of pid (ExaBGP's API process).
func children(pid int) []int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if c, err := strconv.Atoi(f); err == nil {
			out = append(out, c)
		}
	}
	return out
}

func comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// rssKiB sums VmRSS of the processes.
func rssKiB(pids []int) (int64, error) {
	var total int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return 0, fmt.Errorf("rss of %d: %w", pid, err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				if err != nil {
					return 0, fmt.Errorf("rss of %d: %q: %w", pid, line, err)
				}
				total += kib
			}
		}
	}
	return total, nil
}

func (s *suite) report(us []usage, loadStart, loadEnd string) *bench.Section {
	var b strings.Builder
	fmt.Fprintf(&b, `Each speaker holds the same %d /32s (MED and two communities each; for
virtbgp %d running mapped domains × %d on a test-driver libvirtd, its mapping
watched; ExaBGP fed the announce lines) on hvA's IPv4 session with BIRD
(package bench/rig), then idles: %s after the table reached BIRD, RSS
(VmRSS) is sampled every second and CPU time (utime + stime from
/proc/PID/stat, 10 ms ticks) taken over a %s window. ExaBGP counts with its
API process (cat). Keepalives every 3 s (hold time 9 s) for both.

| speaker | processes | RSS at the end | RSS max | CPU time in the window | CPU share |
|---|---|---:|---:|---:|---:|
`, s.routes, s.routes/s.perVM, s.perVM, s.settle, s.window)
	var summary []string
	for _, u := range us {
		share := 100 * u.cpu.Seconds() / u.window.Seconds()
		fmt.Fprintf(&b, "| %s | %s | %.1f MiB | %.1f MiB | %.2f s | %.2f %% |\n", u.speaker, u.procs,
			float64(u.rssEnd)/1024, float64(u.rssMax)/1024, u.cpu.Seconds(), share)
		summary = append(summary, fmt.Sprintf("footprint, %s: RSS %.1f MiB, CPU %.2f s in %s (%.2f %%)", u.speaker,
			float64(u.rssEnd)/1024, u.cpu.Seconds(), u.window.Round(time.Second), share))
	}
	return &bench.Section{
		Markdown: b.String(),
		Summary:  summary,
		Notes:    []string{fmt.Sprintf("load `%s` at the start, `%s` at the end", loadStart, loadEnd)},
	}
}
