package health

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/mapping"
)

// TestProbes runs each kind of probe against real servers and programs on
// the loopback: passes, failures with their reason, and checks that cannot
// run.
func TestProbes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte("all ok"))
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	dir := t.TempDir()
	maint := filepath.Join(dir, "maint")
	script := filepath.Join(dir, "check.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n[ \"$VIRTBGP_IP\" = 127.0.0.1 ] && [ \"$VIRTBGP_VM\" = web ] && [ -n \"$VIRTBGP_UUID\" ] && exit 0\necho \"bad env $VIRTBGP_IP\"; exit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("127.0.0.1")
	url := "http://{ip}:" + itoa(port)
	tests := []struct {
		name    string
		check   mapping.Check
		ip      netip.Addr
		outcome Outcome
		detail  string // a substring of the detail
	}{
		{"tcp open", mapping.Check{Kind: mapping.CheckTCP, Address: "{ip}:" + itoa(port)}, ip, Pass, "ok"},
		{"tcp closed", mapping.Check{Kind: mapping.CheckTCP, Address: closedAddr}, ip, Fail, "connection refused"},
		{"tcp {ip} of the other family", mapping.Check{Kind: mapping.CheckTCP, Address: "{ip}:80"}, netip.Addr{}, CannotRun, "cannot run"},
		{"http ok with body", mapping.Check{Kind: mapping.CheckHTTP, URL: url + "/ok", Status: 200, Body: "ok"}, ip, Pass, "ok"},
		{"http body missing", mapping.Check{Kind: mapping.CheckHTTP, URL: url + "/ok", Status: 200, Body: "ready"}, ip, Fail, `body lacks "ready"`},
		{"http status", mapping.Check{Kind: mapping.CheckHTTP, URL: url + "/down", Status: 200}, ip, Fail, "status 503, want 200"},
		{"http expected 503", mapping.Check{Kind: mapping.CheckHTTP, URL: url + "/down", Status: 503}, ip, Pass, "ok"},
		{"http timeout", mapping.Check{Kind: mapping.CheckHTTP, URL: url + "/slow", Status: 200}, ip, Fail, "timeout after 100ms"},
		{"http refused", mapping.Check{Kind: mapping.CheckHTTP, URL: "http://" + closedAddr + "/", Status: 200}, ip, Fail, "connection refused"},
		{"exec pass with env", mapping.Check{Kind: mapping.CheckExec, Command: []string{script}}, ip, Pass, "ok"},
		{"exec fail", mapping.Check{Kind: mapping.CheckExec, Command: []string{script}}, netip.MustParseAddr("127.0.0.2"), Fail, "exit status 3: bad env 127.0.0.2"},
		{"exec timeout kills", mapping.Check{Kind: mapping.CheckExec, Command: []string{"/bin/sleep", "10"}}, ip, Fail, "timeout after 100ms"},
		{"exec missing program", mapping.Check{Kind: mapping.CheckExec, Command: []string{"/nonexistent/check"}}, ip, CannotRun, "no such file"},
		{"agent without libvirt", mapping.Check{Kind: mapping.CheckAgent}, ip, CannotRun, "no libvirt connection"},
		{"maintenance", mapping.Check{Kind: mapping.CheckTCP, Address: "{ip}:" + itoa(port), Maintenance: maint}, ip, InMaintenance, "maintenance file"},
	}
	if err := os.WriteFile(maint, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	m := New(Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check.Timeout = 100 * time.Millisecond
			start := time.Now()
			var hc httpConn
			defer hc.close()
			r := m.run(context.Background(), &target{uuid: "u", domain: "web", vm: "web", ip: tt.ip, check: tt.check}, &hc)
			if r.Outcome != tt.outcome || !strings.Contains(r.Detail, tt.detail) {
				t.Errorf("run = %v %q, want %v with %q", r.Outcome, r.Detail, tt.outcome, tt.detail)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("the probe took %v (timeout 100ms)", took)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
