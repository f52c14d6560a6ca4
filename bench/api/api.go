// Package api is the benchmark suite "api" (issue 14): how long from an
// announce call of virtbgp's HTTP API on its control socket until BIRD
// shows the manual route, beside how long from writing the same announce
// line to ExaBGP's API process until BIRD shows it, on the same BIRD
// session in the same run (package rig).
package api

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/virtbgp/virtbgp/bench"
	"github.com/virtbgp/virtbgp/bench/rig"
	"github.com/virtbgp/virtbgp/internal/control"
	"github.com/virtbgp/virtbgp/internal/manual"
	"github.com/virtbgp/virtbgp/mapping"
)

func init() { bench.Register(&suite{}) }

type suite struct {
	n      int
	rounds int
	gap    time.Duration
	curl   bool
}

func (*suite) Name() string  { return "api" }
func (*suite) Title() string { return "API announce to route: virtbgp and ExaBGP (issue 14)" }
func (*suite) Order() int    { return 15 }

func (s *suite) Flags(fs *flag.FlagSet) {
	fs.IntVar(&s.n, "api.n", 200, "announce calls (virtbgp) and announce lines (ExaBGP) per round")
	fs.IntVar(&s.rounds, "api.rounds", 2, "rounds, each virtbgp then ExaBGP (a fresh speaker each round)")
	fs.DurationVar(&s.gap, "api.gap", 20*time.Millisecond, "pause after each route arrived, before the next call or line")
	fs.BoolVar(&s.curl, "api.curl", true, "also time virtbgp's announce made by a curl process (the seed's workflow, fork and exec included)")
}

// The rows.
const (
	speakerAPI  = "virtbgp, HTTP API (Go client)"
	speakerCurl = "virtbgp, curl --unix-socket"
	speakerExa  = "ExaBGP, process API line"
	speakerSave = "(virtbgp's share: manual.Save of the state file)"
)

type sample struct {
	speaker string
	round   int
	lat     []time.Duration
}

func (s *suite) Run(ctx context.Context, env *bench.Env) (*bench.Section, error) {
	if s.n < 1 || s.n > 62500 || s.rounds < 1 {
		return nil, fmt.Errorf("-api.n must be 1..62500 and -api.rounds at least 1")
	}
	r, err := rig.Up(ctx, env, rig.Options{})
	if err != nil {
		return nil, err
	}
	defer r.Down()
	routes := rig.Routes(s.n, 1)
	noMapping := filepath.Join(r.Dir, "mapping-none.yaml")
	if err := r.WriteMapping(noMapping, "version: 1\nvms: {}\n"); err != nil {
		return nil, err
	}
	// The routes are 10.x.y.1/32: the pools are their /16s.
	pools := map[string]bool{}
	for _, rt := range routes {
		pools[netip.PrefixFrom(rt[0].Prefix.Addr(), 16).Masked().String()] = true
	}
	var ps []string
	for p := range pools {
		ps = append(ps, p)
	}
	extra := fmt.Sprintf("api:\n  allowed-prefixes: [%s]\n  write-rate: 10000\n", strings.Join(ps, ", "))
	var samples []sample
	loadStart := bench.Load()
	for round := 1; round <= s.rounds; round++ {
		ways := []string{speakerAPI}
		if s.curl {
			ways = append(ways, speakerCurl)
		}
		for _, way := range ways {
			if _, err := r.StartVirtbgp(ctx, rig.Virtbgp{Mapping: noMapping, Extra: extra}); err != nil {
				return nil, err
			}
			c := &control.Client{Path: r.Host.VirtbgpSocket()}
			env.Log.Info("api: virtbgp", "round", round, "way", way, "calls", s.n)
			lat, err := r.Measure(ctx, routes, s.gap, func(i int) error {
				rt := routes[i][0]
				med := rt.MED
				req := manual.Request{Prefix: rt.Prefix.Addr().String(), MED: &med, Communities: rt.Communities}
				if way == speakerCurl {
					body := fmt.Sprintf(`{"prefix":%q,"med":%d,"communities":["%s"]}`, req.Prefix, med, strings.Join(rt.Communities, `","`))
					out, err := exec.CommandContext(ctx, "curl", "-sf", "--unix-socket", r.Host.VirtbgpSocket(),
						"-X", "POST", "-d", body, "http://virtbgp/v1/manual-routes").CombinedOutput()
					if err != nil {
						return fmt.Errorf("curl: %w: %s", err, out)
					}
					return nil
				}
				_, err := c.Announce(ctx, req)
				return err
			})
			if err != nil {
				_ = r.StopVirtbgp(ctx)
				return nil, fmt.Errorf("virtbgp round %d: %w", round, err)
			}
			samples = append(samples, sample{way, round, lat})
			// Stop withdraws (no graceful restart in the rig); the state
			// file would bring them back: the next turn starts empty.
			for _, rt := range routes {
				if _, err := c.Withdraw(ctx, rt[0].Prefix.String()); err != nil {
					return nil, fmt.Errorf("withdraw %s: %w", rt[0].Prefix, err)
				}
			}
			if err := r.StopVirtbgp(ctx); err != nil {
				return nil, err
			}
		}

		e, err := r.StartExaBGP(ctx)
		if err != nil {
			return nil, err
		}
		env.Log.Info("api: exabgp", "round", round, "lines", s.n)
		lat, err := r.Measure(ctx, routes, s.gap, func(i int) error { return e.Write(routes[i][0].Line()) })
		if err != nil {
			_ = e.Stop(ctx)
			return nil, fmt.Errorf("exabgp round %d: %w", round, err)
		}
		samples = append(samples, sample{speakerExa, round, lat})
		if err := r.StopExaBGP(ctx, e); err != nil {
			return nil, err
		}
	}
	// What persisting costs here: manual.Save of a state file of the same
	// size, as each announce does before the route goes out.
	save, err := s.saveCost(r.Dir, routes)
	if err != nil {
		return nil, err
	}
	samples = append(samples, sample{speakerSave, 0, save})
	return s.report(samples, loadStart, bench.Load()), nil
}

// saveCost times manual.Save (write, fsync, rename, directory fsync) of a
// state file growing to n routes, in the rig's directory.
func (s *suite) saveCost(dir string, routes [][]rig.Route) ([]time.Duration, error) {
	path := filepath.Join(dir, manual.FileName)
	set := map[netip.Prefix]manual.Route{}
	var lat []time.Duration
	for _, rt := range routes {
		med := rt[0].MED
		req := manual.Request{Prefix: rt[0].Prefix.Addr().String(), MED: &med, Communities: rt[0].Communities}
		all := mapping.Allow{Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16"), netip.MustParsePrefix("10.1.0.0/16")}}
		br, _, err := manual.Validate(&req, &all)
		if err != nil {
			return nil, err
		}
		set[br.Prefix] = manual.New(br, 0, "", "uid 0", time.Now(), nil)
		t0 := time.Now()
		if err := manual.Save(path, set); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(t0))
	}
	return lat, nil
}

func (s *suite) report(samples []sample, loadStart, loadEnd string) *bench.Section {
	pooled := map[string][]time.Duration{}
	var order []string
	for _, sm := range samples {
		if _, ok := pooled[sm.speaker]; !ok {
			order = append(order, sm.speaker)
		}
		pooled[sm.speaker] = append(pooled[sm.speaker], sm.lat...)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `%d rounds; in each, a fresh virtbgp for each way (its manual routes
withdrawn and the daemon stopped between them) and then a fresh ExaBGP 4.2
take hvA's address and BIRD session in the lab (package bench/rig: BIRD 2 in
the tor namespace).

- **virtbgp, HTTP API**: %d manual routes (one /32 each, MED and two
  communities) announced one after another with `+"`POST /v1/manual-routes`"+` on
  the control socket (internal/control's Go client: a new connection per
  call, the server's SO_PEERCRED check, validation, the state file written
  and fsynced, the reconciler's pass); the clock starts just before the
  call.
- **virtbgp, curl**: the same, each call a `+"`curl --unix-socket`"+` process (the
  seed's workflow: fork, exec and curl's start-up included).
- **ExaBGP**: the same %d routes with the same attributes, one
  `+"`announce route P next-hop self med M community [..]`"+` line each, written to
  its API process (cat of a FIFO: the seed's REST API printed these lines);
  the clock starts just before the write. ExaBGP validates nothing there and
  persists nothing.
- **manual.Save**: not a speaker: the time virtbgp's announce spends
  persisting, the state file of up to %d routes written, fsynced, renamed
  and its directory fsynced on the rig's filesystem (the same disk as
  state-dir in the rig), timed alone after the rounds. A route is persisted
  before it is announced, so that a restart never loses one it announced.
- **Arrival**: BIRD installs its best path into kernel table 100 of the tor
  namespace; `+"`ip -ts monitor route`"+` stamps it (µs). Same machine, same
  clock. After each arrival a %s pause.

| speaker | samples | min | p50 | p90 | p99 | max |
|---|---:|---:|---:|---:|---:|---:|
`, s.rounds, s.n, s.n, s.n, s.gap)
	var summary []string
	for _, sp := range order {
		xs := pooled[sp]
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s |\n", sp, len(xs), bench.Ms(bench.Min(xs)),
			bench.Ms(bench.Quantile(xs, 0.5)), bench.Ms(bench.Quantile(xs, 0.9)), bench.Ms(bench.Quantile(xs, 0.99)), bench.Ms(bench.Max(xs)))
		summary = append(summary, fmt.Sprintf("API announce to route, %s: p50 %s, p99 %s, max %s (%d samples)", sp,
			bench.Ms(bench.Quantile(xs, 0.5)), bench.Ms(bench.Quantile(xs, 0.99)), bench.Ms(bench.Max(xs)), len(xs)))
	}
	b.WriteString("\nPer round (p50 / p99):\n\n| round | speaker | p50 / p99 |\n|---:|---|---|\n")
	for _, sm := range samples {
		if sm.round == 0 {
			continue
		}
		fmt.Fprintf(&b, "| %d | %s | %s / %s |\n", sm.round, sm.speaker, bench.Ms(bench.Quantile(sm.lat, 0.5)), bench.Ms(bench.Quantile(sm.lat, 0.99)))
	}
	return &bench.Section{
		Markdown: b.String(),
		Summary:  summary,
		Notes:    []string{fmt.Sprintf("load `%s` at the start, `%s` at the end", loadStart, loadEnd)},
	}
}
