package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	vblab "github.com/virtbgp/virtbgp/integration/lab"
	"github.com/virtbgp/virtbgp/mapping"
)

const (
	apiRO = "read-only-token-0123456789"
	apiRW = "read-write-token-0123456789"
)

var (
	manual4   = netip.MustParsePrefix("198.51.100.7/32")
	manualTTL = netip.MustParsePrefix("198.51.100.8/32")
	manualKep = netip.MustParsePrefix("198.51.100.9/32")
)

// curl runs curl with args and returns the HTTP status and the body; in ns
// if not empty.
func curl(ctx context.Context, t *testing.T, ns string, args ...string) (int, string) {
	t.Helper()
	argv := append([]string{"curl", "-s", "-w", "\n%{http_code}", "--max-time", "10"}, args...)
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).Output()
	if err != nil {
		t.Fatalf("%v: %v (%s)", argv, err, out)
	}
	s := strings.TrimRight(string(out), "\n")
	i := strings.LastIndexByte(s, '\n')
	var code int
	fmt.Sscan(s[i+1:], &code)
	return code, s[:i+1]
}

// birdPath waits until BIRD has exactly one path for p satisfying ok (or,
// with ok nil, none) and returns it.
func birdPath(ctx context.Context, t *testing.T, l *vblab.Lab, p netip.Prefix, ok func(vblab.Path) error) {
	t.Helper()
	var last vblab.RIB
	err := vblab.Eventually(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		rib, err := l.BIRD.Routes(ctx)
		if err != nil {
			return err
		}
		last = rib
		paths := rib.Paths(p)
		if ok == nil {
			if len(paths) > 0 {
				return fmt.Errorf("%s still has %d path(s)", p, len(paths))
			}
			return nil
		}
		if len(paths) != 1 {
			return fmt.Errorf("%s: %d paths", p, len(paths))
		}
		return ok(paths[0])
	})
	if err != nil {
		t.Fatalf("BIRD: %v\n%s", err, last)
	}
}

// TestAPIManualRoutesLab: the seed's curl workflow against a real virtbgp
// in the lab's namespace, peered with a real BIRD: announce with MED and
// communities over the control socket, BIRD has the route with them;
// withdraw removes it; a lease expires unless renewed; manual routes
// survive a restart without BIRD ever losing them (graceful restart); the
// TCP listener's tokens (401, 403, 200); every bad input a 4xx with the
// field and nothing changed at BIRD; a VM's prefix 409; and the CLI for
// every command.
func TestAPIManualRoutesLab(t *testing.T) {
	l := upLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	dir := t.TempDir()
	mp := filepath.Join(dir, "mapping.yaml")
	if err := os.WriteFile(mp, []byte(smokeMapping), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, secret := range map[string]string{"ro.token": apiRO, "rw.token": apiRW} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h := l.A
	extra := fmt.Sprintf(`api:
  allowed-prefixes: [198.51.100.0/24, 192.0.2.0/24]
  min-prefix-length: {ipv4: 24}
  listen: 127.0.0.1:9480
  write-rate: 1000
  tokens:
    - {name: monitor, file: %s, access: read-only}
    - {name: automation, file: %s, access: read-write}
`, filepath.Join(dir, "ro.token"), filepath.Join(dir, "rw.token"))
	if err := h.StartVirtbgp(ctx, vblab.VirtbgpConfig{Mapping: mp, Peers: []netip.Addr{vblab.BIRDv4, vblab.BIRDv6},
		Extra: extra, RestartTime: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitSessions(ctx, []vblab.Router{l.BIRD}, h.IPv4, h.IPv6); err != nil {
		t.Fatal(err)
	}
	sock := []string{"--unix-socket", h.VirtbgpSocket()}
	const base = "http://virtbgp/v1/manual-routes"
	post := func(body string) (int, string) {
		return curl(ctx, t, "", append(sock, "-X", "POST", "-H", "Content-Type: application/json", "-d", body, base)...)
	}
	wantAttrs := func(med uint32, comms ...uint32) func(vblab.Path) error {
		return func(p vblab.Path) error {
			if p.NextHop != h.IPv4 || p.MED == nil || *p.MED != med || !slices.Equal(p.Communities, comms) {
				return fmt.Errorf("path %s, want via %s, med %d, communities %v", p, h.IPv4, med, comms)
			}
			return nil
		}
	}

	// Announce with MED and communities; BIRD has it with them.
	code, body := post(`{"prefix":"198.51.100.7","med":42,"communities":["65001:7","blackhole"],"note":"rtbh ticket 7"}`)
	if code != 200 || !strings.Contains(body, `"created_by":"uid 0"`) {
		t.Fatalf("announce: %d %s", code, body)
	}
	birdPath(ctx, t, l, manual4, wantAttrs(42, 65001<<16|7, mapping.CommunityBlackhole))

	// Bad input: each a 4xx naming the problem; nothing changes at BIRD.
	for _, tc := range []struct {
		body  string
		code  int
		field string
		msg   string
	}{
		{`{"prefix":"198.51.100.7","med":`, 400, "", "malformed JSON"},
		{`{"prefix":"198.51.100.7","colour":"red"}`, 400, "colour", "unknown field"},
		{`{"prefix":"198.51.100.7","med":1,"note":"` + strings.Repeat("x", 20000) + `"}`, 413, "", "request too large"},
		{`{"prefix":"203.0.113.1"}`, 400, "prefix", "outside the prefixes allowed to a manual route"},
		{`{"prefix":"198.51.100.0/23"}`, 400, "prefix", "/24 or longer only"},
		{`{"prefix":"198.51.100.7/24"}`, 400, "prefix", "has host bits set"},
		{`{"prefix":"198.51.100.7","communities":["65536:1"]}`, 400, "communities[0]", "invalid community"},
		{`{"prefix":"198.51.100.7","as_path_prepend":17}`, 400, "as_path_prepend", "from 0 to 16"},
		{`{"prefix":"198.51.100.7","ttl":"forever"}`, 400, "ttl", "want a duration"},
		{`{"prefix":"192.0.2.50"}`, 409, "prefix", `192.0.2.50/32 belongs to VM "smoke" of the mapping`},
	} {
		code, body := post(tc.body)
		var eb struct{ Error, Field string }
		_ = json.Unmarshal([]byte(body), &eb)
		if code != tc.code || eb.Field != tc.field || !strings.Contains(eb.Error, tc.msg) {
			t.Errorf("%.60s: %d %s; want %d, field %q, %q", tc.body, code, body, tc.code, tc.field, tc.msg)
		}
	}
	birdPath(ctx, t, l, manual4, wantAttrs(42, 65001<<16|7, mapping.CommunityBlackhole))
	if rib, _ := l.BIRD.Routes(ctx); len(rib.Paths(netip.MustParsePrefix("203.0.113.1/32")))+len(rib.Paths(netip.MustParsePrefix("192.0.2.50/32"))) > 0 {
		t.Errorf("a refused prefix reached BIRD:\n%s", rib)
	}

	// TCP: no token 401, read-only writing 403, read-write works.
	tcp := "http://127.0.0.1:9480/v1/"
	if code, body := curl(ctx, t, h.NS, tcp+"status"); code != 401 {
		t.Errorf("TCP without a token: %d %s", code, body)
	}
	if code, body := curl(ctx, t, h.NS, "-H", "Authorization: Bearer "+apiRO, tcp+"manual-routes"); code != 200 || !strings.Contains(body, "198.51.100.7/32") {
		t.Errorf("TCP read-only read: %d %s", code, body)
	}
	if code, body := curl(ctx, t, h.NS, "-H", "Authorization: Bearer "+apiRO, "-X", "POST", "-d", `{"prefix":"198.51.100.9"}`, tcp+"manual-routes"); code != 403 {
		t.Errorf("TCP read-only write: %d %s", code, body)
	}
	if code, body := curl(ctx, t, h.NS, "-H", "Authorization: Bearer "+apiRW, "-X", "POST", "-d", `{"prefix":"198.51.100.9","med":9}`, tcp+"manual-routes"); code != 200 || !strings.Contains(body, `"created_by":"token automation"`) {
		t.Errorf("TCP read-write write: %d %s", code, body)
	}
	birdPath(ctx, t, l, manualKep, wantAttrs(9))

	// A lease: gone at BIRD after its TTL; a renewed one stays.
	t0 := time.Now()
	if code, body := post(`{"prefix":"198.51.100.8","med":8,"ttl":"4s"}`); code != 200 {
		t.Fatalf("announce with a TTL: %d %s", code, body)
	}
	birdPath(ctx, t, l, manualTTL, wantAttrs(8))
	for range 6 { // renewed every second for 6 s: past its first lease
		time.Sleep(time.Second)
		if code, body := post(`{"prefix":"198.51.100.8","med":8,"ttl":"4s"}`); code != 200 {
			t.Fatalf("renew: %d %s", code, body)
		}
	}
	if rib, err := l.BIRD.Routes(ctx); err != nil || len(rib.Paths(manualTTL)) != 1 {
		t.Fatalf("renewed lease lost at BIRD %v after its announce: %v\n%s", time.Since(t0), err, rib)
	}
	renewed := time.Now()
	birdPath(ctx, t, l, manualTTL, nil)
	if took := time.Since(renewed); took < 3*time.Second || took > 12*time.Second {
		t.Errorf("the lease ended at BIRD %v after the last renewal, want about 4s", took)
	}

	// A restart: SIGTERM, then start; BIRD keeps the routes throughout
	// (graceful restart) and virtbgp announces them again from its state.
	mon, err := l.MonitorRoutes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	from := mon.Len()
	if err := h.RestartVirtbgp(ctx, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitSessions(ctx, []vblab.Router{l.BIRD}, h.IPv4); err != nil {
		t.Fatal(err)
	}
	birdPath(ctx, t, l, manual4, wantAttrs(42, 65001<<16|7, mapping.CommunityBlackhole))
	// A route announced now reaches BIRD after the new session's
	// End-of-RIB, at which BIRD flushes the stale routes not announced
	// again: once it is there, a manual route missing from the restarted
	// daemon's first sync would have been deleted.
	if code, body := post(`{"prefix":"198.51.100.11"}`); code != 200 {
		t.Fatalf("announce after the restart: %d %s", code, body)
	}
	birdPath(ctx, t, l, netip.MustParsePrefix("198.51.100.11/32"), func(vblab.Path) error { return nil })
	birdPath(ctx, t, l, manualKep, wantAttrs(9))
	out, err := h.VirtbgpCtl(ctx, "routes")
	if err != nil || !strings.Contains(out, "198.51.100.7/32") || !strings.Contains(out, "198.51.100.9/32") || !strings.Contains(out, "token automation") {
		t.Errorf("virtbgp routes after the restart: %v\n%s", err, out)
	}
	for _, ev := range mon.Events()[from:] {
		if (ev.Prefix == manual4 || ev.Prefix == manualKep) && ev.Table == vblab.BIRDTable && ev.Deleted {
			t.Errorf("BIRD dropped a manual route during the restart: %s", ev.Line)
		}
	}

	// The CLI for every command.
	if out, err := h.VirtbgpCtl(ctx, "announce", "198.51.100.10", "--med", "5", "--community", "65001:10", "--ttl", "1h", "--note", "cli"); err != nil ||
		!strings.HasPrefix(out, "announced 198.51.100.10/32 (lease 1h0m0s") {
		t.Errorf("virtbgp announce: %v %s", err, out)
	}
	birdPath(ctx, t, l, netip.MustParsePrefix("198.51.100.10/32"), wantAttrs(5, 65001<<16|10))
	if out, err := h.VirtbgpCtl(ctx, "routes", "--json"); err != nil || !strings.Contains(out, `"note": "cli"`) {
		t.Errorf("virtbgp routes --json: %v %s", err, out)
	}
	if out, err := h.VirtbgpCtl(ctx, "status", "--json"); err != nil || !strings.Contains(out, `"manual_routes"`) || !strings.Contains(out, `"source": "manual"`) {
		t.Errorf("virtbgp status --json: %v %s", err, out)
	}
	if out, err := h.VirtbgpCtl(ctx, "withdraw", "198.51.100.10/32"); err != nil || !strings.HasPrefix(out, "withdrawn 198.51.100.10/32") {
		t.Errorf("virtbgp withdraw: %v %s", err, out)
	}
	birdPath(ctx, t, l, netip.MustParsePrefix("198.51.100.10/32"), nil)
	if out, err := h.VirtbgpCtl(ctx, "reload"); err != nil {
		t.Errorf("virtbgp reload: %v %s", err, out)
	}
	if out, err := h.VirtbgpCtl(ctx, "announce", "192.0.2.50"); err == nil || !strings.Contains(err.Error()+out, `prefix: 192.0.2.50/32 belongs to VM "smoke" of the mapping`) {
		t.Errorf("virtbgp announce of a VM's prefix: %v %s", err, out)
	}

	// Withdraw with curl: gone at BIRD.
	if code, body := curl(ctx, t, "", append(sock, "-X", "DELETE", base+"/198.51.100.7/32")...); code != 200 {
		t.Errorf("withdraw: %d %s", code, body)
	}
	birdPath(ctx, t, l, manual4, nil)
	if code, body := curl(ctx, t, "", append(sock, "-X", "DELETE", base+"/198.51.100.7/32")...); code != 404 {
		t.Errorf("second withdraw: %d %s", code, body)
	}
	// Drain and undrain through the CLI.
	if out, err := h.VirtbgpCtl(ctx, "drain"); err != nil || !strings.Contains(out, "drain") {
		t.Errorf("virtbgp drain: %v %s", err, out)
	}
	if out, err := h.VirtbgpCtl(ctx, "undrain"); err != nil {
		t.Errorf("virtbgp undrain: %v %s", err, out)
	}
	birdPath(ctx, t, l, manualKep, wantAttrs(9))
}
