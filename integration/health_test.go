package integration

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/internal/bgptest"
	"github.com/virtbgp/virtbgp/internal/health"
	"github.com/virtbgp/virtbgp/internal/status"
	"github.com/virtbgp/virtbgp/internal/testutil"
)

// service is a real HTTP service on the loopback whose health endpoint
// answers 200 or 503 as told, and whose listener can be closed and
// reopened (the service stops and restarts).
type service struct {
	ok   atomic.Bool
	addr string
	srv  *http.Server
}

func startService(t *testing.T) *service {
	t.Helper()
	s := &service{}
	s.ok.Store(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

func (s *service) serve(ln net.Listener) {
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if s.ok.Load() {
			fmt.Fprintln(w, "ready")
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}), ReadHeaderTimeout: time.Second}
	go s.srv.Serve(ln)
}

// stop closes the service (connections refused); start opens it again on
// the same address.
func (s *service) stop() { s.srv.Close() }
func (s *service) start(t *testing.T) {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	s.serve(ln)
}

const (
	hcInterval = 200 * time.Millisecond
	hcRise     = 2
	hcFall     = 3
)

func healthMapping(web, backup *service) string {
	return fmt.Sprintf(`version: 1
defaults:
  health:
    checks:
      - {type: http, url: "http://%s/health", body: ready, interval: 200ms, timeout: 150ms, rise: 2, fall: 3}
vms:
  hc-web:
    ips: [192.0.2.60, {prefix: 192.0.2.70, anycast: true, med: 10}]
  hc-backup:
    health:
      on-failure: depreference
      depreference: {communities: ["65001:666"], med: 1000, as-path-prepend: 2}
      checks:
        - {type: tcp, address: "%s", interval: 200ms, timeout: 150ms, rise: 2, fall: 3}
    ips: [192.0.2.61, {prefix: 192.0.2.70, anycast: true, med: 20}]
  hc-agent:
    health: {checks: [{type: agent, interval: 200ms, timeout: 150ms}]}
    ips: [192.0.2.62]
`, web.addr, backup.addr)
}

// TestHealthChecks runs the daemon on test:///default with in-process
// GoBGP ToRs and real services on the loopback: a route follows its HTTP
// check (announced after rise, withdrawn after fall, each change one
// UPDATE), a TCP check with on-failure: depreference keeps the route with
// the depreference, an anycast IP served by two domains stays announced
// from the healthy one, and an agent check on a driver without guest agents
// is unavailable, never announced and not flapping. Status and metrics show
// it all.
func TestHealthChecks(t *testing.T) {
	web, backup := startService(t), startService(t)
	port, err := bgptest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	statusAddr := fmt.Sprintf("127.0.0.1:%d", port)
	l := startLab(t, healthMapping(web, backup), "status: {listen: \""+statusAddr+"\"}")
	l.wantAll(t)
	p60, p61, p70 := netip.MustParsePrefix("192.0.2.60/32"), netip.MustParsePrefix("192.0.2.61/32"), netip.MustParsePrefix("192.0.2.70/32")

	agentDom := l.define(t, "hc-agent", "")
	do(t, "create hc-agent", agentDom.Create())
	webDom := l.define(t, "hc-web", "")
	start := time.Now()
	do(t, "create hc-web", webDom.Create())
	best := l.waitRIB(t, l.ebgp, "192.0.2.60/32", "192.0.2.70/32")
	if took := time.Since(start); took < (hcRise-1)*hcInterval {
		t.Errorf("announced %v after the start, before rise (%d x %v)", took, hcRise, hcInterval)
	}
	if m := best[p70].MED; m == nil || *m != 10 {
		t.Errorf("anycast 192.0.2.70 from hc-web: %v", best[p70])
	}

	backupDom := l.define(t, "hc-backup", "")
	do(t, "create hc-backup", backupDom.Create())
	// Starting (initial down) with on-failure: depreference, hc-backup's
	// route is announced depreferenced first, then as mapped after rise.
	testutil.Eventually(t, 5*time.Second, func() string {
		best := l.best(t, l.ebgp)
		if p, ok := best[p61]; !ok || p.MED != nil {
			return fmt.Sprintf("192.0.2.61 is %v", best[p61])
		}
		return ""
	})

	t.Run("service fails: withdrawn after fall, one UPDATE", func(t *testing.T) {
		before := updates(t, l)
		failed := time.Now()
		web.ok.Store(false)
		best := l.waitRIB(t, l.ebgp, "192.0.2.61/32", "192.0.2.70/32")
		took := time.Since(failed)
		t.Logf("detection to withdraw at the ToR: %v (interval %v x fall %d)", took, hcInterval, hcFall)
		if took < (hcFall-1)*hcInterval || took > (hcFall+3)*hcInterval {
			t.Errorf("withdrawn %v after the failure, want about %v", took, hcFall*hcInterval)
		}
		// The anycast IP is hc-backup's now (MED 20), in the same UPDATE
		// round: the withdraw of .60 and the new path of .70.
		if m := best[p70].MED; m == nil || *m != 20 {
			t.Errorf("anycast 192.0.2.70 after hc-web failed: %v, want hc-backup's (MED 20)", best[p70])
		}
		if n := updates(t, l) - before; n != 2 {
			t.Errorf("%d UPDATEs for one transition (.60 withdrawn, .70 replaced), want 2", n)
		}
		rep, err := l.d.Report(l.ctx)
		if err != nil {
			t.Fatal(err)
		}
		c := findCheck(t, rep.Health, "hc-web", "192.0.2.60")
		if c.State != "down" || c.Reason != "status 503, want 200" || c.Last == nil || c.Last.Outcome != "fail" {
			t.Errorf("status of hc-web's check: %+v", c)
		}
	})
	t.Run("service restarts: back after rise", func(t *testing.T) {
		web.stop()
		testutil.Eventually(t, 5*time.Second, func() string {
			rep, err := l.d.Report(l.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if c := findCheck(t, rep.Health, "hc-web", "192.0.2.60"); !strings.Contains(c.Last.Detail, "connection refused") {
				return "last result " + c.Last.Detail
			}
			return ""
		})
		web.ok.Store(true)
		web.start(t)
		back := time.Now()
		best := l.waitRIB(t, l.ebgp, "192.0.2.60/32", "192.0.2.61/32", "192.0.2.70/32")
		t.Logf("service back to route at the ToR: %v (interval %v x rise %d)", time.Since(back), hcInterval, hcRise)
		// The incumbent keeps the anycast IP: hc-backup still (MED 20).
		if m := best[p70].MED; m == nil || *m != 20 {
			t.Errorf("anycast 192.0.2.70: %v, want hc-backup's kept (MED 20)", best[p70])
		}
	})
	t.Run("depreference", func(t *testing.T) {
		backup.stop()
		var best map[netip.Prefix]bgptest.Path
		testutil.Eventually(t, 5*time.Second, func() string {
			best = l.best(t, l.ebgp)
			if p, ok := best[p61]; !ok || p.MED == nil || *p.MED != 1000 {
				return fmt.Sprintf("192.0.2.61 is %v", best[p61])
			}
			return ""
		})
		checkPath(t, best[p61], "127.0.0.1", []uint32{ourASN, ourASN, ourASN}, u32(1000), nil, []uint32{comm(65001, 666)}, nil)
		// The anycast IP moves to the healthy member, hc-web (MED 10).
		if m := best[p70].MED; m == nil || *m != 10 {
			t.Errorf("anycast 192.0.2.70 with hc-backup depreferenced: %v, want hc-web's", best[p70])
		}
		if _, ok := best[p60]; !ok {
			t.Error("192.0.2.60 gone")
		}
		rep, err := l.d.Report(l.ctx)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(rep.Routes, func(r status.Route) bool { return r.Prefix == "192.0.2.61/32" })
		if i < 0 || rep.Routes[i].Health != "failing" || !strings.Contains(rep.Routes[i].HealthReason, "check tcp down") {
			t.Errorf("status of 192.0.2.61: %+v", rep.Routes)
		}
	})
	t.Run("agent check cannot run", func(t *testing.T) {
		rep, err := l.d.Report(l.ctx)
		if err != nil {
			t.Fatal(err)
		}
		c := findCheck(t, rep.Health, "hc-agent", "192.0.2.62")
		if c.State != "unavailable" || !strings.Contains(c.Reason, "cannot run") {
			t.Errorf("agent check on the test driver: %+v", c)
		}
		if _, ok := l.best(t, l.ebgp)[netip.MustParsePrefix("192.0.2.62/32")]; ok {
			t.Error("192.0.2.62 announced with its agent check unavailable")
		}
	})
	t.Run("metrics", func(t *testing.T) {
		resp, err := http.Get("http://" + statusAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		body := string(b)
		for _, want := range []string{
			`virtbgp_health_checks{state="unavailable",type="agent"} 1`,
			`virtbgp_health_checks{state="down",type="tcp"} 1`,
			`virtbgp_health_check_transitions_total{from="up",to="down",type="http"} 1`,
			`virtbgp_health_check_transitions_total{from="starting",to="unavailable",type="agent"} 1`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
}

// updates is the number of UPDATEs the eBGP ToR got over IPv4.
func updates(t *testing.T, l *lab) uint64 {
	t.Helper()
	n, err := l.ebgp.UpdatesReceived(l.ctx, v4)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func findCheck(t *testing.T, checks []health.CheckStatus, domain, ip string) health.CheckStatus {
	t.Helper()
	for _, c := range checks {
		if c.Domain == domain && c.IP.String() == ip {
			return c
		}
	}
	t.Fatalf("no check of %s %s in %+v", domain, ip, checks)
	return health.CheckStatus{}
}
