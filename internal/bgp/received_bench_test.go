package bgp_test

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	packet "github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/virtbgp/virtbgp/internal/bgp"
	"github.com/virtbgp/virtbgp/internal/bgptest"
	"github.com/virtbgp/virtbgp/internal/config"
)

// announceMany originates n IPv4 /32s (10.0.0.0 onwards) on the ToR.
func announceMany(tb testing.TB, tor *bgptest.ToR, n int) {
	tb.Helper()
	attrs := []packet.PathAttributeInterface{
		packet.NewPathAttributeOrigin(packet.BGP_ORIGIN_ATTR_TYPE_IGP),
		packet.NewPathAttributeNextHop("127.0.0.1"),
	}
	for j := range n {
		a := netip.AddrFrom4([4]byte{10, byte(j >> 16), byte(j >> 8), byte(j)})
		p, err := apiutil.NewPath(packet.NewIPAddrPrefix(32, a.String()), false, attrs, time.Now())
		if err == nil {
			_, err = tor.Server.AddPath(context.Background(), &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: p})
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// heapInUse is the live heap after a collection, with the freed memory
// returned to the system.
func heapInUse() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// liveHeap is the live heap as of the last collection, read without
// forcing one.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// procStatus reads a kB field of /proc/self/status (VmRSS, VmHWM), in bytes.
func procStatus(tb testing.TB, field string) uint64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb << 10
		}
	}
	tb.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// startLeakingToR runs internal/bgptest/leaktor in a process of its own
// with n routes for the speaker at tor1v4, and returns its port.
func startLeakingToR(b *testing.B, n int) uint16 {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "leaktor")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/virtbgp/virtbgp/internal/bgptest/leaktor").CombinedOutput(); err != nil {
		b.Fatalf("build leaktor: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-listen", tor1v4, "-neighbor", tor1v4, "-neighbor-as", strconv.Itoa(localAS), "-routes", strconv.Itoa(n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close() // it ends when its stdin closes
		if err := cmd.Wait(); err != nil {
			b.Errorf("leaktor: %v", err)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("leaktor: %v", err)
	}
	var port uint16
	if _, err := fmt.Sscanf(line, "ready %d", &port); err != nil {
		b.Fatalf("leaktor said %q", line)
	}
	return port
}

// BenchmarkReceivedRoutesMemory: what the routes a ToR sends cost the
// speaker, which imports none of them (issue 17, finding 10). The ToR
// (leaktor) runs in a process of its own and sends
// VIRTBGP_RECEIVED_ROUTES routes (default 300000) to a speaker with
// receive-limit 1000: with the action warn (the default) the routes are
// kept; with restart the session ends at the limit and they are dropped
// (it comes up again at once, and ends again). Reported: the peak live
// heap and the peak RSS (VmHWM) over the baseline, while the routes arrive
// and 10s after, and the live heap left after that. b.N is ignored.
//
//	go test -run '^$' -bench ReceivedRoutesMemory -benchtime 1x ./internal/bgp/
func BenchmarkReceivedRoutesMemory(b *testing.B) {
	n := 300000
	if s := os.Getenv("VIRTBGP_RECEIVED_ROUTES"); s != "" {
		if _, err := fmt.Sscan(s, &n); err != nil {
			b.Fatal(err)
		}
	}
	for _, action := range []config.ReceiveAction{config.ReceiveWarn, config.ReceiveRestart} {
		b.Run(string(action), func(b *testing.B) {
			for b.Loop() {
				receivedMemory(b, n, action)
			}
		})
	}
}

func receivedMemory(b *testing.B, n int, action config.ReceiveAction) {
	log, _ := newTestLog(b)
	port := startLeakingToR(b, n)
	before := heapInUse()
	rss := procStatus(b, "VmRSS")
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil { // resets VmHWM
		b.Fatal(err)
	}
	sp := startSpeaker(b, config.BGP{ASN: localAS, RouterID: addr(routerID), Peers: []config.Peer{{
		Address: addr(tor1v4), Port: port, ASN: torAS, HoldTime: 9 * time.Second, Keepalive: 3 * time.Second,
		Families: []config.Family{config.FamilyIPv4}, ReceiveLimit: 1000, ReceiveLimitAction: action,
	}}}, log, bgp.StartOptions{})
	ctx := context.Background()
	start := time.Now()
	var peak, maxReceived uint64
	var settled time.Time
	eventually(b, 10*time.Minute, func() string {
		peak = max(peak, liveHeap())
		ps, err := sp.Peers(ctx)
		if err != nil {
			return err.Error()
		}
		maxReceived = max(maxReceived, ps[0].RoutesReceived)
		done := action == config.ReceiveWarn && ps[0].RoutesReceived == uint64(n) ||
			action == config.ReceiveRestart && strings.Contains(ps[0].LastDownReason, "maximum number of prefixes")
		if !done {
			return fmt.Sprintf("%s: %d routes received, last down %q", ps[0].State, ps[0].RoutesReceived, ps[0].LastDownReason)
		}
		if settled.IsZero() {
			settled = time.Now()
		}
		if time.Since(settled) < 10*time.Second {
			return "watching 10s more"
		}
		return ""
	})
	took := settled.Sub(start)
	hwm := procStatus(b, "VmHWM")
	after := heapInUse()
	mib := func(v uint64) float64 { return float64(v) / (1 << 20) }
	b.ReportMetric(mib(peak-min(peak, before)), "peak-heap-MiB")
	b.ReportMetric(mib(hwm-min(hwm, rss)), "peak-RSS-MiB")
	b.ReportMetric(mib(after-min(after, before)), "retained-heap-MiB")
	b.Logf("%s: %d routes sent, settled in %s, at most %d held: live heap %.1f MiB before, peak %.1f, after %.1f; RSS %.1f MiB before, peak %.1f",
		action, n, took.Round(time.Millisecond), maxReceived, mib(before), mib(peak), mib(after), mib(rss), mib(hwm))
}
