package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	vblab "github.com/virtbgp/virtbgp/integration/lab"
)

// Graceful restart (RFC 4724) of virtbgp in the real-world lab: BIRD and
// FRR are both configured as graceful-restart helpers (integration/lab:
// BIRD "graceful restart on", FRR "neighbor X graceful-restart-helper").
//
// virtbgp ends with its sessions open and the kernel closes them without a
// NOTIFICATION, so the ToRs keep its routes; the next virtbgp starts in
// restarting mode, reads libvirt, puts the routes back, brings the sessions
// up (Restart State bit set) and sends its routes and End-of-RIB once the
// ToRs have sent theirs. The ToRs then refresh the routes and flush the
// stale ones that were not re-announced.

const grMapping = `version: 1
vms:
  gr-keep:
    ips: [192.0.2.61, "2001:db8:61::61"]
  gr-gone:
    ips: [192.0.2.62, "2001:db8:62::62"]
`

var (
	grKeep = []netip.Prefix{netip.MustParsePrefix("192.0.2.61/32"), netip.MustParsePrefix("2001:db8:61::61/128")}
	grGone = []netip.Prefix{netip.MustParsePrefix("192.0.2.62/32"), netip.MustParsePrefix("2001:db8:62::62/128")}
)

// grBIRDProtos are BIRD's sessions with hvA.
var grBIRDProtos = []string{"hvA4", "hvA6"}

// grSetup brings the lab up with virtbgp on hvA (graceful restart on, the
// default restart time), the guests named in guests running on hvA, and
// waits until BIRD and FRR have their routes via hvA. BIRD's sessions with
// hvA trace packets too, so that End-of-RIB shows in its log.
func grSetup(ctx context.Context, t *testing.T, guests ...string) (*vblab.Lab, vblab.VirtbgpConfig) {
	t.Helper()
	l := upLab(t)
	mp := filepath.Join(t.TempDir(), "mapping.yaml")
	if err := os.WriteFile(mp, []byte(grMapping), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := vblab.VirtbgpConfig{Mapping: mp}
	if err := l.A.StartVirtbgp(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitEstablished(ctx, l.A); err != nil {
		t.Fatal(err)
	}
	for _, p := range grBIRDProtos {
		if _, err := l.BIRD.Birdc(ctx, "debug", p, "all"); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range guests {
		if err := l.A.CreateGuest(ctx, vblab.Guest{Name: g}); err != nil {
			t.Fatal(err)
		}
	}
	var want []netip.Prefix
	for _, g := range guests {
		want = append(want, grPrefixes(g)...)
	}
	grWantRoutes(ctx, t, l, want, nil)
	return l, cfg
}

func grPrefixes(guest string) []netip.Prefix {
	if guest == "gr-gone" {
		return grGone
	}
	return grKeep
}

// grWantRoutes waits until both ToRs have, for every prefix of have, a
// best path via hvA, and no path for any prefix of gone.
func grWantRoutes(ctx context.Context, t *testing.T, l *vblab.Lab, have, gone []netip.Prefix) {
	t.Helper()
	err := l.WaitRIBs(ctx, 50*time.Millisecond, func(_ vblab.Router, rib vblab.RIB) error {
		return grCheckRIB(l, rib, have, gone)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func grCheckRIB(l *vblab.Lab, rib vblab.RIB, have, gone []netip.Prefix) error {
	for _, pfx := range have {
		nh := l.A.IPv4
		if pfx.Addr().Is6() {
			nh = l.A.IPv6
		}
		b, ok := rib.Best(pfx)
		if !ok || b.NextHop != nh {
			return fmt.Errorf("%s: want a best path via %s, have %v", pfx, nh, rib.NextHops(pfx))
		}
	}
	for _, pfx := range gone {
		if ps := rib.Paths(pfx); len(ps) > 0 {
			return fmt.Errorf("%s: still has %d path(s) via %v", pfx, len(ps), rib.NextHops(pfx))
		}
	}
	return nil
}

// grWatcher polls both ToRs' RIBs while virtbgp restarts and records every
// moment a prefix that must stay was missing.
type grWatcher struct {
	mu      sync.Mutex
	polls   map[string]int
	missing []string
	stop    chan struct{}
	done    chan struct{}
}

func grWatch(l *vblab.Lab, keep []netip.Prefix) *grWatcher {
	w := &grWatcher{polls: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			for _, r := range l.Routers() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				rib, err := r.Routes(ctx)
				cancel()
				if err != nil {
					continue
				}
				w.mu.Lock()
				w.polls[r.Name()]++
				if err := grCheckRIB(l, rib, keep, nil); err != nil {
					w.missing = append(w.missing, fmt.Sprintf("%s %s: %v", time.Now().Format("15:04:05.000"), r.Name(), err))
				}
				w.mu.Unlock()
			}
			select {
			case <-w.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *grWatcher) finish() (polls map[string]int, missing []string) {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.polls, w.missing
}

// birdLogLine is one line of BIRD's log (timeformat log iso long ms).
type birdLogLine struct {
	Time time.Time
	Text string
}

var birdLogTime = regexp.MustCompile(`^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) (.*)$`)

// grReadLog returns the lines of a log file from byte offset on.
func grReadLog(t *testing.T, path string, offset int64) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) < offset {
		return ""
	}
	return string(b[offset:])
}

func grLogSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// birdLog parses BIRD's log from offset on.
func birdLog(t *testing.T, l *vblab.Lab, offset int64) []birdLogLine {
	var out []birdLogLine
	for _, line := range strings.Split(grReadLog(t, l.BIRD.Log, offset), "\n") {
		m := birdLogTime.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		ts, err := time.ParseInLocation("2006-01-02 15:04:05.000", m[1], time.Local)
		if err != nil {
			continue
		}
		out = append(out, birdLogLine{Time: ts, Text: m[2]})
	}
	return out
}

// birdWaitLog waits until BIRD's log, from offset on, has a line containing
// every one of parts, and returns it.
func birdWaitLog(ctx context.Context, t *testing.T, l *vblab.Lab, offset int64, parts ...string) birdLogLine {
	t.Helper()
	var found birdLogLine
	err := vblab.Eventually(ctx, 20*time.Millisecond, func(context.Context) error {
		for _, ln := range birdLog(t, l, offset) {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(ln.Text, p)
			}
			if all {
				found = ln
				return nil
			}
		}
		return fmt.Errorf("no %q in BIRD's log", parts)
	})
	if err != nil {
		t.Fatalf("%v; BIRD's log since the restart:\n%s", err, grReadLog(t, l.BIRD.Log, offset))
	}
	return found
}

// frrNeighbor is what FRR says about one neighbor's graceful restart.
func frrNeighbor(ctx context.Context, l *vblab.Lab, addr netip.Addr) (map[string]any, error) {
	out, err := l.FRR.Vtysh(ctx, "show bgp neighbors "+addr.String()+" json")
	if err != nil {
		return nil, err
	}
	var m map[string]map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		return nil, fmt.Errorf("frr neighbor json: %w", err)
	}
	n, ok := m[addr.String()]
	if !ok {
		return nil, fmt.Errorf("frr: no neighbor %s in %s", addr, out)
	}
	return n, nil
}

// grResult is what one restart measured.
type grResult struct {
	down, started, established, refreshed time.Time
}

// grRestart restarts hvA's virtbgp with sig (stopping gone, if any, while
// it is down) and checks the graceful restart on both ToRs: the routes of
// keep never leave either ToR (neither its RIB nor its kernel table), the
// sessions come back, BIRD and FRR get End-of-RIB and finish the graceful
// restart, the routes are fresh again and gone's routes are withdrawn.
func grRestart(t *testing.T, sig syscall.Signal, gone string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	guests := []string{"gr-keep"}
	if gone != "" {
		guests = append(guests, gone)
	}
	l, cfg := grSetup(ctx, t, guests...)
	mon, err := l.MonitorRoutes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	birdOff := grLogSize(l.BIRD.Log)
	frrLog := filepath.Join(l.FRR.Dir, "bgpd.log")
	frrOff := grLogSize(frrLog)
	vbOff := grLogSize(l.A.VirtbgpLogPath())
	w := grWatch(l, grKeep)

	var res grResult
	res.down = time.Now()
	if err := l.A.StopVirtbgp(ctx, sig); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	t.Logf("virtbgp on hvA stopped with %v in %v", sig, stopped.Sub(res.down).Round(time.Millisecond))

	// Both ToRs notice the closed sessions and keep the routes.
	for _, p := range grBIRDProtos {
		birdWaitLog(ctx, t, l, birdOff, p+": Neighbor graceful restart detected")
	}
	if gone != "" {
		if err := l.A.DestroyGuest(ctx, gone); err != nil {
			t.Fatal(err)
		}
		t.Logf("guest %s destroyed while virtbgp is down", gone)
	}
	// BIRD says so in show protocols all.
	for _, p := range grBIRDProtos {
		out, err := l.BIRD.Birdc(ctx, "show", "protocols", "all", p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "Neighbor graceful restart active") {
			t.Errorf("BIRD %s while virtbgp is down: no \"Neighbor graceful restart active\":\n%s", p, out)
		}
		if strings.Contains(out, "Received: ") {
			t.Errorf("BIRD %s while virtbgp is down: a NOTIFICATION was received:\n%s", p, out)
		}
	}

	res.started = time.Now()
	if err := l.A.StartVirtbgp(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitEstablished(ctx, l.A); err != nil {
		t.Fatal(err)
	}
	res.established = time.Now()

	// BIRD: End-of-RIB from the restarted virtbgp ends the graceful
	// restart of each session.
	var eorAt, doneAt time.Time
	for _, p := range grBIRDProtos {
		eor := birdWaitLog(ctx, t, l, birdOff, p+": Got END-OF-RIB")
		done := birdWaitLog(ctx, t, l, birdOff, p+": Neighbor graceful restart done")
		// RFC 4724 4.2: with the Forwarding State bit set for the family
		// in the restarted speaker's OPEN, the helper keeps the stale
		// routes until End-of-RIB; without it, it drops them as soon as
		// the session is up (BIRD: "graceful restart done" right at
		// "session established"), and the routes survive only if their
		// UPDATEs win the race with the flush.
		if !birdGRDoneAfterEoR(t, l, birdOff, p) {
			t.Errorf("BIRD %s ended the graceful restart before End-of-RIB (the restarted virtbgp's OPEN had no Forwarding State bit)", p)
		}
		if eor.Time.After(eorAt) {
			eorAt = eor.Time
		}
		if done.Time.After(doneAt) {
			doneAt = done.Time
		}
	}
	res.refreshed = doneAt
	err = vblab.Eventually(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		for _, p := range grBIRDProtos {
			out, err := l.BIRD.Birdc(ctx, "show", "protocols", "all", p)
			if err != nil {
				return err
			}
			if strings.Contains(out, "graceful restart active") || !strings.Contains(out, "Established") {
				return fmt.Errorf("BIRD %s:\n%s", p, out)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("BIRD still in graceful restart: %v", err)
	}

	// FRR: the restarted virtbgp's OPEN had the Restart State bit and the
	// Forwarding State bit for the session's family.
	for _, a := range []netip.Addr{l.A.IPv4, l.A.IPv6} {
		n, err := frrNeighbor(ctx, l, a)
		if err != nil {
			t.Fatal(err)
		}
		gr, _ := json.Marshal(n["gracefulRestartInfo"])
		t.Logf("FRR %s gracefulRestartInfo: %s", a, gr)
		if !strings.Contains(string(gr), `"rBit":true`) || !strings.Contains(string(gr), `"fBit":true`) {
			t.Errorf("FRR %s: the restarted virtbgp's OPEN lacks the R or F bit: %s", a, gr)
		}
	}

	// FRR: End-of-RIB received for both families, no stale path left.
	err = vblab.Eventually(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		for _, a := range []netip.Addr{l.A.IPv4, l.A.IPv6} {
			n, err := frrNeighbor(ctx, l, a)
			if err != nil {
				return err
			}
			gr, _ := json.Marshal(n["gracefulRestartInfo"])
			if !strings.Contains(string(gr), `"endOfRibRecv":true`) {
				return fmt.Errorf("FRR %s: no End-of-RIB received: %s", a, gr)
			}
		}
		for _, fam := range []string{"ipv4", "ipv6"} {
			out, err := l.FRR.Vtysh(ctx, "show bgp "+fam+" unicast json")
			if err != nil {
				return err
			}
			if strings.Contains(out, `"stale":true`) {
				return fmt.Errorf("FRR still has stale %s paths:\n%s", fam, out)
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("FRR: %v", err)
	}

	var goneP []netip.Prefix
	if gone != "" {
		goneP = grPrefixes(gone)
	}
	grWantRoutes(ctx, t, l, grKeep, goneP)
	polls, missing := w.finish()
	if len(missing) > 0 {
		t.Errorf("%d of %v polls of the ToRs during the restart missed the routes of the running guest:\n%s",
			len(missing), polls, strings.Join(missing, "\n"))
	}

	// The kernel tables: not one delete of the running guest's routes, on
	// either ToR; the stopped guest's routes deleted from both.
	kernelSettled(ctx, t, l, mon, grKeep)
	evs := mon.Events()
	for _, ev := range evs {
		for _, pfx := range grKeep {
			if ev.Prefix == pfx && ev.Deleted {
				t.Errorf("route of the running guest deleted from kernel table %d during the restart: %s %s",
					ev.Table, ev.Time.Format("15:04:05.000000"), ev.Line)
			}
		}
	}
	for _, pfx := range goneP {
		for _, r := range l.Routers() {
			proto := map[string]string{"bird": "bird", "frr": "bgp"}[r.Name()]
			wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
			ev, err := mon.Wait(wctx, 0, func(ev vblab.RouteEvent) bool {
				return ev.Prefix == pfx && ev.Deleted && ev.Table == r.Table() && ev.Proto == proto
			})
			wcancel()
			if err != nil {
				t.Errorf("%s: %s not deleted from kernel table %d: %v", r.Name(), pfx, r.Table(), err)
				continue
			}
			t.Logf("%s: stopped guest's %s withdrawn from kernel table %d %v after the restart began",
				r.Name(), pfx, r.Table(), ev.Time.Sub(res.started).Round(time.Millisecond))
		}
	}

	// BIRD: the restarted virtbgp did not announce the stopped guest's
	// routes; End-of-RIB flushed them (removed, after End-of-RIB).
	for _, pfx := range goneP {
		proto := "hvA4.ipv4"
		if pfx.Addr().Is6() {
			proto = "hvA6.ipv6"
		}
		name := strings.TrimSuffix(pfx.String(), "/"+fmt.Sprint(pfx.Bits()))
		up, eor, removed := -1, -1, -1
		for i, ln := range birdLog(t, l, birdOff) {
			bgpName := strings.Split(proto, ".")[0]
			switch {
			case up < 0 && strings.Contains(ln.Text, bgpName+": BGP session established"):
				up = i
			case up >= 0 && eor < 0 && strings.Contains(ln.Text, bgpName+": Got END-OF-RIB"):
				eor = i
			case strings.Contains(ln.Text, proto+" > ") && strings.Contains(ln.Text, " "+name+"/"):
				if up >= 0 && !strings.Contains(ln.Text, "> removed") {
					t.Errorf("BIRD got the stopped guest's %s from the restarted virtbgp: %s", pfx, ln.Text)
				}
				if strings.Contains(ln.Text, "> removed") && removed < 0 {
					removed = i
				}
			}
		}
		if removed < 0 || eor < 0 || removed < eor {
			t.Errorf("BIRD: %s not removed by End-of-RIB (session up at line %d, End-of-RIB at %d, removed at %d)", pfx, up, eor, removed)
		}
	}

	// Neither ToR saw a NOTIFICATION: the sessions closed (a restart, not a
	// withdrawal).
	blog := grReadLog(t, l.BIRD.Log, birdOff)
	for _, ln := range strings.Split(blog, "\n") {
		for _, p := range grBIRDProtos {
			if strings.Contains(ln, p+": Received: ") {
				t.Errorf("BIRD received a NOTIFICATION from virtbgp: %s", ln)
			}
		}
	}
	flog := grReadLog(t, frrLog, frrOff)
	for _, ln := range strings.Split(flog, "\n") {
		if strings.Contains(ln, "ADJCHANGE") && strings.Contains(ln, "Notification received") &&
			(strings.Contains(ln, l.A.IPv4.String()) || strings.Contains(ln, l.A.IPv6.String())) {
			t.Errorf("FRR received a NOTIFICATION from virtbgp: %s", ln)
		}
	}

	var detected time.Time
	for _, ln := range birdLog(t, l, birdOff) {
		if strings.Contains(ln.Text, "Neighbor graceful restart detected") && (detected.IsZero() || ln.Time.Before(detected)) {
			detected = ln.Time
		}
	}
	t.Logf("restart with %v: down %v, stop->start %v; sessions established %v after the start; "+
		"End-of-RIB in BIRD %v after the start; BIRD kept the routes under graceful restart for %v (detected %s, done %s); polls %v",
		sig, stopped.Sub(res.down).Round(time.Millisecond), res.started.Sub(stopped).Round(time.Millisecond),
		res.established.Sub(res.started).Round(time.Millisecond),
		eorAt.Sub(res.started).Round(time.Millisecond), doneAt.Sub(detected).Round(time.Millisecond),
		detected.Format("15:04:05.000"), doneAt.Format("15:04:05.000"), polls)
	if testing.Verbose() {
		var gr []string
		for _, ln := range birdLog(t, l, birdOff) {
			if strings.Contains(ln.Text, "hvA") && !strings.Contains(ln.Text, "KEEPALIVE") {
				gr = append(gr, ln.Time.Format("15:04:05.000")+" "+ln.Text)
			}
		}
		t.Logf("BIRD's log (hvA sessions):\n%s", strings.Join(gr, "\n"))
		t.Logf("kernel route events:\n%s", eventLines(evs))
		var vb []string
		for _, ln := range strings.Split(grReadLog(t, l.A.VirtbgpLogPath(), vbOff), "\n") {
			if strings.Contains(ln, "peer") || strings.Contains(ln, "sync") || strings.Contains(ln, "restart") ||
				strings.Contains(ln, "shutting") || strings.Contains(ln, "NOTIFICATION") {
				vb = append(vb, ln)
			}
		}
		t.Logf("virtbgp's log (sessions, sync):\n%s", strings.Join(vb, "\n"))
	}
}

// TestRestartSIGTERMKeepsRoutes: virtbgp restarted with SIGTERM while a
// mapped guest runs; not one route leaves BIRD or FRR, and both finish the
// graceful restart with End-of-RIB.
func TestRestartSIGTERMKeepsRoutes(t *testing.T) { grRestart(t, syscall.SIGTERM, "") }

// TestRestartSIGKILLKeepsRoutes: the same with kill -9 (a crash).
func TestRestartSIGKILLKeepsRoutes(t *testing.T) { grRestart(t, syscall.SIGKILL, "") }

// TestRestartWithdrawsGuestStoppedMeanwhile: a guest destroyed while
// virtbgp is down is not re-announced, and End-of-RIB flushes its stale
// route from both ToRs; the other guest's routes stay throughout.
func TestRestartWithdrawsGuestStoppedMeanwhile(t *testing.T) {
	grRestart(t, syscall.SIGTERM, "gr-gone")
}

// TestRestartSIGTERMClosesWithoutNotification: SIGTERM ends virtbgp with
// its sessions closed by the kernel, without a NOTIFICATION: BIRD and FRR
// see the connection close and start graceful restart (helper) instead of
// a Cease and a withdrawal.
func TestRestartSIGTERMClosesWithoutNotification(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, _ := grSetup(ctx, t, "gr-keep")
	birdOff := grLogSize(l.BIRD.Log)
	frrLog := filepath.Join(l.FRR.Dir, "bgpd.log")
	frrOff := grLogSize(frrLog)
	vbOff := grLogSize(l.A.VirtbgpLogPath())
	if err := l.A.StopVirtbgp(ctx, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	vlog := grReadLog(t, l.A.VirtbgpLogPath(), vbOff)
	if !strings.Contains(vlog, "without a NOTIFICATION") {
		t.Errorf("virtbgp did not say it leaves the sessions to close without a NOTIFICATION:\n%s", vlog)
	}
	for _, p := range grBIRDProtos {
		closed := birdWaitLog(ctx, t, l, birdOff, p+": ", "closed")
		gr := birdWaitLog(ctx, t, l, birdOff, p+": Neighbor graceful restart detected")
		t.Logf("BIRD %s: %s / %s", p, closed.Text, gr.Text)
		out, err := l.BIRD.Birdc(ctx, "show", "protocols", "all", p)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, "Received: ") || strings.Contains(out, "Cease") {
			t.Errorf("BIRD %s got a NOTIFICATION:\n%s", p, out)
		}
		if !strings.Contains(out, "Neighbor graceful restart active") {
			t.Errorf("BIRD %s is not in graceful restart:\n%s", p, out)
		}
		t.Logf("BIRD show protocols all %s:\n%s", p, out)
	}
	blog := grReadLog(t, l.BIRD.Log, birdOff)
	for _, ln := range strings.Split(blog, "\n") {
		if strings.Contains(ln, "hvA") && (strings.Contains(ln, "Received: ") || strings.Contains(ln, "NOTIFICATION")) {
			t.Errorf("BIRD: %s", ln)
		}
	}
	// FRR logs the neighbor going down and why.
	err := vblab.Eventually(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		for _, a := range []netip.Addr{l.A.IPv4, l.A.IPv6} {
			n, err := frrNeighbor(ctx, l, a)
			if err != nil {
				return err
			}
			if n["bgpState"] == "Established" {
				return fmt.Errorf("FRR %s still established", a)
			}
			reason, _ := n["lastResetDueTo"].(string)
			if strings.Contains(reason, "Notification") {
				return vblab.Permanent(fmt.Errorf("FRR %s: last reset due to %q", a, reason))
			}
			t.Logf("FRR %s: state %v, last reset due to %q", a, n["bgpState"], reason)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	flog := grReadLog(t, frrLog, frrOff)
	for _, ln := range strings.Split(flog, "\n") {
		if strings.Contains(ln, "ADJCHANGE") || strings.Contains(ln, "graceful") || strings.Contains(ln, "Graceful") {
			t.Logf("FRR: %s", ln)
		}
		if strings.Contains(ln, "Notification received") {
			t.Errorf("FRR: %s", ln)
		}
	}
	// The routes are still there, on both ToRs.
	grWantRoutes(ctx, t, l, grKeep, nil)
}

// birdGRDoneAfterEoR reports whether, in BIRD's log from offset on, proto
// ended the graceful restart only after End-of-RIB: after the session came
// up again, its first "Got END-OF-RIB" comes before its first "Neighbor
// graceful restart done" (lines of one millisecond are in log order).
func birdGRDoneAfterEoR(t *testing.T, l *vblab.Lab, offset int64, proto string) bool {
	up, eor, done := -1, -1, -1
	for i, ln := range birdLog(t, l, offset) {
		switch {
		case up < 0 && strings.Contains(ln.Text, proto+": BGP session established"):
			up = i
		case up >= 0 && eor < 0 && strings.Contains(ln.Text, proto+": Got END-OF-RIB"):
			eor = i
		case up >= 0 && done < 0 && strings.Contains(ln.Text, proto+": Neighbor graceful restart done"):
			done = i
		}
	}
	return up >= 0 && eor > up && done > eor
}
