package status

import (
	"bytes"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/internal/health"
	"github.com/virtbgp/virtbgp/internal/reconcile"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func TestWriteTableGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Report
	}{
		{"table", sampleReport()},
		{"table_fresh", freshReport()},
		{"table_not_carried", notCarriedReport()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteTable(&buf, tc.r); err != nil {
				t.Fatalf("WriteTable: %v", err)
			}
			golden := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got := buf.String(); got != string(want) {
				t.Errorf("WriteTable output differs from %s (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
			for i, line := range strings.Split(buf.String(), "\n") {
				if strings.TrimRight(line, " \t") != line {
					t.Errorf("line %d has trailing blanks: %q", i+1, line)
				}
			}
		})
	}
}

// The table does not depend on the order of the Report's slices.
func TestWriteTableSorted(t *testing.T) {
	r := sampleReport()
	var a, b bytes.Buffer
	if err := WriteTable(&a, r); err != nil {
		t.Fatal(err)
	}
	for _, s := range [][]int{{0, 2}, {1, 3}} {
		r.Routes[s[0]], r.Routes[s[1]] = r.Routes[s[1]], r.Routes[s[0]]
	}
	r.Peers[0], r.Peers[2] = r.Peers[2], r.Peers[0]
	r.Domains[0], r.Domains[4] = r.Domains[4], r.Domains[0]
	if err := WriteTable(&b, r); err != nil {
		t.Fatal(err)
	}
	if a.String() != b.String() {
		t.Errorf("output depends on input order:\n%s\nvs\n%s", a.String(), b.String())
	}
}

type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n--; w.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestWriteTableWriteError(t *testing.T) {
	for n := range 4 {
		err := WriteTable(&failingWriter{n: n}, sampleReport())
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("after %d good writes: err = %v, want the write error", n, err)
		}
	}
}

func TestFmtDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:                         "0s",
		0:                                    "0s",
		5*time.Second + 900*time.Millisecond: "5s",
		12*time.Minute + 5*time.Second:       "12m5s",
		4*time.Hour + 12*time.Minute + 5*time.Second:  "4h12m5s",
		76*time.Hour + 12*time.Minute + 5*time.Second: "3d4h12m",
	} {
		if got := fmtDuration(d); got != want {
			t.Errorf("fmtDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// The table shows a held reload, a lost watch and the problems status
// left out.
func TestWriteTableReloadHardening(t *testing.T) {
	r := sampleReport()
	r.Mapping.LastReload = Reload{At: at(10, 0, 0), Errors: []string{"m.yaml:3: bad"}, MoreErrors: 41}
	r.Mapping.Held = &HeldReload{Since: at(10, 1, 0), Withdraw: 180, Announced: 200, ApplyAt: at(10, 11, 0)}
	r.Mapping.Watch = Watch{State: "polling", Error: "watch /etc/virtbgp/m.d: no such file or directory"}
	var buf bytes.Buffer
	if err := WriteTable(&buf, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"FAILED, generation 7 stays in force (42 problems)",
		"would withdraw 180 of 200 announced routes; confirm with `virtbgp reload --force`, or applied at",
		"Mapping watch:",
		"polling: watch /etc/virtbgp/m.d: no such file or directory",
		"  m.yaml:3: bad\n  ... and 41 more\n",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestWriteTableHealth(t *testing.T) {
	now := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	r := Report{Time: now, Health: []health.CheckStatus{{
		Domain: "web-01", IP: netip.MustParseAddr("192.0.2.10"), Check: "http", Type: "http", State: "down",
		Since: now.Add(-90 * time.Second), Reason: "status 503, want 200",
		Last: &health.ResultStatus{Outcome: "fail", Detail: "status 503, want 200", At: now.Add(-time.Second)},
	}}}
	var b strings.Builder
	if err := WriteTable(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"Health checks (1)", "web-01", "192.0.2.10", "down", "1m30s ago", "status 503, want 200", "fail 1s ago"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if out2 := func() string { var b strings.Builder; _ = WriteTable(&b, Report{Time: now}); return b.String() }(); strings.Contains(out2, "Health checks") {
		t.Errorf("a report without checks has a health section:\n%s", out2)
	}
}

// notCarriedReport is a host whose one peer carries IPv4 only: its IPv6
// route is announced but sent to no peer, and the table says so.
func notCarriedReport() Report {
	r := freshReport()
	r.Ready = true
	r.Libvirt.Connected = true
	r.Drain = Drain{State: reconcile.DrainNone}
	r.Peers = []Peer{{Address: "198.18.0.1", ASN: 65000, State: "established", Since: at(13, 0, 0), RoutesSent: 1,
		Families: []string{"ipv4"}, RoutesSentByFamily: map[string]int{"ipv4": 1}, UpdatesSent: 1, GracefulRestart: "llgr"}}
	r.Routes = []Route{
		{Prefix: "192.0.2.60/32", NextHop: "self", Domain: "dual", VM: "dual", Why: "running"},
		{Prefix: "2001:db8:60::60/128", NextHop: "self", Domain: "dual", VM: "dual", Why: "running", NotCarried: "no peer carries ipv6"},
	}
	return r
}

// TestWriteTableUnnumberedPeer: an unnumbered peer waiting for its
// neighbour is listed by interface with why in "Last down"; once resolved,
// by its link-local address with the zone.
func TestWriteTableUnnumberedPeer(t *testing.T) {
	r := freshReport()
	r.Peers = []Peer{
		{Interface: "eth1", Waiting: "no IPv6 link-local neighbour on eth1 yet", ASN: 65000, State: "idle", Families: []string{"ipv4", "ipv6"}},
		{Address: "fe80::1%eth2", Interface: "eth2", ASN: 65000, State: "idle", Families: []string{"ipv4", "ipv6"}},
	}
	var b strings.Builder
	if err := WriteTable(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"interface eth1", "waiting: no IPv6 link-local neighbour on eth1 yet", "fe80::1%eth2"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table has no %q:\n%s", want, b.String())
		}
	}
}
