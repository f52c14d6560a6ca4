package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	vblab "github.com/virtbgp/virtbgp/integration/lab"
	"github.com/virtbgp/virtbgp/internal/control"
	"github.com/virtbgp/virtbgp/internal/status"
)

// fleetVM is the guest of TestFleetUnmappedArrival and its one service IP.
const fleetVM = "fleet"

var fleetPrefix = netip.MustParsePrefix("192.0.2.70/32")

// Host A's mapping names the guest; host B's does not (it names another
// VM), until the fix.
const (
	fleetMappingA = "version: 1\nvms:\n  fleet:\n    ips: [192.0.2.70]\n"
	fleetMappingB = "version: 1\nvms:\n  elsewhere:\n    ips: [192.0.2.71]\n"
)

// fleetStatusListen is host B's status endpoint, inside B's namespace.
const fleetStatusListen = "127.0.0.1:9479"

// TestFleetUnmappedArrival is issue 10's fleet that disagrees, on real
// parts: the guest runs on host A, whose mapping names it, and live-migrates
// to host B, whose mapping does not. B logs one warning "migrated-in domain
// has no mapping here", its status flags the domain (unmapped-arrival) and
// its metrics count the arrival, and the mapping digests of A and B differ;
// BIRD has no route to the guest. A reload of the same mapping on B keeps
// its generation and warns no more. Then B's mapping names the guest: the
// flag clears, the count stays, and BIRD routes the guest via B.
func TestFleetUnmappedArrival(t *testing.T) {
	l := upLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	mapA, mapB := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	writeFile(t, mapA, fleetMappingA)
	writeFile(t, mapB, fleetMappingB)
	peers := []netip.Addr{vblab.BIRDv4} // one session a host is enough here
	fleetDo(t, "start virtbgp on A", l.A.StartVirtbgp(ctx, vblab.VirtbgpConfig{Mapping: mapA, Peers: peers, LogLevel: "info"}))
	fleetDo(t, "start virtbgp on B", l.B.StartVirtbgp(ctx, vblab.VirtbgpConfig{Mapping: mapB, Peers: peers, LogLevel: "info",
		StatusListen: fleetStatusListen}))
	fleetDo(t, "sessions", l.WaitSessions(ctx, []vblab.Router{l.BIRD}, l.A.IPv4, l.B.IPv4))

	fleetDo(t, "define guest", l.A.DefineGuest(ctx, vblab.Guest{Name: fleetVM}))
	fleetDo(t, "start guest", l.A.StartGuest(ctx, fleetVM))
	fleetBIRD(ctx, t, l, l.A)
	uuid, err := l.A.GuestUUID(ctx, fleetVM)
	fleetDo(t, "guest UUID", err)

	fleetDo(t, "migrate A -> B", l.Migrate(ctx, fleetVM, l.A, l.B, vblab.MigrateOptions{}))
	rep := fleetWaitDomain(ctx, t, l.B, func(d status.Domain) bool { return d.State == "running" && d.Problem != "" })
	d := fleetDomain(rep)
	if d.Reason != "migrated" || !d.MigratedIn || d.Problem != status.ProblemUnmappedArrival || d.Routes != 0 || d.VM != "" || d.Source != "" {
		t.Errorf("B's status of the arrived guest: %+v; want running (migrated), migrated in, problem %s, no routes, no source",
			d, status.ProblemUnmappedArrival)
	}
	fleetBIRD(ctx, t, l, nil) // the symptom: A withdrew, B announces nothing
	repA, err := (&control.Client{Path: l.A.VirtbgpSocket()}).Status(ctx)
	fleetDo(t, "A's status", err)
	if repA.Mapping.Digest == "" || repA.Mapping.Digest == rep.Mapping.Digest {
		t.Errorf("mapping digests of A %q and B %q: want two different ones", repA.Mapping.Digest, rep.Mapping.Digest)
	}

	// Once per arrival: a reload of the same mapping (a pass over every
	// domain) neither warns again nor makes a new generation.
	out, err := l.B.VirtbgpCtl(ctx, "reload")
	fleetDo(t, "reload B", err)
	if !strings.Contains(out, "mapping generation 1 stays in force: same content") {
		t.Errorf("virtbgp reload on B said %q, want the same generation 1", out)
	}
	warning := fmt.Sprintf(`level=WARN msg="migrated-in domain has no mapping here" part=reconcile domain=%s uuid=%s`, fleetVM, uuid)
	logB := fleetLog(t, l.B)
	var lines []string
	for _, line := range strings.Split(logB, "\n") {
		if strings.Contains(line, warning) {
			lines = append(lines, line)
		}
	}
	if len(lines) != 1 {
		t.Errorf("B logged %q %d times, want once; B's log:\n%s", warning, len(lines), logB)
	} else {
		t.Logf("B's log: %s", lines[0])
	}
	table, err := l.B.VirtbgpCtl(ctx, "status")
	fleetDo(t, "virtbgp status on B", err)
	t.Logf("virtbgp status on B:\n%s", table)
	for _, want := range []string{
		"Problems:        1 domain arrived by live migration without an entry in this host's mapping, nothing announced: " + fleetVM,
		"Mapping digest:  " + rep.Mapping.Digest,
		"migrated in, NOT IN THE MAPPING here",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("virtbgp status on B lacks %q:\n%s", want, table)
		}
	}
	metrics := fleetMetrics(ctx, t, l.B)
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "virtbgp_unmapped_arrival") || strings.HasPrefix(line, "virtbgp_mapping_info") ||
			strings.HasPrefix(line, "virtbgp_mapping_generation") {
			t.Logf("B's /metrics: %s", line)
		}
	}
	for _, want := range []string{
		"virtbgp_unmapped_arrivals_total 1\n",
		"virtbgp_unmapped_arrival_domains 1\n",
		fmt.Sprintf("virtbgp_mapping_info{digest=%q} 1\n", rep.Mapping.Digest),
		"virtbgp_mapping_generation 1\n",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("B's /metrics lacks %q", want)
		}
	}

	// The fix: B's mapping names the guest (the file watcher reloads it).
	writeFile(t, mapB, fleetMappingB+"  fleet:\n    ips: [192.0.2.70]\n")
	rep = fleetWaitDomain(ctx, t, l.B, func(d status.Domain) bool { return d.Routes == 1 })
	if d := fleetDomain(rep); !d.MigratedIn || d.Problem != "" || d.Source != status.SourceFile || d.Origin != mapB+":5" {
		t.Errorf("after the fix, B's status of the guest: %+v; want migrated in, no problem, origin %s:5", d, mapB)
	}
	fleetBIRD(ctx, t, l, l.B)
	metrics = fleetMetrics(ctx, t, l.B)
	for _, want := range []string{"virtbgp_unmapped_arrivals_total 1\n", "virtbgp_unmapped_arrival_domains 0\n", "virtbgp_mapping_generation 2\n"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("after the fix, B's /metrics lacks %q", want)
		}
	}
}

func fleetDo(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func fleetDomain(r status.Report) status.Domain {
	if i := slices.IndexFunc(r.Domains, func(d status.Domain) bool { return d.Name == fleetVM }); i >= 0 {
		return r.Domains[i]
	}
	return status.Domain{}
}

// fleetWaitDomain polls host h's status until the guest's domain satisfies
// ok, and returns that report.
func fleetWaitDomain(ctx context.Context, t *testing.T, h *vblab.Host, ok func(status.Domain) bool) status.Report {
	t.Helper()
	ctl := control.Client{Path: h.VirtbgpSocket()}
	var rep status.Report
	err := vblab.Eventually(ctx, 20*time.Millisecond, func(ctx context.Context) error {
		r, err := ctl.Status(ctx)
		if err != nil {
			return err
		}
		rep = r
		if !ok(fleetDomain(r)) {
			return fmt.Errorf("domain %s on %s: %+v", fleetVM, h.Name, fleetDomain(r))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("waiting for the guest's status on %s: %v", h.Name, err)
	}
	return rep
}

// fleetBIRD waits until BIRD routes the guest's prefix via host h, or has
// no path for it with h nil.
func fleetBIRD(ctx context.Context, t *testing.T, l *vblab.Lab, h *vblab.Host) {
	t.Helper()
	var last vblab.RIB
	err := vblab.Eventually(ctx, 20*time.Millisecond, func(ctx context.Context) error {
		rib, err := l.BIRD.Routes(ctx)
		if err != nil {
			return err
		}
		last = rib
		hops := rib.NextHops(fleetPrefix)
		if h == nil && len(hops) == 0 || h != nil && slices.Equal(hops, []netip.Addr{h.IPv4}) {
			return nil
		}
		return fmt.Errorf("BIRD's next hops for %s: %v", fleetPrefix, hops)
	})
	if err != nil {
		t.Fatalf("%v; BIRD's RIB:\n%s", err, last)
	}
}

func fleetLog(t *testing.T, h *vblab.Host) string {
	t.Helper()
	b, err := os.ReadFile(h.VirtbgpLogPath())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fleetMetrics reads host h's /metrics, which listens in h's network
// namespace only.
func fleetMetrics(ctx context.Context, t *testing.T, h *vblab.Host) string {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+fleetStatusListen+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := netnsClient(h.NS).Do(req)
	if err != nil {
		t.Fatalf("GET /metrics on %s: %v", h.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics on %s: %d %v", h.Name, resp.StatusCode, err)
	}
	return string(b)
}

// netnsClient is an HTTP client whose connections are made in the network
// namespace ns (/run/netns/ns). Each connection is made on a thread of its
// own that enters the namespace and is never given back: it ends with the
// dialing goroutine, and the socket stays in the namespace.
func netnsClient(ns string) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
			f, err := os.Open(filepath.Join("/run/netns", ns))
			if err != nil {
				ch <- result{nil, err}
				return
			}
			defer f.Close()
			if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
				ch <- result{nil, fmt.Errorf("enter network namespace %s: %w", ns, err)}
				return
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			ch <- result{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
}
