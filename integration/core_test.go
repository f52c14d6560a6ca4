// Package integration holds virtbgp's end-to-end tests on real parts: real
// libvirt, the real daemon wiring, real BGP routers.
package integration

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	lv "libvirt.org/go/libvirt"

	"github.com/virtbgp/virtbgp/internal/bgptest"
	"github.com/virtbgp/virtbgp/internal/config"
	"github.com/virtbgp/virtbgp/internal/daemon"
	"github.com/virtbgp/virtbgp/internal/notify"
	"github.com/virtbgp/virtbgp/internal/status"
	"github.com/virtbgp/virtbgp/internal/testutil"
	"github.com/virtbgp/virtbgp/mapping"
)

const e2eMapping = `version: 1
defaults:
  communities: ["65001:100"]
  large-communities: ["65001:0:1"]
vms:
  e2e-web:
    med: 50
    local-pref: 300
    as-path-prepend: 2
    communities: [no-export]
    large-communities: ["65001:7:7"]
    ips:
      - 192.0.2.10
      - 2001:db8::10
      - prefix: 192.0.2.11
        med: 60
        next-hop: 198.51.100.1
  e2e-pinned:
    uuid: ` + pinnedUUID + `
    ips: [192.0.2.20]
`

// pinnedUUID is the UUID e2eMapping pins e2e-pinned (192.0.2.20) to.
const pinnedUUID = "11111111-2222-3333-4444-555555555555"

const (
	ourASN = 65001
	torASN = 65000
)

func logger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

type lab struct {
	notifier   *notify.Notifier // for the next startDaemon
	uri        string           // libvirt
	ctx        context.Context
	stopDaemon func()
	cfgPath    string
	cfg        *config.Config
	ebgp       *bgptest.ToR // AS 65000: IPv4 session from 127.0.0.1, IPv6 session from ::1
	ibgp       *bgptest.ToR // AS 65001 at 127.0.0.2
	d          *daemon.Daemon
	lvconn     *lv.Connect // a second libvirt connection, as an operator's virsh
	dir        string
	// mappingExtra is YAML under the config's mapping section.
	mappingExtra string
}

var (
	v4 = netip.MustParseAddr("127.0.0.1")
	v6 = netip.MustParseAddr("::1")
)

// startLab starts two ToRs, then virtbgp from a config file and mapping file
// written to a temp dir, on libvirt's test:///default.
func startLab(t *testing.T, mappingText string, extraConfig ...string) *lab {
	t.Helper()
	return startLabURI(t, "test:///default", mappingText, extraConfig...)
}

// startLabURI is startLab on the libvirt at uri.
func startLabURI(t *testing.T, uri, mappingText string, extraConfig ...string) *lab {
	t.Helper()
	return startLabSources(t, uri, mappingText, "", extraConfig...)
}

// startLabSources is startLabURI with mappingExtra, YAML indented by two
// spaces, under the config's mapping section (mapping.metadata,
// mapping.nova).
func startLabSources(t *testing.T, uri, mappingText, mappingExtra string, extraConfig ...string) *lab {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	l := &lab{ctx: ctx, dir: t.TempDir(), uri: uri, mappingExtra: mappingExtra}

	var err error
	l.ebgp, err = bgptest.Start(ctx, bgptest.Config{ASN: torASN, RouterID: "10.255.0.1", Listen: []string{"127.0.0.1", "::1"}, Log: logger(t)},
		bgptest.Neighbor{Address: v4, ASN: ourASN, Families: []string{"ipv4"}},
		bgptest.Neighbor{Address: v6, ASN: ourASN, Families: []string{"ipv6"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.ebgp.Stop)
	l.ibgp, err = bgptest.Start(ctx, bgptest.Config{ASN: ourASN, RouterID: "10.255.0.2", Listen: []string{"127.0.0.2"}, Log: logger(t)},
		// allowas-in: our prepends carry the AS this iBGP ToR shares.
		bgptest.Neighbor{Address: v4, ASN: ourASN, Families: []string{"ipv4"}, AllowOwnAS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.ibgp.Stop)

	l.cfgPath = filepath.Join(l.dir, "virtbgp.yaml")
	writeFile(t, l.cfgPath, l.configText(9)+strings.Join(extraConfig, "\n")+"\n")
	writeFile(t, filepath.Join(l.dir, "mapping.yaml"), mappingText)

	// The daemon registers libvirt's event loop; then a second connection.
	l.stopDaemon = l.startDaemon(t)
	l.lvconn, err = lv.NewConnect(uri)
	if err != nil {
		t.Fatalf("second libvirt connection: %v", err)
	}
	t.Cleanup(func() { l.lvconn.Close() })
	return l
}

// configText is the daemon config of the lab, with the iBGP session's hold
// time as a parameter (a test changes it).
func (l *lab) configText(ibgpHold int) string {
	return fmt.Sprintf(`version: 1
libvirt:
  uri: %q
bgp:
  asn: %d
  router-id: 192.0.2.1
  peers:
    - {address: 127.0.0.1, port: %d, asn: %d, families: [ipv4], hold-time: 9s}
    - {address: "::1", port: %d, asn: %d, families: [ipv6], hold-time: 9s}
    - {address: 127.0.0.2, port: %d, asn: %d, families: [ipv4], hold-time: %ds, local-address: 127.0.0.1}
mapping:
  path: mapping.yaml
%sresync-interval: 1m
state-dir: state
control: {socket: ctl/control.sock}
`, l.uri, ourASN, l.ebgp.Port, torASN, l.ebgp.Port, torASN, l.ibgp.Port, ourASN, ibgpHold, l.mappingExtra)
}

// startDaemon starts a daemon from the lab's config file and waits until
// every session is up and the first sync is done. The returned function
// stops it (also done at cleanup).
func (l *lab) startDaemon(t *testing.T) (stop func()) {
	t.Helper()
	cfg, err := config.Load(l.cfgPath)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	m, err := mapping.Load(cfg.Mapping.Path)
	if err != nil {
		t.Fatalf("mapping: %v", err)
	}
	l.cfg = cfg
	l.d, err = daemon.New(cfg, m, logger(t), daemon.Options{StopBGP: true, Notifier: l.notifier})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	dctx, dcancel := context.WithCancel(l.ctx)
	go func() { done <- l.d.Run(dctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		dcancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("daemon Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("daemon did not stop within 10s")
		}
	}
	t.Cleanup(stop)

	wctx, wcancel := context.WithTimeout(l.ctx, 30*time.Second)
	defer wcancel()
	for _, w := range []struct {
		tor  *bgptest.ToR
		addr netip.Addr
	}{{l.ebgp, v4}, {l.ebgp, v6}, {l.ibgp, v4}} {
		if err := w.tor.WaitEstablished(wctx, w.addr); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-l.d.Reconciler().Synced():
	case <-wctx.Done():
		t.Fatal("daemon did not finish its first sync")
	}
	return stop
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// define creates a persistent test-driver domain (not started).
func (l *lab) define(t *testing.T, name, uuid string) *lv.Domain {
	t.Helper()
	x := "<domain type='test'><name>" + name + "</name>"
	if uuid != "" {
		x += "<uuid>" + uuid + "</uuid>"
	}
	x += "<memory>65536</memory><os><type>hvm</type></os></domain>"
	d, err := l.lvconn.DomainDefineXML(x)
	if err != nil {
		t.Fatalf("define %s: %v", name, err)
	}
	t.Cleanup(func() {
		if active, _ := d.IsActive(); active {
			_ = d.Destroy()
		}
		_ = d.Undefine()
		_ = d.Free()
	})
	return d
}

func do(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// waitRIB polls a ToR until its best paths are exactly the given prefixes,
// then returns them.
func (l *lab) waitRIB(t *testing.T, tor *bgptest.ToR, prefixes ...string) map[netip.Prefix]bgptest.Path {
	t.Helper()
	sort.Strings(prefixes)
	var best map[netip.Prefix]bgptest.Path
	testutil.Eventually(t, 10*time.Second, func() string {
		best = l.best(t, tor)
		var got []string
		for p := range best {
			got = append(got, p.String())
		}
		sort.Strings(got)
		if !slices.Equal(got, prefixes) {
			return fmt.Sprintf("ToR AS %d has %v, want %v", tor.ASN, got, prefixes)
		}
		return ""
	})
	return best
}

// waitUnannounced waits until the daemon's report lists each named domain
// as running, and fails the test if any of them has a route. The report's
// domains and routes are those of the reconciler's last finished pass, so
// the pass that saw these domains start has applied what it decided.
func (l *lab) waitUnannounced(t *testing.T, names ...string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() string {
		rep, err := l.d.Report(l.ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			i := slices.IndexFunc(rep.Domains, func(d status.Domain) bool { return d.Name == n })
			if i < 0 || rep.Domains[i].State != "running" {
				return fmt.Sprintf("domain %s not reported running: %+v", n, rep.Domains)
			}
			if d := rep.Domains[i]; d.Routes != 0 {
				t.Fatalf("domain %s (vm %q) has %d routes announced", n, d.VM, d.Routes)
			}
		}
		return ""
	})
}

func (l *lab) wantAll(t *testing.T, prefixes ...string) (ebgp, ibgp map[netip.Prefix]bgptest.Path) {
	t.Helper()
	var v4only []string
	for _, p := range prefixes {
		if !strings.Contains(p, ":") {
			v4only = append(v4only, p)
		}
	}
	return l.waitRIB(t, l.ebgp, prefixes...), l.waitRIB(t, l.ibgp, v4only...)
}

func u32(v uint32) *uint32 { return &v }

func comm(asn, v uint32) uint32 { return asn<<16 | v }

func checkPath(t *testing.T, p bgptest.Path, nh string, asPath []uint32, med, lp *uint32, comms []uint32, large []mapping.LargeCommunity) {
	t.Helper()
	var problems []string
	if p.NextHop != netip.MustParseAddr(nh) {
		problems = append(problems, fmt.Sprintf("next hop %s, want %s", p.NextHop, nh))
	}
	if !slices.Equal(p.ASPath, asPath) {
		problems = append(problems, fmt.Sprintf("AS path %v, want %v", p.ASPath, asPath))
	}
	eq := func(a, b *uint32) bool { return (a == nil && b == nil) || (a != nil && b != nil && *a == *b) }
	if !eq(p.MED, med) {
		problems = append(problems, fmt.Sprintf("MED %v, want %v", deref(p.MED), deref(med)))
	}
	if !eq(p.LocalPref, lp) {
		problems = append(problems, fmt.Sprintf("local-pref %v, want %v", deref(p.LocalPref), deref(lp)))
	}
	got := slices.Sorted(slices.Values(p.Communities))
	if !slices.Equal(got, comms) {
		problems = append(problems, fmt.Sprintf("communities %v, want %v", got, comms))
	}
	if !slices.Equal(p.LargeCommunities, large) {
		problems = append(problems, fmt.Sprintf("large communities %v, want %v", p.LargeCommunities, large))
	}
	if len(problems) > 0 {
		t.Errorf("%s: %s", p.Prefix, strings.Join(problems, "; "))
	}
}

func deref(p *uint32) any {
	if p == nil {
		return "none"
	}
	return *p
}

// TestEndToEnd drives domains through their lifecycle with a second libvirt
// connection and checks what the ToRs receive.
func TestEndToEnd(t *testing.T) {
	l := startLab(t, e2eMapping)
	// test:///default's own running domain "test" is not mapped: nothing.
	l.wantAll(t)

	web := l.define(t, "e2e-web", "")
	all := []string{"192.0.2.10/32", "192.0.2.11/32", "2001:db8::10/128"}

	t.Run("start announces with attributes", func(t *testing.T) {
		do(t, "create", web.Create())
		ebgp, ibgp := l.wantAll(t, all...)
		comms := []uint32{comm(65001, 100), mapping.CommunityNoExport}
		large := []mapping.LargeCommunity{{GlobalAdmin: 65001, LocalData1: 0, LocalData2: 1}, {GlobalAdmin: 65001, LocalData1: 7, LocalData2: 7}}
		// eBGP: own AS once plus two prepends; no LOCAL_PREF across eBGP.
		checkPath(t, ebgp[netip.MustParsePrefix("192.0.2.10/32")], "127.0.0.1", []uint32{ourASN, ourASN, ourASN}, u32(50), nil, comms, large)
		checkPath(t, ebgp[netip.MustParsePrefix("2001:db8::10/128")], "::1", []uint32{ourASN, ourASN, ourASN}, u32(50), nil, comms, large)
		// iBGP: the two prepends only, LOCAL_PREF carried, explicit next hop kept.
		checkPath(t, ibgp[netip.MustParsePrefix("192.0.2.10/32")], "127.0.0.1", []uint32{ourASN, ourASN}, u32(50), u32(300), comms, large)
		checkPath(t, ibgp[netip.MustParsePrefix("192.0.2.11/32")], "198.51.100.1", []uint32{ourASN, ourASN}, u32(60), u32(300), comms, large)
	})
	t.Run("suspend withdraws, resume announces", func(t *testing.T) {
		do(t, "suspend", web.Suspend())
		l.wantAll(t)
		do(t, "resume", web.Resume())
		l.wantAll(t, all...)
	})
	t.Run("destroy withdraws", func(t *testing.T) {
		do(t, "destroy", web.Destroy())
		l.wantAll(t)
	})
	t.Run("shutdown withdraws", func(t *testing.T) {
		do(t, "create", web.Create())
		l.wantAll(t, all...)
		do(t, "shutdown", web.Shutdown())
		l.wantAll(t)
	})
	t.Run("uuid pin", func(t *testing.T) {
		forged := l.define(t, "e2e-pinned", "99999999-2222-3333-4444-555555555555")
		do(t, "create forged", forged.Create())
		unmapped := l.define(t, "e2e-unmapped", "")
		do(t, "create unmapped", unmapped.Create())
		// The reconciler has seen both run and announced nothing. Then a
		// barrier: web, started after them, reaches the ToRs after
		// anything sent for them, so once the ToRs have exactly web's
		// routes, nothing was.
		l.waitUnannounced(t, "e2e-pinned", "e2e-unmapped")
		do(t, "create web", web.Create())
		l.wantAll(t, all...)
		do(t, "destroy web", web.Destroy())
		l.wantAll(t)
		do(t, "destroy forged", forged.Destroy())
		do(t, "undefine forged", forged.Undefine())

		pinned := l.define(t, "e2e-pinned", "11111111-2222-3333-4444-555555555555")
		do(t, "create pinned", pinned.Create())
		best, _ := l.wantAll(t, "192.0.2.20/32")
		checkPath(t, best[netip.MustParsePrefix("192.0.2.20/32")], "127.0.0.1", []uint32{ourASN}, nil, nil, []uint32{comm(65001, 100)},
			[]mapping.LargeCommunity{{GlobalAdmin: 65001, LocalData1: 0, LocalData2: 1}})
		do(t, "destroy pinned", pinned.Destroy())
		do(t, "destroy unmapped", unmapped.Destroy())
		l.wantAll(t)
	})
}

// TestMappingReload edits the mapping file of a running daemon: a good edit
// takes effect, a broken one is rejected with file:line and changes nothing.
func TestMappingReload(t *testing.T) {
	l := startLab(t, e2eMapping)
	web := l.define(t, "e2e-web", "")
	do(t, "create", web.Create())
	defer web.Destroy()
	l.wantAll(t, "192.0.2.10/32", "192.0.2.11/32", "2001:db8::10/128")

	path := filepath.Join(l.dir, "mapping.yaml")
	writeFile(t, path, strings.Replace(e2eMapping, "med: 50", "med: 51", 1))
	if err := l.d.Reload(l.ctx); err != nil {
		t.Fatalf("reload good edit: %v", err)
	}
	testutil.Eventually(t, 10*time.Second, func() string {
		best := l.waitRIB(t, l.ebgp, "192.0.2.10/32", "192.0.2.11/32", "2001:db8::10/128")
		if med := best[netip.MustParsePrefix("192.0.2.10/32")].MED; med == nil || *med != 51 {
			return fmt.Sprintf("MED edit did not reach the ToR: MED %v, want 51", deref(med))
		}
		return ""
	})

	writeFile(t, path, strings.Replace(e2eMapping, "med: 50", "med: fifty", 1))
	err := l.d.Reload(l.ctx)
	if err == nil || !strings.Contains(err.Error(), path+":7: vm \"e2e-web\": med:") {
		t.Fatalf("broken edit: err = %v, want a %s:7: med problem", err, path)
	}
	// Reload has returned: whatever the rejected edit changed was applied
	// and sent before. A barrier: the pinned domain, started now, reaches
	// the ToR after all of it.
	pinned := l.define(t, "e2e-pinned", pinnedUUID)
	do(t, "create pinned", pinned.Create())
	best := l.waitRIB(t, l.ebgp, "192.0.2.10/32", "192.0.2.11/32", "192.0.2.20/32", "2001:db8::10/128")
	if med := best[netip.MustParsePrefix("192.0.2.10/32")].MED; med == nil || *med != 51 {
		t.Fatalf("after a rejected edit MED = %v, want the previous 51", deref(med))
	}
}
