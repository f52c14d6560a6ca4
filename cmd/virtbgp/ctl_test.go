package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/internal/control"
	"github.com/virtbgp/virtbgp/internal/maintenance"
	"github.com/virtbgp/virtbgp/internal/manual"
	"github.com/virtbgp/virtbgp/internal/reconcile"
	"github.com/virtbgp/virtbgp/internal/status"
	"github.com/virtbgp/virtbgp/mapping"
)

// fakeDaemon is a control.Handler with canned answers.
type fakeDaemon struct {
	mu      sync.Mutex
	calls   []string
	report  status.Report
	err     error
	lastReq manual.Request
}

func (f *fakeDaemon) record(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, op)
	return f.err
}

func (f *fakeDaemon) Status(context.Context) (status.Report, error) {
	return f.report, f.record("status")
}

func (f *fakeDaemon) Drain(context.Context) (string, error) {
	return "draining: routes carry GRACEFUL_SHUTDOWN, withdrawing in 60s", f.record("drain")
}

func (f *fakeDaemon) Undrain(context.Context) (string, error) {
	return "undrained: 3 route(s) announced normally", f.record("undrain")
}

func (f *fakeDaemon) Reload(context.Context) (string, error) {
	return "reloaded: mapping generation 2, 1 route(s) changed", f.record("reload")
}

func (f *fakeDaemon) ReloadForce(context.Context) (string, error) {
	return "reloaded, confirmed: mapping generation 3", f.record("reload-force")
}

func (f *fakeDaemon) ManualRoutes(context.Context) ([]manual.Route, error) {
	return []manual.Route{{Prefix: netip.MustParsePrefix("198.51.100.1/32"), NextHop: "self",
		Communities: []string{"blackhole"}, CreatedBy: "uid 0", Note: "rtbh"}}, f.record("routes")
}

func (f *fakeDaemon) Announce(_ context.Context, who string, req manual.Request) (manual.Route, error) {
	f.mu.Lock()
	f.lastReq = req
	f.mu.Unlock()
	allow := mapping.Allow{Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}
	r, ttl, err := manual.Validate(&req, &allow)
	if err != nil {
		return manual.Route{}, err
	}
	return manual.New(r, ttl, req.Note, who, time.Now(), nil), f.record("announce")
}

func (f *fakeDaemon) Withdraw(_ context.Context, who, prefix string) (manual.Route, error) {
	return manual.Route{Prefix: netip.MustParsePrefix(prefix), CreatedBy: who}, f.record("withdraw " + prefix)
}

func (f *fakeDaemon) Maintenance(context.Context) ([]maintenance.Entry, error) {
	t0 := time.Date(2026, 5, 9, 7, 0, 0, 0, time.UTC)
	return []maintenance.Entry{{Domain: "web-1", UUID: "u1", Note: "kernel upgrade", SetBy: "uid 0", Since: t0},
			{Domain: "web-2", UUID: "u2", Prefix: netip.MustParsePrefix("192.0.2.7/32"), TTL: "1h0m0s", Expires: t0.Add(time.Hour), SetBy: "token ops", Since: t0}},
		f.record("maintenance")
}

func (f *fakeDaemon) MaintenanceOn(_ context.Context, who, domain string, req maintenance.Request) (maintenance.Entry, error) {
	p, ttl, err := maintenance.ParseRequest(&req)
	if err != nil {
		return maintenance.Entry{}, err
	}
	return maintenance.New(domain, "u1", p, ttl, req.Note, who, time.Now(), nil), f.record("maintenance on " + domain + " " + req.IP + " " + req.Note + " " + req.TTL)
}

func (f *fakeDaemon) MaintenanceOff(_ context.Context, who, domain, ip string) ([]maintenance.Entry, error) {
	var p netip.Prefix
	if ip != "" {
		p = netip.MustParsePrefix(ip + "/32")
	}
	return []maintenance.Entry{{Domain: domain, UUID: "u1", Prefix: p, SetBy: who}}, f.record("maintenance off " + domain + " " + ip)
}

func (f *fakeDaemon) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func ctlReport() status.Report {
	t0 := time.Date(2026, 5, 9, 7, 0, 0, 0, time.UTC)
	med := uint32(10)
	return status.Report{
		Version: "virtbgp test", Host: "hv1", Started: t0, Ready: true, Time: t0.Add(time.Hour),
		Libvirt: status.Libvirt{URI: "test:///default", Connected: true},
		Peers: []status.Peer{{Address: "198.18.0.1", ASN: 65000, State: "established", Since: t0,
			RoutesSent: 1, Families: []string{"ipv4", "ipv6"}}},
		Domains: []status.Domain{{Name: "test", UUID: "6695eb01-f6a4-8304-79aa-97f2502e193f",
			State: "running", Reason: "booted", VM: "test", Routes: 1}},
		Routes: []status.Route{{Prefix: "192.0.2.10/32", NextHop: "self", MED: &med,
			Communities: []string{"65001:100"}, Domain: "test", VM: "test", Why: "running"}},
		Mapping: status.Mapping{Path: "examples/mapping.yaml", Generation: 1, LoadedAt: t0,
			Files: []string{"examples/mapping.yaml"}, VMs: 1, Routes: 1, LastReload: status.Reload{At: t0, OK: true}},
		Drain: status.Drain{State: reconcile.DrainNone},
	}
}

// startDaemon serves a fakeDaemon on a socket in a test directory.
func startDaemon(t *testing.T) (*fakeDaemon, string) {
	t.Helper()
	h := &fakeDaemon{report: ctlReport()}
	path := filepath.Join(t.TempDir(), "control.sock")
	srv := &control.Server{Handler: h}
	if err := srv.Listen(path); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return h, path
}

func run(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = runMain(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestStatusJSON(t *testing.T) {
	h, sock := startDaemon(t)
	code, out, errs := run("status", "--socket", sock, "--json")
	if code != 0 {
		t.Fatalf("exit %d\nstderr: %s", code, errs)
	}
	var got status.Report
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("stdout is not a Report: %v\n%s", err, out)
	}
	want, _ := json.MarshalIndent(ctlReport(), "", "  ")
	if out != string(want)+"\n" {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, want)
	}
	if !strings.Contains(out, "\n  \"peers\": [\n") {
		t.Errorf("not indented:\n%s", out)
	}
	if c := h.Calls(); len(c) != 1 || c[0] != "status" {
		t.Errorf("calls %v", c)
	}
}

// The table's layout belongs to status.WriteTable; this checks the wiring.
func TestStatusTable(t *testing.T) {
	_, sock := startDaemon(t)
	code, out, errs := run("status", "--socket", sock)
	if code != 0 || errs != "" {
		t.Fatalf("exit %d\nstderr: %s", code, errs)
	}
	if !strings.Contains(out, "192.0.2.10/32") || strings.HasPrefix(out, "{") {
		t.Errorf("stdout is not the table with the routes:\n%s", out)
	}
}

func TestWriteCommands(t *testing.T) {
	h, sock := startDaemon(t)
	for _, tc := range []struct {
		cmd  []string
		want string
	}{
		{[]string{"drain"}, "draining: routes carry GRACEFUL_SHUTDOWN, withdrawing in 60s\n"},
		{[]string{"undrain"}, "undrained: 3 route(s) announced normally\n"},
		{[]string{"reload"}, "reloaded: mapping generation 2, 1 route(s) changed\n"},
		{[]string{"reload", "--force"}, "reloaded, confirmed: mapping generation 3\n"},
	} {
		code, out, errs := run(append(tc.cmd, "--socket", sock)...)
		if code != 0 || out != tc.want || errs != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 0, %q", tc.cmd, code, out, errs, tc.want)
		}
	}
	if c := strings.Join(h.Calls(), ","); c != "drain,undrain,reload,reload-force" {
		t.Errorf("calls %s", c)
	}
}

func TestDaemonError(t *testing.T) {
	h, sock := startDaemon(t)
	h.err = errors.New(`mapping.yaml:3: unknown key "colour"; the previous mapping stays in force`)
	code, out, errs := run("reload", "--socket", sock)
	if code != 1 || out != "" {
		t.Errorf("exit %d, stdout %q; want 1 and nothing", code, out)
	}
	if want := "virtbgp reload: mapping.yaml:3: unknown key \"colour\"; the previous mapping stays in force\n"; errs != want {
		t.Errorf("stderr %q, want %q", errs, want)
	}
	code, out, errs = run("status", "--socket", sock, "--json")
	if code != 1 || out != "" || !strings.HasPrefix(errs, "virtbgp status: mapping.yaml:3") {
		t.Errorf("status: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

func TestUnreachableDaemon(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.sock")
	// A socket file left by a dead daemon: connection refused.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "--socket", missing}, "virtbgp status: is virtbgp running? socket " + missing + ": no such file or directory\n"},
		{[]string{"status", "--json", "--socket", stale}, "virtbgp status: is virtbgp running? socket " + stale + ": connection refused\n"},
		{[]string{"drain", "--socket", stale}, "virtbgp drain: is virtbgp running? socket " + stale + ": connection refused\n"},
		{[]string{"undrain", "--socket", missing}, "virtbgp undrain: is virtbgp running? socket " + missing + ": no such file or directory\n"},
		{[]string{"reload", "--socket", missing}, "virtbgp reload: is virtbgp running? socket " + missing + ": no such file or directory\n"},
	} {
		code, out, errs := run(tc.args...)
		if code != 1 || out != "" || errs != tc.want {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 1, nothing, %q", tc.args, code, out, errs, tc.want)
		}
	}
}

func TestControlUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "extra"}, `virtbgp status: unexpected argument "extra"`},
		{[]string{"status", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"drain", "--json"}, "flag provided but not defined: -json"},
		{[]string{"undrain", "now"}, `virtbgp undrain: unexpected argument "now"`},
		{[]string{"reload", "--socket"}, "flag needs an argument: -socket"},
	} {
		code, out, errs := run(tc.args...)
		if code != 2 || out != "" || !strings.Contains(errs, tc.want) || !strings.Contains(errs, "usage: virtbgp "+tc.args[0]+" [--socket PATH | --config FILE]") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and %q with the synopsis", tc.args, code, out, errs, tc.want)
		}
	}
	code, out, _ := run("help")
	for _, cmd := range []string{"status", "drain", "undrain", "reload", "announce", "withdraw", "routes", control.DefaultSocket} {
		if code != 0 || !strings.Contains(out, cmd) {
			t.Errorf("help lacks %q:\n%s", cmd, out)
		}
	}
}

func TestDefaultSocket(t *testing.T) {
	// Read-only, so harmless if a daemon runs on this machine.
	code, _, errs := run("status", "--json")
	if code != 0 && !strings.Contains(errs, "socket "+control.DefaultSocket) {
		t.Errorf("exit %d, stderr %q; want the default socket %s named", code, errs, control.DefaultSocket)
	}
}

// TestManualCommands: announce (flags before and after the prefix), routes
// and withdraw send what they are given and print the answer.
func TestManualCommands(t *testing.T) {
	h, sock := startDaemon(t)
	code, out, errs := run("announce", "--socket", sock, "198.51.100.1", "--med", "10", "--community", "65001:1",
		"--community", "blackhole", "--ttl", "30s", "--note", "rtbh ticket 42")
	if code != 0 || !strings.HasPrefix(out, "announced 198.51.100.1/32 (lease 30s, until ") || errs != "" {
		t.Fatalf("announce: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	req := h.lastReq
	if req.Prefix != "198.51.100.1" || *req.MED != 10 || strings.Join(req.Communities, ",") != "65001:1,blackhole" ||
		req.TTL != "30s" || req.Note != "rtbh ticket 42" || req.ASPathPrepend != nil || req.LocalPref != nil {
		t.Errorf("request %+v", req)
	}
	code, out, errs = run("announce", "--socket", sock, "203.0.113.1")
	if code != 1 || !strings.Contains(errs, "virtbgp announce: prefix: 203.0.113.1/32: outside the prefixes allowed to a manual route") {
		t.Errorf("announce outside: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, errs = run("routes", "--socket", sock)
	if code != 0 || !strings.Contains(out, "198.51.100.1/32") || !strings.Contains(out, "rtbh") || errs != "" {
		t.Errorf("routes: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, _ = run("withdraw", "--socket", sock, "198.51.100.1/32")
	if code != 0 || !strings.HasPrefix(out, "withdrawn 198.51.100.1/32 (created by uid 0") {
		t.Errorf("withdraw: exit %d, stdout %q", code, out)
	}
	code, out, errs = run("announce", "--socket", sock, "198.51.100.1", "--med", "ten")
	if code != 2 || out != "" || !strings.Contains(errs, `invalid value "ten" for flag -med`) {
		t.Errorf("bad flag: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	// --help: the synopsis on stdout, exit 0.
	for _, cmd := range []string{"announce", "withdraw", "routes", "status", "drain"} {
		code, out, errs := run(cmd, "--help")
		if code != 0 || !strings.HasPrefix(out, "usage: virtbgp "+cmd) || errs != "" {
			t.Errorf("%s --help: exit %d, stdout %q, stderr %q", cmd, code, out, errs)
		}
	}
}

// TestSocketFromConfig: --config gives the socket's path.
func TestSocketFromConfig(t *testing.T) {
	_, sock := startDaemon(t)
	cfg := filepath.Join(t.TempDir(), "virtbgp.yaml")
	text := "version: 1\nbgp: {asn: 65001, router-id: 192.0.2.1}\nmapping: {path: m.yaml}\ncontrol: {socket: " + sock + "}\n"
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := run("routes", "--config", cfg)
	if code != 0 || !strings.Contains(out, "198.51.100.1/32") {
		t.Errorf("routes --config: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// TestMaintenanceCommands: maintenance on (flags before and after the
// domain), off and list send what they are given and print the answer;
// usage errors exit 2 with the synopsis.
func TestMaintenanceCommands(t *testing.T) {
	h, sock := startDaemon(t)
	for _, tc := range []struct {
		args []string
		code int
		out  string // a prefix of stdout
		err  string // a part of stderr
		call string // the call the daemon got, "" for none
	}{
		{[]string{"maintenance", "on", "--socket", sock, "web-1", "--note", "kernel CHG-1", "--ttl", "2h"}, 0,
			"maintenance on: web-1 (all routes), until ", "", "maintenance on web-1  kernel CHG-1 2h"},
		{[]string{"maintenance", "on", "--ip", "192.0.2.7", "web-1", "--socket", sock}, 0,
			"maintenance on: web-1 192.0.2.7/32, until switched off\n", "", "maintenance on web-1 192.0.2.7  "},
		{[]string{"maintenance", "on", "web-1", "--ttl", "soon", "--socket", sock}, 1,
			"", `virtbgp maintenance on: ttl: want a duration like "30s" or "10m", got "soon"`, ""},
		{[]string{"maintenance", "off", "web-1", "--ip", "192.0.2.7", "--socket", sock}, 0,
			"maintenance off: web-1 192.0.2.7/32 (set by uid 0 at ", "", "maintenance off web-1 192.0.2.7"},
		{[]string{"maintenance", "off", "--socket", sock, "web-1"}, 0,
			"maintenance off: web-1 (all routes) (set by uid 0 at ", "", "maintenance off web-1 "},
		{[]string{"maintenance", "list", "--socket", sock}, 0, "DOMAIN", "", "maintenance"},
		{[]string{"maintenance", "on", "--socket", sock}, 2, "", "virtbgp maintenance on: missing argument\nusage: virtbgp maintenance on DOMAIN", ""},
		{[]string{"maintenance", "off", "a", "b", "--socket", sock}, 2, "", `virtbgp maintenance off: unexpected argument "b"`, ""},
		{[]string{"maintenance", "list", "web-1", "--socket", sock}, 2, "", `virtbgp maintenance list: unexpected argument "web-1"`, ""},
		{[]string{"maintenance", "frobnicate"}, 2, "", `virtbgp maintenance: unknown command "frobnicate"`, ""},
	} {
		before := len(h.Calls())
		code, out, errs := run(tc.args...)
		if code != tc.code || !strings.HasPrefix(out, tc.out) || !strings.Contains(errs, tc.err) || (tc.err == "" && errs != "") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %d, %q, %q", tc.args, code, out, errs, tc.code, tc.out, tc.err)
		}
		calls := h.Calls()[before:]
		if tc.call == "" && len(calls) > 0 || tc.call != "" && (len(calls) != 1 || calls[0] != tc.call) {
			t.Errorf("%v: calls %q, want %q", tc.args, calls, tc.call)
		}
	}
	code, out, _ := run("maintenance", "list", "--socket", sock)
	for _, want := range []string{"web-1", "all", "uid 0", "kernel upgrade", "never", "web-2", "192.0.2.7/32", "token ops", "(1h0m0s)"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = run("maintenance", "list", "--json", "--socket", sock)
	var got control.MaintenanceList
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil || len(got.Entries) != 2 || got.Entries[1].SetBy != "token ops" {
		t.Errorf("list --json: exit %d, %v:\n%s", code, err, out)
	}
	code, out, _ = run("maintenance", "--help")
	if code != 0 || !strings.Contains(out, "virtbgp maintenance on DOMAIN") || !strings.Contains(out, "virtbgp maintenance list") {
		t.Errorf("maintenance --help: exit %d:\n%s", code, out)
	}
	code, out, _ = run("maintenance", "on", "--help")
	if code != 0 || !strings.Contains(out, "--ip ADDRESS") || !strings.Contains(out, "--ttl DURATION") || !strings.Contains(out, "on-failure: depreference") {
		t.Errorf("maintenance on --help: exit %d:\n%s", code, out)
	}
}
