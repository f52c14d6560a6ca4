package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	lv "libvirt.org/go/libvirt"

	"github.com/virtbgp/virtbgp/internal/bgptest"
	"github.com/virtbgp/virtbgp/internal/config"
	"github.com/virtbgp/virtbgp/internal/status"
	vbtest "github.com/virtbgp/virtbgp/internal/testutil"
	"github.com/virtbgp/virtbgp/mapping"
)

// metaMapping maps the test driver's domain "test" and pins db-01's
// 192.0.2.20 to a UUID no domain has.
const metaMapping = `version: 1
vms:
  test:
    ips: [192.0.2.10]
  db-01:
    uuid: 11111111-2222-3333-4444-555555555555
    ips: [192.0.2.20]
`

// metaLab is a daemon on test:///default with metadata and Nova enabled,
// peering with an in-process ToR over IPv4.
type metaLab struct {
	d    *Daemon
	tor  *bgptest.ToR
	conn *lv.Connect
	logs *vbtest.SyncBuffer
	ctx  context.Context
	dir  string
}

func startMetaLab(t *testing.T, mappingText string) *metaLab {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	l := &metaLab{ctx: ctx, dir: t.TempDir()}
	l.tor = bgptest.MustStart(t, bgptest.Config{ASN: 65000, RouterID: "10.255.0.1", Listen: []string{"127.0.0.1"}},
		bgptest.Neighbor{Address: netip.MustParseAddr("127.0.0.1"), ASN: 65001, Families: []string{"ipv4"}})
	path := ""
	if mappingText != "" {
		writeTestFile(t, filepath.Join(l.dir, "mapping.yaml"), mappingText)
		path = "path: mapping.yaml"
	}
	cp := filepath.Join(l.dir, "virtbgp.yaml")
	writeTestFile(t, cp, fmt.Sprintf(`version: 1
libvirt: {uri: "test:///default"}
bgp:
  asn: 65001
  router-id: 192.0.2.1
  peers:
    - {address: 127.0.0.1, port: %d, asn: 65000, families: [ipv4]}
mapping:
  %s
  watch: false
  metadata:
    enabled: true
    allowed-prefixes: [198.51.100.0/24, 192.0.2.0/24]
    defaults: {communities: ["65001:300"]}
  nova:
    enabled: true
    allowed-prefixes: [192.168.0.0/16, 10.0.0.0/16]
    attributes: {med: 20}
resync-interval: 0
state-dir: state
control: {socket: control.sock}
`, l.tor.Port, path))
	cfg, err := config.Load(cp)
	if err != nil {
		t.Fatal(err)
	}
	var m *mapping.Mapping
	if cfg.Mapping.Path != "" {
		if m, err = mapping.Load(cfg.Mapping.Path); err != nil {
			t.Fatal(err)
		}
	}
	log, logs := vbtest.Logger()
	l.logs = logs
	l.d, err = New(cfg, m, log, Options{StopBGP: true})
	if err != nil {
		t.Fatal(err)
	}
	status.NewServer("127.0.0.1:0", l.d.Report, l.d.metrics, log) // gives the metrics their source
	done := make(chan error, 1)
	go func() { done <- l.d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := l.tor.WaitEstablished(wctx, netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	l.conn, err = lv.NewConnect("test:///default")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.conn.Close() })
	return l
}

// create starts a transient test-driver domain with the given <metadata>
// content; it is destroyed at cleanup.
func (l *metaLab) create(t *testing.T, name, metadata string) *lv.Domain {
	t.Helper()
	x := "<domain type='test'><name>" + name + "</name><memory>65536</memory><os><type>hvm</type></os>"
	if metadata != "" {
		x += "<metadata>" + metadata + "</metadata>"
	}
	d, err := l.conn.DomainCreateXML(x+"</domain>", 0)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	t.Cleanup(func() { _ = d.Destroy(); _ = d.Free() })
	return d
}

// rib waits until the ToR's best paths are exactly want (prefix -> a
// description: "med N" or "" for none), and returns them.
func (l *metaLab) rib(t *testing.T, want map[string]string) map[netip.Prefix]bgptest.Path {
	t.Helper()
	var best map[netip.Prefix]bgptest.Path
	vbtest.Eventually(t, 10*time.Second, func() string {
		var err error
		best, err = l.tor.Best(l.ctx)
		if err != nil {
			return err.Error()
		}
		got := map[string]string{}
		for p, path := range best {
			got[p.String()] = ""
			if path.MED != nil {
				got[p.String()] = fmt.Sprintf("med %d", *path.MED)
			}
		}
		if len(got) != len(want) {
			return fmt.Sprintf("ToR has %v, want %v", got, want)
		}
		for p, w := range want {
			if g, ok := got[p]; !ok || g != w {
				return fmt.Sprintf("ToR has %v, want %v", got, want)
			}
		}
		return ""
	})
	return best
}

// domain returns the status of the named domain, waiting until the report
// has it.
func (l *metaLab) domain(t *testing.T, name string) status.Domain {
	t.Helper()
	var dom status.Domain
	vbtest.Eventually(t, 10*time.Second, func() string {
		r, err := l.d.Report(l.ctx)
		if err != nil {
			return err.Error()
		}
		for _, d := range r.Domains {
			if d.Name == name {
				dom = d
				return ""
			}
		}
		return "no domain " + name + " in the report"
	})
	return dom
}

func (l *metaLab) updates(t *testing.T) uint64 {
	t.Helper()
	n, err := l.tor.UpdatesReceived(l.ctx, netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// metric returns the value of the series name{source="metadata"}.
func (l *metaLab) metric(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := l.d.metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "source" && lp.GetValue() == "metadata" {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no series %s{source=\"metadata\"}", name)
	return 0
}

const virtbgpElement = `<virtbgp:vm xmlns:virtbgp="https://virtbgp.github.io/xmlns/virtbgp/1" med="10"><virtbgp:ip prefix="198.51.100.1"/></virtbgp:vm>`

// TestMetadataEndToEnd runs the daemon on test:///default with metadata and
// Nova on, and a ToR: a domain with only virtbgp metadata is announced; a
// live edit of the element is one UPDATE at the ToR; a malformed element is
// an error in the log, the status and the metrics and touches no other
// domain; a claim outside the allowed prefixes and one on the file's prefix
// are refused; a Nova domain is announced as the config says; the file wins
// over metadata for the domain it maps; clearing the element withdraws.
func TestMetadataEndToEnd(t *testing.T) {
	l := startMetaLab(t, metaMapping)
	suffix := fmt.Sprintf("-%d", time.Now().UnixNano())
	rib := map[string]string{"192.0.2.10/32": ""}
	l.rib(t, rib)

	// Only virtbgp metadata.
	m1 := l.create(t, "meta1"+suffix, virtbgpElement)
	rib["198.51.100.1/32"] = "med 10"
	best := l.rib(t, rib)
	if c := best[netip.MustParsePrefix("198.51.100.1/32")].Communities; !slices.Equal(c, []uint32{65001<<16 | 300}) {
		t.Errorf("communities %v, want the config's defaults 65001:300", c)
	}
	if d := l.domain(t, "meta1"+suffix); d.Source != status.SourceMetadata || d.Origin != mapping.MetadataNS || d.Routes != 1 || d.Problem != "" {
		t.Errorf("status of meta1: %+v; want source metadata, origin the namespace, 1 route, no problem", d)
	}

	// A live edit is one UPDATE.
	before := l.updates(t)
	if err := m1.SetMetadata(lv.DOMAIN_METADATA_ELEMENT, `<vm med="11"><ip prefix="198.51.100.1"/></vm>`,
		mapping.MetadataKey, mapping.MetadataNS, lv.DOMAIN_AFFECT_LIVE); err != nil {
		t.Fatal(err)
	}
	rib["198.51.100.1/32"] = "med 11"
	l.rib(t, rib)
	l.domain(t, "meta1"+suffix) // a pass after the edit
	if n := l.updates(t) - before; n != 1 {
		t.Errorf("the live edit sent %d UPDATEs, want 1", n)
	}

	// A malformed element: an error, nothing else moves.
	before = l.updates(t)
	l.create(t, "meta2"+suffix, `<virtbgp:vm xmlns:virtbgp="https://virtbgp.github.io/xmlns/virtbgp/1" med="-1"><virtbgp:ip prefix="198.51.100.2"/></virtbgp:vm>`)
	vbtest.Eventually(t, 10*time.Second, func() string {
		if d := l.domain(t, "meta2"+suffix); d.Problem != status.ProblemMetadataError || !strings.Contains(d.MetadataError, `med: want an integer from 0 to 4294967295, got "-1"`) {
			return fmt.Sprintf("status of meta2: %+v", d)
		}
		return ""
	})
	if !strings.Contains(l.logs.String(), `msg="domain metadata rejected" part=reconcile domain=meta2`+suffix) {
		t.Errorf("no rejection logged:\n%s", l.logs)
	}
	if v := l.metric(t, "virtbgp_metadata_errors"); v != 1 {
		t.Errorf("virtbgp_metadata_errors{source=metadata} = %v, want 1", v)
	}
	l.rib(t, rib)
	if n := l.updates(t) - before; n != 0 {
		t.Errorf("a bad element elsewhere sent %d UPDATEs, want 0", n)
	}

	// Claims outside the allowed prefixes and on the file's prefix.
	l.create(t, "meta3"+suffix, `<virtbgp:vm xmlns:virtbgp="https://virtbgp.github.io/xmlns/virtbgp/1"><virtbgp:ip prefix="203.0.113.9"/><virtbgp:ip prefix="192.0.2.20"/><virtbgp:ip prefix="198.51.100.3"/></virtbgp:vm>`)
	rib["198.51.100.3/32"] = ""
	l.rib(t, rib)
	d := l.domain(t, "meta3"+suffix)
	reasons := map[string]string{}
	for _, r := range d.Refused {
		reasons[r.Prefix] = r.Reason
	}
	if d.Problem != status.ProblemClaimsRefused || reasons["203.0.113.9/32"] != "outside the prefixes allowed to this source" ||
		reasons["192.0.2.20/32"] != `the mapping file gives this prefix to "db-01"` {
		t.Errorf("status of meta3: %+v", d)
	}
	if v := l.metric(t, "virtbgp_claims_refused"); v != 2 {
		t.Errorf("virtbgp_claims_refused{source=metadata} = %v, want 2", v)
	}
	if !strings.Contains(l.logs.String(), `msg="route claim refused" part=reconcile domain=meta3`+suffix) {
		t.Errorf("no refusal logged:\n%s", l.logs)
	}

	// Nova's element as Nova writes it: the fixed IPv4 addresses, with the
	// config's MED; the IPv6 ones are refused (link-local; outside the pools).
	nova, err := os.ReadFile("../../mapping/testdata/nova/test_config_metadata_flavor_extra_specs.xml")
	if err != nil {
		t.Fatal(err)
	}
	l.create(t, "nova1"+suffix, string(nova))
	rib["192.168.1.1/32"], rib["10.0.0.1/32"] = "med 20", "med 20"
	l.rib(t, rib)
	if d := l.domain(t, "nova1"+suffix); d.Source != status.SourceNova || d.Origin != mapping.NovaNS || d.Routes != 2 || len(d.Refused) != 2 {
		t.Errorf("status of nova1: %+v; want source nova, 2 routes, 2 refused", d)
	}

	// The file maps "test": its metadata is ignored.
	test, err := l.conn.LookupDomainByName("test")
	if err != nil {
		t.Fatal(err)
	}
	defer test.Free()
	if err := test.SetMetadata(lv.DOMAIN_METADATA_ELEMENT, `<vm><ip prefix="198.51.100.99"/></vm>`, mapping.MetadataKey, mapping.MetadataNS, lv.DOMAIN_AFFECT_LIVE); err != nil {
		t.Fatal(err)
	}
	defer test.SetMetadata(lv.DOMAIN_METADATA_ELEMENT, "", "", mapping.MetadataNS, lv.DOMAIN_AFFECT_LIVE)
	vbtest.Eventually(t, 10*time.Second, func() string {
		if d := l.domain(t, "test"); d.Source != status.SourceFile || d.Ignored != status.SourceMetadata || d.Routes != 1 {
			return fmt.Sprintf("status of test: %+v; want source file, metadata ignored", d)
		}
		return ""
	})
	l.rib(t, rib)

	// Clearing the element withdraws.
	if err := m1.SetMetadata(lv.DOMAIN_METADATA_ELEMENT, "", "", mapping.MetadataNS, lv.DOMAIN_AFFECT_LIVE); err != nil {
		t.Fatal(err)
	}
	delete(rib, "198.51.100.1/32")
	l.rib(t, rib)
	if !strings.Contains(l.logs.String(), `msg="route withdrawn" part=reconcile domain=meta1`+suffix+` vm="" prefix=198.51.100.1/32 action=withdraw reason=unclaimed`) {
		t.Errorf("withdrawal not logged:\n%s", l.logs)
	}
}

// TestMetadataWithoutFile: with no mapping file, a domain's metadata is
// announced and a reload says there is no file.
func TestMetadataWithoutFile(t *testing.T) {
	l := startMetaLab(t, "")
	name := fmt.Sprintf("meta-nofile-%d", time.Now().UnixNano())
	l.create(t, name, virtbgpElement)
	l.rib(t, map[string]string{"198.51.100.1/32": "med 10"})
	if err := l.d.Reload(l.ctx); err != nil {
		t.Errorf("reload without a file: %v", err)
	}
	if d := l.domain(t, "test"); d.Source != "" || d.Routes != 0 {
		t.Errorf("status of test: %+v; want nothing", d)
	}
}
