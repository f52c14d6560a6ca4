package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/internal/bgptest"
	"github.com/virtbgp/virtbgp/internal/control"
	"github.com/virtbgp/virtbgp/internal/maintenance"
	"github.com/virtbgp/virtbgp/internal/status"
	"github.com/virtbgp/virtbgp/internal/testutil"
)

func maintMapping(svc *service) string {
	return fmt.Sprintf(`version: 1
vms:
  mt-web:
    ips: [192.0.2.80, 192.0.2.81]
  mt-dep:
    health:
      initial: up
      on-failure: depreference
      depreference: {communities: ["65001:666"], med: 1000}
      checks:
        - {type: tcp, address: "%s", interval: 200ms, timeout: 150ms}
    ips: [192.0.2.82]
`, svc.addr)
}

// maintCall is one raw API call: the status and the error body.
func maintCall(t *testing.T, c *http.Client, method, url, token, body string) (int, control.ErrorBody, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var eb control.ErrorBody
	_ = json.Unmarshal(raw, &eb)
	return resp.StatusCode, eb, string(raw)
}

// TestMaintenanceAPI runs the daemon on test:///default with in-process
// GoBGP ToRs: maintenance on a domain without checks withdraws all its
// routes at the ToR, one IP of it withdraws that route alone, on a domain
// whose health says on-failure: depreference it depreferences; off brings
// them back; the entries survive a restart (the routes stay out) and
// show in status; a TTL ends one by itself; bad input and unauthorised
// writes are refused with nothing changed.
func TestMaintenanceAPI(t *testing.T) {
	svc := startService(t)
	apiPort, err := bgptest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, secret := range map[string]string{"ro.token": apiRO, "rw.token": apiRW} {
		writeFile(t, filepath.Join(dir, name), secret+"\n")
		if err := os.Chmod(filepath.Join(dir, name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l := startLab(t, maintMapping(svc), fmt.Sprintf(`api:
  listen: 127.0.0.1:%d
  write-rate: 1000
  tokens:
    - {name: monitor, file: %s, access: read-only}
    - {name: automation, file: %s, access: read-write}`, apiPort, filepath.Join(dir, "ro.token"), filepath.Join(dir, "rw.token")))
	p82 := netip.MustParsePrefix("192.0.2.82/32")
	web := l.define(t, "mt-web", "")
	do(t, "create mt-web", web.Create())
	webUUID, err := web.GetUUIDString()
	if err != nil {
		t.Fatal(err)
	}
	dep := l.define(t, "mt-dep", "")
	do(t, "create mt-dep", dep.Create())
	l.waitRIB(t, l.ebgp, "192.0.2.80/32", "192.0.2.81/32", "192.0.2.82/32")

	ctl := &control.Client{Path: l.cfg.Control.Socket}
	ctx := l.ctx
	list := func() []maintenance.Entry {
		t.Helper()
		es, err := ctl.Maintenance(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return es
	}

	t.Run("on: a domain without checks is withdrawn", func(t *testing.T) {
		start := time.Now()
		e, err := ctl.MaintenanceOn(ctx, "mt-web", maintenance.Request{Note: "kernel upgrade CHG-42"})
		answered := time.Since(start)
		if err != nil || e.UUID != webUUID || e.SetBy != "uid 0" || e.Prefix.IsValid() {
			t.Fatalf("MaintenanceOn = %+v, %v", e, err)
		}
		l.waitRIB(t, l.ebgp, "192.0.2.82/32")
		t.Logf("maintenance on: answered after %v (routes withdrawn from GoBGP's RIB), gone at the ToR (polled every 10 ms) after %v", answered, time.Since(start))
		rep, err := l.d.Report(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Maintenance) != 1 || rep.Maintenance[0].Domain != "mt-web" || rep.Maintenance[0].Note != "kernel upgrade CHG-42" ||
			rep.Maintenance[0].SetBy != "uid 0" || rep.Maintenance[0].Since.IsZero() {
			t.Errorf("status maintenance: %+v", rep.Maintenance)
		}
	})
	t.Run("off: back", func(t *testing.T) {
		gone, err := ctl.MaintenanceOff(ctx, "mt-web", "")
		if err != nil || len(gone) != 1 || gone[0].Domain != "mt-web" {
			t.Fatalf("MaintenanceOff = %+v, %v", gone, err)
		}
		l.waitRIB(t, l.ebgp, "192.0.2.80/32", "192.0.2.81/32", "192.0.2.82/32")
		if es := list(); len(es) != 0 {
			t.Errorf("entries after off: %+v", es)
		}
	})
	t.Run("one IP, by UUID: that route alone", func(t *testing.T) {
		if _, err := ctl.MaintenanceOn(ctx, strings.ToUpper(webUUID), maintenance.Request{IP: "192.0.2.81"}); err != nil {
			t.Fatal(err)
		}
		l.waitRIB(t, l.ebgp, "192.0.2.80/32", "192.0.2.82/32")
	})
	t.Run("on-failure depreference: depreferenced", func(t *testing.T) {
		if _, err := ctl.MaintenanceOn(ctx, "mt-dep", maintenance.Request{}); err != nil {
			t.Fatal(err)
		}
		var best map[netip.Prefix]bgptest.Path
		testutil.Eventually(t, 10*time.Second, func() string {
			best = l.best(t, l.ebgp)
			if p, ok := best[p82]; !ok || p.MED == nil || *p.MED != 1000 {
				return fmt.Sprintf("192.0.2.82 is %v", best[p82])
			}
			return ""
		})
		checkPath(t, best[p82], "127.0.0.1", []uint32{ourASN}, u32(1000), nil, []uint32{comm(65001, 666)}, nil)
		rep, err := l.d.Report(ctx)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(rep.Routes, func(r status.Route) bool { return r.Prefix == "192.0.2.82/32" })
		if i < 0 || rep.Routes[i].Health != "failing" || rep.Routes[i].HealthReason != "maintenance by uid 0" {
			t.Errorf("status of 192.0.2.82: %+v", rep.Routes)
		}
	})

	sock := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", l.cfg.Control.Socket)
		},
	}}
	t.Run("bad input: 4xx with the field, nothing changes", func(t *testing.T) {
		before := list()
		for _, tc := range []struct {
			method, path, body string
			code               int
			field, msg         string
		}{
			{"PUT", "/v1/maintenance/nope", ``, 404, "domain", `no domain "nope"`},
			{"PUT", "/v1/maintenance/mt-web", `{"ip":"192.0.2.82"}`, 422, "ip", `192.0.2.82/32 is not a route of domain "mt-web" (its routes: 192.0.2.80/32, 192.0.2.81/32)`},
			{"PUT", "/v1/maintenance/mt-web", `{"ip":"192.0.2.80"`, 400, "", "malformed JSON"},
			{"PUT", "/v1/maintenance/mt-web", `{"ip":"192.0.2.80","until":"x"}`, 400, "until", "unknown field"},
			{"PUT", "/v1/maintenance/mt-web", `{"ttl":"forever"}`, 400, "ttl", "want a duration"},
			{"PUT", "/v1/maintenance/mt-web", `{"note":"a\u0007b"}`, 400, "note", "printable"},
			{"DELETE", "/v1/maintenance/mt-web?ip=192.0.2.80", ``, 404, "domain", `no maintenance for route 192.0.2.80/32 of domain "mt-web"`},
			{"DELETE", "/v1/maintenance/nope", ``, 404, "domain", `no maintenance for domain "nope"`},
		} {
			code, eb, raw := maintCall(t, sock, tc.method, "http://virtbgp"+tc.path, "", tc.body)
			if code != tc.code || eb.Field != tc.field || !strings.Contains(eb.Error, tc.msg) {
				t.Errorf("%s %s %s: %d %s; want %d, field %q, %q", tc.method, tc.path, tc.body, code, raw, tc.code, tc.field, tc.msg)
			}
		}
		if after := list(); !slices.EqualFunc(before, after, func(a, b maintenance.Entry) bool { return a.Key() == b.Key() && a.Since.Equal(b.Since) }) {
			t.Errorf("entries changed by bad input: %+v, were %+v", after, before)
		}
		// A good change after them: the ToR then shows only its effect.
		if _, err := ctl.MaintenanceOff(ctx, "mt-web", "192.0.2.81"); err != nil {
			t.Fatal(err)
		}
		l.waitRIB(t, l.ebgp, "192.0.2.80/32", "192.0.2.81/32", "192.0.2.82/32")
	})

	t.Run("TCP: no token 401, read-only 403, read-write 200", func(t *testing.T) {
		c := &http.Client{Timeout: 10 * time.Second}
		base := fmt.Sprintf("http://127.0.0.1:%d/v1/maintenance", apiPort)
		if code, _, raw := maintCall(t, c, "PUT", base+"/mt-web", "", ``); code != 401 {
			t.Errorf("PUT without a token: %d %s", code, raw)
		}
		if code, _, raw := maintCall(t, c, "PUT", base+"/mt-web", apiRO, ``); code != 403 {
			t.Errorf("PUT with a read-only token: %d %s", code, raw)
		}
		if code, _, raw := maintCall(t, c, "DELETE", base+"/mt-dep", apiRO, ``); code != 403 {
			t.Errorf("DELETE with a read-only token: %d %s", code, raw)
		}
		if code, _, raw := maintCall(t, c, "GET", base, apiRO, ``); code != 200 || !strings.Contains(raw, `"domain":"mt-dep"`) || strings.Contains(raw, "mt-web") {
			t.Errorf("GET with a read-only token: %d %s", code, raw)
		}
		code, _, raw := maintCall(t, c, "PUT", base+"/mt-web", apiRW, `{"ip":"192.0.2.80","note":"disk swap"}`)
		if code != 200 || !strings.Contains(raw, `"set_by":"token automation"`) {
			t.Fatalf("PUT with a read-write token: %d %s", code, raw)
		}
		l.waitRIB(t, l.ebgp, "192.0.2.81/32", "192.0.2.82/32")
	})

	// Survives a restart (a step of the test itself: the daemon started
	// here lives until the test ends).
	before := list()
	l.stopDaemon()
	l.wantAll(t) // StopBGP: the ToRs lost everything
	l.stopDaemon = l.startDaemon(t)
	// After the first sync: the routes in maintenance stay out, .82
	// depreferenced.
	best := l.waitRIB(t, l.ebgp, "192.0.2.81/32", "192.0.2.82/32")
	if p := best[p82]; p.MED == nil || *p.MED != 1000 {
		t.Errorf("192.0.2.82 after the restart: %v, want depreferenced", p)
	}
	after := list()
	if len(after) != 2 || !slices.EqualFunc(before, after, func(a, b maintenance.Entry) bool {
		return a.Key() == b.Key() && a.SetBy == b.SetBy && a.Since.Equal(b.Since) && a.Note == b.Note
	}) {
		t.Errorf("entries after the restart: %+v, were %+v", after, before)
	}

	t.Run("a TTL ends the maintenance", func(t *testing.T) {
		if _, err := ctl.MaintenanceOff(ctx, "mt-dep", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := ctl.MaintenanceOff(ctx, "mt-web", ""); err != nil {
			t.Fatal(err)
		}
		l.waitRIB(t, l.ebgp, "192.0.2.80/32", "192.0.2.81/32", "192.0.2.82/32")
		set := time.Now()
		e, err := ctl.MaintenanceOn(ctx, "mt-web", maintenance.Request{TTL: "2s"})
		if err != nil || e.TTL != "2s" {
			t.Fatalf("MaintenanceOn with a TTL = %+v, %v", e, err)
		}
		l.waitRIB(t, l.ebgp, "192.0.2.82/32")
		l.waitRIB(t, l.ebgp, "192.0.2.80/32", "192.0.2.81/32", "192.0.2.82/32")
		if took := time.Since(set); took < 2*time.Second {
			t.Errorf("back %v after the maintenance was set, before its TTL of 2s", took)
		}
		if es := list(); len(es) != 0 {
			t.Errorf("entries after the TTL: %+v", es)
		}
		var de *control.DaemonError
		if _, err := ctl.MaintenanceOff(ctx, "mt-web", ""); !errors.As(err, &de) || de.Status != 404 {
			t.Errorf("off after the TTL = %v, want 404", err)
		}
	})

	t.Run("the CLI", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "virtbgp")
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "../cmd/virtbgp").CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		cli := func(args ...string) string {
			t.Helper()
			out, err := exec.CommandContext(ctx, bin, append(args, "--socket", l.cfg.Control.Socket)...).CombinedOutput()
			if err != nil {
				t.Fatalf("virtbgp %v: %v\n%s", args, err, out)
			}
			return string(out)
		}
		if out := cli("maintenance", "on", "mt-web", "--ip", "192.0.2.80", "--note", "cli test"); !strings.HasPrefix(out, "maintenance on: mt-web 192.0.2.80/32, until switched off") {
			t.Errorf("maintenance on: %q", out)
		}
		l.waitRIB(t, l.ebgp, "192.0.2.81/32", "192.0.2.82/32")
		if out := cli("maintenance", "list"); !strings.Contains(out, "mt-web") || !strings.Contains(out, "192.0.2.80/32") || !strings.Contains(out, "cli test") || !strings.Contains(out, "uid 0") {
			t.Errorf("maintenance list:\n%s", out)
		}
		if out := cli("status"); !strings.Contains(out, "Maintenance (1)") || !strings.Contains(out, "cli test") {
			t.Errorf("status lacks the maintenance:\n%s", out)
		}
		if out := cli("maintenance", "off", "mt-web"); !strings.HasPrefix(out, "maintenance off: mt-web 192.0.2.80/32 (set by uid 0 at ") {
			t.Errorf("maintenance off: %q", out)
		}
		l.waitRIB(t, l.ebgp, "192.0.2.80/32", "192.0.2.81/32", "192.0.2.82/32")
		out, err := exec.CommandContext(ctx, bin, "maintenance", "on", "nope", "--socket", l.cfg.Control.Socket).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), `virtbgp maintenance on: domain: no domain "nope"`) {
			t.Errorf("maintenance on of an unknown domain: %v %q", err, out)
		}
	})

	t.Run("a shut-off domain: in maintenance before it starts", func(t *testing.T) {
		off := l.define(t, "mt-web2", "")
		writeFile(t, filepath.Join(l.dir, "mapping.yaml"), maintMapping(svc)+"  mt-web2:\n    ips: [192.0.2.83]\n")
		if err := l.d.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		// The define event reaches the reconciler on its own time: until
		// then the domain is unknown (404).
		testutil.Eventually(t, 10*time.Second, func() string {
			if _, err := ctl.MaintenanceOn(ctx, "mt-web2", maintenance.Request{Note: "not yet"}); err != nil {
				return err.Error()
			}
			return ""
		})
		do(t, "create mt-web2", off.Create())
		l.waitUnannounced(t, "mt-web2")
		if _, err := ctl.MaintenanceOff(ctx, "mt-web2", ""); err != nil {
			t.Fatal(err)
		}
		l.waitRIB(t, l.ebgp, "192.0.2.80/32", "192.0.2.81/32", "192.0.2.82/32", "192.0.2.83/32")
	})
}
