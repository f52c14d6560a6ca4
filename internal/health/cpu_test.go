package health

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/internal/reconcile"
	"github.com/virtbgp/virtbgp/mapping"
)

// TestMain runs the HTTP service of TestCPUThousandHTTPChecks when the
// test binary is started as it (a process of its own, so that its CPU is
// not counted as the checks').
func TestMain(m *testing.M) {
	if addr := os.Getenv("VIRTBGP_HEALTH_TEST_SERVER"); addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("listening")
		_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ready\n")) }))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestCPUThousandHTTPChecks runs 1,000 HTTP checks at 1 s intervals (1,000
// domains, one IP each, each checking its own address) against a service
// in another process for 10 s,
// and measures the CPU time this process used: the monitor, the probes,
// the HTTP client. The goal is under 5 % of one core.
func TestCPUThousandHTTPChecks(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("a 12 s CPU measurement: not with -short, and not with -race (make test); run go test -run TestCPUThousandHTTPChecks ./internal/health/")
	}
	const n = 1000
	port := freePort(t)
	addr := "0.0.0.0:" + port
	srv := exec.Command(os.Args[0], "-test.run=^$")
	srv.Env = append(os.Environ(), "VIRTBGP_HEALTH_TEST_SERVER="+addr)
	out, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	buf := make([]byte, 16)
	if _, err := out.Read(buf); err != nil || !strings.HasPrefix(string(buf), "listening") {
		t.Fatalf("server: %q %v", buf, err)
	}

	var b strings.Builder
	b.WriteString("version: 1\nvms:\n")
	domains := make([]reconcile.Domain, n)
	for i := range n {
		name := fmt.Sprintf("vm-%04d", i)
		// Each check its own target, as each guest is: 127.0.x.y (the
		// loopback is 127/8), the service listening on all of them.
		fmt.Fprintf(&b, "  %s:\n    health: {checks: [{type: http, url: \"http://127.0.%d.%d:%s/health\", body: ready, interval: 1s, timeout: 900ms, rise: 1, fall: 3}]}\n    ips: [10.%d.%d.1]\n",
			name, i/250, i%250+1, port, i/256, i%256)
		domains[i] = reconcile.Domain{Name: name, UUID: fmt.Sprintf("00000000-0000-0000-0000-%012d", i), State: reconcile.StateRunning}
	}
	m, err := mapping.Parse("m.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	mon := New(Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go mon.Run(ctx)
	mon.Watch(domains, m, nil)
	// Warm up: every check up (connections made).
	deadline := time.Now().Add(10 * time.Second)
	for {
		h := mon.Health()
		up := 0
		for _, rh := range h {
			if !rh.Failing {
				up++
			}
		}
		if up == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d checks up after 10 s", up, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	const window = 10 * time.Second
	if f := os.Getenv("VIRTBGP_HEALTH_CPUPROFILE"); f != "" {
		pf, err := os.Create(f)
		if err != nil {
			t.Fatal(err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			t.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	cpu0, t0 := cpuTime(t), time.Now()
	time.Sleep(window)
	cpu, wall := cpuTime(t)-cpu0, time.Since(t0)
	st, err := mon.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	runs := 0
	for _, c := range st {
		if c.State == "up" && c.Last != nil && time.Since(c.Last.At) < 2*time.Second {
			runs++
		}
	}
	pct := 100 * cpu.Seconds() / wall.Seconds()
	t.Logf("%d HTTP checks at 1 s: %.2f%% of one core (%v CPU in %v; %d checks ran in the last 2 s)", n, pct, cpu.Round(time.Millisecond), wall.Round(time.Millisecond), runs)
	if runs != n {
		t.Errorf("%d of %d checks ran in the last 2 s", runs, n)
	}
	if pct >= 5 {
		t.Errorf("%.2f%% of one core, want under 5%%", pct)
	}
}

func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}
