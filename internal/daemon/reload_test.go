package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/internal/config"
	"github.com/virtbgp/virtbgp/internal/status"
	vbtest "github.com/virtbgp/virtbgp/internal/testutil"
	"github.com/virtbgp/virtbgp/mapping"
)

// reloadMapping maps the test driver's running domain "test" (line 3).
const reloadMapping = `version: 1
vms:
  test:
    med: 10
    ips: [192.0.2.10, "2001:db8::10"]
  other:
    ips: [192.0.2.20]
`

// The same content laid out otherwise: "test" now at line 6.
const reloadRelaid = `version: 1
# the same VMs and routes, in another order
vms:
  other:
    ips: [{prefix: 192.0.2.20}]
  test:
    ips:
      - "2001:db8::10"
      - {prefix: 192.0.2.10, med: 10}
    med: 10
`

// startTestDaemon runs a daemon on libvirt's test driver (its domain
// "test" runs), without BGP peers, with the mapping text and mapping.watch
// off; it returns once the first sync is done. The daemon's metrics read
// their state from it as the status endpoint makes them.
func startTestDaemon(t *testing.T, mappingText string) (*Daemon, string, *vbtest.SyncBuffer) {
	t.Helper()
	return startTestDaemonBGP(t, mappingText, "{asn: 65001, router-id: 192.0.2.1, peers: []}")
}

// startTestDaemonBGP is startTestDaemon with bgpYAML as the bgp section.
func startTestDaemonBGP(t *testing.T, mappingText, bgpYAML string) (*Daemon, string, *vbtest.SyncBuffer) {
	t.Helper()
	dir := t.TempDir()
	mp := filepath.Join(dir, "mapping.yaml")
	writeTestFile(t, mp, mappingText)
	cp := filepath.Join(dir, "virtbgp.yaml")
	writeTestFile(t, cp, `version: 1
libvirt: {uri: "test:///default"}
bgp: `+bgpYAML+`
mapping: {path: mapping.yaml, watch: false}
resync-interval: 0
state-dir: state
control: {socket: control.sock}
`)
	cfg, err := config.Load(cp)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mapping.Load(cfg.Mapping.Path)
	if err != nil {
		t.Fatal(err)
	}
	log, logs := vbtest.Logger()
	d, err := New(cfg, m, log, Options{StopBGP: true})
	if err != nil {
		t.Fatal(err)
	}
	status.NewServer("127.0.0.1:0", d.Report, d.metrics, log) // not started: it gives the metrics their source
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-d.Reconciler().Synced():
	case err := <-done:
		t.Fatalf("daemon ended before its first sync: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no first sync within 30s")
	}
	return d, mp, logs
}

func writeTestFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// reportOf returns the daemon's report, the domain "test" in it, and the
// metrics' mapping_info and mapping_generation series as text.
func reportOf(t *testing.T, d *Daemon) (status.Report, status.Domain, string) {
	t.Helper()
	r, err := d.Report(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var dom status.Domain
	for _, x := range r.Domains {
		if x.Name == "test" {
			dom = x
		}
	}
	var metrics strings.Builder
	mfs, err := d.metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if n := mf.GetName(); n == "virtbgp_mapping_info" || n == "virtbgp_mapping_generation" {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					fmt.Fprintf(&metrics, "%s{%s=%q} ", n, l.GetName(), l.GetValue())
				}
				if len(m.GetLabel()) == 0 {
					fmt.Fprintf(&metrics, "%s ", n)
				}
				fmt.Fprintf(&metrics, "%g\n", m.GetGauge().GetValue())
			}
		}
	}
	return r, dom, metrics.String()
}

// TestReloadGenerationFollowsContent: a reload of the same files, or of
// the same content laid out otherwise, keeps the generation and the
// digest (and shows the entries' new lines); a reload that changes what is
// announced is the next generation, with a new digest. The metrics export
// the digest in force as virtbgp_mapping_info.
func TestReloadGenerationFollowsContent(t *testing.T) {
	d, mp, logs := startTestDaemon(t, reloadMapping)
	ctx := context.Background()
	r, dom, metrics := reportOf(t, d)
	digest := r.Mapping.Digest
	if r.Mapping.Generation != 1 || len(digest) != 64 {
		t.Fatalf("at start: generation %d digest %q", r.Mapping.Generation, digest)
	}
	wantMetrics := func(gen int, digest string) string {
		return fmt.Sprintf("virtbgp_mapping_generation %d\nvirtbgp_mapping_info{digest=%q} 1\n", gen, digest)
	}
	if metrics != wantMetrics(1, digest) {
		t.Errorf("at start the metrics say\n%s\nwant\n%s", metrics, wantMetrics(1, digest))
	}
	if dom.Source != status.SourceFile || dom.Origin != mp+":3" || dom.VM != "test" || dom.Routes != 2 {
		t.Errorf("domain test: source %q origin %q vm %q routes %d; want file %s:3, vm test, 2 routes", dom.Source, dom.Origin, dom.VM, dom.Routes, mp)
	}

	for _, step := range []struct {
		name, text string
		gen        int
		same       bool
		line       int
	}{
		{"the same files (SIGHUP)", reloadMapping, 1, true, 3},
		{"the same content laid out otherwise", reloadRelaid, 1, true, 6},
		{"a MED edit", strings.Replace(reloadMapping, "med: 10", "med: 11", 1), 2, false, 3},
		{"the same again after the edit", strings.Replace(reloadMapping, "med: 10", "med: 11", 1), 2, true, 3},
	} {
		writeTestFile(t, mp, step.text)
		sameContent := fmt.Sprintf(`msg="mapping reloaded" generation=%d new_generation=false`, step.gen)
		before := strings.Count(logs.String(), sameContent)
		if err := d.Reload(ctx); err != nil {
			t.Fatalf("%s: reload: %v", step.name, err)
		}
		r, dom, metrics = reportOf(t, d)
		if r.Mapping.Generation != step.gen || (r.Mapping.Digest == digest) != step.same || !r.Mapping.LastReload.OK {
			t.Errorf("%s: generation %d, digest %s (was %s), last reload ok %v; want generation %d, same digest %v",
				step.name, r.Mapping.Generation, r.Mapping.Digest, digest, r.Mapping.LastReload.OK, step.gen, step.same)
		}
		if want := wantMetrics(step.gen, r.Mapping.Digest); metrics != want {
			t.Errorf("%s: the metrics say\n%s\nwant\n%s", step.name, metrics, want)
		}
		if want := fmt.Sprintf("%s:%d", mp, step.line); dom.Origin != want {
			t.Errorf("%s: origin of test = %q, want %q", step.name, dom.Origin, want)
		}
		if logged := strings.Count(logs.String(), sameContent) > before; logged != step.same {
			t.Errorf("%s: logged %q: %v, want %v", step.name, sameContent, logged, step.same)
		}
		digest = r.Mapping.Digest
	}
}
