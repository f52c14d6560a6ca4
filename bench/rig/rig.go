// Package rig is the test bed of issue 5's side-by-side suites (event to
// route, bulk, edit churn, footprint): the real-world lab (integration/lab:
// BIRD 2 and FRR in the tor namespace, hypervisor namespaces hvA and hvB), a
// real libvirtd serving the test driver over its unix socket with as many
// domains as a suite asks for, a kernel route monitor on BIRD's table, and
// the two speakers taking turns on hvA's address: virtbgp (the lab's binary,
// its libvirt URI pointed at the test-driver libvirtd) and ExaBGP 4.2 fed
// announce lines through its process API. Both peer with the same BIRD (and
// FRR where a suite asks for it) on the same session.
package rig

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	lv "libvirt.org/go/libvirt"

	"github.com/virtbgp/virtbgp/bench"
	"github.com/virtbgp/virtbgp/integration/lab"
	"github.com/virtbgp/virtbgp/internal/libvirttest"
)

// Rig is a running test bed.
type Rig struct {
	Lab *lab.Lab
	// Host is the hypervisor the speakers take turns on (hvA).
	Host *lab.Host
	// URI is the test-driver libvirtd's URI; Conn a connection to it.
	URI  string
	Conn *lv.Connect
	// Mon records the tor namespace's route changes.
	Mon *lab.RouteMonitor
	// Dir is the rig's scratch directory (mappings).
	Dir string

	log      *slog.Logger
	libvirtd *libvirttest.Daemon
	domains  map[string]*lv.Domain
}

// Options are a suite's choices of rig.
type Options struct {
	// FRR starts FRR beside BIRD (a suite that counts at FRR). Without it
	// the lab has BIRD alone: FRR's zebra would read every route BIRD
	// writes to the kernel and compete for the CPU in every figure.
	FRR bool
}

// Up builds the rig. Call Down when done, also after an error of a later
// step (Up cleans up after itself).
func Up(ctx context.Context, env *bench.Env, opts Options) (r *Rig, err error) {
	dir, err := os.MkdirTemp("", "virtbgp-bench-")
	if err != nil {
		return nil, fmt.Errorf("rig: %w", err)
	}
	// The lab's FRR runs as user frr: it needs to reach its directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("rig: %w", err)
	}
	r = &Rig{Dir: dir, log: env.Log, domains: map[string]*lv.Domain{}}
	defer func() {
		if err != nil {
			r.Down()
			r = nil
		}
	}()
	r.Lab, err = lab.Up(ctx, lab.Options{Dir: filepath.Join(dir, "lab"), SourceRoot: env.Root, Log: env.Log, NoFRR: !opts.FRR})
	if err != nil {
		return r, fmt.Errorf("rig: %w", err)
	}
	r.Host = r.Lab.A
	lvdir := filepath.Join(dir, "libvirtd")
	if err := os.MkdirAll(lvdir, 0o700); err != nil {
		return r, fmt.Errorf("rig: %w", err)
	}
	r.libvirtd, err = libvirttest.Run(lvdir)
	if err != nil {
		return r, fmt.Errorf("rig: %w", err)
	}
	if _, err := r.libvirtd.Ready(10 * time.Second); err != nil {
		return r, fmt.Errorf("rig: %w", err)
	}
	r.URI = libvirttest.URI(lvdir)
	r.Conn, err = lv.NewConnect(r.URI)
	if err != nil {
		return r, fmt.Errorf("rig: connect %s: %w", r.URI, err)
	}
	// The test driver's own running domain "test" is not mapped: it stays
	// out of every figure.
	r.Mon, err = r.Lab.MonitorRoutes(ctx)
	if err != nil {
		return r, fmt.Errorf("rig: %w", err)
	}
	return r, nil
}

// Down ends everything the rig started, by PID, and removes its directory
// (unless the environment variable VIRTBGP_BENCH_KEEP is set: then the
// directory stays, with the speakers' logs copied into it).
func (r *Rig) Down() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, d := range r.domains {
		_ = d.Free()
	}
	if r.Mon != nil {
		_ = r.Mon.Close()
	}
	if r.Conn != nil {
		_, _ = r.Conn.Close()
	}
	if r.libvirtd != nil {
		if err := r.libvirtd.Close(); err != nil {
			r.log.Warn("rig: libvirtd", "error", err)
		}
	}
	keep := os.Getenv("VIRTBGP_BENCH_KEEP") != ""
	if r.Lab != nil && keep {
		// The lab removes its directory: keep the speakers' logs.
		for _, f := range []string{r.Host.VirtbgpLogPath(), filepath.Join(r.Host.Dir, "exabgp", "exabgp.log")} {
			if b, err := os.ReadFile(f); err == nil {
				_ = os.WriteFile(filepath.Join(r.Dir, filepath.Base(f)), b, 0o644)
			}
		}
	}
	if r.Lab != nil {
		if err := r.Lab.Down(ctx); err != nil {
			r.log.Warn("rig: lab down", "error", err)
		}
	}
	if keep {
		r.log.Info("rig: kept its directory (VIRTBGP_BENCH_KEEP)", "dir", r.Dir)
	} else {
		_ = os.RemoveAll(r.Dir)
	}
}

// ---------------------------------------------------------------- domains

// DomainName is the name of the i-th domain of a suite.
func DomainName(i int) string { return fmt.Sprintf("vm%05d", i) }

// DefineDomains defines domains 0..n-1 (persistent, shut off) that are not
// defined yet.
func (r *Rig) DefineDomains(n int) error {
	for i := range n {
		name := DomainName(i)
		if _, ok := r.domains[name]; ok {
			continue
		}
		xml := fmt.Sprintf(`<domain type='test'><name>%s</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>`, name)
		d, err := r.Conn.DomainDefineXML(xml)
		if err != nil {
			return fmt.Errorf("define %s: %w", name, err)
		}
		r.domains[name] = d
	}
	return nil
}

// StartDomain starts a defined domain.
func (r *Rig) StartDomain(i int) error {
	d, ok := r.domains[DomainName(i)]
	if !ok {
		return fmt.Errorf("start %s: not defined", DomainName(i))
	}
	if err := d.Create(); err != nil {
		return fmt.Errorf("start %s: %w", DomainName(i), err)
	}
	return nil
}

// RunDomains defines domains 0..n-1 and starts them: a host's worth of
// running domains for the suites that measure a whole table.
func (r *Rig) RunDomains(n int) error {
	if err := r.DefineDomains(n); err != nil {
		return err
	}
	for i := range n {
		if err := r.StartDomain(i); err != nil {
			return err
		}
	}
	return nil
}

// StopDomains destroys every running domain of the rig.
func (r *Rig) StopDomains() error {
	var errs []error
	for name, d := range r.domains {
		if active, err := d.IsActive(); err == nil && active {
			if err := d.Destroy(); err != nil {
				errs = append(errs, fmt.Errorf("destroy %s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// ---------------------------------------------------------------- routes

// Route is one service IP of a mapped domain with the attributes both
// speakers announce: MED and two communities.
type Route struct {
	Prefix      netip.Prefix
	MED         uint32
	Communities []string
}

// Routes returns perVM routes for each of domains 0..n-1: 10.<i/250>.<i%250>.<j+1>/32
// (at most 250 IPs per domain), MED 100+j, communities 65000:<i%1000> and
// 65000:999.
func Routes(n, perVM int) [][]Route {
	out := make([][]Route, n)
	for i := range n {
		for j := range perVM {
			a := netip.AddrFrom4([4]byte{10, byte(i / 250), byte(i % 250), byte(j + 1)})
			out[i] = append(out[i], Route{
				Prefix:      netip.PrefixFrom(a, 32),
				MED:         uint32(100 + j),
				Communities: []string{fmt.Sprintf("65000:%d", i%1000), "65000:999"},
			})
		}
	}
	return out
}

// Line is the route's ExaBGP announce line.
func (rt Route) Line() string { return lab.AnnounceLine(rt.Prefix, rt.MED, rt.Communities) }

// Lines are the routes' ExaBGP announce lines.
func Lines(rs []Route) []string {
	out := make([]string, len(rs))
	for i, rt := range rs {
		out[i] = rt.Line()
	}
	return out
}

// Flat lists the routes of all domains.
func Flat(rs [][]Route) []Route {
	var out []Route
	for _, v := range rs {
		out = append(out, v...)
	}
	return out
}

// MappingYAML renders the mapping of domains 0..len(rs)-1 with their routes.
func MappingYAML(rs [][]Route) string {
	var b strings.Builder
	b.WriteString("version: 1\nvms:\n")
	for i, v := range rs {
		fmt.Fprintf(&b, "  %s:\n    ips:\n", DomainName(i))
		for _, rt := range v {
			fmt.Fprintf(&b, "      - {prefix: %s, med: %d, communities: [%s]}\n", rt.Prefix.Addr(), rt.MED, strings.Join(rt.Communities, ", "))
		}
	}
	return b.String()
}

// WriteMapping writes a mapping file atomically (rename), as an operator's
// deploy tool would.
func (r *Rig) WriteMapping(path, text string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write mapping: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write mapping: %w", err)
	}
	return nil
}

// ErrLost is returned by Arrivals when the route monitor lost events while
// it waited (a netlink buffer overrun): the measurement is incomplete and
// should be taken again.
var ErrLost = errors.New("the route monitor lost events (netlink overrun)")

// Arrivals waits until BIRD's kernel table has every prefix of want via
// the host (monitor events from index from on) and returns when each
// arrived.
func (r *Rig) Arrivals(ctx context.Context, from int, want []netip.Prefix) (map[netip.Prefix]time.Time, error) {
	pending := make(map[netip.Prefix]bool, len(want))
	for _, p := range want {
		pending[p] = true
	}
	got := make(map[netip.Prefix]time.Time, len(want))
	gw := r.Host.IPv4
	lost := r.Mon.Lost()
	for len(pending) > 0 {
		idx := -1
		_, err := r.Mon.Wait(ctx, from, func(ev lab.RouteEvent) bool {
			idx++
			if ev.Table == lab.BIRDTable && !ev.Deleted && ev.Gateway == gw && pending[ev.Prefix] {
				delete(pending, ev.Prefix)
				got[ev.Prefix] = ev.Time
			}
			return len(pending) == 0 || r.Mon.Lost() != lost
		})
		if err != nil && r.Mon.Lost() == lost {
			return got, fmt.Errorf("%d of %d routes arrived: %w", len(got), len(want), err)
		}
		if r.Mon.Lost() != lost {
			return got, fmt.Errorf("%d of %d routes seen: %w", len(got), len(want), ErrLost)
		}
		from += idx + 1
	}
	return got, nil
}

// WaitTable waits until BIRD's kernel table has every prefix of want via
// the host, by reading the table (not timed: for a suite that only needs
// the table in place).
func (r *Rig) WaitTable(ctx context.Context, want []netip.Prefix) error {
	return lab.Eventually(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		out, err := exec.CommandContext(ctx, "ip", "-n", r.Lab.TorNS, "-4", "route", "show", "table", fmt.Sprint(lab.BIRDTable)).Output()
		if err != nil {
			return fmt.Errorf("ip route show: %w", err)
		}
		have := map[string]bool{}
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) >= 3 && f[1] == "via" && f[2] == r.Host.IPv4.String() {
				have[f[0]] = true
			}
		}
		missing := 0
		for _, p := range want {
			if !have[p.Addr().String()] && !have[p.String()] {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d routes not in BIRD's table yet", missing, len(want))
		}
		return nil
	})
}

// Last returns the latest of the times.
func Last(ts map[netip.Prefix]time.Time) time.Time {
	var last time.Time
	for _, t := range ts {
		if t.After(last) {
			last = t
		}
	}
	return last
}

// WaitTableEmpty waits until BIRD's kernel table holds no route via the
// host: between the speakers' turns.
func (r *Rig) WaitTableEmpty(ctx context.Context) error {
	return lab.Eventually(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		out, err := exec.CommandContext(ctx, "ip", "-n", r.Lab.TorNS, "-4", "route", "show", "table", fmt.Sprint(lab.BIRDTable)).Output()
		if err != nil {
			return fmt.Errorf("ip route show: %w", err)
		}
		if n := strings.Count(string(out), "via "+r.Host.IPv4.String()+" "); n > 0 {
			return fmt.Errorf("BIRD's table has %d routes via %s", n, r.Host.IPv4)
		}
		return nil
	})
}

// ---------------------------------------------------------------- speakers

// Virtbgp are the choices of a virtbgp turn.
type Virtbgp struct {
	// Mapping file.
	Mapping string
	// Peers: BIRDv4 when empty.
	Peers []netip.Addr
	// Watch the mapping (mapping.watch).
	Watch bool
	// LogLevel: "" is info.
	LogLevel string
	// Binary is a virtbgp binary to run instead of the lab's (a build of
	// an earlier revision, bench.BuildVirtbgp); empty: the lab's.
	Binary string
	// CPUProfile makes virtbgp write a CPU profile of its run to this file
	// (VIRTBGP_CPUPROFILE), complete once StopVirtbgp returns.
	CPUProfile string
	// MappingExtra is YAML under the config's mapping section
	// (lab.VirtbgpConfig.MappingExtra): mapping.metadata, see
	// MetadataConfigYAML.
	MappingExtra string
	// Extra is top-level YAML added to the config (lab.VirtbgpConfig.Extra:
	// the api section).
	Extra string
}

// StartVirtbgp starts the lab's virtbgp on the host against the
// test-driver libvirtd, at log level info, without graceful restart (its
// stop withdraws everything at once, for the next turn), and waits for
// its sessions.
func (r *Rig) StartVirtbgp(ctx context.Context, v Virtbgp) (time.Time, error) {
	peers := v.Peers
	if len(peers) == 0 {
		peers = []netip.Addr{lab.BIRDv4}
	}
	var env []string
	if v.CPUProfile != "" {
		env = append(env, "VIRTBGP_CPUPROFILE="+v.CPUProfile)
	}
	t0 := time.Now()
	err := r.Host.StartVirtbgp(ctx, lab.VirtbgpConfig{
		Mapping:           v.Mapping,
		LibvirtURI:        r.URI,
		Peers:             peers,
		NoGracefulRestart: true,
		NoMappingWatch:    !v.Watch,
		LogLevel:          cmp.Or(v.LogLevel, "info"),
		Binary:            v.Binary,
		Env:               env,
		MappingExtra:      v.MappingExtra,
		Extra:             v.Extra,
	})
	if err != nil {
		return t0, err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := r.Lab.WaitSessions(wctx, r.routers(peers), r.Host.IPv4); err != nil {
		return t0, fmt.Errorf("virtbgp sessions: %w", err)
	}
	return t0, nil
}

// StopVirtbgp stops virtbgp (SIGTERM) and waits until BIRD has dropped its
// routes.
func (r *Rig) StopVirtbgp(ctx context.Context) error {
	if err := r.Host.StopVirtbgp(ctx, syscall.SIGTERM); err != nil {
		return err
	}
	return r.WaitTableEmpty(ctx)
}

// StartExaBGP starts ExaBGP on the host (virtbgp must be stopped).
func (r *Rig) StartExaBGP(ctx context.Context, peers ...netip.Addr) (*lab.ExaBGP, error) {
	return r.Host.StartExaBGP(ctx, lab.ExaBGPConfig{Peers: peers})
}

// StopExaBGP stops ExaBGP and waits until BIRD has dropped its routes.
func (r *Rig) StopExaBGP(ctx context.Context, e *lab.ExaBGP) error {
	if err := e.Stop(ctx); err != nil {
		return err
	}
	return r.WaitTableEmpty(ctx)
}

func (r *Rig) routers(peers []netip.Addr) []lab.Router {
	var out []lab.Router
	for _, p := range peers {
		switch p {
		case lab.BIRDv4, lab.BIRDv6:
			out = append(out, r.Lab.BIRD)
		default:
			out = append(out, r.Lab.FRR)
		}
	}
	return slices.CompactFunc(out, func(a, b lab.Router) bool { return a.Name() == b.Name() })
}

// Prefixes lists the prefixes of routes.
func Prefixes(rs []Route) []netip.Prefix {
	out := make([]netip.Prefix, len(rs))
	for i, rt := range rs {
		out[i] = rt.Prefix
	}
	return out
}

// FileSize is the size of a file (a log: an offset to read on from), 0 if
// it does not exist.
func FileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// Measure triggers each route in turn and times its arrival in BIRD's
// kernel table from just before the trigger, pausing gap after each
// arrival.
func (r *Rig) Measure(ctx context.Context, routes [][]Route, gap time.Duration, trigger func(i int) error) ([]time.Duration, error) {
	var lat []time.Duration
	for i := range routes {
		p := routes[i][0].Prefix
		from := r.Mon.Len()
		t0 := time.Now()
		if err := trigger(i); err != nil {
			return nil, err
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		got, err := r.Arrivals(wctx, from, []netip.Prefix{p})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("route %d (%s): %w", i, p, err)
		}
		lat = append(lat, got[p].Sub(t0))
		time.Sleep(gap)
	}
	return lat, nil
}
