package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/fileerr"
	"github.com/virtbgp/virtbgp/internal/status"
)

// Issue 17, finding 4, on the daemon's wiring: a reload whose mapping
// has a prefix too broad for a service address is rejected like any
// broken mapping, naming the rule; the routes in force stay announced.
func TestReloadRefusesBroadPrefixes(t *testing.T) {
	d, mp, logs := startTestDaemon(t, reloadMapping)
	_, before, _ := reportOf(t, d)
	if before.Routes != 2 {
		t.Fatalf("domain test announces %d routes at start, want 2", before.Routes)
	}
	writeTestFile(t, mp, strings.Replace(reloadMapping, `ips: [192.0.2.10, "2001:db8::10"]`, `ips: [192.0.2.10, 1.0.0.0/8, "2000::/3"]`, 1))
	err := d.Reload(context.Background())
	list := fileerr.Errors(err)
	if len(list) != 2 || list[0].Line != 5 ||
		!strings.Contains(list[0].Msg, "1.0.0.0/8 is a /8, shorter than routes.min-prefix-length.ipv4 (/24)") ||
		!strings.Contains(list[1].Msg, "2000::/3 is a /3, shorter than routes.min-prefix-length.ipv6 (/48)") {
		t.Fatalf("reload = %v, want the two prefixes refused at line 5", err)
	}
	r, after, _ := reportOf(t, d)
	if after.Routes != 2 || r.Mapping.Generation != 1 || r.Mapping.LastReload.OK || len(r.Mapping.LastReload.Errors) != 2 {
		t.Errorf("after the refused reload: %d routes, generation %d, last reload %+v; want the 2 routes of generation 1 and the errors",
			after.Routes, r.Mapping.Generation, r.Mapping.LastReload)
	}
	for _, rt := range r.Routes {
		if rt.Prefix == "1.0.0.0/8" || rt.Prefix == "2000::/3" {
			t.Errorf("route %s announced", rt.Prefix)
		}
	}
	if !strings.Contains(logs.String(), "previous mapping stays in force") {
		t.Error("the log does not say the previous mapping stays in force")
	}
}

// Issue 17, finding 11: at start no reload was tried, and the JSON says
// nothing about one (it said {"ok": false}, as if one had failed).
func TestNoLastReloadAtStart(t *testing.T) {
	d, _, _ := startTestDaemon(t, reloadMapping)
	r, _, _ := reportOf(t, d)
	b, err := json.Marshal(r.Mapping)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "last_reload") {
		t.Errorf("mapping status at start = %s, want no last_reload", b)
	}
	if err := d.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, _, _ = reportOf(t, d)
	if b, _ = json.Marshal(r.Mapping); !strings.Contains(string(b), `"last_reload":{"at":`) || !strings.Contains(string(b), `"ok":true`) {
		t.Errorf("mapping status after a reload = %s, want its last_reload", b)
	}
}

// Issue 17, finding 7, on the daemon's wiring: with 20,000 routes
// announced (libvirt's test driver, its running domain "test"), 50
// parallel /status clients do not make /healthz fail: /healthz asks the
// daemon's loops (Alive), not for a report, and the /status clients share
// reports.
func TestStatusLoadKeepsHealthy(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nvms:\n  test:\n    ips:\n")
	const n = 20000
	for i := range n {
		fmt.Fprintf(&b, "      - 10.%d.%d.%d\n", i>>16, (i>>8)&255, i&255)
	}
	d, _, log := startTestDaemon(t, b.String())
	web := status.NewServer("127.0.0.1:0", d.Report, nil, slog.New(slog.DiscardHandler))
	web.Health = d.Alive // as Run wires it
	if err := web.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = web.Shutdown(context.Background()) })
	base := "http://" + web.Addr()
	client := &http.Client{Timeout: 60 * time.Second}
	if r, _, _ := reportOf(t, d); len(r.Routes) != n {
		t.Fatalf("%d routes announced, want %d\n%s", len(r.Routes), n, log)
	}

	var wg sync.WaitGroup
	var full atomic.Int64
	for range 50 {
		wg.Go(func() {
			for range 2 {
				resp, err := client.Get(base + "/status")
				if err != nil {
					t.Errorf("/status: %v", err)
					return
				}
				size, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK && size > n*100 { // a route is about 200 bytes of JSON
					full.Add(1)
				} else if resp.StatusCode != http.StatusServiceUnavailable {
					t.Errorf("/status: %s", resp.Status)
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	checks, failed := 0, 0
	for stop := false; !stop; {
		select {
		case <-done:
			stop = true
		case <-time.After(100 * time.Millisecond):
		}
		began := time.Now()
		resp, err := client.Get(base + "/healthz")
		checks++
		if err != nil {
			failed++
			t.Logf("/healthz after %s: %v", time.Since(began), err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			failed++
			t.Logf("/healthz after %s: %s %s", time.Since(began), resp.Status, body)
		}
	}
	t.Logf("%d full /status answers; /healthz failed %d of %d checks", full.Load(), failed, checks)
	if failed > 0 || full.Load() == 0 {
		t.Errorf("/healthz failed %d of %d checks under /status load (%d full /status answers)", failed, checks, full.Load())
	}
}
