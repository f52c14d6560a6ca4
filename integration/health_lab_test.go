package integration

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	vblab "github.com/virtbgp/virtbgp/integration/lab"
	"github.com/virtbgp/virtbgp/internal/control"
	"github.com/virtbgp/virtbgp/internal/health"
	"github.com/virtbgp/virtbgp/internal/status"
)

// The OS guest's network: a bridge in hvA's namespace and the guest's
// address on it, whose /32 virtbgp announces.
var (
	osBridgeAddr = netip.MustParsePrefix("192.0.2.129/25")
	osGuestAddr  = netip.MustParsePrefix("192.0.2.180/25")
	osGuestRoute = netip.MustParsePrefix("192.0.2.180/32")
	osAgentRoute = netip.MustParsePrefix("192.0.2.181/32")
)

const (
	labInterval = time.Second
	labFall     = 3
	labRise     = 2
)

// osGuestElement is the guest's virtbgp metadata element, the same
// declared by the VM's owner: the HTTP check of 192.0.2.180 in its <ip>,
// the agent check of 192.0.2.181 at element level (a check per IP
// replaces the element's, as in a mapping file).
const osGuestElement = `<vm>` +
	`<health><check type="agent" interval="1s" timeout="900ms" rise="2" fall="3"/></health>` +
	`<ip prefix="192.0.2.180"><health><check type="http" url="http://{ip}/health" body="ready" interval="1s" timeout="900ms" rise="2" fall="3"/></health></ip>` +
	`<ip prefix="192.0.2.181"/></vm>`

// osGuestMetaConfig is mapping.metadata of hvA's virtbgp when the guest's
// checks come from its element.
const osGuestMetaConfig = `metadata:
  enabled: true
  allowed-prefixes: [192.0.2.0/24]
  health: {types: [agent, http], min-interval: 1s, max-checks: 2}
`

// osGuestRefused is the element with a third IP whose exec check the trust
// rules refuse, and a fourth whose tcp check the operator's types
// (osGuestMetaConfig) refuse: the other routes and their checks stay.
const osGuestRefused = `<vm>` +
	`<health><check type="agent" interval="1s" timeout="900ms" rise="2" fall="3"/></health>` +
	`<ip prefix="192.0.2.180"><health><check type="http" url="http://{ip}/health" body="ready" interval="1s" timeout="900ms" rise="2" fall="3"/></health></ip>` +
	`<ip prefix="192.0.2.181"/>` +
	`<ip prefix="192.0.2.182"><health><check type="exec" command="/usr/bin/touch /tmp/pwned"/></health></ip>` +
	`<ip prefix="192.0.2.183"><health><check type="tcp" address="{ip}:22"/></health></ip></vm>`

// TestLabHealthOSGuest boots a guest with a real operating system (Debian's
// kernel, busybox, qemu-ga; integration/lab OSGuest) on hvA, its virtio NIC
// on a bridge of hvA's namespace, and checks, at both ToRs (BIRD and FRR),
// that its route follows its service: announced once the HTTP check
// passes; withdrawn fall intervals after httpd is killed in the guest;
// back rise intervals after it is started again; withdrawn after its
// process is frozen (SIGSTOP: virsh suspend would stop the domain, which
// withdraws anyway); and that the agent check's route goes when qemu-ga is
// stopped in the guest.
//
// The checks come from the guest's virtbgp metadata element, written
// by its owner (osGuestElement, set live after the boot), not from the
// mapping file, which names no osg (TestHealthChecks tests the file's
// checks, with the same code under them). A third IP
// with an exec check is refused by the trust rules, a fourth with a tcp
// check by the operator's mapping.metadata.health.types, both reported in
// status, and the others' routes and checks stay as they are.
func TestLabHealthOSGuest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	t0 := time.Now()
	img, err := vblab.BuildOSImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("OS guest image ready in %v: %s", time.Since(t0).Round(time.Millisecond), img.Initrd)
	l := upLab(t)
	if err := l.A.AddBridge(ctx, "vbbr0", osBridgeAddr); err != nil {
		t.Fatal(err)
	}
	mp := filepath.Join(t.TempDir(), "mapping.yaml")
	if err := os.WriteFile(mp, []byte("version: 1\nvms: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := l.A.StartVirtbgp(ctx, vblab.VirtbgpConfig{Mapping: mp, LogLevel: "info", MappingExtra: osGuestMetaConfig,
		Peers: []netip.Addr{vblab.BIRDv4, vblab.FRRv4}}); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	g := vblab.OSGuest{Name: "osg", Addr: osGuestAddr, Gateway: osBridgeAddr.Addr(), Bridge: "vbbr0", TCG: true}
	if err := l.A.CreateOSGuest(ctx, g, img); err != nil {
		t.Fatal(err)
	}
	t.Logf("OS guest booted, agent answering, in %v", time.Since(t0).Round(time.Millisecond))
	metaVirsh(ctx, t, l.A, "osg", "--set", osGuestElement, "--live")
	waitToRs(ctx, t, l, osGuestRoute, true, "the HTTP check passes")
	waitToRs(ctx, t, l, osAgentRoute, true, "the agent check passes")

	// exec runs a busybox applet in the guest by its link in /bin, so
	// that the process has the applet's name (killall finds it).
	exec := func(applet string, args ...string) {
		t.Helper()
		code, out, err := l.A.GuestExec(ctx, "osg", false, "/bin/"+applet, args...)
		if err != nil || code != 0 {
			t.Fatalf("in the guest: %s %s: exit %d %q %v", applet, strings.Join(args, " "), code, out, err)
		}
	}
	t.Run("service stopped: withdrawn after fall", func(t *testing.T) {
		mon, err := l.MonitorRoutes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer mon.Close()
		start := time.Now()
		exec("killall", "httpd")
		took := waitToRs(ctx, t, l, osGuestRoute, false, "httpd killed in the guest")
		t.Logf("service stopped to withdrawn at both ToRs: %v (interval %v x fall %d)", took.Round(time.Millisecond), labInterval, labFall)
		// From virtbgp's decision (the transition's log line) to the
		// route's removal from each ToR's kernel table.
		down := transitionTime(t, l, "check=http", "to=down")
		for _, ev := range mon.Events() {
			if ev.Prefix == osGuestRoute && ev.Deleted {
				t.Logf("check down to removed from %s's kernel table: %v", ev.Proto, ev.Time.Sub(down).Round(100*time.Microsecond))
			}
		}
		if d := time.Since(start); d < (labFall-1)*labInterval {
			t.Errorf("withdrawn %v after the stop, before fall", d)
		}
		if !announced(ctx, t, l, osAgentRoute) {
			t.Error("the agent check's route went too")
		}
	})
	t.Run("service restarted: back after rise", func(t *testing.T) {
		exec("httpd", "-p", "80", "-h", "/www")
		took := waitToRs(ctx, t, l, osGuestRoute, true, "httpd started again")
		t.Logf("service restarted to announced at both ToRs: %v (interval %v x rise %d)", took.Round(time.Millisecond), labInterval, labRise)
	})
	t.Run("service frozen: withdrawn", func(t *testing.T) {
		exec("killall", "-STOP", "httpd")
		took := waitToRs(ctx, t, l, osGuestRoute, false, "httpd frozen (SIGSTOP)")
		t.Logf("service frozen to withdrawn: %v", took.Round(time.Millisecond))
		exec("killall", "-CONT", "httpd")
		waitToRs(ctx, t, l, osGuestRoute, true, "httpd thawed")
	})
	t.Run("a refused check: status says why, the others stay", func(t *testing.T) {
		metaVirsh(ctx, t, l.A, "osg", "--set", osGuestRefused, "--live")
		ctl := control.Client{Path: l.A.VirtbgpSocket()}
		var checks []health.CheckStatus
		err := vblab.Eventually(ctx, 50*time.Millisecond, func(ctx context.Context) error {
			r, err := ctl.Status(ctx)
			if err != nil {
				return err
			}
			checks = r.Health
			for _, d := range r.Domains {
				if d.Name != "osg" {
					continue
				}
				if d.Source != status.SourceMetadata || d.Problem != status.ProblemClaimsRefused || len(d.Refused) != 2 ||
					d.Refused[0].Prefix != "192.0.2.182/32" || !strings.Contains(d.Refused[0].Reason, "exec checks are not allowed from metadata") ||
					d.Refused[1].Prefix != "192.0.2.183/32" || !strings.Contains(d.Refused[1].Reason, "type tcp is not allowed from metadata (the operator allows agent, http)") {
					return fmt.Errorf("status of osg: %+v", d)
				}
				return nil
			}
			return fmt.Errorf("no osg in status")
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []netip.Prefix{osGuestRoute, osAgentRoute} {
			if !announced(ctx, t, l, p) {
				t.Errorf("%s went with the refusal of another IP", p)
			}
		}
		log, _ := os.ReadFile(l.A.VirtbgpLogPath())
		if n := strings.Count(string(log), `msg="route claim refused"`); n != 2 {
			t.Errorf("%d \"route claim refused\" log lines, want 2 (once per change)", n)
		}
		// The monitor runs the checks of the routes Resolve may announce:
		// none of the refused one (the same status as the refusal).
		var running []string
		for _, c := range checks {
			running = append(running, c.IP.String()+" "+c.Check)
		}
		slices.Sort(running)
		if want := []string{"192.0.2.180 http", "192.0.2.181 agent"}; !slices.Equal(running, want) {
			t.Errorf("checks running %q, want %q", running, want)
		}
		if _, err := os.Stat("/tmp/pwned"); err == nil {
			t.Errorf("the refused exec check ran")
		}
	})
	t.Run("agent stopped: agent check fails", func(t *testing.T) {
		if _, _, err := l.A.GuestExec(ctx, "osg", true, "/bin/killall", "qemu-ga"); err != nil {
			t.Fatal(err)
		}
		took := waitToRs(ctx, t, l, osAgentRoute, false, "qemu-ga killed in the guest")
		t.Logf("agent stopped to withdrawn: %v", took.Round(time.Millisecond))
		if !announced(ctx, t, l, osGuestRoute) {
			t.Error("the HTTP check's route went too")
		}
		log, _ := os.ReadFile(l.A.VirtbgpLogPath())
		if !strings.Contains(string(log), `msg="health check changed"`) || !strings.Contains(string(log), "to=down") {
			t.Errorf("no transition to down in virtbgp's log")
		}
	})
}

// announced reports whether both ToRs have p now.
func announced(ctx context.Context, t *testing.T, l *vblab.Lab, p netip.Prefix) bool {
	t.Helper()
	bird, err := l.BIRD.Routes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	frr, err := l.FRR.Routes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, b := bird.Best(p)
	_, f := frr.Best(p)
	return b && f
}

// waitToRs waits until both BIRD and FRR have (want) or lack (!want) a
// path for p, and returns how long that took.
func waitToRs(ctx context.Context, t *testing.T, l *vblab.Lab, p netip.Prefix, want bool, after string) time.Duration {
	t.Helper()
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	err := vblab.Eventually(wctx, 100*time.Millisecond, func(ctx context.Context) error {
		// One read may stall on a loaded machine: each gets 5 s.
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		for _, tor := range []interface {
			Routes(context.Context) (vblab.RIB, error)
			Name() string
		}{l.BIRD, l.FRR} {
			rib, err := tor.Routes(ctx)
			if err != nil {
				return err
			}
			if _, ok := rib.Best(p); ok != want {
				return fmt.Errorf("%s: %s present %v, want %v", tor.Name(), p, ok, want)
			}
		}
		return nil
	})
	if err != nil {
		log, _ := os.ReadFile(l.A.VirtbgpLogPath())
		t.Fatalf("after %s: %v\nvirtbgp log tail:\n%s", after, err, lastLines(string(log), 30))
	}
	return time.Since(start)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// transitionTime returns the time of the last "health check changed" line
// of hvA's virtbgp log that has every one of fields.
func transitionTime(t *testing.T, l *vblab.Lab, fields ...string) time.Time {
	t.Helper()
	b, err := os.ReadFile(l.A.VirtbgpLogPath())
	if err != nil {
		t.Fatal(err)
	}
	var at time.Time
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, `msg="health check changed"`) {
			continue
		}
		ok := true
		for _, f := range fields {
			ok = ok && strings.Contains(line, f)
		}
		ts, found := strings.CutPrefix(strings.Fields(line + " ")[0], "time=")
		if !ok || !found {
			continue
		}
		if tm, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			at = tm
		}
	}
	if at.IsZero() {
		t.Fatalf("no transition %v in virtbgp's log", fields)
	}
	return at
}
