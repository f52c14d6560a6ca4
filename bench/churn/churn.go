// Package churn is the benchmark suite "churn" (issue 5, figure 4): how
// many UPDATE messages a peer receives when one line of a 10,000-route
// mapping changes, and when the mapping is reloaded unchanged; for virtbgp
// beside ExaBGP given the equivalent lines, on the same sessions with BIRD
// and FRR (package rig).
package churn

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/virtbgp/virtbgp/bench"
	"github.com/virtbgp/virtbgp/bench/rig"
	"github.com/virtbgp/virtbgp/integration/lab"
)

func init() { bench.Register(&suite{}) }

type suite struct {
	routes int
	perVM  int
	settle time.Duration
}

func (*suite) Name() string  { return "churn" }
func (*suite) Title() string { return "Edit churn: UPDATEs a peer receives (issue 5, figure 4)" }
func (*suite) Order() int    { return 40 }

func (s *suite) Flags(fs *flag.FlagSet) {
	fs.IntVar(&s.routes, "churn.routes", 10000, "routes in the table (a multiple of -churn.per-vm)")
	fs.IntVar(&s.perVM, "churn.per-vm", 10, "service IPs per domain")
	fs.DurationVar(&s.settle, "churn.settle", 1500*time.Millisecond, "the counters must stand still this long to count as settled")
}

// counters are what the peers count of hvA's session: FRR's UPDATE
// messages received, BIRD's route updates and withdraws received; and how
// often FRR established the session (a step across a new session would
// count its whole table: it fails instead).
type counters struct {
	FRRUpdates      int
	BIRDUpdates     int
	BIRDWithdrawals int
	FRRSessions     int
}

func (c counters) sub(o counters) counters {
	return counters{c.FRRUpdates - o.FRRUpdates, c.BIRDUpdates - o.BIRDUpdates, c.BIRDWithdrawals - o.BIRDWithdrawals, c.FRRSessions - o.FRRSessions}
}

// change is one step of a speaker: what is done, how to tell it was
// applied, and UPDATEs it sends on purpose (a sentinel) to take off.
type change struct {
	what, target string
	do           func() error
	applied      func(context.Context) error
	extra        int
}

type row struct {
	speaker, change string
	delta           counters
	target          string
	took            time.Duration // until the change reached BIRD (edits only)
}

func (s *suite) Run(ctx context.Context, env *bench.Env) (*bench.Section, error) {
	if s.perVM < 1 || s.perVM > 250 || s.routes < s.perVM || s.routes%s.perVM != 0 {
		return nil, fmt.Errorf("-churn.routes must be a multiple of -churn.per-vm (1..250)")
	}
	r, err := rig.Up(ctx, env, rig.Options{FRR: true})
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
	var rows []row

	// virtbgp, its mapping watched (the operator's edit path) and reloaded
	// with SIGHUP.
	mapping := filepath.Join(r.Dir, "mapping.yaml")
	text := rig.MappingYAML(routes)
	if err := r.WriteMapping(mapping, text); err != nil {
		return nil, err
	}
	if _, err := r.StartVirtbgp(ctx, rig.Virtbgp{Mapping: mapping, Watch: true, Peers: []netip.Addr{lab.BIRDv4, lab.FRRv4}}); err != nil {
		return nil, err
	}
	if err := s.waitTables(ctx, r, flat); err != nil {
		return nil, err
	}
	edited := flat[len(flat)/2]
	newMED := edited.MED + 1000
	editedText := strings.Replace(text, fmt.Sprintf("{prefix: %s, med: %d,", edited.Prefix.Addr(), edited.MED),
		fmt.Sprintf("{prefix: %s, med: %d,", edited.Prefix.Addr(), newMED), 1)
	if editedText == text {
		return nil, fmt.Errorf("churn: the edit did not change the mapping")
	}
	var logFrom int64
	reloaded := func(ctx context.Context) error { // a forced reload logs its outcome
		if err := hasMED(r, edited, newMED)(ctx); err != nil {
			return err
		}
		return logged(r.Host.VirtbgpLogPath(), logFrom, "msg=\"mapping reloaded\"")
	}
	for _, c := range []change{
		{"one-line edit (MED of one IP), file watch", "1", func() error { return r.WriteMapping(mapping, editedText) }, hasMED(r, edited, newMED), 0},
		{"rewrite with the same content, file watch", "0", func() error { return r.WriteMapping(mapping, editedText) }, hasMED(r, edited, newMED), 0},
		{"reload with no change (SIGHUP)", "0", func() error {
			logFrom = rig.FileSize(r.Host.VirtbgpLogPath())
			return r.Host.SignalVirtbgp(syscall.SIGHUP)
		}, reloaded, 0},
	} {
		rw, err := s.step(ctx, r, "virtbgp", c)
		if err != nil {
			return nil, err
		}
		rows = append(rows, rw)
	}
	if err := r.StopVirtbgp(ctx); err != nil {
		return nil, err
	}
	// FRR drops the stopped speaker's routes: ExaBGP's counts start from
	// a new session.
	if err := s.waitFRR(ctx, r, 0); err != nil {
		return nil, err
	}

	// ExaBGP: the same table as lines; the edit is one line; a "reload"
	// of the REST pattern sends its whole table again.
	e, err := r.StartExaBGP(ctx, lab.BIRDv4, lab.FRRv4)
	if err != nil {
		return nil, err
	}
	defer e.Stop(context.WithoutCancel(ctx))
	lines := rig.Lines(flat)
	if err := e.Write(lines...); err != nil {
		return nil, err
	}
	if err := s.waitTables(ctx, r, flat); err != nil {
		return nil, err
	}
	changed := edited
	changed.MED = newMED
	lines[len(flat)/2] = changed.Line()
	// ExaBGP gives no sign of having read lines that changed nothing: a
	// sentinel route after them shows they were all processed (its own
	// UPDATE is taken off the count).
	sentinel := rig.Route{Prefix: netip.MustParsePrefix("192.0.2.253/32"), MED: 1}
	for _, c := range []change{
		{"one announce line with the new MED", "—", func() error { return e.Write(changed.Line()) }, hasMED(r, edited, newMED), 0},
		{"the whole table's lines again, unchanged (then a sentinel route)", "—", func() error {
			return e.Write(append(lines, sentinel.Line())...)
		}, hasMED(r, sentinel, sentinel.MED), 1},
	} {
		rw, err := s.step(ctx, r, "ExaBGP", c)
		if err != nil {
			return nil, err
		}
		rows = append(rows, rw)
	}
	if err := r.StopExaBGP(ctx, e); err != nil {
		return nil, err
	}
	return s.report(rows, loadStart, bench.Load()), nil
}

// hasMED checks that BIRD has rt with MED med.
func hasMED(r *rig.Rig, rt rig.Route, med uint32) func(context.Context) error {
	return func(ctx context.Context) error {
		out, err := r.Lab.BIRD.Birdc(ctx, "show", "route", "for", rt.Prefix.String(), "all")
		if err != nil {
			return err
		}
		if !strings.Contains(out, fmt.Sprintf("BGP.med: %d\n", med)) {
			return fmt.Errorf("%s: MED %d not at BIRD yet", rt.Prefix, med)
		}
		return nil
	}
}

// step settles, reads the counters, makes the change, waits until it was
// applied and the counters settle again, and returns the difference less
// the change's extra UPDATEs.
func (s *suite) step(ctx context.Context, r *rig.Rig, speaker string, c change) (row, error) {
	before, err := s.settled(ctx, r)
	if err != nil {
		return row{}, err
	}
	t0 := time.Now()
	if err := c.do(); err != nil {
		return row{}, err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := lab.Eventually(wctx, 20*time.Millisecond, c.applied); err != nil {
		return row{}, err
	}
	took := time.Since(t0)
	// A change that sends nothing is only seen by waiting: the watch's
	// debounce (300 ms) and a reload must have had their chance.
	time.Sleep(2 * time.Second)
	after, err := s.settled(ctx, r)
	if err != nil {
		return row{}, err
	}
	if after.FRRSessions != before.FRRSessions {
		return row{}, fmt.Errorf("churn: %s, %s: FRR's session with %s was established again during the step", speaker, c.what, r.Host.IPv4)
	}
	rw := row{speaker: speaker, change: c.what, delta: after.sub(before), target: c.target}
	rw.delta.FRRUpdates -= c.extra
	rw.delta.BIRDUpdates -= c.extra
	if c.target == "1" {
		rw.took = took
	}
	return rw, nil
}

// settled reads the counters until they stood still for s.settle.
func (s *suite) settled(ctx context.Context, r *rig.Rig) (counters, error) {
	var last counters
	var since time.Time
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		c, err := read(ctx, r)
		if err != nil {
			return c, err
		}
		if c != last || since.IsZero() {
			last, since = c, time.Now()
		} else if time.Since(since) >= s.settle {
			return c, nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return last, fmt.Errorf("churn: the peers' counters did not settle")
}

var birdStats = regexp.MustCompile(`Import (updates|withdraws):\s+(\d+)`)

// read reads the peers' counters of hvA's IPv4 session.
func read(ctx context.Context, r *rig.Rig) (counters, error) {
	var c counters
	out, err := r.Lab.FRR.Vtysh(ctx, "show bgp neighbors "+r.Host.IPv4.String()+" json")
	if err != nil {
		return c, fmt.Errorf("frr neighbor: %w", err)
	}
	var nb map[string]struct {
		ConnectionsEstablished int `json:"connectionsEstablished"`
		MessageStats           struct {
			UpdatesRecv int `json:"updatesRecv"`
		} `json:"messageStats"`
	}
	if err := json.Unmarshal([]byte(out), &nb); err != nil {
		return c, fmt.Errorf("frr neighbor json: %w", err)
	}
	n, ok := nb[r.Host.IPv4.String()]
	if !ok {
		return c, fmt.Errorf("frr has no neighbor %s", r.Host.IPv4)
	}
	c.FRRUpdates, c.FRRSessions = n.MessageStats.UpdatesRecv, n.ConnectionsEstablished
	out, err = r.Lab.BIRD.Birdc(ctx, "show", "protocols", "all", "hvA4")
	if err != nil {
		return c, err
	}
	for _, m := range birdStats.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.Atoi(m[2])
		if m[1] == "updates" {
			c.BIRDUpdates = v
		} else {
			c.BIRDWithdrawals = v
		}
	}
	return c, nil
}

// waitTables waits until BIRD's kernel table and FRR have the whole table
// from hvA: the session's initial table must not land in a step's count.
func (s *suite) waitTables(ctx context.Context, r *rig.Rig, flat []rig.Route) error {
	if err := r.WaitTable(ctx, rig.Prefixes(flat)); err != nil {
		return err
	}
	return s.waitFRR(ctx, r, len(flat))
}

// waitFRR waits until FRR has n prefixes from hvA (0: also when FRR has
// no session with hvA).
func (s *suite) waitFRR(ctx context.Context, r *rig.Rig, n int) error {
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return lab.Eventually(wctx, 100*time.Millisecond, func(ctx context.Context) error {
		out, err := r.Lab.FRR.Vtysh(ctx, "show bgp ipv4 unicast summary json")
		if err != nil {
			return err
		}
		var sum struct {
			Peers map[string]struct {
				PfxRcd int `json:"pfxRcd"`
			} `json:"peers"`
		}
		if err := json.Unmarshal([]byte(out), &sum); err != nil {
			return fmt.Errorf("frr summary json: %w", err)
		}
		if got := sum.Peers[r.Host.IPv4.String()].PfxRcd; got != n {
			return fmt.Errorf("frr has %d of %d prefixes from %s", got, n, r.Host.IPv4)
		}
		return nil
	})
}

func (s *suite) report(rows []row, loadStart, loadEnd string) *bench.Section {
	var b strings.Builder
	fmt.Fprintf(&b, `A table of %d /32s (%d domains × %d, MED and two communities each) on
hvA's IPv4 sessions with BIRD and FRR (package bench/rig). Counted at the
peers, before and after each change once their counters stood still for %s:
**FRR**: UPDATE messages received (`+"`show bgp neighbors X json`"+`, messageStats.updatesRecv);
**BIRD**: route updates and withdraws received on the session (`+"`show protocols all`"+`,
"Import updates/withdraws: received"). An edit counts as applied when BIRD
shows the new MED; a change that sends nothing is given 2 s more. Why the
counters must stand still that long first: FRR sends a ROUTE-REFRESH about
1.1 s after virtbgp's session comes up (seen in a packet capture in the tor
namespace; BIRD sends none), and GoBGP answers it, as it must, with the
whole table; a baseline taken before that would count the table.

- **virtbgp**: its mapping file is edited (written and renamed; the file
  watch picks it up), rewritten with the same content, and reloaded with
  SIGHUP without a change.
- **ExaBGP**: the REST pattern's equivalents: one announce line with the new
  MED; and, for "reload", the whole table's lines sent again (what the
  pattern's feeder does after its own restart: it keeps no state to diff).

| speaker | change | FRR UPDATE messages | BIRD route updates | BIRD withdraws | target (virtbgp) | edit to BIRD |
|---|---|---:|---:|---:|---|---:|
`, s.routes, s.routes/s.perVM, s.perVM, s.settle)
	var summary []string
	for _, rw := range rows {
		tgt := rw.target
		if tgt != "—" {
			want, _ := strconv.Atoi(tgt)
			tgt = fmt.Sprintf("exactly %s: %s", tgt, bench.Met(rw.delta.FRRUpdates == want && rw.delta.BIRDUpdates == want && rw.delta.BIRDWithdrawals == 0))
		}
		took := "—"
		if rw.took > 0 {
			took = bench.Ms(rw.took)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %s | %s |\n", rw.speaker, rw.change, rw.delta.FRRUpdates,
			rw.delta.BIRDUpdates, rw.delta.BIRDWithdrawals, tgt, took)
		summary = append(summary, fmt.Sprintf("churn, %s, %s: %d UPDATEs at FRR, %d route updates at BIRD",
			rw.speaker, rw.change, rw.delta.FRRUpdates, rw.delta.BIRDUpdates))
	}
	b.WriteString("\n\"edit to BIRD\" includes the file watch's 300 ms debounce.\n")
	return &bench.Section{
		Markdown: b.String(),
		Summary:  summary,
		Notes:    []string{fmt.Sprintf("load `%s` at the start, `%s` at the end", loadStart, loadEnd)},
	}
}

// logged checks that the file has text after byte offset from.
func logged(path string, from int64, text string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if int64(len(b)) > from && strings.Contains(string(b[from:]), text) {
		return nil
	}
	return fmt.Errorf("%s: no %s yet", path, text)
}
