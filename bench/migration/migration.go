// Package migration is the benchmark suite "migration" (issue 3's
// migration figure): live migrations of a mapped guest back and forth in
// the real-world lab (integration/lab), timing when each ToR's best path
// for the guest's IPv4 /32 switches to the destination against the
// destination's "Resumed Migrated" event, any time the ToR had no route at
// all, and the guest's downtime; for virtbgp before the make-before-break
// change (an older commit, built from a git worktree), for the current tree
// with the guest in the hosts' mapping files, and for the current tree with
// the guest's IPs only in its virtbgp metadata element (issue 10), side by
// side.
package migration

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	lv "libvirt.org/go/libvirt"

	"github.com/virtbgp/virtbgp/bench"
	"github.com/virtbgp/virtbgp/bench/rig"
	"github.com/virtbgp/virtbgp/integration/lab"
	"github.com/virtbgp/virtbgp/internal/control"
	"github.com/virtbgp/virtbgp/internal/status"
	"github.com/virtbgp/virtbgp/mapping"
)

func init() { bench.Register(&suite{}) }

type suite struct {
	n        int
	before   string
	variants string
	fillMiB  int
	settle   time.Duration
}

func (*suite) Name() string  { return "migration" }
func (*suite) Title() string { return "Migration: switch delay and no-route window (issue 3)" }
func (*suite) Order() int    { return 60 }

func (s *suite) Flags(fs *flag.FlagSet) {
	fs.IntVar(&s.n, "migration.n", 30, "live migrations per variant (alternating hvA->hvB, hvB->hvA)")
	fs.StringVar(&s.before, "migration.before", "72eecbd", `git revision of the "before" variant: virtbgp before the make-before-break change`)
	fs.StringVar(&s.variants, "migration.variants", "before,after,metadata", `variants to run: "before" (virtbgp at -migration.before), "after" (the working tree, the guest in the mapping files), "metadata" (the working tree, the guest's IPs only in its virtbgp metadata element)`)
	fs.IntVar(&s.fillMiB, "migration.fill-mib", 0, "MiB of guest memory to fill with data before migrating (0: an idle 64 MiB guest)")
	fs.DurationVar(&s.settle, "migration.settle", time.Second, "quiet time after both ToRs converged, before the next migration")
}

const guestName = "bench"

var (
	pfx4 = netip.MustParsePrefix("192.0.2.80/32")
	pfx6 = netip.MustParsePrefix("2001:db8:80::80/128")
)

const mappingYAML = `version: 1
vms:
  bench:
    med: 10
    communities: ["65001:80"]
    ips: [192.0.2.80, "2001:db8:80::80"]
`

// The "metadata" variant: the hosts' mapping files name another VM (not
// running), not the guest; the guest's virtbgp element gives the same
// routes and attributes as mappingYAML's entry, and mapping.metadata
// allows them.
const (
	metaMappingYAML = `version: 1
vms:
  other:
    med: 10
    communities: ["65001:81"]
    ips: [192.0.2.81, "2001:db8:80::81"]
`
	metaElement = `<vm med="10" communities="65001:80"><ip prefix="192.0.2.80"/><ip prefix="2001:db8:80::80"/></vm>`
	metaConfig  = `metadata:
  enabled: true
  allowed-prefixes: [192.0.2.0/24, "2001:db8::/32"]
`
)

// variant is one virtbgp build under test.
type variant struct {
	Key, Label string
	// Binary is a prebuilt virtbgp (or wrapper); "" lets the lab build the
	// working tree.
	Binary string
	Rev    string
	// Metadata: the guest's IPs are only in its virtbgp metadata element
	// (set with --live --config on a persistent guest, migrated with
	// --persistent --undefinesource), the mapping files do not name it,
	// and virtbgp runs with mapping.metadata enabled.
	Metadata bool
}

func (s *suite) Run(ctx context.Context, env *bench.Env) (*bench.Section, error) {
	if s.n < 1 {
		return nil, fmt.Errorf("-migration.n must be at least 1")
	}
	tmp, err := os.MkdirTemp("", "virtbgp-bench-migration-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	mp := filepath.Join(tmp, "mapping.yaml")
	if err := os.WriteFile(mp, []byte(mappingYAML), 0o644); err != nil {
		return nil, fmt.Errorf("mapping: %w", err)
	}
	metaMP := filepath.Join(tmp, "mapping-metadata.yaml")
	if err := os.WriteFile(metaMP, []byte(metaMappingYAML), 0o644); err != nil {
		return nil, fmt.Errorf("mapping: %w", err)
	}

	var variants []variant
	for _, k := range strings.Split(s.variants, ",") {
		switch strings.TrimSpace(k) {
		case "before":
			bin, rev, err := buildBefore(ctx, env, s.before, tmp)
			if err != nil {
				return nil, err
			}
			variants = append(variants, variant{Key: "before", Label: "before (" + rev + ")", Binary: bin, Rev: rev})
		case "after":
			rev := bench.Describe(env.Root)
			variants = append(variants, variant{Key: "after", Label: "after (" + rev + ")", Rev: rev})
		case "metadata":
			rev := bench.Describe(env.Root)
			variants = append(variants, variant{Key: "metadata", Label: "metadata (" + rev + ")", Rev: rev, Metadata: true})
		case "":
		default:
			return nil, fmt.Errorf("unknown variant %q (before, after, metadata)", k)
		}
	}

	var runs []*runResult
	for _, v := range variants {
		m := mp
		if v.Metadata {
			m = metaMP
		}
		r, err := s.runVariant(ctx, env, v, m)
		if err != nil {
			return nil, fmt.Errorf("variant %s: %w", v.Key, err)
		}
		runs = append(runs, r)
	}
	return s.section(runs), nil
}

// runResult is one variant's run.
type runResult struct {
	V                   variant
	KVM                 bool
	LoadStart, LoadEnd  string
	Start, End          time.Time
	Migrations          []*record
	Failed              int
	SetupTook, MigsTook time.Duration
	// SourceChecks counts the metadata variant's checks that the
	// destination's virtbgp announced the guest from its metadata (after
	// the boot and after each migration).
	SourceChecks int
}

// record is one migration.
type record struct {
	I                            int
	From, To                     *lab.Host
	Err                          string
	Started, Ended               time.Time // virsh migrate
	Incoming, Suspended, Resumed time.Time // dst Started Migrated, src Suspended Migrated, dst Resumed Migrated
	Downtime                     time.Duration
	DowntimeFrom                 string
	Routers                      map[string]*obs
	Lifecycle                    []rig.LifecycleEvent
	Observed                     time.Time // end of the observation
	BIRDLog                      []logLine // BIRD's log lines about the /32
	VirtbgpLog                   []logLine // both virtbgps' log lines about the guest
}

// virtbgpLog returns the lines of a virtbgp log (slog text, "time=...")
// from byte offset off on that name the guest, prefixed with host.
func virtbgpLog(host, path string, off int64) []logLine {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < off {
		return nil
	}
	var out []logLine
	for _, line := range strings.Split(string(b[off:]), "\n") {
		if !strings.Contains(line, guestName) {
			continue
		}
		ts, rest, ok := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		if !ok || !strings.HasPrefix(line, "time=") {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			continue
		}
		out = append(out, logLine{t, host + " virtbgp log (ms): " + rest})
	}
	return out
}

// logLine is a line of BIRD's log (millisecond timestamps).
type logLine struct {
	At   time.Time
	Text string
}

// birdLog returns BIRD's log lines from byte offset off on that name the
// guest's IPv4 prefix.
func birdLog(path string, off int64) []logLine {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < off {
		return nil
	}
	var out []logLine
	for _, line := range strings.Split(string(b[off:]), "\n") {
		if !strings.Contains(line, pfx4.String()) || len(line) < 23 {
			continue
		}
		// timeformat log iso long ms: "2006-01-02 15:04:05.000 <TRACE> ..."
		t, err := time.ParseInLocation("2006-01-02 15:04:05.000", line[:23], time.Local)
		if err != nil {
			continue
		}
		out = append(out, logLine{t, strings.TrimSpace(line[23:])})
	}
	return out
}

func fileSize(path string) int64 {
	if st, err := os.Stat(path); err == nil {
		return st.Size()
	}
	return 0
}

// obs is what one ToR's kernel table showed during a migration.
type obs struct {
	Switch   time.Time // first install via the destination
	Windows  []window  // times without any route
	Events   []lab.RouteEvent
	PrevGW   netip.Addr
	Converge error
}

type window struct {
	From, To time.Time
	Open     bool // no route still when the observation ended
}

func (w window) Len() time.Duration { return w.To.Sub(w.From) }

// longest returns the longest no-route window (0 if none).
func (o *obs) longest() time.Duration {
	var m time.Duration
	for _, w := range o.Windows {
		m = max(m, w.Len())
	}
	return m
}

// router is a ToR as the suite watches it.
type router struct {
	Name  string // BIRD, FRR
	Table int
	Proto string
	R     lab.Router
}

func routers(l *lab.Lab) []router {
	return []router{
		{"BIRD", lab.BIRDTable, "bird", l.BIRD},
		{"FRR", lab.FRRTable, "bgp", l.FRR},
	}
}

// tableState follows one router's kernel route for pfx4 across events.
type tableState struct {
	present bool
	gw      netip.Addr
	since   time.Time // when it went absent
}

func (s *suite) runVariant(ctx context.Context, env *bench.Env, v variant, mp string) (res *runResult, err error) {
	log := env.Log.With("variant", v.Key)
	res = &runResult{V: v, LoadStart: bench.Load(), Start: time.Now()}
	log.Info("lab up", "load", res.LoadStart)
	l, err := lab.Up(ctx, lab.Options{VirtbgpBinary: v.Binary, SourceRoot: env.Root, Log: log})
	if err != nil {
		return nil, err
	}
	defer func() {
		if derr := l.Down(context.WithoutCancel(ctx)); derr != nil {
			err = errors.Join(err, derr)
		}
		res.LoadEnd = bench.Load()
		res.End = time.Now()
		log.Info("lab down", "load", res.LoadEnd)
	}()
	res.KVM = l.KVM
	t0 := time.Now()
	vc := lab.VirtbgpConfig{Mapping: mp, LogLevel: "info"}
	if v.Metadata {
		vc.MappingExtra = metaConfig
	}
	if err := l.StartVirtbgpAll(ctx, vc); err != nil {
		return res, err
	}
	lw, err := rig.WatchLifecycle(map[string]string{l.A.Name: l.A.URI, l.B.Name: l.B.URI})
	if err != nil {
		return res, err
	}
	defer lw.Close()
	mon, err := l.MonitorRoutes(ctx)
	if err != nil {
		return res, err
	}
	defer mon.Close()

	rs := routers(l)
	g := lab.Guest{Name: guestName, FillMiB: s.fillMiB, MemoryMiB: max(64, s.fillMiB+8)}
	if v.Metadata {
		if err := createMetadataGuest(ctx, l.A, g); err != nil {
			return res, err
		}
	} else if err := l.A.CreateGuest(ctx, g); err != nil {
		return res, err
	}
	if s.fillMiB > 0 {
		hctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		err := l.A.WaitGuestHalted(hctx, guestName)
		cancel()
		if err != nil {
			return res, err
		}
	}
	if err := converge(ctx, l, rs, l.A); err != nil {
		return res, fmt.Errorf("the guest's route via hvA: %w", err)
	}
	time.Sleep(s.settle)
	// The state of each table after the boot.
	states := map[string]*tableState{}
	for _, r := range rs {
		st := &tableState{}
		for _, ev := range mon.Events() {
			if ev.Prefix == pfx4 && ev.Table == r.Table && ev.Proto == r.Proto {
				st.present, st.gw = !ev.Deleted, ev.Gateway
			}
		}
		if !st.present || st.gw != l.A.IPv4 {
			return res, fmt.Errorf("%s: table %d has no route for %s via hvA after the boot", r.Name, r.Table, pfx4)
		}
		states[r.Name] = st
	}
	if v.Metadata {
		if err := checkMetadataSource(ctx, l.A); err != nil {
			return res, err
		}
		res.SourceChecks++
	}
	res.SetupTook = time.Since(t0)

	t0 = time.Now()
	from, to := l.A, l.B
	for i := range s.n {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		rec := s.migrate(ctx, l, lw, mon, rs, states, i, from, to, v)
		if v.Metadata && rec.Err == "" {
			if err := checkMetadataSource(ctx, to); err != nil {
				rec.Err = err.Error()
			} else {
				res.SourceChecks++
			}
		}
		res.Migrations = append(res.Migrations, rec)
		if rec.Err != "" {
			res.Failed++
			log.Warn("migration", "i", i, "from", from.Name, "to", to.Name, "error", rec.Err)
			if strings.Contains(rec.Err, "migrate") {
				// The guest did not move: try the same direction again
				// would skew the alternation; stop here.
				return res, nil
			}
		} else {
			log.Info("migration", "i", i, "from", from.Name, "to", to.Name,
				"bird_switch", delay(rec, "BIRD"), "frr_switch", delay(rec, "FRR"),
				"bird_noroute", rec.Routers["BIRD"].longest(), "frr_noroute", rec.Routers["FRR"].longest(),
				"downtime", rec.Downtime)
		}
		from, to = to, from
	}
	res.MigsTook = time.Since(t0)
	return res, nil
}

func delay(rec *record, r string) string {
	o := rec.Routers[r]
	if o == nil || o.Switch.IsZero() || rec.Resumed.IsZero() {
		return "n/a"
	}
	return bench.Ms(o.Switch.Sub(rec.Resumed))
}

// migrate runs and observes one migration.
func (s *suite) migrate(ctx context.Context, l *lab.Lab, lw *rig.LifecycleWatcher, mon *lab.RouteMonitor, rs []router,
	states map[string]*tableState, i int, from, to *lab.Host, v variant) *record {
	rec := &record{I: i, From: from, To: to, Routers: map[string]*obs{}}
	monFrom, lwFrom, logFrom := mon.Len(), lw.Len(), fileSize(l.BIRD.Log)
	vlogFrom := map[*lab.Host]int64{from: fileSize(from.VirtbgpLogPath()), to: fileSize(to.VirtbgpLogPath())}
	mctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var mo lab.MigrateOptions
	if v.Metadata {
		// The element is in both definitions (--live --config); the
		// destination's persistent definition is the source's.
		mo = lab.MigrateOptions{Persistent: true, UndefineSource: true}
	}
	m, err := l.StartMigration(mctx, guestName, from, to, mo)
	if err != nil {
		rec.Err = err.Error()
		return rec
	}
	rec.Started = m.Started
	err = m.Wait(mctx)
	rec.Ended = rec.Started.Add(m.Took())
	if err != nil {
		rec.Err = err.Error()
		return rec
	}
	// Downtime: the source's domjobinfo --completed while it still knows
	// the guest (a transient guest is gone from the source at once), else
	// the destination's.
	for _, h := range []*lab.Host{from, to} {
		ji, err := h.JobInfo(mctx, guestName, true)
		if err != nil {
			continue
		}
		if d, ok := ji.Downtime(); ok {
			rec.Downtime, rec.DowntimeFrom = d, "destination"
			if h == from {
				rec.DowntimeFrom = "source"
			}
			break
		}
	}
	// Both ToRs converge on the destination alone (the source has
	// withdrawn), then a quiet moment to catch late changes.
	convErr := converge(mctx, l, rs, to)
	time.Sleep(s.settle)
	rec.Observed = time.Now()
	rec.BIRDLog = birdLog(l.BIRD.Log, logFrom)
	for h, off := range vlogFrom {
		rec.VirtbgpLog = append(rec.VirtbgpLog, virtbgpLog(h.Name, h.VirtbgpLogPath(), off)...)
	}
	_, _ = lw.Wait(2*time.Second, lwFrom, func(e rig.LifecycleEvent) bool {
		return e.Host == to.Name && e.Is(lv.DOMAIN_EVENT_RESUMED, int(lv.DOMAIN_EVENT_RESUMED_MIGRATED))
	})
	for _, e := range lw.Events()[lwFrom:] {
		if e.Domain != guestName {
			continue
		}
		rec.Lifecycle = append(rec.Lifecycle, e)
		switch {
		case e.Host == to.Name && e.Is(lv.DOMAIN_EVENT_STARTED, int(lv.DOMAIN_EVENT_STARTED_MIGRATED)) && rec.Incoming.IsZero():
			rec.Incoming = e.At
		case e.Host == from.Name && e.Is(lv.DOMAIN_EVENT_SUSPENDED, int(lv.DOMAIN_EVENT_SUSPENDED_MIGRATED)) && rec.Suspended.IsZero():
			rec.Suspended = e.At
		case e.Host == to.Name && e.Is(lv.DOMAIN_EVENT_RESUMED, int(lv.DOMAIN_EVENT_RESUMED_MIGRATED)) && rec.Resumed.IsZero():
			rec.Resumed = e.At
		}
	}
	evs := mon.Events()[monFrom:]
	for _, r := range rs {
		st := states[r.Name]
		o := &obs{PrevGW: st.gw}
		for _, ev := range evs {
			if ev.Prefix != pfx4 || ev.Table != r.Table || ev.Proto != r.Proto {
				continue
			}
			o.Events = append(o.Events, ev)
			switch {
			case ev.Deleted && st.present:
				st.present, st.since = false, ev.Time
			case !ev.Deleted:
				if !st.present {
					o.Windows = append(o.Windows, window{From: st.since, To: ev.Time})
				}
				// A best-path switch is the gateway changing to the
				// destination (BIRD re-installs an unchanged best route
				// when a second path arrives).
				if ev.Gateway == to.IPv4 && (st.gw != to.IPv4 || !st.present) && o.Switch.IsZero() {
					o.Switch = ev.Time
				}
				st.present, st.gw = true, ev.Gateway
			}
		}
		if !st.present {
			o.Windows = append(o.Windows, window{From: st.since, To: rec.Observed, Open: true})
		}
		rec.Routers[r.Name] = o
	}
	if convErr != nil {
		rec.Err = "no convergence on " + to.Name + ": " + convErr.Error()
	} else if rec.Resumed.IsZero() {
		rec.Err = "no Resumed Migrated event from " + to.Name
	}
	return rec
}

// converge waits until every ToR has exactly one path for each of the
// guest's prefixes, via h, and best.
func converge(ctx context.Context, l *lab.Lab, rs []router, h *lab.Host) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, r := range rs {
		err := lab.Eventually(ctx, 50*time.Millisecond, func(ctx context.Context) error {
			rib, err := r.R.Routes(ctx)
			if err != nil {
				return err
			}
			for _, p := range []netip.Prefix{pfx4, pfx6} {
				nh := h.IPv4
				if p.Addr().Is6() {
					nh = h.IPv6
				}
				paths := rib.Paths(p)
				if len(paths) != 1 || paths[0].NextHop != nh || !paths[0].Best {
					return fmt.Errorf("%s: %s has %v, want one best path via %s", r.Name, p, rib.NextHops(p), nh)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// createMetadataGuest defines guest g on h, starts it and writes its
// virtbgp element into both its definitions, as an operator would:
//
//	virsh metadata bench --uri https://virtbgp.github.io/xmlns/virtbgp/1 --key virtbgp --set '<vm ...>' --live --config
func createMetadataGuest(ctx context.Context, h *lab.Host, g lab.Guest) error {
	if err := h.DefineGuest(ctx, g); err != nil {
		return err
	}
	if err := h.StartGuest(ctx, g.Name); err != nil {
		return err
	}
	if _, err := h.Virsh(ctx, "metadata", g.Name, "--uri", mapping.MetadataNS, "--key", mapping.MetadataKey,
		"--set", metaElement, "--live", "--config"); err != nil {
		return fmt.Errorf("virsh metadata --set --live --config on %s: %w", h.Name, err)
	}
	return nil
}

// checkMetadataSource checks that h's virtbgp announces the guest's two
// routes from its virtbgp metadata, without problem (its status).
func checkMetadataSource(ctx context.Context, h *lab.Host) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ctl := control.Client{Path: h.VirtbgpSocket()}
	return lab.Eventually(ctx, 20*time.Millisecond, func(ctx context.Context) error {
		r, err := ctl.Status(ctx)
		if err != nil {
			return fmt.Errorf("virtbgp status on %s: %w", h.Name, err)
		}
		for _, d := range r.Domains {
			if d.Name != guestName {
				continue
			}
			if d.Source != status.SourceMetadata || d.Origin != mapping.MetadataNS || d.Routes != 2 || d.Problem != "" || d.VM != "" {
				return fmt.Errorf("status of %s on %s: source %q, origin %q, %d routes, problem %q, vm %q; want its 2 routes from its metadata",
					guestName, h.Name, d.Source, d.Origin, d.Routes, d.Problem, d.VM)
			}
			return nil
		}
		return fmt.Errorf("no %s in the status of %s", guestName, h.Name)
	})
}
