package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	vblab "github.com/virtbgp/virtbgp/integration/lab"
	"github.com/virtbgp/virtbgp/internal/control"
	"github.com/virtbgp/virtbgp/internal/status"
	"github.com/virtbgp/virtbgp/mapping"
)

// metaVM is the guest whose routes come from its virtbgp metadata only.
const metaVM = "meta"

// metaElement is its element: the attributes scCheckRIB checks.
const metaElement = `<vm med="65" communities="65001:65" large-communities="65001:6:65">` +
	`<ip prefix="192.0.2.65"/><ip prefix="2001:db8:65::65"/></vm>`

// metaConfig is mapping.metadata of both hosts' virtbgp.
const metaConfig = `metadata:
  enabled: true
  allowed-prefixes: [192.0.2.0/24, "2001:db8::/32"]
`

func init() {
	scVMs[metaVM] = scVM{netip.MustParsePrefix("192.0.2.65/32"), netip.MustParsePrefix("2001:db8:65::65/128"), 65,
		[]uint32{65001<<16 | 65}, []mapping.LargeCommunity{{GlobalAdmin: 65001, LocalData1: 6, LocalData2: 65}}}
}

// TestLabMetadataMigration: a guest whose service IPs are only in its
// virtbgp metadata, on hosts whose mapping files do not name it, is
// announced on both ToRs with the element's attributes and live-migrates
// A -> B -> A with make-before-break intact, in two variants: persistent
// with the source undefined (the element set with --live --config), and
// peer-to-peer (--p2p: the source's libvirtd drives the destination's) of
// a transient guest whose element is in its live definition only. The
// metadata moves with the guest, and each destination announces the
// standby and then the normal route from it. Each host's status says
// where the routes come from.
func TestLabMetadataMigration(t *testing.T) {
	l := upLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	mp := filepath.Join(t.TempDir(), "mapping.yaml")
	scDo(t, "mapping", os.WriteFile(mp, []byte(scMapping), 0o644)) // names web, pinned, big, cold: not meta
	scDo(t, "start virtbgp", l.StartVirtbgpAll(ctx, vblab.VirtbgpConfig{Mapping: mp, MappingExtra: metaConfig}))
	mon, err := l.MonitorRoutes(ctx)
	scDo(t, "route monitor", err)
	defer mon.Close()
	m := &scMigLab{l: l, mon: mon, ev: map[*vblab.Host]*scEvents{}}
	for _, h := range l.Hosts() {
		m.ev[h] = scWatchEvents(ctx, t, h)
	}
	A, B := l.A, l.B

	for _, v := range []struct {
		name string
		o    vblab.MigrateOptions
	}{
		{"PersistentUndefineSource", vblab.MigrateOptions{Persistent: true, UndefineSource: true}},
		{"P2P", vblab.MigrateOptions{P2P: true}},
	} {
		t.Run(v.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(ctx, 40*time.Second)
			defer cancel()
			scReset(ctx, t, l)
			if v.o.Persistent {
				scDo(t, "define", A.DefineGuest(ctx, vblab.Guest{Name: metaVM}))
				scDo(t, "start", A.StartGuest(ctx, metaVM))
				metaVirsh(ctx, t, A, metaVM, "--set", metaElement, "--live", "--config")
			} else {
				scDo(t, "create", A.CreateGuest(ctx, vblab.Guest{Name: metaVM}))
				metaVirsh(ctx, t, A, metaVM, "--set", metaElement, "--live")
			}
			scWant(ctx, t, l, 5*time.Second, map[string]*vblab.Host{metaVM: A})
			metaSource(ctx, t, A)

			offB, offA := grLogSize(B.VirtbgpLogPath()), grLogSize(A.VirtbgpLogPath())
			m.migrate(ctx, t, metaVM, A, B, v.o, nil)
			if v.o.UndefineSource {
				scDefined(ctx, t, B, A, metaVM)
			}
			metaSource(ctx, t, B)
			m.migrate(ctx, t, metaVM, B, A, v.o, nil)
			if v.o.UndefineSource {
				scDefined(ctx, t, A, B, metaVM)
			}
			metaSource(ctx, t, A)
			// The element came with the started and resumed events: does
			// libvirt also raise a metadata change on the destination
			// (docs/metadata.md: not expected)?
			changed := len(metaLogLines(t, B, offB, `event="Metadata Changed"`, "domain="+metaVM+" ", "namespace=")) +
				len(metaLogLines(t, A, offA, `event="Metadata Changed"`, "domain="+metaVM+" ", "namespace="))
			t.Logf("metadata change events the destinations' virtbgp got for the arriving guest: %d", changed)
		})
	}
	t.Logf("worst delay from the destination's resume to a ToR's kernel switching: %v", m.maxDelay)
}

// metaVirsh runs virsh metadata for name's virtbgp element against host
// h's libvirtd: "virsh metadata NAME --uri NS --key virtbgp ARGS".
func metaVirsh(ctx context.Context, t *testing.T, h *vblab.Host, name string, args ...string) {
	t.Helper()
	_, err := h.Virsh(ctx, append([]string{"metadata", name, "--uri", mapping.MetadataNS, "--key", mapping.MetadataKey}, args...)...)
	scDo(t, fmt.Sprintf("virsh metadata %s %s on %s", name, strings.Join(args, " "), h.Name), err)
}

// metaSource checks that host h's status has the guest's 2 routes from
// its virtbgp metadata, without problem.
func metaSource(ctx context.Context, t *testing.T, h *vblab.Host) {
	t.Helper()
	ctl := control.Client{Path: h.VirtbgpSocket()}
	err := vblab.Eventually(ctx, 20*time.Millisecond, func(ctx context.Context) error {
		r, err := ctl.Status(ctx)
		if err != nil {
			return err
		}
		for _, d := range r.Domains {
			if d.Name == metaVM {
				if d.Source != status.SourceMetadata || d.Origin != mapping.MetadataNS || d.Routes != 2 || d.Problem != "" || d.VM != "" {
					return fmt.Errorf("status of %s on %s: %+v", metaVM, h.Name, d)
				}
				return nil
			}
		}
		return fmt.Errorf("no %s in the status of %s", metaVM, h.Name)
	})
	if err != nil {
		t.Fatal(err)
	}
	if log, err := os.ReadFile(h.VirtbgpLogPath()); err == nil && strings.Contains(string(log), "domain metadata rejected") {
		t.Errorf("%s logged a rejected element", h.Name)
	}
}

// --- where the routes come from: live edits, removal, rejections, Nova,
// precedence (docs/metadata.md) ---

// metaNovaConfig is mapping.nova of both hosts' virtbgp in
// TestLabMetadataSources: Nova's fixed IPs inside 10.0.0.0/16 (of the
// ToRs' pools, 10.0.0.0/8), with MED 20 and a community.
const metaNovaConfig = `nova:
  enabled: true
  allowed-prefixes: [10.0.0.0/16]
  attributes: {med: 20, communities: ["65001:20"]}
`

// metaPath is what both ToRs must have for one prefix: one path, the best,
// from host h (next hop its address, AS path [its AS]) with these
// attributes.
type metaPath struct {
	h     *vblab.Host
	med   uint32
	comms []uint32
	large []mapping.LargeCommunity
}

// metaRIB is what both ToRs must have, and nothing else.
type metaRIB map[netip.Prefix]metaPath

// vm adds the routes of scVMs[name] from host h.
func (w metaRIB) vm(name string, h *vblab.Host) metaRIB {
	vm := scVMs[name]
	for _, pfx := range vm.prefixes() {
		w[pfx] = metaPath{h, vm.med, vm.comms, vm.large}
	}
	return w
}

// add adds a route of pfx from host h with MED med and communities.
func (w metaRIB) add(pfx string, h *vblab.Host, med uint32, comms ...uint32) metaRIB {
	w[netip.MustParsePrefix(pfx)] = metaPath{h: h, med: med, comms: comms}
	return w
}

func (w metaRIB) clone() metaRIB { return maps.Clone(w) }

// check says what is wrong with rib: as scCheckRIB, per prefix.
func (w metaRIB) check(rib vblab.RIB) error {
	for pfx, want := range w {
		nh := scNextHop(want.h, pfx)
		paths := rib.Paths(pfx)
		if len(paths) != 1 || paths[0].NextHop != nh {
			return fmt.Errorf("%s: want one path via %s (%s), have %v", pfx, nh, want.h.Name, rib.NextHops(pfx))
		}
		p := paths[0]
		comms := slices.Sorted(slices.Values(want.comms))
		if !p.Best || p.Peer != nh || !slices.Equal(p.ASPath, []uint32{want.h.ASN}) || p.MED == nil || *p.MED != want.med ||
			!slices.Equal(p.Communities, comms) || !slices.Equal(p.LargeCommunities, want.large) {
			return fmt.Errorf("%s: path %s\nwant best, from %s, as-path [%d], med %d, communities %v, large communities %v",
				pfx, p, nh, want.h.ASN, want.med, comms, want.large)
		}
	}
	for pfx, paths := range rib {
		if _, ok := w[pfx]; !ok && len(paths) > 0 {
			return fmt.Errorf("unexpected prefix %s: %v", pfx, paths)
		}
	}
	return nil
}

// metaWant waits until both ToRs have exactly w.
func metaWant(ctx context.Context, t *testing.T, l *vblab.Lab, w metaRIB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := l.WaitRIBs(ctx, 25*time.Millisecond, func(_ vblab.Router, rib vblab.RIB) error { return w.check(rib) }); err != nil {
		t.Fatal(err)
	}
}

// metaCreate creates and starts the transient guest g on host h with
// metadata (elements with their namespaces, as virsh dumpxml shows them)
// in its domain XML, as an orchestrator that writes the metadata at
// creation does.
func metaCreate(ctx context.Context, t *testing.T, l *vblab.Lab, h *vblab.Host, g vblab.Guest, metadata string) {
	t.Helper()
	x, err := l.GuestXML(g)
	scDo(t, "guest xml", err)
	x = strings.Replace(x, "</domain>", "  <metadata>\n"+metadata+"\n  </metadata>\n</domain>", 1)
	f := filepath.Join(t.TempDir(), g.Name+".xml")
	scDo(t, "guest xml", os.WriteFile(f, []byte(x), 0o644))
	_, err = h.Virsh(ctx, "create", f)
	scDo(t, fmt.Sprintf("create %s on %s", g.Name, h.Name), err)
}

// metaSetCmd writes name's element on host h with the lab's `virtbgp
// metadata set --live` (which checks the element first).
func metaSetCmd(ctx context.Context, t *testing.T, l *vblab.Lab, h *vblab.Host, name, element string) {
	t.Helper()
	out, err := exec.CommandContext(ctx, l.VirtbgpBinary(), "metadata", "set", "--connect", h.URI, "--domain", name, "--live", element).CombinedOutput()
	scDo(t, fmt.Sprintf("virtbgp metadata set --domain %s on %s: %s", name, h.Name, out), err)
}

// metaDomain waits until check accepts domain name in host h's `virtbgp
// status --json`, and returns it.
func metaDomain(ctx context.Context, t *testing.T, h *vblab.Host, name string, check func(status.Domain) error) status.Domain {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var d status.Domain
	err := vblab.Eventually(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		out, err := h.VirtbgpCtl(ctx, "status", "--json")
		if err != nil {
			return err
		}
		var r status.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			return vblab.Permanent(fmt.Errorf("virtbgp status --json on %s: %w", h.Name, err))
		}
		i := slices.IndexFunc(r.Domains, func(d status.Domain) bool { return d.Name == name })
		if i < 0 {
			return fmt.Errorf("no %s in the status of %s", name, h.Name)
		}
		d = r.Domains[i]
		return check(d)
	})
	if err != nil {
		t.Fatalf("virtbgp status on %s: %v; %s: %+v", h.Name, err, name, d)
	}
	return d
}

// metaRefused returns d's refused claims, prefix -> reason.
func metaRefused(d status.Domain) map[string]string {
	out := map[string]string{}
	for _, r := range d.Refused {
		out[r.Prefix] = r.Reason
	}
	return out
}

// metaLogLines returns the lines of host h's virtbgp log from byte offset
// on that contain every one of parts.
func metaLogLines(t *testing.T, h *vblab.Host, offset int64, parts ...string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(grReadLog(t, h.VirtbgpLogPath(), offset), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			out = append(out, line)
		}
	}
	return out
}

// metaBIRDUpdates returns the lines of BIRD's log from byte offset on that
// record a route of pfx received from a hypervisor: each UPDATE that
// carries pfx gives one, "added" (new, or replacing the previous path:
// BIRD then also logs "removed [replaced]", not counted), "ignored" (the
// same path again) or "removed" (withdrawn).
//
//	2026-12-02 02:28:37.917 <TRACE> hvA4.ipv4 > added [best] 192.0.2.65/32 0L 4G unicast
func metaBIRDUpdates(t *testing.T, l *vblab.Lab, offset int64, pfx netip.Prefix) []birdLogLine {
	t.Helper()
	var out []birdLogLine
	for _, ln := range birdLog(t, l, offset) {
		f := strings.Fields(ln.Text)
		if len(f) < 5 || !strings.HasPrefix(f[1], "hv") || f[2] != ">" || !slices.Contains(f[3:], pfx.String()) ||
			(f[3] == "removed" && f[4] == "[replaced]") {
			continue
		}
		out = append(out, ln)
	}
	return out
}

func birdLines(lns []birdLogLine) string {
	var b strings.Builder
	for _, ln := range lns {
		fmt.Fprintf(&b, "%s %s\n", ln.Time.Format("15:04:05.000"), ln.Text)
	}
	return b.String()
}

// metaQuiet fails for any line of BIRD's log (from birdOff) or kernel route
// event (from monFrom) about pfxs: nothing was sent for them. Call it after
// a barrier.
func metaQuiet(t *testing.T, l *vblab.Lab, mon *vblab.RouteMonitor, birdOff int64, monFrom int, what string, pfxs ...netip.Prefix) {
	t.Helper()
	for _, pfx := range pfxs {
		if lns := metaBIRDUpdates(t, l, birdOff, pfx); len(lns) > 0 {
			t.Errorf("%s: BIRD received %s:\n%s", what, pfx, birdLines(lns))
		}
		var evs []vblab.RouteEvent
		for _, ev := range mon.Events()[monFrom:] {
			if ev.Prefix == pfx {
				evs = append(evs, ev)
			}
		}
		if len(evs) > 0 {
			t.Errorf("%s: kernel route events for %s:\n%s", what, pfx, eventLines(evs))
		}
	}
}

// metaKernelSync returns once the ToRs' kernel tables have settled with
// have installed and the monitor has reported every change before.
func metaKernelSync(ctx context.Context, t *testing.T, l *vblab.Lab, mon *vblab.RouteMonitor, have ...netip.Prefix) {
	t.Helper()
	kernelSettled(ctx, t, l, mon, have)
	scDo(t, "route monitor sync", mon.Sync(ctx))
}

// TestLabMetadataSources: the metadata sources of docs/metadata.md on two
// real libvirtd hosts and both ToRs, one lab for all:
//
//   - LiveEdit: virsh metadata --set --live of a running guest's element
//     is one UPDATE at the ToRs, for the route it changes only;
//   - Remove: virsh metadata --remove withdraws the guest's routes;
//   - Rejected: a malformed element and a claim outside the allowed pools
//     are logged once, shown in virtbgp status, and touch no other guest;
//   - Nova: a guest created with Nova's element is announced as
//     mapping.nova says; virtbgp's element overrides it, and a bad one
//     gives nothing (no fallback to Nova);
//   - Precedence: the file wins for the domain it maps and for its
//     prefixes, on this host or not; of two guests claiming one prefix the
//     one announcing it keeps it, and the other takes over without a
//     withdrawal when it lets go.
func TestLabMetadataSources(t *testing.T) {
	l := upLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	mp := filepath.Join(t.TempDir(), "mapping.yaml")
	scDo(t, "mapping", os.WriteFile(mp, []byte(scMapping), 0o644))
	scDo(t, "start virtbgp", l.StartVirtbgpAll(ctx, vblab.VirtbgpConfig{Mapping: mp, MappingExtra: metaConfig + metaNovaConfig}))
	mon, err := l.MonitorRoutes(ctx)
	scDo(t, "route monitor", err)
	defer mon.Close()
	A, B := l.A, l.B
	meta := scVMs[metaVM]

	t.Run("LiveEdit", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		scReset(ctx, t, l)
		scDo(t, "create", A.CreateGuest(ctx, vblab.Guest{Name: metaVM}))
		metaVirsh(ctx, t, A, metaVM, "--set", metaElement, "--live")
		w := metaRIB{}.vm(metaVM, A)
		metaWant(ctx, t, l, w)
		metaKernelSync(ctx, t, l, mon, meta.prefixes()...)

		// The IPv6 route's MED, 65 -> 66.
		birdOff, from, logOff := grLogSize(l.BIRD.Log), mon.Len(), grLogSize(A.VirtbgpLogPath())
		edited := strings.Replace(metaElement, `<ip prefix="2001:db8:65::65"/>`, `<ip prefix="2001:db8:65::65" med="66"/>`, 1)
		t0 := time.Now()
		metaVirsh(ctx, t, A, metaVM, "--set", edited, "--live")
		w = w.clone()
		w[meta.v6] = metaPath{A, 66, meta.comms, meta.large}
		metaWant(ctx, t, l, w)
		took := time.Since(t0)
		// Barrier: a guest started on hvA after the edit; its routes
		// reach the ToRs over the same sessions after anything hvA sent
		// for the edit, and the kernel tables settle.
		scDo(t, "create", A.CreateGuest(ctx, vblab.Guest{Name: "web"}))
		metaWant(ctx, t, l, w.clone().vm("web", A))
		metaKernelSync(ctx, t, l, mon, slices.Concat(meta.prefixes(), scVMs["web"].prefixes())...)

		ups := metaBIRDUpdates(t, l, birdOff, meta.v6)
		if len(ups) != 1 || !strings.Contains(ups[0].Text, "hvA6.ipv6 > added") {
			t.Errorf("BIRD received %s %d times, want once (added, replacing):\n%s", meta.v6, len(ups), birdLines(ups))
		}
		metaQuiet(t, l, mon, birdOff, from, "the edit of the IPv6 route's MED", meta.v4)
		// The kernel route of each ToR is replaced once (an IPv6 route
		// replaced by an equal one is reported; IPv4's are not), never
		// deleted.
		for _, r := range l.Routers() {
			var evs []vblab.RouteEvent
			for _, ev := range scRouteEvents(mon, from, meta) {
				if ev.Table == r.Table() {
					evs = append(evs, ev)
				}
			}
			if len(evs) != 1 || evs[0].Deleted || evs[0].Gateway != A.IPv6 {
				t.Errorf("%s: want one replacement of %s via %s in kernel table %d, have:\n%s", r.Name(), meta.v6, A.Name, r.Table(), eventLines(evs))
			}
		}
		if evs := metaLogLines(t, A, logOff, `msg="domain event"`, "domain="+metaVM+" ", `event="Metadata Changed"`, "namespace="+mapping.MetadataNS); len(evs) != 1 {
			t.Errorf("virtbgp on %s got %d metadata change events for the edit, want 1:\n%s", A.Name, len(evs), strings.Join(evs, "\n"))
		}
		if len(ups) == 1 {
			t.Logf("live edit of %s's MED: at BIRD %v after virsh started, at both ToRs (polled) in %v; one UPDATE (%s), no change of %s",
				meta.v6, ups[0].Time.Sub(t0.Truncate(time.Millisecond)), took.Round(time.Millisecond), ups[0].Text, meta.v4)
		}
	})

	t.Run("Remove", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		scReset(ctx, t, l)
		scDo(t, "create", A.CreateGuest(ctx, vblab.Guest{Name: metaVM}))
		metaVirsh(ctx, t, A, metaVM, "--set", metaElement, "--live")
		scDo(t, "create", B.CreateGuest(ctx, vblab.Guest{Name: "web"}))
		metaWant(ctx, t, l, metaRIB{}.vm(metaVM, A).vm("web", B))
		metaKernelSync(ctx, t, l, mon, slices.Concat(meta.prefixes(), scVMs["web"].prefixes())...)

		from, logOff := mon.Len(), grLogSize(A.VirtbgpLogPath())
		t0 := time.Now()
		_, err := A.Virsh(ctx, "metadata", metaVM, "--uri", mapping.MetadataNS, "--remove", "--live")
		scDo(t, "virsh metadata --remove --live", err)
		metaWant(ctx, t, l, metaRIB{}.vm("web", B))
		took := time.Since(t0)
		// Both ToRs' kernels lost the routes.
		for _, r := range l.Routers() {
			for _, pfx := range meta.prefixes() {
				wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := mon.Wait(wctx, from, func(ev vblab.RouteEvent) bool {
					return ev.Prefix == pfx && ev.Table == r.Table() && ev.Deleted
				})
				cancel()
				if err != nil {
					t.Errorf("%s: %s not deleted from kernel table %d: %v", r.Name(), pfx, r.Table(), err)
				}
			}
		}
		metaDomain(ctx, t, A, metaVM, func(d status.Domain) error {
			if d.State != "running" || d.Source != "" || d.Routes != 0 || d.Problem != "" {
				return fmt.Errorf("want running, no source, no routes, no problem")
			}
			return nil
		})
		for _, pfx := range meta.prefixes() {
			if lines := metaLogLines(t, A, logOff, `msg="route withdrawn"`, "domain="+metaVM+" ", "prefix="+pfx.String()+" ", "reason=unclaimed"); len(lines) != 1 {
				t.Errorf("virtbgp on %s logged the withdrawal of %s %d times, want once:\n%s", A.Name, pfx, len(lines), strings.Join(lines, "\n"))
			}
		}
		t.Logf("element removed: %s's routes gone from both ToRs in %v; web's on hvB kept", metaVM, took.Round(time.Millisecond))
	})

	t.Run("Rejected", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		scReset(ctx, t, l)
		scDo(t, "create", A.CreateGuest(ctx, vblab.Guest{Name: metaVM}))
		metaVirsh(ctx, t, A, metaVM, "--set", metaElement, "--live")
		scDo(t, "create", A.CreateGuest(ctx, vblab.Guest{Name: "web"}))
		w := metaRIB{}.vm(metaVM, A).vm("web", A)
		metaWant(ctx, t, l, w)
		metaKernelSync(ctx, t, l, mon, slices.Concat(meta.prefixes(), scVMs["web"].prefixes())...)

		birdOff, from, logOff := grLogSize(l.BIRD.Log), mon.Len(), grLogSize(A.VirtbgpLogPath())
		// A malformed element (virsh checks nothing), and one with a claim
		// outside the allowed pools (inside the ToRs' 198.51.100.0/24:
		// were it sent, they would have it) besides a good one.
		scDo(t, "create", A.CreateGuest(ctx, vblab.Guest{Name: "bad"}))
		metaVirsh(ctx, t, A, "bad", "--set", `<vm med="-1"><ip prefix="192.0.2.70"/></vm>`, "--live")
		scDo(t, "create", A.CreateGuest(ctx, vblab.Guest{Name: "far"}))
		metaSetCmd(ctx, t, l, A, "far", `<vm med="71"><ip prefix="198.51.100.9"/><ip prefix="192.0.2.71"/></vm>`)

		const medErr = `vm: med: want an integer from 0 to 4294967295, got "-1"`
		bad := metaDomain(ctx, t, A, "bad", func(d status.Domain) error {
			if d.Source != status.SourceMetadata || d.Problem != status.ProblemMetadataError || d.Routes != 0 ||
				!strings.HasPrefix(d.MetadataError, `domain "bad": virtbgp metadata:1:`) || !strings.Contains(d.MetadataError, medErr) {
				return fmt.Errorf("want source metadata, problem metadata-error with %q, no routes", medErr)
			}
			return nil
		})
		far := metaDomain(ctx, t, A, "far", func(d status.Domain) error {
			if d.Source != status.SourceMetadata || d.Problem != status.ProblemClaimsRefused || d.Routes != 1 || len(d.Refused) != 1 ||
				metaRefused(d)["198.51.100.9/32"] != "outside the prefixes allowed to this source" {
				return fmt.Errorf("want source metadata, problem claims-refused, 198.51.100.9/32 refused, 1 route")
			}
			return nil
		})
		// Barrier: a guest started on hvA after both.
		scDo(t, "create", A.CreateGuest(ctx, vblab.Guest{Name: "cold"}))
		w = w.clone().vm("cold", A).add("192.0.2.71/32", A, 71)
		metaWant(ctx, t, l, w)
		metaKernelSync(ctx, t, l, mon, slices.Concat(meta.prefixes(), scVMs["web"].prefixes(), scVMs["cold"].prefixes())...)
		metaQuiet(t, l, mon, birdOff, from, "a bad element and a refused claim elsewhere", slices.Concat(meta.prefixes(), scVMs["web"].prefixes())...)
		metaDomain(ctx, t, A, metaVM, func(d status.Domain) error {
			if d.Source != status.SourceMetadata || d.Routes != 2 || d.Problem != "" {
				return fmt.Errorf("want source metadata, 2 routes, no problem")
			}
			return nil
		})

		rejected := metaLogLines(t, A, logOff, `msg="domain metadata rejected"`)
		if len(rejected) != 1 || !strings.Contains(rejected[0], " domain=bad ") || !strings.Contains(rejected[0], " source=metadata ") ||
			!strings.Contains(rejected[0], strings.ReplaceAll(medErr, `"`, `\"`)) {
			t.Errorf("virtbgp on %s: want one \"domain metadata rejected\" for bad, logged:\n%s", A.Name, strings.Join(rejected, "\n"))
		}
		refused := metaLogLines(t, A, logOff, `msg="route claim refused"`)
		if len(refused) != 1 || !strings.Contains(refused[0], " domain=far ") || !strings.Contains(refused[0], " prefix=198.51.100.9/32 ") ||
			!strings.Contains(refused[0], `reason="outside the prefixes allowed to this source"`) {
			t.Errorf("virtbgp on %s: want one \"route claim refused\" for far's 198.51.100.9/32, logged:\n%s", A.Name, strings.Join(refused, "\n"))
		}
		t.Logf("bad: %s\nfar: refused %+v\nno UPDATE, no kernel change for %s's and web's routes", bad.MetadataError, far.Refused, metaVM)
	})

	t.Run("Nova", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		scReset(ctx, t, l)
		nova, err := os.ReadFile("../mapping/testdata/nova/test_config_metadata_flavor_extra_specs.xml")
		scDo(t, "nova's xml", err)
		// Nova's element as Nova's tests expect it: of its fixed IPs,
		// 10.0.0.1 is inside mapping.nova's pool; 192.168.1.1 and
		// fdf8:f53b:82e4::52 are not, fe80::f95c:b030:7094 is link-local;
		// the floating ones are not of the types announced.
		metaCreate(ctx, t, l, B, vblab.Guest{Name: "nova"}, string(nova))
		w := metaRIB{}.add("10.0.0.1/32", B, 20, 65001<<16|20)
		metaWant(ctx, t, l, w)
		d := metaDomain(ctx, t, B, "nova", func(d status.Domain) error {
			r := metaRefused(d)
			if d.Source != status.SourceNova || d.Origin != mapping.NovaNS || d.Routes != 1 || d.Problem != status.ProblemClaimsRefused ||
				len(r) != 3 || r["192.168.1.1/32"] != "outside the prefixes allowed to this source" ||
				r["fdf8:f53b:82e4::52/128"] != "outside the prefixes allowed to this source" || r["fe80::f95c:b030:7094/128"] == "" {
				return fmt.Errorf("want source nova, 1 route, 192.168.1.1, fdf8:f53b:82e4::52 and fe80::f95c:b030:7094 refused")
			}
			return nil
		})
		t.Logf("Nova's element: 10.0.0.1/32 via hvB, med 20, community 65001:20 on both ToRs; refused %+v", d.Refused)

		// virtbgp's element wins over Nova's.
		metaSetCmd(ctx, t, l, B, "nova", `<vm med="30"><ip prefix="192.0.2.30"/></vm>`)
		metaWant(ctx, t, l, metaRIB{}.add("192.0.2.30/32", B, 30))
		metaDomain(ctx, t, B, "nova", func(d status.Domain) error {
			if d.Source != status.SourceMetadata || d.Ignored != status.SourceNova || d.Routes != 1 || d.Problem != "" {
				return fmt.Errorf("want source metadata, nova ignored, 1 route")
			}
			return nil
		})
		// A bad virtbgp element gives nothing, and Nova's is not used
		// instead.
		metaVirsh(ctx, t, B, "nova", "--set", `<vm med="x"><ip prefix="192.0.2.30"/></vm>`, "--live")
		metaWant(ctx, t, l, metaRIB{})
		metaDomain(ctx, t, B, "nova", func(d status.Domain) error {
			if d.Source != status.SourceMetadata || d.Ignored != status.SourceNova || d.Problem != status.ProblemMetadataError || d.Routes != 0 {
				return fmt.Errorf("want source metadata, nova ignored, problem metadata-error, no routes")
			}
			return nil
		})
		// Barrier (the ToRs have nothing: 10.0.0.1 must not come back): a
		// guest started on hvB after the bad element.
		scDo(t, "create", B.CreateGuest(ctx, vblab.Guest{Name: "cold"}))
		metaWant(ctx, t, l, metaRIB{}.vm("cold", B))
		t.Logf("virtbgp's element overrides Nova's; a bad one gives nothing, no fallback to Nova")
	})

	t.Run("Precedence", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		scReset(ctx, t, l)
		// The file maps web (running on hvB): its element is ignored.
		scDo(t, "create", B.CreateGuest(ctx, vblab.Guest{Name: "web"}))
		metaSetCmd(ctx, t, l, B, "web", `<vm med="99"><ip prefix="192.0.2.99"/></vm>`)
		// thief on hvA claims web's IPv4 (web runs on hvB), pinned's
		// (running nowhere) and one of its own; the barriers below add
		// more of its own with virtbgp metadata set.
		thief := func(more ...int) string {
			var b strings.Builder
			b.WriteString(`<vm med="81"><ip prefix="192.0.2.61"/><ip prefix="192.0.2.62"/><ip prefix="192.0.2.81"/>`)
			for _, n := range more {
				fmt.Fprintf(&b, `<ip prefix="192.0.2.%d"/>`, n)
			}
			return b.String() + "</vm>"
		}
		metaCreate(ctx, t, l, A, vblab.Guest{Name: "thief"}, `<virtbgp:vm xmlns:virtbgp="`+mapping.MetadataNS+`" med="81">`+
			`<virtbgp:ip prefix="192.0.2.61"/><virtbgp:ip prefix="192.0.2.62"/><virtbgp:ip prefix="192.0.2.81"/></virtbgp:vm>`)
		metaDomain(ctx, t, B, "web", func(d status.Domain) error {
			if d.Source != status.SourceFile || d.VM != "web" || d.Ignored != status.SourceMetadata || d.Routes != 2 || d.Problem != "" {
				return fmt.Errorf("want source file, vm web, metadata ignored, 2 routes")
			}
			return nil
		})
		metaDomain(ctx, t, A, "thief", func(d status.Domain) error {
			r := metaRefused(d)
			if d.Source != status.SourceMetadata || d.Routes != 1 || d.Problem != status.ProblemClaimsRefused || len(r) != 2 ||
				r["192.0.2.61/32"] != `the mapping file gives this prefix to "web"` || r["192.0.2.62/32"] != `the mapping file gives this prefix to "pinned"` {
				return fmt.Errorf("want source metadata, 1 route, 192.0.2.61 (web's) and 192.0.2.62 (pinned's) refused")
			}
			return nil
		})

		// Two guests of hvA claim 192.0.2.90: m1 first. m2's UUID is the
		// lower, so m1 keeps the prefix because it announces it.
		const m1UUID, m2UUID = "f0000000-0000-4000-8000-000000000090", "10000000-0000-4000-8000-000000000090"
		metaCreate(ctx, t, l, A, vblab.Guest{Name: "m1", UUID: m1UUID}, `<virtbgp:vm xmlns:virtbgp="`+mapping.MetadataNS+`" med="1">`+
			`<virtbgp:ip prefix="192.0.2.90"/></virtbgp:vm>`)
		// m1 on hvA and cold on hvB, started after thief's claims and
		// web's element, are the barriers for what must not be there.
		scDo(t, "create", B.CreateGuest(ctx, vblab.Guest{Name: "cold"}))
		w := metaRIB{}.vm("web", B).vm("cold", B).add("192.0.2.81/32", A, 81).add("192.0.2.90/32", A, 1)
		metaWant(ctx, t, l, w)
		t.Logf("file over metadata: web's file routes via hvB only, its element ignored; thief's claims on web's and pinned's prefixes refused")

		p90 := netip.MustParsePrefix("192.0.2.90/32")
		metaKernelSync(ctx, t, l, mon, p90)
		birdOff, from := grLogSize(l.BIRD.Log), mon.Len()
		metaCreate(ctx, t, l, A, vblab.Guest{Name: "m2", UUID: m2UUID}, `<virtbgp:vm xmlns:virtbgp="`+mapping.MetadataNS+`" med="2">`+
			`<virtbgp:ip prefix="192.0.2.90"/></virtbgp:vm>`)
		metaDomain(ctx, t, A, "m2", func(d status.Domain) error {
			want := fmt.Sprintf(`domain "m1" (%s) also claims it, and wins (it announces it already)`, m1UUID)
			if d.Source != status.SourceMetadata || d.Routes != 0 || d.Problem != status.ProblemClaimsRefused || len(d.Refused) != 1 ||
				metaRefused(d)[p90.String()] != want {
				return fmt.Errorf("want source metadata, no routes, 192.0.2.90 refused: %s", want)
			}
			return nil
		})
		// Barrier: thief's element gains 192.0.2.82 after m2's claim.
		metaSetCmd(ctx, t, l, A, "thief", thief(82))
		w = w.clone().add("192.0.2.82/32", A, 81)
		metaWant(ctx, t, l, w)
		metaKernelSync(ctx, t, l, mon, p90, netip.MustParsePrefix("192.0.2.82/32"))
		metaQuiet(t, l, mon, birdOff, from, "a second claim of 192.0.2.90", p90)

		// m1 lets go: m2 takes over in the same pass, one UPDATE, no
		// withdrawal.
		birdOff, from = grLogSize(l.BIRD.Log), mon.Len()
		t0 := time.Now()
		scDo(t, "destroy", A.DestroyGuest(ctx, "m1"))
		w[p90] = metaPath{h: A, med: 2}
		metaWant(ctx, t, l, w)
		metaDomain(ctx, t, A, "m2", func(d status.Domain) error {
			if d.Routes != 1 || d.Problem != "" {
				return fmt.Errorf("want 1 route, no problem")
			}
			return nil
		})
		// Barrier: and 192.0.2.83 after m1's end.
		metaSetCmd(ctx, t, l, A, "thief", thief(82, 83))
		w = w.clone().add("192.0.2.83/32", A, 81)
		metaWant(ctx, t, l, w)
		metaKernelSync(ctx, t, l, mon, p90, netip.MustParsePrefix("192.0.2.83/32"))
		ups := metaBIRDUpdates(t, l, birdOff, p90)
		if len(ups) != 1 || !strings.Contains(ups[0].Text, "hvA4.ipv4 > added") {
			t.Errorf("BIRD received %s %d times when m1 let go, want once (added, replacing m1's):\n%s", p90, len(ups), birdLines(ups))
		}
		for _, ev := range mon.Events()[from:] {
			if ev.Prefix == p90 && ev.Deleted {
				t.Errorf("the ToRs lost %s when m1 let go: %s", p90, ev.Line)
			}
		}
		if len(ups) == 1 {
			t.Logf("two claims of %s: the incumbent m1 kept it against m2's lower UUID; when it let go, m2 took over in one UPDATE, at BIRD %v after virsh destroy started (%s)",
				p90, ups[0].Time.Sub(t0.Truncate(time.Millisecond)), ups[0].Text)
		}
	})
}
