package libvirt

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	lv "libvirt.org/go/libvirt"

	"github.com/virtbgp/virtbgp/internal/reconcile"
	"github.com/virtbgp/virtbgp/mapping"
)

// testMetaConfig reads both elements, with a community as the defaults of
// virtbgp's and a MED for Nova's fixed IPs.
func testMetaConfig() MetadataConfig {
	med := uint32(7)
	return MetadataConfig{
		Virtbgp:     true,
		Options:     mapping.MetadataOptions{Defaults: mapping.Attributes{Communities: []uint32{65001<<16 | 9}}},
		Nova:        true,
		NovaOptions: mapping.NovaOptions{Types: []string{mapping.NovaFixed}, Attributes: mapping.Attributes{MED: &med}},
	}
}

// claimPrefixes renders a domain's claims for comparison:
// "metadata: p p; nova: p" or "metadata error: ...".
func claimPrefixes(c *reconcile.Claims) string {
	if c == nil {
		return ""
	}
	var parts []string
	for _, x := range []struct {
		name string
		c    *reconcile.Claim
	}{{"metadata", c.Metadata}, {"nova", c.Nova}} {
		switch {
		case x.c == nil:
		case x.c.Err != "":
			parts = append(parts, x.name+" error")
		default:
			var ps []string
			for _, r := range x.c.Routes {
				ps = append(ps, r.Prefix.String())
			}
			parts = append(parts, x.name+": "+strings.Join(ps, " "))
		}
	}
	return strings.Join(parts, "; ")
}

// waitMetaHint reads hints until one for uuid with the event arrives.
func waitMetaHint(t *testing.T, a *Adapter, uuid, event string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case h := <-a.Hints():
			if h.UUID == uuid && h.Event == event {
				return
			}
		case <-timeout:
			t.Fatalf("no hint %q for %s within 5s", event, uuid)
		}
	}
}

// TestMetadataFromTestDriver sets and clears metadata on test:///default
// and checks what Domain and Domains give, that libvirt's METADATA_CHANGE
// event is a hint (and another namespace's is not), that an unrelated
// event costs no RPC, and that the started event reads again.
func TestMetadataFromTestDriver(t *testing.T) {
	a, _ := startAdapter(t, testURI, slog.LevelDebug, WithMetadata(testMetaConfig()))
	c := openConn(t, testURI)
	dom, err := c.DomainCreateXML(domainXML(uniqueName(t)), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dom.Free()
	defer dom.Destroy()
	uuid := strings.ToLower(domUUID(t, dom))
	waitHint(t, a, uuid, "Started Booted")
	ctx := context.Background()
	read := func(what, want string) {
		t.Helper()
		d, found, err := a.Domain(ctx, uuid)
		if err != nil || !found {
			t.Fatalf("%s: Domain: found %v, %v", what, found, err)
		}
		if got := claimPrefixes(d.Claims); got != want {
			t.Fatalf("%s: Domain claims %q, want %q", what, got, want)
		}
	}
	read("no metadata", "")

	set := func(xml, key, ns string) {
		t.Helper()
		if err := dom.SetMetadata(lv.DOMAIN_METADATA_ELEMENT, xml, key, ns, lv.DOMAIN_AFFECT_LIVE); err != nil {
			t.Fatalf("SetMetadata %s: %v", ns, err)
		}
	}
	set(`<vm med="10"><ip prefix="198.51.100.1"/><ip prefix="2001:db8::1"/></vm>`, mapping.MetadataKey, mapping.MetadataNS)
	waitMetaHint(t, a, uuid, "Metadata Changed")
	read("virtbgp element", "metadata: 198.51.100.1/32 2001:db8::1/128")
	d, _, _ := a.Domain(ctx, uuid)
	if r := d.Claims.Metadata.Routes[0]; r.MED == nil || *r.MED != 10 || len(r.Communities) != 1 || r.Communities[0] != 65001<<16|9 {
		t.Errorf("route %s: want med 10 and the defaults' community 65001:9", r)
	}

	// A cached read costs no RPC; an event that cannot change the
	// metadata keeps the cache.
	before := a.MetadataReads()
	read("cached", "metadata: 198.51.100.1/32 2001:db8::1/128")
	if err := dom.Suspend(); err != nil {
		t.Fatal(err)
	}
	waitHint(t, a, uuid, "Suspended Paused")
	if err := dom.Resume(); err != nil {
		t.Fatal(err)
	}
	waitHint(t, a, uuid, "Resumed Unpaused")
	read("after pause and resume", "metadata: 198.51.100.1/32 2001:db8::1/128")
	if n := a.MetadataReads() - before; n != 0 {
		t.Errorf("%d metadata reads for cached domains and unrelated events, want 0", n)
	}

	// Nova's element; another program's element is no hint.
	set(`<instance><ports><port uuid="567a4527-b0e4-4d0a-bcc2-71fda37897f7"><ip type="fixed" address="203.0.113.7" ipVersion="4"/><ip type="floating" address="203.0.113.8" ipVersion="4"/></port></ports></instance>`, "nova", mapping.NovaNS)
	waitMetaHint(t, a, uuid, "Metadata Changed")
	read("both elements", "metadata: 198.51.100.1/32 2001:db8::1/128; nova: 203.0.113.7/32")
	set(`<x/>`, "other", "https://example.com/other")
	set(`<vm><ip prefix="198.51.100.300"/></vm>`, mapping.MetadataKey, mapping.MetadataNS)
	// The next hint for this domain is the virtbgp change, not the other.
	waitHint(t, a, uuid, "Metadata Changed")
	read("a bad element", "metadata error; nova: 203.0.113.7/32")
	d, _, _ = a.Domain(ctx, uuid)
	if e := d.Claims.Metadata.Err; !strings.Contains(e, `domain "`+d.Name+`": virtbgp metadata:`) || !strings.Contains(e, "198.51.100.300") {
		t.Errorf("error %q: want the domain, the place and the value", e)
	}

	// Domains reads the same, and every active domain anew.
	before = a.MetadataReads()
	all, err := a.Domains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range all {
		if x.UUID == uuid && claimPrefixes(x.Claims) != "metadata error; nova: 203.0.113.7/32" {
			t.Errorf("Domains: claims %q", claimPrefixes(x.Claims))
		}
	}
	if a.MetadataReads() == before {
		t.Errorf("a full resync read no metadata")
	}

	// Removing the elements.
	for _, ns := range []string{mapping.MetadataNS, mapping.NovaNS} {
		if err := dom.SetMetadata(lv.DOMAIN_METADATA_ELEMENT, "", "", ns, lv.DOMAIN_AFFECT_LIVE); err != nil {
			t.Fatal(err)
		}
		waitHint(t, a, uuid, "Metadata Changed")
	}
	read("removed", "")
}

// TestMetadataOffReadsNothing: without WithMetadata no element is read.
func TestMetadataOffReadsNothing(t *testing.T) {
	a, _ := startAdapter(t, testURI, slog.LevelDebug)
	c := openConn(t, testURI)
	dom, err := c.DomainCreateXML(domainXML(uniqueName(t)), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dom.Free()
	defer dom.Destroy()
	if err := dom.SetMetadata(lv.DOMAIN_METADATA_ELEMENT, `<vm><ip prefix="198.51.100.1"/></vm>`, mapping.MetadataKey, mapping.MetadataNS, lv.DOMAIN_AFFECT_LIVE); err != nil {
		t.Fatal(err)
	}
	uuid := strings.ToLower(domUUID(t, dom))
	d, _, err := a.Domain(context.Background(), uuid)
	if err != nil || d.Claims != nil || a.MetadataReads() != 0 {
		t.Errorf("claims %+v, reads %d, err %v; want none", d.Claims, a.MetadataReads(), err)
	}
}

// TestMetadataReadOnlyWhenItCanChange: a start reads the live metadata
// (beside the state, internal/libvirt/domains.go); a stop reads the
// persistent definition's, once, and a plain boot then takes those and
// costs no read before its route, followed by one live read (a "Metadata
// Verify" hint); an edit while off is read at its hint; and `virsh
// create` of another XML over the shut-off domain, which libvirt reports
// as the same plain boot, is corrected by that live read.
func TestMetadataReadOnlyWhenItCanChange(t *testing.T) {
	a, _ := startAdapter(t, testURI, slog.LevelDebug, WithMetadata(testMetaConfig()))
	c := openConn(t, testURI)
	name := uniqueName(t)
	dom, err := c.DomainDefineXML(domainXML(name))
	if err != nil {
		t.Fatal(err)
	}
	defer dom.Free()
	defer func() { _ = dom.Undefine() }()
	setConfig := func(prefix string) {
		t.Helper()
		if err := dom.SetMetadata(lv.DOMAIN_METADATA_ELEMENT, `<vm><ip prefix="`+prefix+`"/></vm>`, mapping.MetadataKey, mapping.MetadataNS, lv.DOMAIN_AFFECT_CONFIG); err != nil {
			t.Fatal(err)
		}
	}
	setConfig("198.51.100.2")
	uuid := strings.ToLower(domUUID(t, dom))
	ctx := context.Background()
	// turn waits for the hint of event and reads the domain as the
	// reconciler does; both elements are read (virtbgp's and Nova's,
	// absent), so a read of a definition is 2 reads.
	turn := func(what, event, want string, wantReads uint64) {
		t.Helper()
		waitMetaHint(t, a, uuid, event)
		before := a.MetadataReads()
		d, found, err := a.Domain(ctx, uuid)
		if err != nil || !found {
			t.Fatalf("%s: Domain: found %v, %v", what, found, err)
		}
		if got := claimPrefixes(d.Claims); got != want {
			t.Errorf("%s: claims %q, want %q", what, got, want)
		}
		if n := a.MetadataReads() - before; n != wantReads {
			t.Errorf("%s: %d metadata reads, want %d", what, n, wantReads)
		}
	}
	do := func(f func() error) {
		t.Helper()
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	do(dom.Create)
	turn("first start (nothing cached)", "Started Booted", "metadata: 198.51.100.2/32", 2)
	do(dom.Destroy)
	turn("first stop (the persistent definition read)", "Stopped Destroyed", "", 2)
	for i := range 2 {
		do(dom.Create)
		turn(fmt.Sprintf("start %d", i+2), "Started Booted", "metadata: 198.51.100.2/32", 0)
		turn(fmt.Sprintf("start %d, verified", i+2), "Metadata Verify", "metadata: 198.51.100.2/32", 2)
		do(dom.Destroy)
		turn(fmt.Sprintf("stop %d", i+2), "Stopped Destroyed", "", 0)
	}

	// An edit of the persistent definition while off is read at its hint.
	setConfig("198.51.100.3")
	turn("edit while off", "Metadata Changed", "", 2)
	do(dom.Create)
	turn("start after the edit", "Started Booted", "metadata: 198.51.100.3/32", 0)
	turn("start after the edit, verified", "Metadata Verify", "metadata: 198.51.100.3/32", 2)
	do(dom.Destroy)
	turn("stop after the edit", "Stopped Destroyed", "", 0)

	// `virsh create` of an XML of its own over the shut-off domain.
	other, err := c.DomainCreateXML(fmt.Sprintf(`<domain type='test'><name>%s</name><uuid>%s</uuid><memory>65536</memory><os><type>hvm</type></os>`+
		`<metadata><vm xmlns="%s"><ip prefix="198.51.100.4"/></vm></metadata></domain>`, name, uuid, mapping.MetadataNS), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Free()
	turn("create over it", "Started Booted", "metadata: 198.51.100.3/32", 0)
	turn("create over it, verified", "Metadata Verify", "metadata: 198.51.100.4/32", 2)
	do(other.Destroy)
}

// TestMetadataResyncReadsShutOffDefinitions: a full resync (Domains) reads
// the persistent definition of a shut-off domain, so that its first plain
// boot after virtbgp started costs no read before its route.
func TestMetadataResyncReadsShutOffDefinitions(t *testing.T) {
	a, _ := startAdapter(t, testURI, slog.LevelDebug, WithMetadata(testMetaConfig()))
	c := openConn(t, testURI)
	dom, err := c.DomainDefineXML(domainXML(uniqueName(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer dom.Free()
	defer func() { _ = dom.Undefine() }()
	if err := dom.SetMetadata(lv.DOMAIN_METADATA_ELEMENT, `<vm><ip prefix="198.51.100.5"/></vm>`, mapping.MetadataKey, mapping.MetadataNS, lv.DOMAIN_AFFECT_CONFIG); err != nil {
		t.Fatal(err)
	}
	uuid := strings.ToLower(domUUID(t, dom))
	waitMetaHint(t, a, uuid, "Metadata Changed")
	ctx := context.Background()
	before := a.MetadataReads()
	if _, err := a.Domains(ctx); err != nil {
		t.Fatal(err)
	}
	if a.MetadataReads() == before {
		t.Fatal("the resync read no persistent definition")
	}
	if err := dom.Create(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = dom.Destroy() }()
	waitMetaHint(t, a, uuid, "Started Booted")
	before = a.MetadataReads()
	d, _, err := a.Domain(ctx, uuid)
	if err != nil {
		t.Fatal(err)
	}
	if got := claimPrefixes(d.Claims); got != "metadata: 198.51.100.5/32" {
		t.Errorf("claims %q after the boot", got)
	}
	if n := a.MetadataReads() - before; n != 0 {
		t.Errorf("the boot read %d elements before its route, want 0", n)
	}
}

// TestMetadataHealthFromTestDriver: the checks of virtbgp's element, and
// the operator's checks of Nova's routes, travel with the claims; an edit
// of the checks alone is a new claim (the cache does not keep the old
// one).
func TestMetadataHealthFromTestDriver(t *testing.T) {
	cfg := testMetaConfig()
	novaHealth := &mapping.Health{Checks: []mapping.Check{{Name: "agent", Kind: mapping.CheckAgent, Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1}}}
	cfg.NovaOptions.Health = novaHealth
	a, _ := startAdapter(t, testURI, slog.LevelDebug, WithMetadata(cfg))
	c := openConn(t, testURI)
	dom, err := c.DomainCreateXML(domainXML(uniqueName(t)), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dom.Free()
	defer dom.Destroy()
	uuid := strings.ToLower(domUUID(t, dom))
	waitHint(t, a, uuid, "Started Booted")
	ctx := context.Background()
	interval := func(ns, xml, key string) time.Duration {
		t.Helper()
		if err := dom.SetMetadata(lv.DOMAIN_METADATA_ELEMENT, xml, key, ns, lv.DOMAIN_AFFECT_LIVE); err != nil {
			t.Fatal(err)
		}
		waitMetaHint(t, a, uuid, "Metadata Changed")
		d, _, err := a.Domain(ctx, uuid)
		if err != nil {
			t.Fatal(err)
		}
		cl := d.Claims.Metadata
		if ns == mapping.NovaNS {
			cl = d.Claims.Nova
		}
		if cl == nil || cl.Err != "" || len(cl.Routes) != 1 {
			t.Fatalf("claims %+v", d.Claims)
		}
		h := cl.Health[cl.Routes[0].Prefix]
		if h == nil || len(h.Checks) != 1 {
			t.Fatalf("%s: health %+v, want one check", cl.Routes[0].Prefix, h)
		}
		return h.Checks[0].Interval
	}
	if got := interval(mapping.MetadataNS, `<vm><health><check type="tcp" address="{ip}:80" interval="2s"/></health><ip prefix="198.51.100.1"/></vm>`, mapping.MetadataKey); got != 2*time.Second {
		t.Errorf("interval %v, want 2s", got)
	}
	if got := interval(mapping.MetadataNS, `<vm><health><check type="tcp" address="{ip}:80" interval="3s"/></health><ip prefix="198.51.100.1"/></vm>`, mapping.MetadataKey); got != 3*time.Second {
		t.Errorf("after an edit of the check alone: interval %v, want 3s", got)
	}
	if err := dom.SetMetadata(lv.DOMAIN_METADATA_ELEMENT, "", "", mapping.MetadataNS, lv.DOMAIN_AFFECT_LIVE); err != nil {
		t.Fatal(err)
	}
	waitMetaHint(t, a, uuid, "Metadata Changed")
	if got := interval(mapping.NovaNS, `<instance><ports><port uuid="567a4527-b0e4-4d0a-bcc2-71fda37897f7"><ip type="fixed" address="203.0.113.7" ipVersion="4"/></port></ports></instance>`, "nova"); got != time.Second {
		t.Errorf("nova: interval %v, want the operator's 1s", got)
	}
}
