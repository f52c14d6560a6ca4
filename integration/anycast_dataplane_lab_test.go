package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	vblab "github.com/virtbgp/virtbgp/integration/lab"
)

// The anycast data-plane lab: each host has a bridge with the same gateway
// address (an anycast gateway, so that a migrated guest keeps its
// gateway), a guest with a real network stack on it, and a host route of
// the anycast IP to its local guest.
var (
	dpBridgeAddr = netip.MustParsePrefix("10.77.0.1/24")
	dpGuestA     = netip.MustParsePrefix("10.77.0.10/24")
	dpGuestB     = netip.MustParsePrefix("10.77.0.11/24")
	dpAnycast    = netip.MustParsePrefix("192.0.2.210/32")
)

const dpMapping = `version: 1
vms:
  dp-a: {ips: [{prefix: 192.0.2.210, anycast: true}]}
  dp-b: {ips: [{prefix: 192.0.2.210, anycast: true}]}
`

// probe is one HTTP request to the anycast IP from the tor namespace: who
// answered ("" on failure) and the error.
type probe struct {
	at   time.Time
	took time.Duration
	who  string
	err  error
	// reset: the first connection was reset and a second one made.
	reset bool
}

// prober sends a request to the anycast IP every interval, each on a new
// TCP connection (a new source port: with the ToR's layer-4 multipath hash
// the flows spread over the ECMP paths), from the lab's tor namespace.
type prober struct {
	mu     sync.Mutex
	probes []probe
	stop   chan struct{}
	done   chan struct{}
}

func startProber(t *testing.T, torNS string, interval time.Duration) *prober {
	t.Helper()
	p := &prober{stop: make(chan struct{}), done: make(chan struct{})}
	ready := make(chan error, 1)
	go func() {
		defer close(p.done)
		// The sockets are made on this thread, in the tor namespace; the
		// thread is never unlocked, so it ends with the goroutine.
		runtime.LockOSThread()
		h, err := netns.GetFromName(torNS)
		if err == nil {
			err = netns.Set(h)
			h.Close()
		}
		ready <- err
		if err != nil {
			return
		}
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			pr := probe{at: time.Now()}
			pr.who, pr.err = askWho(dpAnycast.Addr())
			if errors.Is(pr.err, syscall.ECONNRESET) {
				// A connection in flight when the ToR's ECMP set changed
				// went on to the other member, which reset it: what
				// matters is whether a new connection is answered.
				pr.reset = true
				pr.who, pr.err = askWho(dpAnycast.Addr())
			}
			pr.took = time.Since(pr.at)
			p.mu.Lock()
			p.probes = append(p.probes, pr)
			p.mu.Unlock()
		}
	}()
	if err := <-ready; err != nil {
		t.Fatalf("prober: enter the tor namespace: %v", err)
	}
	t.Cleanup(p.halt)
	return p
}

// askWho gets /who from addr's HTTP server: the name of the guest that
// answers.
func askWho(addr netip.Addr) (string, error) {
	// Under Linux's initial RTO of 1 s: a SYN that is lost (a path that
	// leads nowhere) is not sent again before the dial gives up.
	c, err := net.DialTimeout("tcp", netip.AddrPortFrom(addr, 80).String(), 900*time.Millisecond)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "GET /who HTTP/1.0\r\n\r\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(bufio.NewReader(c))
	if err != nil {
		return "", err
	}
	s := string(b)
	if !strings.HasPrefix(s, "HTTP/1.") || !strings.Contains(s, " 200 ") {
		return "", fmt.Errorf("answer %q", s)
	}
	_, body, _ := strings.Cut(s, "\r\n\r\n")
	return strings.TrimSpace(body), nil
}

func (p *prober) halt() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

func (p *prober) since(t time.Time) []probe {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []probe
	for _, pr := range p.probes {
		if !pr.at.Before(t) {
			out = append(out, pr)
		}
	}
	return out
}

// TestLabAnycastMigrationDataPlane runs an anycast IP on a real guest (a
// Debian kernel, busybox httpd) on each lab host, reached from the tor
// namespace through FRR's ECMP route, and live-migrates one member while a
// client in the tor namespace opens a connection to the IP every 20 ms:
// every new connection is answered, before, during and after the
// migration (a connection in flight at the moment the ToR's ECMP set
// changes may go on to the other member, which resets it; a ToR with
// resilient hashing avoids that, and the client's next connection is
// answered).
// The source depreferences the member's anycast route as soon as the
// pre-copy starts (it is "leaving"), so the ToR moves the flows that hashed
// to it onto the other host's path before the guest pauses for the
// switch-over; without that, the flows via the source would fail from the
// pause until the source's withdrawal reached the ToR.
func TestLabAnycastMigrationDataPlane(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	img, err := vblab.BuildOSImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l := upLab(t)
	for _, h := range l.Hosts() {
		if err := h.AddBridge(ctx, "vbany", dpBridgeAddr); err != nil {
			t.Fatal(err)
		}
	}
	mp := filepath.Join(t.TempDir(), "mapping.yaml")
	if err := os.WriteFile(mp, []byte(dpMapping), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := l.StartVirtbgpAll(ctx, vblab.VirtbgpConfig{Mapping: mp, LogLevel: "debug"}); err != nil {
		t.Fatal(err)
	}

	// The two members boot at once (TCG: tens of seconds each).
	guests := map[*vblab.Host]vblab.OSGuest{
		l.A: {Name: "dp-a", Addr: dpGuestA, Gateway: dpBridgeAddr.Addr(), Bridge: "vbany", TCG: true},
		l.B: {Name: "dp-b", Addr: dpGuestB, Gateway: dpBridgeAddr.Addr(), Bridge: "vbany", TCG: true},
	}
	t0 := time.Now()
	errs := make(chan error, len(guests))
	for h, g := range guests {
		go func() { errs <- h.CreateOSGuest(ctx, g, img) }()
	}
	for range guests {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("both members booted in %v", time.Since(t0).Round(time.Millisecond))
	for h, g := range guests {
		for _, argv := range [][]string{
			{"/bin/ip", "addr", "add", dpAnycast.String(), "dev", "lo"},
			{"/bin/sh", "-c", "echo " + g.Name + " > /www/who"},
		} {
			if code, out, err := h.GuestExec(ctx, g.Name, false, argv[0], argv[1:]...); err != nil || code != 0 {
				t.Fatalf("in %s: %v: exit %d %q %v", g.Name, argv, code, out, err)
			}
		}
		// The hypervisor routes between its ToR link and its guests.
		if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", h.NS, "sysctl", "-qw", "net.ipv4.ip_forward=1").CombinedOutput(); err != nil {
			t.Fatalf("%s: forwarding: %v: %s", h.Name, err, out)
		}
		if out, err := exec.CommandContext(ctx, "ip", "-n", h.NS, "route", "add", dpAnycast.String(),
			"via", g.Addr.Addr().String(), "dev", "vbany").CombinedOutput(); err != nil {
			t.Fatalf("%s: host route of the anycast IP: %v: %s", h.Name, err, out)
		}
	}
	// FRR's ECMP route in the tor namespace's main table; flows spread by
	// their ports.
	if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", l.TorNS,
		"sysctl", "-qw", "net.ipv4.fib_multipath_hash_policy=1").CombinedOutput(); err != nil {
		t.Fatalf("tor: multipath hash: %v: %s", err, out)
	}
	wantVia(ctx, t, l, dpAnycast, "both members up", l.A, l.B)

	p := startProber(t, l.TorNS, 20*time.Millisecond)
	// Both paths carry flows: within some probes, both members answer.
	warm := time.Now()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := vblab.Eventually(wctx, 100*time.Millisecond, func(context.Context) error {
		seen := map[string]int{}
		var last error
		for _, pr := range p.since(warm) {
			seen[pr.who]++
			if pr.err != nil {
				last = pr.err
			}
		}
		if seen["dp-a"] < 5 || seen["dp-b"] < 5 {
			return fmt.Errorf("answers by member (\"\": failed): %v; last failure: %v", seen, last)
		}
		return nil
	}); err != nil {
		t.Fatalf("before the migration, both hosts' paths should carry flows: %v", err)
	}

	start := time.Now()
	m, err := l.StartMigration(ctx, "dp-a", l.A, l.B, vblab.MigrateOptions{Bandwidth: 50})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	migrated := time.Now()
	t.Logf("dp-a migrated hvA -> hvB in %v", migrated.Sub(start).Round(time.Millisecond))
	wantVia(ctx, t, l, dpAnycast, "dp-a migrated to hvB", l.B)
	// A second of probes after the route settled, then the verdict.
	settled := time.Now()
	if err := vblab.Eventually(ctx, 100*time.Millisecond, func(context.Context) error {
		if n := len(p.since(settled.Add(time.Second))); n == 0 {
			return fmt.Errorf("no probe yet a second after the route settled")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	p.halt()
	all := p.since(warm)
	failed, during, resets := 0, 0, 0
	var longest time.Duration
	for _, pr := range all {
		longest = max(longest, pr.took)
		if pr.reset {
			resets++
		}
		if !pr.at.Before(start) && pr.at.Before(migrated) {
			during++
		}
		if pr.err != nil {
			failed++
			t.Errorf("probe at %s (%+v from the migration's start) failed: %v",
				pr.at.Format("15:04:05.000"), pr.at.Sub(start).Round(time.Millisecond), pr.err)
		}
	}
	t.Logf("%d probes, %d during the migration, %d failed, %d reset in flight (then answered); the longest took %v",
		len(all), during, failed, resets, longest)
	// The ECMP set changes twice at most (hvA's path out, and in again
	// only if something went wrong): each can reset a connection in
	// flight.
	if resets > 2 {
		t.Errorf("%d connections reset", resets)
	}
	if during == 0 {
		t.Error("no probe ran during the migration")
	}
	logText, _ := os.ReadFile(l.A.VirtbgpLogPath())
	if !strings.Contains(string(logText), "reason=leaving") {
		t.Errorf("hvA's log has no route announced as leaving")
	}
}
