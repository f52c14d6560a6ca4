package integration

// Scenarios of issue 3 on the real-world lab (integration/lab): two labs,
// one for the lifecycle scenarios of a single host (boot, destroy,
// graceful shutdown, suspend/resume, UUID pins, unmapped guests, cold
// sync), one for the migrations (pre-copy in three variants both ways,
// aborted, post-copy). Every check reads both ToRs, BIRD and FRR, for the
// IPv4 /32 and the IPv6 /128 of each guest, with the mapped MED,
// communities and large communities, and that the ToRs have no prefix
// besides the expected ones.

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	vblab "github.com/virtbgp/virtbgp/integration/lab"
	"github.com/virtbgp/virtbgp/internal/control"
	"github.com/virtbgp/virtbgp/internal/status"
	"github.com/virtbgp/virtbgp/mapping"
)

const scPinnedUUID = "5c3e0a11-6b1d-4b7e-9a5e-0d1f2e3a4b5c"

const scMapping = `version: 1
vms:
  web:
    med: 42
    communities: ["65001:61", no-export]
    large-communities: ["65001:6:61"]
    ips: [192.0.2.61, "2001:db8:61::61"]
  pinned:
    uuid: ` + scPinnedUUID + `
    med: 7
    communities: ["65001:62"]
    large-communities: ["65001:6:62"]
    ips: [192.0.2.62, "2001:db8:62::62"]
  big:
    med: 63
    communities: ["65001:63"]
    large-communities: ["65001:6:63"]
    ips: [192.0.2.63, "2001:db8:63::63"]
  cold:
    med: 64
    communities: ["65001:64", no-advertise]
    large-communities: ["65001:6:64", "65001:7:64"]
    ips: [192.0.2.64, "2001:db8:64::64"]
`

// scVM is what the ToRs must have for a mapped guest.
type scVM struct {
	v4, v6 netip.Prefix
	med    uint32
	comms  []uint32
	large  []mapping.LargeCommunity
}

func (v scVM) prefixes() []netip.Prefix { return []netip.Prefix{v.v4, v.v6} }

var scVMs = map[string]scVM{
	"web": {netip.MustParsePrefix("192.0.2.61/32"), netip.MustParsePrefix("2001:db8:61::61/128"), 42,
		[]uint32{65001<<16 | 61, mapping.CommunityNoExport}, []mapping.LargeCommunity{{GlobalAdmin: 65001, LocalData1: 6, LocalData2: 61}}},
	"pinned": {netip.MustParsePrefix("192.0.2.62/32"), netip.MustParsePrefix("2001:db8:62::62/128"), 7,
		[]uint32{65001<<16 | 62}, []mapping.LargeCommunity{{GlobalAdmin: 65001, LocalData1: 6, LocalData2: 62}}},
	"big": {netip.MustParsePrefix("192.0.2.63/32"), netip.MustParsePrefix("2001:db8:63::63/128"), 63,
		[]uint32{65001<<16 | 63}, []mapping.LargeCommunity{{GlobalAdmin: 65001, LocalData1: 6, LocalData2: 63}}},
	"cold": {netip.MustParsePrefix("192.0.2.64/32"), netip.MustParsePrefix("2001:db8:64::64/128"), 64,
		[]uint32{65001<<16 | 64, mapping.CommunityNoAdvertise},
		[]mapping.LargeCommunity{{GlobalAdmin: 65001, LocalData1: 6, LocalData2: 64}, {GlobalAdmin: 65001, LocalData1: 7, LocalData2: 64}}},
}

func scNextHop(h *vblab.Host, pfx netip.Prefix) netip.Addr {
	if pfx.Addr().Is6() {
		return h.IPv6
	}
	return h.IPv4
}

// scCheckRIB says what is wrong with rib given want (guest name -> host
// its routes must come from): each wanted prefix with exactly one path,
// the best, from that host, AS path [host AS], the mapped attributes; no
// other prefix at all.
func scCheckRIB(rib vblab.RIB, want map[string]*vblab.Host) error {
	expected := map[netip.Prefix]bool{}
	for name, h := range want {
		vm, ok := scVMs[name]
		if !ok {
			return fmt.Errorf("test bug: %s not in scVMs", name)
		}
		comms := slices.Sorted(slices.Values(vm.comms))
		for _, pfx := range vm.prefixes() {
			expected[pfx] = true
			nh := scNextHop(h, pfx)
			paths := rib.Paths(pfx)
			if len(paths) != 1 || paths[0].NextHop != nh {
				return fmt.Errorf("%s (%s): want one path via %s (%s), have %v", pfx, name, nh, h.Name, rib.NextHops(pfx))
			}
			p := paths[0]
			if !p.Best || p.Peer != nh || !slices.Equal(p.ASPath, []uint32{h.ASN}) || p.MED == nil || *p.MED != vm.med ||
				!slices.Equal(p.Communities, comms) || !slices.Equal(p.LargeCommunities, vm.large) {
				return fmt.Errorf("%s (%s): path %s\nwant best, from %s, as-path [%d], med %d, communities %v, large communities %v",
					pfx, name, p, nh, h.ASN, vm.med, comms, vm.large)
			}
		}
	}
	for pfx, paths := range rib {
		if !expected[pfx] && len(paths) > 0 {
			return fmt.Errorf("unexpected prefix %s: %v", pfx, paths)
		}
	}
	return nil
}

// scWant waits until both ToRs match want (see scCheckRIB).
func scWant(ctx context.Context, t *testing.T, l *vblab.Lab, within time.Duration, want map[string]*vblab.Host) {
	t.Helper()
	if err := scWaitRIB(ctx, l, within, want); err != nil {
		t.Fatal(err)
	}
}

func scWaitRIB(ctx context.Context, l *vblab.Lab, within time.Duration, want map[string]*vblab.Host) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	return l.WaitRIBs(ctx, 25*time.Millisecond, func(_ vblab.Router, rib vblab.RIB) error {
		return scCheckRIB(rib, want)
	})
}

// scReported waits until the report of host h's virtbgp lists each named
// domain in state with that many routes announced. The report's domains
// and routes are those of virtbgp's last finished pass, so the pass that
// saw the domains reach that state has applied what it decided.
func scReported(ctx context.Context, t *testing.T, h *vblab.Host, state string, routes int, names ...string) {
	t.Helper()
	ctl := control.Client{Path: h.VirtbgpSocket()}
	var last []status.Domain
	err := vblab.Eventually(ctx, 20*time.Millisecond, func(ctx context.Context) error {
		rep, err := ctl.Status(ctx)
		if err != nil {
			return err
		}
		last = rep.Domains
		for _, n := range names {
			i := slices.IndexFunc(rep.Domains, func(d status.Domain) bool { return d.Name == n })
			if i < 0 || rep.Domains[i].State != state {
				return fmt.Errorf("domain %s not reported %s", n, state)
			}
			if d := rep.Domains[i]; d.Routes != routes {
				return vblab.Permanent(fmt.Errorf("domain %s (vm %q) %s with %d routes announced, want %d", n, d.VM, state, d.Routes, routes))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("virtbgp on %s: %v; domains %+v", h.Name, err, last)
	}
}

// scSessionsDown waits until neither ToR has a session with host h up.
func scSessionsDown(ctx context.Context, t *testing.T, l *vblab.Lab, h *vblab.Host) {
	t.Helper()
	err := vblab.Eventually(ctx, 20*time.Millisecond, func(ctx context.Context) error {
		for _, r := range l.Routers() {
			ss, err := r.Sessions(ctx)
			if err != nil {
				return err
			}
			for _, s := range ss {
				if (s.Peer == h.IPv4 || s.Peer == h.IPv6) && s.Established {
					return fmt.Errorf("%s: session %s with %s still %s", r.Name(), s.Name, s.Peer, s.State)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func scDo(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// scReset destroys and undefines every guest on both hosts (a failed
// subtest must not leave guests that fail the next one), then waits until
// the ToRs have nothing.
func scReset(ctx context.Context, t *testing.T, l *vblab.Lab) {
	t.Helper()
	for _, h := range l.Hosts() {
		running, err := h.Guests(ctx, false)
		scDo(t, "list guests", err)
		for _, n := range running {
			scDo(t, "destroy", h.DestroyGuest(ctx, n))
		}
		all, err := h.Guests(ctx, true)
		scDo(t, "list guests", err)
		for _, n := range all {
			scDo(t, "undefine", h.UndefineGuest(ctx, n))
		}
	}
	scWant(ctx, t, l, 10*time.Second, nil)
}

// --- libvirt events with timestamps (virsh event --loop --timestamp) ---

type scLvEvent struct {
	Time   time.Time
	Domain string
	Text   string // "Resumed Migrated"
	Line   string
}

// scEvents records one host's lifecycle events as virsh event sees them
// (millisecond timestamps, truncated).
type scEvents struct {
	host    *vblab.Host
	cmd     *exec.Cmd
	mu      sync.Mutex
	events  []scLvEvent
	changed chan struct{}
}

func scWatchEvents(ctx context.Context, t *testing.T, h *vblab.Host) *scEvents {
	t.Helper()
	e := &scEvents{host: h, changed: make(chan struct{})}
	e.cmd = exec.Command("virsh", "-c", h.URI, "event", "--loop", "--event", "lifecycle", "--timestamp")
	out, err := e.cmd.StdoutPipe()
	scDo(t, "virsh event", err)
	e.cmd.Stderr = os.Stderr
	scDo(t, "virsh event", e.cmd.Start())
	t.Cleanup(func() {
		e.cmd.Process.Signal(syscall.SIGTERM)
		e.cmd.Wait()
	})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			const layout = "2006-01-02 15:04:05.000-0700"
			if len(line) < len(layout)+2 {
				continue
			}
			ts, err := time.Parse(layout, line[:len(layout)])
			if err != nil {
				continue
			}
			rest := line[len(layout)+2:]
			// event 'lifecycle' for domain 'web': Resumed Migrated
			_, after, ok := strings.Cut(rest, "for domain '")
			if !ok {
				continue
			}
			dom, text, ok := strings.Cut(after, "': ")
			if !ok {
				continue
			}
			e.mu.Lock()
			e.events = append(e.events, scLvEvent{Time: ts, Domain: dom, Text: text, Line: line})
			close(e.changed)
			e.changed = make(chan struct{})
			e.mu.Unlock()
		}
	}()
	// Ready once it reports an event we cause.
	marker := fmt.Sprintf("sc-marker-%s", h.Name)
	// virsh has not registered for events the moment it runs: repeat.
	for i := 0; ; i++ {
		scDo(t, "define marker", h.DefineGuest(ctx, vblab.Guest{Name: marker}))
		_, err := e.wait(ctx, 0, 300*time.Millisecond, marker, "Defined")
		scDo(t, "undefine marker", h.UndefineGuest(ctx, marker))
		if err == nil {
			return e
		}
		if i == 30 {
			t.Fatalf("virsh event on %s: %v", h.Name, err)
		}
	}
}

func (e *scEvents) len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.events)
}

func (e *scEvents) all() []scLvEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.events)
}

// wait returns the first event from index from on for domain whose text
// starts with prefix.
func (e *scEvents) wait(ctx context.Context, from int, within time.Duration, domain, prefix string) (scLvEvent, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for {
		e.mu.Lock()
		for i := from; i < len(e.events); i++ {
			if ev := e.events[i]; ev.Domain == domain && strings.HasPrefix(ev.Text, prefix) {
				e.mu.Unlock()
				return ev, nil
			}
		}
		ch := e.changed
		e.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			var b strings.Builder
			for _, ev := range e.all()[from:] {
				b.WriteString(ev.Line + "\n")
			}
			return scLvEvent{}, fmt.Errorf("no %q event for %s on %s: %w; events:\n%s", prefix, domain, e.host.Name, ctx.Err(), b.String())
		}
	}
}

// scVirtbgpEvent returns the time of the first "domain event" debug line of
// the host's virtbgp, logged at or after since, for domain with an event
// text starting with prefix (virtbgp's receipt of the libvirt event).
func scVirtbgpEvent(h *vblab.Host, since time.Time, domain, prefix string) (time.Time, string, bool) {
	b, err := os.ReadFile(h.VirtbgpLogPath())
	if err != nil {
		return time.Time{}, "", false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, `msg="domain event"`) || !strings.Contains(line, " domain="+domain+" ") ||
			!(strings.Contains(line, `event="`+prefix) || strings.Contains(line, "event="+prefix)) {
			continue
		}
		ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || t.Before(since.Truncate(time.Millisecond)) {
			continue
		}
		return t, line, true
	}
	return time.Time{}, "", false
}

// scRouteEvents returns the kernel route events since index from for the
// prefixes of vm.
func scRouteEvents(mon *vblab.RouteMonitor, from int, vm scVM) []vblab.RouteEvent {
	var out []vblab.RouteEvent
	for _, ev := range mon.Events()[from:] {
		if ev.Prefix == vm.v4 || ev.Prefix == vm.v6 {
			out = append(out, ev)
		}
	}
	return out
}

func scRouterProto(r vblab.Router) string {
	return map[string]string{"bird": "bird", "frr": "bgp"}[r.Name()]
}

// scWaitKernel waits until each ToR's kernel table has vm's prefixes via h
// (reported after index from) and returns those events.
func scWaitKernel(ctx context.Context, t *testing.T, l *vblab.Lab, mon *vblab.RouteMonitor, from int, vm scVM, h *vblab.Host) map[string]vblab.RouteEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out := map[string]vblab.RouteEvent{}
	for _, r := range l.Routers() {
		for _, pfx := range vm.prefixes() {
			nh := scNextHop(h, pfx)
			ev, err := mon.Wait(ctx, from, func(ev vblab.RouteEvent) bool {
				return ev.Prefix == pfx && ev.Table == r.Table() && ev.Proto == scRouterProto(r) && !ev.Deleted && ev.Gateway == nh
			})
			if err != nil {
				t.Fatalf("%s: kernel table %d never had %s via %s: %v; events:\n%s", r.Name(), r.Table(), pfx, h.Name, err,
					eventLines(scRouteEvents(mon, from, vm)))
			}
			out[r.Name()+" "+pfx.String()] = ev
		}
	}
	return out
}

// scNoLoss fails for any deleted kernel route of vm's prefixes among
// events: a ToR without a path.
func scNoLoss(t *testing.T, l *vblab.Lab, events []vblab.RouteEvent, what string) {
	t.Helper()
	for _, r := range l.Routers() {
		for _, ev := range events {
			if ev.Table == r.Table() && ev.Proto == scRouterProto(r) && ev.Deleted {
				t.Errorf("%s: %s lost the route during %s (kernel table %d): %s %s", r.Name(), ev.Prefix, what, r.Table(),
					ev.Time.Format("15:04:05.000000"), ev.Line)
			}
		}
	}
}

func scFmt(t time.Time) string { return t.Format("15:04:05.000000") }

// --- scenario 1: a guest that shuts down gracefully ---

// scACPIKernel returns a multiboot kernel (the header of the lab's
// fill-memory kernel, then code of its own) that powers the guest off the
// moment the ACPI power button is pressed (virsh shutdown): it reads the
// PIIX4 PM I/O base from PCI 00:01.3 register 0x40, enables the power
// button event (PM1_EN), polls PM1_STS for PWRBTN_STS and then writes
// SLP_EN with SLP_TYP 0 (QEMU: soft power off) to PM1_CNT. It needs
// <features><acpi/></features>, which the lab's guest XML has not.
func scACPIKernel() []byte {
	b := slices.Clone(vblab.FillMemoryKernel(1)[:32]) // multiboot header, entry at load+32
	le := binary.LittleEndian
	b = append(b, 0xB8) // mov eax, 0x80000B40 (PCI config: bus 0, dev 1, fn 3, reg 0x40)
	b = le.AppendUint32(b, 0x80000B40)
	b = append(b,
		0x66, 0xBA, 0xF8, 0x0C, // mov dx, 0xcf8
		0xEF,                   // out dx, eax
		0x66, 0xBA, 0xFC, 0x0C, // mov dx, 0xcfc
		0xED,                         // in eax, dx
		0x25, 0xC0, 0xFF, 0x00, 0x00, // and eax, 0xffc0
		0x89, 0xC3, // mov ebx, eax
		0x8D, 0x53, 0x02, // lea edx, [ebx+2]       PM1_EN
		0x66, 0xB8, 0x00, 0x01, // mov ax, 0x0100   PWRBTN_EN
		0x66, 0xEF, // out dx, ax
		// poll:
		0x89, 0xDA, // mov edx, ebx               PM1_STS
		0x66, 0xED, // in ax, dx
		0x66, 0xA9, 0x00, 0x01, // test ax, 0x0100  PWRBTN_STS
		0x75, 0x04, // jnz off
		0xF3, 0x90, // pause
		0xEB, 0xF2, // jmp poll
		// off:
		0x8D, 0x53, 0x04, // lea edx, [ebx+4]       PM1_CNT
		0x66, 0xB8, 0x00, 0x20, // mov ax, 0x2000   SLP_EN, SLP_TYP 0
		0x66, 0xEF, // out dx, ax
		0xFA, 0xF4, 0xEB, 0xFD, // cli; hlt; jmp hlt
	)
	return b
}

// scCreateACPIGuest starts a transient guest that shuts down on ACPI
// power-button request.
func scCreateACPIGuest(ctx context.Context, t *testing.T, l *vblab.Lab, h *vblab.Host, name string) {
	t.Helper()
	k := filepath.Join(t.TempDir(), "acpi-off.bin")
	scDo(t, "kernel", os.WriteFile(k, scACPIKernel(), 0o644))
	x := vblab.GuestXML(vblab.Guest{Name: name, Kernel: k}, l.KVM)
	x = strings.Replace(x, "<on_crash>", "<features><acpi/></features>\n  <on_crash>", 1)
	p := filepath.Join(t.TempDir(), name+".xml")
	scDo(t, "xml", os.WriteFile(p, []byte(x), 0o644))
	_, err := h.Virsh(ctx, "create", p)
	scDo(t, "create ACPI guest", err)
	// SeaBIOS takes a moment; a power-button press before the kernel has
	// enabled the event is lost. Wait for its polling loop (EIP in the
	// kernel, loaded at 1 MiB).
	err = vblab.Eventually(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		out, err := h.Virsh(ctx, "qemu-monitor-command", name, "--hmp", "info registers")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "EIP=001000") {
			return fmt.Errorf("guest kernel not running yet")
		}
		return nil
	})
	scDo(t, "ACPI guest kernel", err)
}

// TestScenarioLifecycle: scenarios 1, 2, 6 and 7 of issue 3 on one lab.
func TestScenarioLifecycle(t *testing.T) {
	l := upLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 170*time.Second)
	defer cancel()
	mp := filepath.Join(t.TempDir(), "mapping.yaml")
	scDo(t, "mapping", os.WriteFile(mp, []byte(scMapping), 0o644))
	cfg := vblab.VirtbgpConfig{Mapping: mp}
	scDo(t, "start virtbgp", l.StartVirtbgpAll(ctx, cfg))
	A := l.A

	// 1. Boot -> announced via A with the attributes; destroy -> gone;
	// boot, graceful shutdown -> gone.
	t.Run("BootDestroyShutdown", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 40*time.Second)
		defer cancel()
		scReset(ctx, t, l)
		t0 := time.Now()
		scDo(t, "create", A.CreateGuest(ctx, vblab.Guest{Name: "web"}))
		scWant(ctx, t, l, 5*time.Second, map[string]*vblab.Host{"web": A})
		t.Logf("booted: both ToRs have /32 and /128 via hvA %v after the create", time.Since(t0).Round(time.Millisecond))
		t0 = time.Now()
		scDo(t, "destroy", A.DestroyGuest(ctx, "web"))
		scWant(ctx, t, l, 5*time.Second, nil)
		t.Logf("destroyed: gone from both ToRs in %v", time.Since(t0).Round(time.Millisecond))

		// The lab's guest (SeaBIOS, nothing to boot) ignores the ACPI
		// power button; this one powers off on it.
		scCreateACPIGuest(ctx, t, l, A, "web")
		scWant(ctx, t, l, 5*time.Second, map[string]*vblab.Host{"web": A})
		t0 = time.Now()
		scDo(t, "shutdown", A.ShutdownGuest(ctx, "web"))
		sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
		defer scancel()
		err := vblab.Eventually(sctx, 50*time.Millisecond, func(ctx context.Context) error {
			st, err := A.GuestState(ctx, "web")
			if err != nil && strings.Contains(err.Error(), "ailed to get domain") {
				return nil // transient guest gone
			}
			if err != nil {
				return err
			}
			return fmt.Errorf("state %q", st)
		})
		scDo(t, "guest did not shut down", err)
		scWant(ctx, t, l, 5*time.Second, nil)
		t.Logf("graceful shutdown (ACPI): guest off and routes gone from both ToRs in %v", time.Since(t0).Round(time.Millisecond))
	})

	// 6. A UUID-pinned entry matches only name and UUID; an unmapped
	// domain announces nothing.
	t.Run("UUIDPinAndUnmapped", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 40*time.Second)
		defer cancel()
		scReset(ctx, t, l)
		scDo(t, "create", A.CreateGuest(ctx, vblab.Guest{Name: "pinned", UUID: "0badc0de-0000-4000-8000-000000000001"}))
		scDo(t, "create", A.CreateGuest(ctx, vblab.Guest{Name: "stranger"}))
		scDo(t, "create", l.B.CreateGuest(ctx, vblab.Guest{Name: "stranger2"}))
		// Each host's virtbgp has seen them run and announced nothing.
		scReported(ctx, t, A, "running", 0, "pinned", "stranger")
		scReported(ctx, t, l.B, "running", 0, "stranger2")
		// Barrier: a mapped guest started after them, on each host. Its
		// routes reach the ToRs after anything sent for them, so once the
		// ToRs have exactly these, nothing was.
		scDo(t, "create", A.CreateGuest(ctx, vblab.Guest{Name: "web"}))
		scDo(t, "create", l.B.CreateGuest(ctx, vblab.Guest{Name: "cold"}))
		scWant(ctx, t, l, 5*time.Second, map[string]*vblab.Host{"web": A, "cold": l.B})
		t.Logf("pinned name with another UUID and unmapped domains: nothing announced, no unexpected prefix on either ToR")

		scDo(t, "destroy", A.DestroyGuest(ctx, "pinned"))
		scDo(t, "create", A.CreateGuest(ctx, vblab.Guest{Name: "pinned", UUID: scPinnedUUID}))
		scWant(ctx, t, l, 5*time.Second, map[string]*vblab.Host{"web": A, "cold": l.B, "pinned": A})
		t.Logf("pinned name with the pinned UUID: announced")
	})

	// 2. Suspend -> withdrawn, resume -> back; with policy.paused keep,
	// kept.
	t.Run("SuspendResume", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 40*time.Second)
		defer cancel()
		scReset(ctx, t, l)
		scDo(t, "create", A.CreateGuest(ctx, vblab.Guest{Name: "web"}))
		scWant(ctx, t, l, 5*time.Second, map[string]*vblab.Host{"web": A})
		scDo(t, "suspend", A.SuspendGuest(ctx, "web"))
		scWant(ctx, t, l, 5*time.Second, nil)
		scDo(t, "resume", A.ResumeGuest(ctx, "web"))
		scWant(ctx, t, l, 5*time.Second, map[string]*vblab.Host{"web": A})
		t.Logf("default policy: suspend withdrew, resume announced again")

		keep := cfg
		keep.Paused = "keep"
		scDo(t, "stop virtbgp", A.StopVirtbgp(ctx, syscall.SIGTERM))
		scDo(t, "start virtbgp", A.StartVirtbgp(ctx, keep))
		// ColdSync, next, restarts it with the default policy.
		scDo(t, "sessions", l.WaitEstablished(ctx, A))
		scWant(ctx, t, l, 10*time.Second, map[string]*vblab.Host{"web": A})
		scDo(t, "suspend", A.SuspendGuest(ctx, "web"))
		if st, _ := A.GuestState(ctx, "web"); !strings.HasPrefix(st, "paused") {
			t.Fatalf("web on hvA: %q", st)
		}
		// virtbgp has seen the suspend and kept the routes. Barrier: a
		// guest started after the suspend is announced after anything
		// sent for it.
		scReported(ctx, t, A, "paused", 2, "web")
		scDo(t, "create", A.CreateGuest(ctx, vblab.Guest{Name: "cold"}))
		scWant(ctx, t, l, 5*time.Second, map[string]*vblab.Host{"web": A, "cold": A})
		scDo(t, "resume", A.ResumeGuest(ctx, "web"))
		// The same for the resume, with the pinned guest as the barrier.
		scReported(ctx, t, A, "running", 2, "web")
		scDo(t, "create", A.CreateGuest(ctx, vblab.Guest{Name: "pinned", UUID: scPinnedUUID}))
		scWant(ctx, t, l, 5*time.Second, map[string]*vblab.Host{"web": A, "cold": A, "pinned": A})
		t.Logf("policy.paused keep: suspended guest's routes kept")
	})

	// 7. Cold sync: mapped guest already running when virtbgp starts.
	t.Run("ColdSync", func(t *testing.T) {
		outer := ctx
		ctx, cancel := context.WithTimeout(ctx, 40*time.Second)
		defer cancel()
		scReset(ctx, t, l)
		scDo(t, "stop virtbgp", A.StopVirtbgp(ctx, syscall.SIGTERM))
		defer func() {
			if A.VirtbgpPID() == 0 {
				A.StartVirtbgp(outer, cfg)
			}
		}()
		scDo(t, "create", A.CreateGuest(ctx, vblab.Guest{Name: "cold"}))
		scDo(t, "create", l.B.CreateGuest(ctx, vblab.Guest{Name: "web"}))
		// virtbgp on hvA has exited (StopVirtbgp waits for it): once the
		// ToRs have seen its sessions go down, nothing of hvA's can reach
		// them, and they have hvB's web only.
		scSessionsDown(ctx, t, l, A)
		scWant(ctx, t, l, 5*time.Second, map[string]*vblab.Host{"web": l.B})
		t0 := time.Now()
		scDo(t, "start virtbgp", A.StartVirtbgp(ctx, cfg))
		scDo(t, "sessions", l.WaitEstablished(ctx, A))
		est := time.Since(t0)
		scWant(ctx, t, l, 15*time.Second, map[string]*vblab.Host{"web": l.B, "cold": A})
		t.Logf("cold sync: virtbgp on hvA announced the running guest %v after its start (sessions up after %v)",
			time.Since(t0).Round(time.Millisecond), est.Round(time.Millisecond))
	})
}

// --- migrations ---

type scMigLab struct {
	l        *vblab.Lab
	mon      *vblab.RouteMonitor
	ev       map[*vblab.Host]*scEvents
	maxDelay time.Duration
}

// migrate live-migrates name (pre-copy, or post-copy when switch is set:
// switch is then called while the migration runs, after B's standby route
// is on both ToRs) and checks make-before-break on both ToRs.
func (m *scMigLab) migrate(ctx context.Context, t *testing.T, name string, from, to *vblab.Host, o vblab.MigrateOptions,
	during func(ctx context.Context, t *testing.T)) {
	t.Helper()
	l, mon := m.l, m.mon
	vm := scVMs[name]
	scWant(ctx, t, l, 5*time.Second, map[string]*vblab.Host{name: from})
	fromMon, fromTo, fromFrom := mon.Len(), m.ev[to].len(), m.ev[from].len()
	mig, err := l.StartMigration(ctx, name, from, to, o)
	scDo(t, "start migration", err)
	if during != nil {
		during(ctx, t)
	}
	scDo(t, "migration", mig.Wait(ctx))
	resumed, err := m.ev[to].wait(ctx, fromTo, 10*time.Second, name, "Resumed")
	scDo(t, "destination's resume", err)
	stopped, err := m.ev[from].wait(ctx, fromFrom, 10*time.Second, name, "Stopped")
	scDo(t, "source's stop", err)
	// A withdraws by the time it reports the guest stopped (polled from
	// the end of the migration: allow a second).
	scWant(ctx, t, l, time.Second+time.Until(stopped.Time), map[string]*vblab.Host{name: to})
	switched := scWaitKernel(ctx, t, l, mon, fromMon, vm, to)
	evs := scRouteEvents(mon, fromMon, vm)

	// The guest resumed on the destination no later than libvirt (virsh
	// event) or virtbgp logged it; both stamps are truncated to ms.
	ref := resumed.Time
	vbTime, vbLine, ok := scVirtbgpEvent(to, mig.Started, name, "Resumed")
	if ok && vbTime.Before(ref) {
		ref = vbTime
	}
	for k, ev := range switched {
		d := ev.Time.Sub(ref)
		if ev.Time.Before(ref) {
			t.Errorf("%s: kernel best path via %s at %s, %v BEFORE the guest resumed there (virsh event %s %q; virtbgp %s)",
				k, to.Name, scFmt(ev.Time), -d, scFmt(resumed.Time), resumed.Text, scFmt(vbTime))
		}
		m.maxDelay = max(m.maxDelay, d)
	}
	scNoLoss(t, l, evs, "the migration")
	// BIRD logs (ms) when the source's paths went: at the source's stop,
	// not before the destination's resume.
	for _, pfx := range vm.prefixes() {
		gone, ok := scBIRDRemoved(l, from, pfx, mig.Started)
		if !ok {
			t.Errorf("bird: no removal of %s from %s logged", pfx, from.Name)
			continue
		}
		if gone.Before(ref.Truncate(time.Millisecond)) {
			t.Errorf("bird: %s's path for %s removed at %s, before the guest resumed on %s (%s)", from.Name, pfx, scFmt(gone), to.Name, scFmt(ref))
		}
		t.Logf("bird: %s's path for %s removed at %s, %v after %s reported the guest stopped (%s)", from.Name, pfx, scFmt(gone),
			gone.Sub(stopped.Time), from.Name, stopped.Text)
	}
	if t.Failed() {
		t.Logf("virtbgp on %s: %s", to.Name, vbLine)
	}
	t.Logf("%s -> %s (%s) in %v; resumed on %s at %s (virsh event %q; virtbgp got it %s), source stopped %s; kernel switches:\n%s",
		from.Name, to.Name, strings.Join(mig.Args[5:], " "), mig.Took().Round(time.Millisecond), to.Name, scFmt(resumed.Time), resumed.Text,
		scFmt(vbTime), scFmt(stopped.Time), eventLines(evs))
}

// waitStandby waits until both ToRs have, besides the best path via from,
// a path via to for name's prefixes that is not best; it returns them.
func (m *scMigLab) waitStandby(ctx context.Context, t *testing.T, name string, from, to *vblab.Host) {
	t.Helper()
	vm := scVMs[name]
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := m.l.WaitRIBs(ctx, 25*time.Millisecond, func(r vblab.Router, rib vblab.RIB) error {
		for _, pfx := range vm.prefixes() {
			best, ok := rib.Best(pfx)
			if !ok || best.NextHop != scNextHop(from, pfx) {
				return vblab.Permanent(fmt.Errorf("%s: best path not via %s", pfx, from.Name))
			}
			var sb *vblab.Path
			for _, p := range rib.Paths(pfx) {
				if p.NextHop == scNextHop(to, pfx) {
					sb = &p
				}
			}
			if sb == nil {
				return fmt.Errorf("%s: no standby path via %s yet", pfx, to.Name)
			}
			if sb.Best || len(sb.ASPath) <= 1 {
				return vblab.Permanent(fmt.Errorf("%s: standby path via %s not depreferenced: %s", pfx, to.Name, sb))
			}
		}
		t.Logf("%s during the incoming migration:\n%s", r.Name(), rib)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestScenarioMigration: scenarios 3, 4 and 5 of issue 3 on one lab.
func TestScenarioMigration(t *testing.T) {
	l := upLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 170*time.Second)
	defer cancel()
	mp := filepath.Join(t.TempDir(), "mapping.yaml")
	scDo(t, "mapping", os.WriteFile(mp, []byte(scMapping), 0o644))
	scDo(t, "start virtbgp", l.StartVirtbgpAll(ctx, vblab.VirtbgpConfig{Mapping: mp}))
	mon, err := l.MonitorRoutes(ctx)
	scDo(t, "route monitor", err)
	defer mon.Close()
	m := &scMigLab{l: l, mon: mon, ev: map[*vblab.Host]*scEvents{}}
	for _, h := range l.Hosts() {
		m.ev[h] = scWatchEvents(ctx, t, h)
	}
	A, B := l.A, l.B

	// 3. Pre-copy live migration A -> B -> A, three ways.
	for _, v := range []struct {
		name string
		o    vblab.MigrateOptions
	}{
		{"Plain", vblab.MigrateOptions{}},
		{"P2P", vblab.MigrateOptions{P2P: true}},
		{"PersistentUndefineSource", vblab.MigrateOptions{Persistent: true, UndefineSource: true}},
	} {
		t.Run("Live"+v.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(ctx, 40*time.Second)
			defer cancel()
			scReset(ctx, t, l)
			if v.o.UndefineSource {
				scDo(t, "define", A.DefineGuest(ctx, vblab.Guest{Name: "web"}))
				scDo(t, "start", A.StartGuest(ctx, "web"))
			} else {
				scDo(t, "create", A.CreateGuest(ctx, vblab.Guest{Name: "web"}))
			}
			m.migrate(ctx, t, "web", A, B, v.o, nil)
			if v.o.UndefineSource {
				scDefined(ctx, t, B, A, "web")
			}
			m.migrate(ctx, t, "web", B, A, v.o, nil)
			if v.o.UndefineSource {
				scDefined(ctx, t, A, B, "web")
			}
		})
	}

	// 4. Aborted migration: the best path stays via A; B's standby goes.
	t.Run("Aborted", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 40*time.Second)
		defer cancel()
		scReset(ctx, t, l)
		g := vblab.Guest{Name: "big", MemoryMiB: 16, FillMiB: 8}
		scDo(t, "create", A.CreateGuest(ctx, g))
		scDo(t, "fill", A.WaitGuestHalted(ctx, "big"))
		scWant(ctx, t, l, 5*time.Second, map[string]*vblab.Host{"big": A})
		vm := scVMs["big"]
		from := mon.Len()
		mig, err := l.StartMigration(ctx, "big", A, B, vblab.MigrateOptions{Bandwidth: 1})
		scDo(t, "start migration", err)
		m.waitStandby(ctx, t, "big", A, B)
		scDo(t, "abort", A.AbortJob(ctx, "big"))
		if err := mig.Wait(ctx); err == nil {
			t.Fatalf("migration was not aborted (took %v)", mig.Took())
		}
		if st, err := A.GuestState(ctx, "big"); err != nil || !strings.HasPrefix(st, "running") {
			t.Fatalf("big on hvA after the abort: %q %v", st, err)
		}
		scWant(ctx, t, l, 5*time.Second, map[string]*vblab.Host{"big": A})
		// hvA's virtbgp has seen the guest run again. Barrier: a guest
		// started on each host after the abort reaches the ToRs after
		// anything either host sent for big; then the kernel tables
		// settle, and ip monitor has reported every change of big's
		// routes.
		scReported(ctx, t, A, "running", 2, "big")
		scDo(t, "create", A.CreateGuest(ctx, vblab.Guest{Name: "web"}))
		scDo(t, "create", B.CreateGuest(ctx, vblab.Guest{Name: "cold"}))
		scWant(ctx, t, l, 5*time.Second, map[string]*vblab.Host{"big": A, "web": A, "cold": B})
		kernelSettled(ctx, t, l, mon, slices.Concat(vm.prefixes(), scVMs["web"].prefixes(), scVMs["cold"].prefixes()))
		evs := scRouteEvents(mon, from, vm)
		if len(evs) > 0 {
			t.Errorf("the ToRs' best path changed during the aborted migration:\n%s", eventLines(evs))
		}
		t.Logf("aborted after %v: best path via hvA throughout, hvB's standby withdrawn", mig.Took().Round(time.Millisecond))
	})

	// 5. Post-copy: B announces when the guest resumes there, A withdraws.
	t.Run("Postcopy", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 40*time.Second)
		defer cancel()
		scReset(ctx, t, l)
		g := vblab.Guest{Name: "big", MemoryMiB: 16, FillMiB: 8}
		scDo(t, "create", A.CreateGuest(ctx, g))
		scDo(t, "fill", A.WaitGuestHalted(ctx, "big"))
		m.migrate(ctx, t, "big", A, B, vblab.MigrateOptions{Postcopy: true, Bandwidth: 1}, func(ctx context.Context, t *testing.T) {
			m.waitStandby(ctx, t, "big", A, B)
			scDo(t, "migrate-postcopy", A.MigratePostcopy(ctx, "big"))
		})
		if st, err := B.GuestState(ctx, "big"); err != nil || !strings.HasPrefix(st, "running") {
			t.Fatalf("big on hvB: %q %v", st, err)
		}
		for _, h := range l.Hosts() {
			var evs []string
			for _, ev := range m.ev[h].all() {
				if ev.Domain == "big" {
					evs = append(evs, ev.Time.Format("15:04:05.000")+" "+ev.Text)
				}
			}
			t.Logf("%s's lifecycle events for big:\n%s", h.Name, strings.Join(evs, "\n"))
		}
	})
	t.Logf("max switch delay after resume (incl. ms truncation of the reference): %v", m.maxDelay)
}

// scDefined checks that name is defined on h and not on other.
func scDefined(ctx context.Context, t *testing.T, h, other *vblab.Host, name string) {
	t.Helper()
	all, err := h.Guests(ctx, true)
	scDo(t, "list", err)
	if !slices.Contains(all, name) {
		t.Errorf("%s not defined on %s after --persistent: %v", name, h.Name, all)
	}
	all, err = other.Guests(ctx, true)
	scDo(t, "list", err)
	if slices.Contains(all, name) {
		t.Errorf("%s still defined on %s after --undefinesource: %v", name, other.Name, all)
	}
}

// scBIRDRemoved returns when BIRD logged (ms) the removal of host h's path
// for pfx, the first at or after since.
func scBIRDRemoved(l *vblab.Lab, h *vblab.Host, pfx netip.Prefix, since time.Time) (time.Time, bool) {
	b, err := os.ReadFile(l.BIRD.Log)
	if err != nil {
		return time.Time{}, false
	}
	proto := h.Name + "4.ipv4"
	if pfx.Addr().Is6() {
		proto = h.Name + "6.ipv6"
	}
	for _, line := range strings.Split(string(b), "\n") {
		// 2026-11-21 07:02:50.996 <TRACE> hvA4.ipv4 > removed 192.0.2.61/32 0L 4G unicast
		if len(line) < 23 || !strings.Contains(line, " "+proto+" > removed") || !strings.Contains(line, " "+pfx.String()+" ") {
			continue
		}
		ts, err := time.ParseInLocation("2006-01-02 15:04:05.000", line[:23], time.Local)
		if err != nil || ts.Before(since.Truncate(time.Millisecond)) {
			continue
		}
		return ts, true
	}
	return time.Time{}, false
}
