package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/internal/bgptest"
	"github.com/virtbgp/virtbgp/internal/libvirttest"
	"github.com/virtbgp/virtbgp/internal/testutil"
)

// TestLibvirtdRestart kills a real libvirtd under a running daemon: the
// routes stay announced while it is away; once a new libvirtd answers, the
// daemon reconnects and resyncs, so a guest that stopped and one that
// started during the gap both end up right.
func TestLibvirtdRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "libvirtd")
	lvd := libvirttest.Start(t, dir)
	lvd.WaitAnswering(t)
	// The test driver starts with one running domain, "test".
	const mappingText = `version: 1
vms:
  test: {ips: [192.0.2.70]}
  gone-in-gap: {ips: [192.0.2.72]}
`
	l := startLabURI(t, libvirttest.URI(dir), mappingText)
	gone := l.define(t, "gone-in-gap", "")
	do(t, "create", gone.Create())
	l.wantAll(t, "192.0.2.70/32", "192.0.2.72/32")
	test, err := l.lvconn.LookupDomainByName("test")
	if err != nil {
		t.Fatal(err)
	}
	do(t, "destroy test", test.Destroy())
	l.wantAll(t, "192.0.2.72/32")

	do(t, "kill libvirtd", lvd.Close()) // SIGKILL: a crash
	// Routes stay while libvirt is away. Once the daemon has noticed, a
	// pass of the reconciler (a mapping reload that gives gone-in-gap a
	// second address; Reload returns when the pass is done) keeps the
	// route it has and adds the new one, which reaches the ToRs after
	// anything sent before.
	testutil.WaitFor(t, 5*time.Second, "the daemon to notice that libvirtd is gone", func() bool {
		rep, err := l.d.Report(l.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return !rep.Libvirt.Connected
	})
	writeFile(t, filepath.Join(l.dir, "mapping.yaml"), strings.Replace(mappingText, "[192.0.2.72]", "[192.0.2.72, 192.0.2.73]", 1))
	if err := l.d.Reload(l.ctx); err != nil {
		t.Fatalf("reload while libvirt is away: %v", err)
	}
	l.wantAll(t, "192.0.2.72/32", "192.0.2.73/32")
	// A new libvirtd: fresh test-driver state, where "gone-in-gap" does not
	// exist and "test" runs, as if one guest stopped and one started during
	// the gap.
	lvd = libvirttest.Start(t, dir)
	answering := lvd.WaitAnswering(t)
	l.wantAll(t, "192.0.2.70/32")
	took := time.Since(answering)
	t.Logf("routes right %v after the new libvirtd answered", took.Round(time.Millisecond))
	// The reconnect backoff is capped at 1s, so an operator gets virtbgp
	// back within 2s of libvirtd answering; this is that contract, not a
	// speed figure.
	if took > 2*time.Second {
		t.Fatalf("virtbgp took %v after libvirtd answered to resync; the contract is 2s", took)
	}
}

// TestToRRestart restarts the eBGP ToR (a new router on the same address
// and port, with an empty RIB): the sessions come back and carry the full
// set again.
func TestToRRestart(t *testing.T) {
	l := startLab(t, e2eMapping)
	web := l.define(t, "e2e-web", "")
	do(t, "create", web.Create())
	all := []string{"192.0.2.10/32", "192.0.2.11/32", "2001:db8::10/128"}
	l.wantAll(t, all...)

	port := l.ebgp.Port
	l.ebgp.Stop()
	tor, err := bgptest.Start(l.ctx, bgptest.Config{ASN: torASN, RouterID: "10.255.0.1", Listen: []string{"127.0.0.1", "::1"}, Port: port, Log: logger(t)},
		bgptest.Neighbor{Address: v4, ASN: ourASN, Families: []string{"ipv4"}},
		bgptest.Neighbor{Address: v6, ASN: ourASN, Families: []string{"ipv6"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tor.Stop)
	l.ebgp = tor
	start := time.Now()
	// virtbgp adds the idle peer again at once; GoBGP dials 1-2 s later.
	testutil.Eventually(t, 40*time.Second, func() string {
		if best := l.best(t, tor); len(best) != len(all) {
			return fmt.Sprintf("restarted ToR has %d routes, want %d", len(best), len(all))
		}
		return ""
	})
	t.Logf("full set back on the restarted ToR after %v", time.Since(start).Round(time.Millisecond))
	l.wantAll(t, all...)
}
