package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
	lv "libvirt.org/go/libvirt"

	"github.com/virtbgp/virtbgp/internal/bgptest"
	"github.com/virtbgp/virtbgp/internal/control"
	"github.com/virtbgp/virtbgp/internal/reconcile"
	"github.com/virtbgp/virtbgp/internal/status"
	"github.com/virtbgp/virtbgp/internal/testutil"
	"github.com/virtbgp/virtbgp/mapping"
)

func (l *lab) ctl() *control.Client {
	return &control.Client{Path: l.cfg.Control.Socket}
}

func (l *lab) best(t *testing.T, tor *bgptest.ToR) map[netip.Prefix]bgptest.Path {
	t.Helper()
	b, err := tor.Best(l.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// updates returns how many UPDATEs the eBGP ToR has received on its IPv4
// session. GoBGP counts a message when it reads it, before it applies it
// to its RIB, and a session delivers messages in order: once the ToR has
// a route, the count includes the UPDATE that carried it and every one
// sent before it on the session.
func (l *lab) updates(t *testing.T) uint64 {
	t.Helper()
	n, err := l.ebgp.UpdatesReceived(l.ctx, v4)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDrain drains a host through the control socket: every route first
// carries GRACEFUL_SHUTDOWN, then everything is withdrawn; the drained
// state survives a daemon restart; undrain restores the routes.
func TestDrain(t *testing.T) {
	l := startLab(t, e2eMapping, "drain: {graceful-shutdown-time: 2s}")
	web := l.define(t, "e2e-web", "")
	do(t, "create", web.Create())
	all := []string{"192.0.2.10/32", "192.0.2.11/32", "2001:db8::10/128"}
	l.wantAll(t, all...)

	msg, err := l.ctl().Drain(l.ctx)
	if err != nil || !strings.Contains(msg, "draining") {
		t.Fatalf("drain: %q, %v", msg, err)
	}
	start := time.Now()
	testutil.Eventually(t, 5*time.Second, func() string {
		for p, path := range l.best(t, l.ebgp) {
			if !slices.Contains(path.Communities, mapping.CommunityGracefulShutdown) {
				return fmt.Sprintf("%s lacks GRACEFUL_SHUTDOWN: %s", p, path)
			}
		}
		return ""
	})
	if time.Since(start) > 1500*time.Millisecond {
		t.Fatalf("GRACEFUL_SHUTDOWN took %v to show", time.Since(start))
	}
	l.wantAll(t, all...) // still announced during the graceful-shutdown time
	l.wantAll(t)         // then withdrawn
	if took := time.Since(start); took < 2*time.Second {
		t.Fatalf("routes withdrawn after %v, before the 2s graceful-shutdown time", took)
	}
	rep, err := l.ctl().Status(l.ctx)
	if err != nil || rep.Drain.State != reconcile.DrainDrained {
		t.Fatalf("status after drain: %v %v", rep.Drain, err)
	}

	// A restarted daemon stays drained. startDaemon returns once the
	// sessions are up and the first pass, which the peers wait for, is
	// done: the report shows what that pass announced.
	before := l.updates(t)
	l.stopDaemon()
	stop := l.startDaemon(t)
	l.wantAll(t)
	if rep, err := l.ctl().Status(l.ctx); err != nil || rep.Drain.State != reconcile.DrainDrained || len(rep.Routes) > 0 {
		t.Fatalf("status after restart: %v, %d routes, %v", rep.Drain, len(rep.Routes), err)
	}
	if msg, err := l.ctl().Undrain(l.ctx); err != nil || !strings.Contains(msg, "undrained") {
		t.Fatalf("undrain: %q, %v", msg, err)
	}
	best, _ := l.wantAll(t, all...)
	if c := best[netip.MustParsePrefix("192.0.2.10/32")].Communities; slices.Contains(c, mapping.CommunityGracefulShutdown) {
		t.Fatalf("undrained route still carries GRACEFUL_SHUTDOWN: %v", c)
	}
	// The undrain's routes are the barrier: they came after whatever the
	// restarted daemon sent before it, and on the IPv4 session they are two
	// UPDATEs (192.0.2.10 and .11, whose attributes differ).
	if n := l.updates(t) - before; n != 2 {
		t.Fatalf("the ToR received %d UPDATEs from the restart through the undrain, want the undrain's 2: the drained daemon announced at its start", n)
	}
	stop()
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestStatusEndpoint reads /status, /metrics, /healthz and /readyz of a
// running daemon.
func TestStatusEndpoint(t *testing.T) {
	port, err := bgptest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	l := startLab(t, e2eMapping, fmt.Sprintf("status: {listen: '127.0.0.1:%d'}", port))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	web := l.define(t, "e2e-web", "")
	do(t, "create", web.Create())
	l.wantAll(t, "192.0.2.10/32", "192.0.2.11/32", "2001:db8::10/128")

	var rep status.Report
	testutil.Eventually(t, 5*time.Second, func() string {
		code, body := httpGet(t, base+"/status")
		if code != 200 {
			return fmt.Sprintf("/status: %d %s", code, body)
		}
		rep = status.Report{}
		if err := json.Unmarshal([]byte(body), &rep); err != nil {
			return err.Error()
		}
		if len(rep.Routes) != 3 {
			return fmt.Sprintf("%d routes in /status", len(rep.Routes))
		}
		return ""
	})
	if !rep.Ready || !rep.Libvirt.Connected || rep.Mapping.Generation != 1 || rep.Drain.State != reconcile.DrainNone {
		t.Errorf("report header: ready %v libvirt %v generation %d drain %s", rep.Ready, rep.Libvirt.Connected, rep.Mapping.Generation, rep.Drain.State)
	}
	if len(rep.Peers) != 3 {
		t.Fatalf("peers in report: %+v", rep.Peers)
	}
	for _, p := range rep.Peers {
		if p.State != "established" {
			t.Errorf("peer %s state %s", p.Address, p.State)
		}
	}
	var r10 status.Route
	for _, r := range rep.Routes {
		if r.Prefix == "192.0.2.10/32" {
			r10 = r
		}
	}
	if r10.Domain != "e2e-web" || r10.Why != "running" || r10.MED == nil || *r10.MED != 50 || !slices.Contains(r10.Communities, "no-export") {
		t.Errorf("route 192.0.2.10/32 in report: %+v", r10)
	}
	found := false
	for _, d := range rep.Domains {
		if d.Name == "e2e-web" {
			found = d.State == "running" && d.VM == "e2e-web" && d.Routes == 3
		}
	}
	if !found {
		t.Errorf("domain e2e-web not reported as running with 3 routes: %+v", rep.Domains)
	}

	code, body := httpGet(t, base+"/metrics")
	for _, want := range []string{
		`virtbgp_routes_announced{family="ipv4"} 2`,
		`virtbgp_routes_announced{family="ipv6"} 1`,
		`virtbgp_libvirt_connected 1`,
		`virtbgp_ready 1`,
		`virtbgp_peer_up{asn="65000",peer="127.0.0.1"} 1`,
		`virtbgp_mapping_reload_success 1`,
		`virtbgp_event_to_announce_seconds_count`,
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics (%d) lacks %q", code, want)
		}
	}
	if code, _ := httpGet(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, _ := httpGet(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz = %d", code)
	}
}

// TestWatchReloadSendsOnlyTheDifference edits the mapping file of a running
// daemon without any signal: a one-line MED edit reaches the ToR as exactly
// one UPDATE; a broken edit is rejected with file:line, changes nothing and
// is not retried; rewriting unchanged content sends nothing.
//
// Each count is read after a barrier: the pinned domain started or
// destroyed after the step. Its one UPDATE reaches the ToR after whatever
// the step sent, so the count then includes the step's UPDATEs and the
// barrier's.
func TestWatchReloadSendsOnlyTheDifference(t *testing.T) {
	l := startLab(t, e2eMapping)
	web := l.define(t, "e2e-web", "")
	do(t, "create", web.Create())
	pinned := l.define(t, "e2e-pinned", pinnedUUID)
	webRoutes := []string{"192.0.2.10/32", "192.0.2.11/32", "2001:db8::10/128"}
	withPinned := append(slices.Clone(webRoutes), "192.0.2.20/32")
	// The ToR has web's routes: it has received their UPDATEs, and the
	// daemon has nothing else to send.
	l.wantAll(t, webRoutes...)
	path := filepath.Join(l.dir, "mapping.yaml")
	before := l.updates(t)

	// One line: the MED of one IP (192.0.2.11 has its own med: 60).
	writeFile(t, path, strings.Replace(e2eMapping, "med: 60", "med: 61", 1))
	testutil.Eventually(t, 5*time.Second, func() string {
		if med := l.best(t, l.ebgp)[netip.MustParsePrefix("192.0.2.11/32")].MED; med == nil || *med != 61 {
			return fmt.Sprintf("MED of 192.0.2.11/32 = %v, want 61", deref(med))
		}
		return ""
	})
	do(t, "create pinned", pinned.Create())
	l.wantAll(t, withPinned...)
	if n := l.updates(t) - before - 1; n != 1 {
		t.Fatalf("a one-line MED edit sent %d UPDATEs, want exactly 1", n)
	}
	rep, err := l.ctl().Status(l.ctx)
	if err != nil || rep.Mapping.Generation != 2 || !rep.Mapping.LastReload.OK {
		t.Fatalf("after the edit: generation %d last reload %+v err %v", rep.Mapping.Generation, rep.Mapping.LastReload, err)
	}

	// A broken edit: rejected with file:line, routes untouched.
	before = l.updates(t)
	broken := strings.Replace(e2eMapping, "med: 60", "med: sixty", 1)
	writeFile(t, path, broken)
	testutil.Eventually(t, 5*time.Second, func() string {
		rep, err = l.ctl().Status(l.ctx)
		if err != nil {
			return err.Error()
		}
		if rep.Mapping.LastReload.OK {
			return "last reload still ok"
		}
		return ""
	})
	wantErr := path + `:16: vm "e2e-web" ips[2]: med: want an integer from 0 to 4294967295, got "sixty"`
	if !slices.Contains(rep.Mapping.LastReload.Errors, wantErr) || rep.Mapping.Generation != 2 {
		t.Fatalf("rejected reload: generation %d errors %q, want %q", rep.Mapping.Generation, rep.Mapping.LastReload.Errors, wantErr)
	}
	failedAt := rep.Mapping.LastReload.At
	// Touching the file again with the same broken content is not
	// retried: the daemon reads the file again (the watcher saw the
	// write), and once it has, its main loop, which also answers status,
	// has decided.
	closes := watchCloses(t, path)
	writeFile(t, path, broken)
	closes.waitReadAfterWrite(t)
	if rep, _ := l.ctl().Status(l.ctx); !rep.Mapping.LastReload.At.Equal(failedAt) {
		t.Fatalf("the same broken content was loaded again at %v", rep.Mapping.LastReload.At)
	}
	do(t, "destroy pinned", pinned.Destroy())
	l.wantAll(t, webRoutes...)
	if n := l.updates(t) - before - 1; n != 0 {
		t.Fatalf("a rejected edit sent %d UPDATEs", n)
	}
	if med := l.best(t, l.ebgp)[netip.MustParsePrefix("192.0.2.11/32")].MED; med == nil || *med != 61 {
		t.Fatalf("after a rejected edit MED = %v, want 61 still", deref(med))
	}

	// Fixing it back to the content in force: accepted, nothing sent.
	before = l.updates(t)
	writeFile(t, path, strings.Replace(e2eMapping, "med: 60", "med: 61", 1))
	testutil.Eventually(t, 5*time.Second, func() string {
		if rep, _ := l.ctl().Status(l.ctx); !rep.Mapping.LastReload.OK {
			return "fixed content not reloaded"
		}
		return ""
	})
	do(t, "create pinned", pinned.Create())
	l.wantAll(t, withPinned...)
	if n := l.updates(t) - before - 1; n != 0 {
		t.Fatalf("reloading unchanged routes sent %d UPDATEs, want 0", n)
	}
}

// fileCloses reports the closes of one file, from inotify.
type fileCloses struct {
	f  *os.File
	ev chan uint32 // IN_CLOSE_WRITE or IN_CLOSE_NOWRITE, in order
}

// watchCloses starts watching path for closes: of a writer
// (IN_CLOSE_WRITE) and of a reader (IN_CLOSE_NOWRITE). The kernel queues
// them in the order they happen.
func watchCloses(t *testing.T, path string) *fileCloses {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatalf("inotify: %v", err)
	}
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_CLOSE_WRITE|unix.IN_CLOSE_NOWRITE); err != nil {
		unix.Close(fd)
		t.Fatalf("inotify watch %s: %v", path, err)
	}
	w := &fileCloses{f: os.NewFile(uintptr(fd), "inotify"), ev: make(chan uint32, 64)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := w.f.Read(buf) // the runtime poller waits; Close ends it
			if err != nil {
				return
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
				if m := ev.Mask & (unix.IN_CLOSE_WRITE | unix.IN_CLOSE_NOWRITE); m != 0 {
					w.ev <- m
				}
				off += unix.SizeofInotifyEvent + int(ev.Len)
			}
		}
	}()
	t.Cleanup(func() {
		w.f.Close()
		<-done
	})
	return w
}

// waitReadAfterWrite waits for a writer's close of the file and then for a
// reader's.
func (w *fileCloses) waitReadAfterWrite(t *testing.T) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	want := uint32(unix.IN_CLOSE_WRITE)
	for {
		select {
		case m := <-w.ev:
			if m&want == 0 {
				continue
			}
			if want == unix.IN_CLOSE_NOWRITE {
				return
			}
			want = unix.IN_CLOSE_NOWRITE
		case <-timeout:
			t.Fatal("the daemon did not read the mapping file within 10s of the write")
		}
	}
}

// TestConfigReloadTouchesOnlyTheChangedPeer changes one peer in the config
// file and reloads through the control socket: that session resets, the
// others stay up.
func TestConfigReloadTouchesOnlyTheChangedPeer(t *testing.T) {
	l := startLab(t, e2eMapping)
	web := l.define(t, "e2e-web", "")
	do(t, "create", web.Create())
	l.wantAll(t, "192.0.2.10/32", "192.0.2.11/32", "2001:db8::10/128")
	peers := func() map[string]status.Peer {
		rep, err := l.ctl().Status(l.ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]status.Peer{}
		for _, p := range rep.Peers {
			out[p.Address] = p
		}
		return out
	}
	writeFile(t, l.cfgPath, l.configText(12))
	if msg, err := l.ctl().Reload(l.ctx); err != nil {
		t.Fatalf("reload: %q %v", msg, err)
	}
	testutil.Eventually(t, 20*time.Second, func() string {
		p := peers()["127.0.0.2"]
		if p.State != "established" || p.LastDown == "" {
			return fmt.Sprintf("iBGP peer: %s, last down %q; want reset and re-established", p.State, p.LastDown)
		}
		return ""
	})
	for _, a := range []string{"127.0.0.1", "::1"} {
		if p := peers()[a]; p.State != "established" || p.LastDown != "" {
			t.Errorf("untouched peer %s: %s, last down %q", a, p.State, p.LastDown)
		}
	}
	l.wantAll(t, "192.0.2.10/32", "192.0.2.11/32", "2001:db8::10/128")
}

// TestBurstOfLifecycleEvents fires 1,000 lifecycle events at the daemon
// through real libvirt and checks the final announced set.
func TestBurstOfLifecycleEvents(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nvms:\n")
	for i := range 20 {
		fmt.Fprintf(&b, "  burst-%02d: {ips: [198.51.100.%d]}\n", i, i+1)
	}
	b.WriteString("  burst-barrier: {ips: [198.51.100.100]}\n")
	l := startLab(t, b.String())
	doms := make([]*domainRef, 20)
	for i := range doms {
		doms[i] = &domainRef{d: l.define(t, fmt.Sprintf("burst-%02d", i), "")}
	}
	// 50 rounds of start/stop or suspend/resume over 20 domains: 1,000
	// lifecycle events, as fast as libvirt takes them.
	events := 0
	for round := range 50 {
		for i, d := range doms {
			switch {
			case !d.running:
				do(t, "create", d.d.Create())
				d.running = true
			case (round+i)%3 == 0:
				do(t, "destroy", d.d.Destroy())
				d.running, d.paused = false, false
			case d.paused:
				do(t, "resume", d.d.Resume())
				d.paused = false
			default:
				do(t, "suspend", d.d.Suspend())
				d.paused = true
			}
			events++
		}
	}
	var want []string
	for i, d := range doms {
		if d.running && !d.paused {
			want = append(want, fmt.Sprintf("198.51.100.%d/32", i+1))
		}
	}
	t.Logf("%d lifecycle events; %d domains end up running", events, len(want))
	l.waitRIB(t, l.ebgp, want...)
	// And it stays right: a barrier domain started after the burst. Its
	// event comes after every event of the burst, so the pass that
	// announces it has read every domain's final state (or, had the hint
	// buffer overflowed, a full resync reads it again): once the ToR has
	// its route, the burst's routes can no longer change.
	do(t, "create barrier", l.define(t, "burst-barrier", "").Create())
	l.waitRIB(t, l.ebgp, append(want, "198.51.100.100/32")...)
}

type domainRef struct {
	d       *lv.Domain
	running bool
	paused  bool
}
