package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	lv "libvirt.org/go/libvirt"

	"github.com/virtbgp/virtbgp/mapping"
)

// testURI is libvirt's in-process test driver: every connection of this
// process shares its state while one is open.
const testURI = "test:///default"

// testDomain defines and starts a domain of its own on test:///default
// (persistent unless transient), with a connection that stays open until
// the test ends.
func testDomain(t *testing.T, transient bool) (*lv.Domain, string) {
	t.Helper()
	conn, err := lv.NewConnect(testURI)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = conn.Close() })
	name := fmt.Sprintf("vbgp-%s-%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), time.Now().UnixNano())
	xml := fmt.Sprintf("<domain type='test'><name>%s</name><memory>65536</memory><os><type>hvm</type></os></domain>", name)
	var dom *lv.Domain
	if transient {
		dom, err = conn.DomainCreateXML(xml, 0)
	} else if dom, err = conn.DomainDefineXML(xml); err == nil {
		err = dom.Create()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = dom.Destroy()
		if !transient {
			_ = dom.Undefine()
		}
		_ = dom.Free()
	})
	return dom, name
}

// metadataOf returns the element in the definition, "" if there is none.
func metadataOf(t *testing.T, dom *lv.Domain, impact lv.DomainModificationImpact) string {
	t.Helper()
	el, err := dom.GetMetadata(lv.DOMAIN_METADATA_ELEMENT, mapping.MetadataNS, impact)
	if lerr, ok := err.(lv.Error); ok && lerr.Code == lv.ERR_NO_DOMAIN_METADATA {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return el
}

func wantOutput(t *testing.T, what, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

func TestMetadataSetShowClear(t *testing.T) {
	dom, name := testDomain(t, false)
	base := []string{"--connect", testURI, "--domain", name}
	cmd := func(op string, args ...string) []string {
		return append(append([]string{"metadata", op}, base...), args...)
	}

	code, _, stderr := run(cmd("show")...)
	if code != 1 || !strings.Contains(stderr, "no virtbgp metadata in the current definition") {
		t.Fatalf("show without metadata: exit %d, stderr %q", code, stderr)
	}

	// Bad metadata is never written.
	code, stdout, stderr := run(cmd("set", `<vm med="x"><ip prefix="192.0.2.300"/></vm>`)...)
	if code != 1 || stdout != "" {
		t.Errorf("set of a bad element: exit %d, stdout %q", code, stdout)
	}
	wantOutput(t, "stderr", stderr, `element:1:5: virtbgp metadata: vm: med: want an integer`, `element:1:17: virtbgp metadata: ip[1]: prefix: invalid IP address "192.0.2.300"`, "element: 2 problem(s)")
	if el := metadataOf(t, dom, lv.DOMAIN_AFFECT_LIVE); el != "" {
		t.Fatalf("a bad element was written: %s", el)
	}

	// The prefixed form, which virDomainSetMetadata with the key virtbgp
	// refuses, is written in the canonical form, to both definitions.
	src := `<virtbgp:vm xmlns:virtbgp="` + mapping.MetadataNS + `" med="10"><virtbgp:ip prefix="192.0.2.80" med="20"/><virtbgp:ip prefix="2001:db8::80"/></virtbgp:vm>`
	canonical := "<vm med=\"10\">\n  <ip prefix=\"192.0.2.80\" med=\"20\"/>\n  <ip prefix=\"2001:db8::80\"/>\n</vm>"
	code, stdout, stderr = run(cmd("set", src)...)
	if code != 0 {
		t.Fatalf("set: exit %d: %s", code, stderr)
	}
	wantOutput(t, "stdout", stdout, "virtbgp metadata set in the live and persistent definitions (2 route(s))", canonical)
	for _, impact := range []lv.DomainModificationImpact{lv.DOMAIN_AFFECT_LIVE, lv.DOMAIN_AFFECT_CONFIG} {
		if el := metadataOf(t, dom, impact); strings.TrimSpace(el) != canonical {
			t.Errorf("metadata (impact %d) = %q, want %q", impact, el, canonical)
		}
	}
	// The whole domain XML has it in the namespace, which check reads.
	xml, err := dom.GetXMLDesc(0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(xml, `<virtbgp:vm xmlns:virtbgp="`+mapping.MetadataNS+`"`) {
		t.Errorf("domain XML:\n%s", xml)
	}
	if m, err := mapping.ParseMetadata(name, []byte(xml)); err != nil || len(m.Routes) != 2 {
		t.Errorf("ParseMetadata of the domain XML: %v, %v", m, err)
	}

	code, stdout, _ = run(cmd("show")...)
	if code != 0 || strings.TrimSpace(stdout) != canonical {
		t.Errorf("show: exit %d, %q", code, stdout)
	}
	code, stdout, _ = run(cmd("show", "--config", "--routes")...)
	if want := "192.0.2.80/32 next-hop self med 20\n2001:db8::80/128 next-hop self med 10\n"; code != 0 || stdout != want {
		t.Errorf("show --config --routes: exit %d, %q, want %q", code, stdout, want)
	}

	// --live alone leaves the persistent definition.
	file := filepath.Join(t.TempDir(), "vm.xml")
	if err := os.WriteFile(file, []byte(`<vm><ip prefix="198.51.100.7"/></vm>`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = run(cmd("set", "--live", "--file", file)...)
	if code != 0 || !strings.Contains(stdout, "set in the live definition (1 route(s))") {
		t.Fatalf("set --live --file: exit %d: %s%s", code, stdout, stderr)
	}
	if live, cfg := metadataOf(t, dom, lv.DOMAIN_AFFECT_LIVE), metadataOf(t, dom, lv.DOMAIN_AFFECT_CONFIG); !strings.Contains(live, "198.51.100.7") || strings.TrimSpace(cfg) != canonical {
		t.Errorf("after set --live: live %q, config %q", live, cfg)
	}

	code, stdout, stderr = run(cmd("clear")...)
	if code != 0 || !strings.Contains(stdout, "removed from the live and persistent definitions") {
		t.Fatalf("clear: exit %d: %s%s", code, stdout, stderr)
	}
	for _, impact := range []lv.DomainModificationImpact{lv.DOMAIN_AFFECT_LIVE, lv.DOMAIN_AFFECT_CONFIG} {
		if el := metadataOf(t, dom, impact); el != "" {
			t.Errorf("after clear (impact %d): %q", impact, el)
		}
	}
	if code, _, _ := run(cmd("clear", "--live")...); code != 0 {
		t.Errorf("clear of absent metadata: exit %d", code)
	}
}

// TestMetadataShowInvalid: what another tool wrote is shown, and its
// problems reported.
func TestMetadataShowInvalid(t *testing.T) {
	dom, name := testDomain(t, false)
	if err := dom.SetMetadata(lv.DOMAIN_METADATA_ELEMENT, `<vm colour="blue"><ip prefix="127.0.0.1"/></vm>`, mapping.MetadataKey, mapping.MetadataNS, lv.DOMAIN_AFFECT_LIVE); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := run("metadata", "show", "--connect", testURI, "--domain", name, "--live")
	if code != 1 || !strings.Contains(stdout, `colour="blue"`) {
		t.Errorf("show: exit %d, stdout %q", code, stdout)
	}
	wantOutput(t, "stderr", stderr, "domain "+name+" the live definition:1:5: virtbgp metadata: vm: unknown attribute \"colour\"",
		"ip[1]: prefix: 127.0.0.1 is a reserved address (loopback)")
}

func TestMetadataTransientDomain(t *testing.T) {
	dom, name := testDomain(t, true)
	uuid, err := dom.GetUUIDString()
	if err != nil {
		t.Fatal(err)
	}
	// By UUID; without flags, the live definition only: it has no other.
	code, stdout, stderr := run("metadata", "set", "--connect", testURI, "--domain", uuid, `<vm><ip prefix="192.0.2.9"/></vm>`)
	if code != 0 || !strings.Contains(stdout, "set in the live definition") {
		t.Fatalf("set: exit %d: %s%s", code, stdout, stderr)
	}
	code, _, stderr = run("metadata", "set", "--connect", testURI, "--domain", name, "--config", `<vm><ip prefix="192.0.2.9"/></vm>`)
	if code != 1 || !strings.Contains(stderr, "transient") {
		t.Errorf("set --config on a transient domain: exit %d, %q", code, stderr)
	}
}

func TestMetadataUsage(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"metadata"}, 2, "usage: virtbgp metadata"},
		{[]string{"metadata", "frob"}, 2, `unknown command "frob"`},
		{[]string{"metadata", "show"}, 2, "--domain is required"},
		{[]string{"metadata", "show", "--domain", "x", "--live", "--config"}, 2, "not both"},
		{[]string{"metadata", "set", "--domain", "x"}, 2, "one of them"},
		{[]string{"metadata", "set", "--domain", "x", "--file", "f", "<vm/>"}, 2, "one of them"},
		{[]string{"metadata", "set", "--domain", "x", "<vm>", "</vm>"}, 2, "quote the element"},
		{[]string{"metadata", "clear", "--domain", "x", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"metadata", "set", "--domain", "x", "--connect", testURI, "<domain/>"}, 1, "element: no virtbgp element"},
		{[]string{"metadata", "show", "--domain", "no-such-domain", "--connect", testURI}, 1, `domain "no-such-domain": Domain not found`},
	} {
		code, stdout, stderr := run(tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.stderr) {
			t.Errorf("%q: exit %d, stderr %q; want %d, %q (stdout %q)", tc.args, code, stderr, tc.code, tc.stderr, stdout)
		}
	}
	if code, stdout, _ := run("metadata", "set", "--help"); code != 0 || !strings.Contains(strings.Join(strings.Fields(stdout), " "), "--uri "+mapping.MetadataNS+" --key virtbgp") {
		t.Errorf("metadata set --help: exit %d, %q", code, stdout)
	}
}

func TestCheckDomainXML(t *testing.T) {
	td := filepath.Join("..", "..", "mapping", "testdata")
	domXML := filepath.Join(td, "domain-nova-virtbgp.xml")
	novaXML := filepath.Join(td, "nova", "test_config_metadata_flavor_extra_specs.xml")
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bad := write("bad.xml", "<domain>\n<metadata>\n<virtbgp:vm xmlns:virtbgp='"+mapping.MetadataNS+"' med='x'><virtbgp:ip prefix='10.0.0.1/8'/></virtbgp:vm>\n"+
		"<nova:instance xmlns:nova='"+mapping.NovaNS+"'><nova:ports><nova:port uuid='x'/></nova:ports></nova:instance>\n</metadata>\n</domain>\n")
	broken := write("broken.xml", "<domain><metadata></domain>")
	empty := write("empty.xml", "<domain><name>x</name></domain>")
	vm := write("vm.xml", `<vm><ip prefix="192.0.2.80"/><ip prefix="192.0.2.64/28"/></vm>`)
	checked := write("checked.xml", `<vm><health><check type="http" url="http://{ip}/health"/></health>`+
		`<ip prefix="192.0.2.80"/><ip prefix="192.0.2.81"><health><check type="exec" command="/bin/true"/></health></ip></vm>`)
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr []string
	}{{
		name: "a domain XML with both",
		args: []string{"check", "--domain-xml", domXML}, code: 0,
		stdout: []string{
			domXML + ": virtbgp metadata: ok (2 route(s))", "  192.0.2.80/32 next-hop self med 20 community [65001:100]",
			domXML + ": nova metadata (2 port(s); IP types fixed): ok (3 route(s))", "  fdf8:f53b:82e4::52/128 next-hop self",
			"  not announced: fe80::f95c:b030:7094/128: nova port 567a4527-b0e4-4d0a-bcc2-71fda37897f7, fixed IP: a reserved address (link-local)",
		},
	}, {
		name: "Nova's bare element, floating too, against allowed prefixes",
		args: []string{"check", "--domain-xml", novaXML, "--nova-ip-types", "fixed,floating", "--allowed-prefixes", "10.0.0.0/16, 192.168.0.0/16"}, code: 1,
		stdout: []string{novaXML + ": nova metadata (2 port(s); IP types fixed, floating): 2 route(s) allowed, 3 refused", "  10.0.0.1/32 next-hop self"},
		stderr: []string{novaXML + ": nova metadata: 1.2.3.4/32 refused: outside the prefixes allowed to this source"},
	}, {
		name: "a bare element; a /28 needs --min-prefix-length",
		args: []string{"check", "--domain-xml", vm, "--allowed-prefixes", "192.0.2.0/24"}, code: 1,
		stderr: []string{vm + ": virtbgp metadata: 192.0.2.64/28 refused: a /28, and this source may claim host routes (/32) only"},
	}, {
		name:   "with --min-prefix-length",
		args:   []string{"check", "--domain-xml", vm, "--allowed-prefixes", "192.0.2.0/24", "--min-prefix-length", "28,128"},
		code:   0,
		stdout: []string{vm + ": virtbgp metadata: ok (2 route(s))"},
	}, {
		name: "health checks, and a check the trust rules refuse",
		args: []string{"check", "--domain-xml", checked, "--allowed-prefixes", "192.0.2.0/24"}, code: 1,
		stdout: []string{checked + ": virtbgp metadata: 1 route(s) allowed, 1 refused", "  192.0.2.80/32 next-hop self checks [http] on-failure withdraw"},
		stderr: []string{checked + `: virtbgp metadata: 192.0.2.81/32 refused: health check "exec": exec checks are not allowed from metadata`},
	}, {
		name: "health checks without trust rules", args: []string{"check", "--domain-xml", checked}, code: 0,
		stdout: []string{checked + ": virtbgp metadata: ok (2 route(s))", "  192.0.2.81/32 next-hop self checks [exec] on-failure withdraw"},
	}, {
		name: "every problem of both, at line:column",
		args: []string{"check", "--domain-xml", bad}, code: 1,
		stderr: []string{
			bad + ":3:71: virtbgp metadata: vm: med: want an integer from 0 to 4294967295, got \"x\"",
			bad + ":3:91: virtbgp metadata: ip[1]: prefix: 10.0.0.1/8 has host bits set (the prefix is 10.0.0.0/8)",
			bad + ":4:96: nova metadata: port[1]: uuid: want a UUID",
			bad + ": 3 problem(s)",
		},
	}, {
		name: "a syntax error once", args: []string{"check", "--domain-xml", broken}, code: 1,
		stderr: []string{broken + ":1:28: virtbgp metadata: XML syntax error: element <metadata> closed by </domain>", broken + ": 1 problem(s)"},
	}, {
		name: "nothing to check", args: []string{"check", "--domain-xml", empty}, code: 1,
		stderr: []string{empty + ": no virtbgp metadata"},
	}, {
		name: "several files and the mapping", args: []string{"check", "--domain-xml", vm, "--domain-xml", domXML, "--mapping", "../../examples/mapping.yaml"}, code: 0,
		stdout: []string{vm + ": virtbgp metadata: ok", domXML + ": nova metadata", "mapping ../../examples/mapping.yaml: ok"},
	}, {
		name: "a bad allowed list", args: []string{"check", "--domain-xml", vm, "--allowed-prefixes", "0.0.0.0/0"}, code: 1,
		stderr: []string{"allowed: Prefixes[0]: 0.0.0.0/0 is too broad"},
	}, {
		name: "allowed prefixes without a file", args: []string{"check", "--allowed-prefixes", "192.0.2.0/24"}, code: 2,
		stderr: []string{"need --domain-xml"},
	}, {
		name: "a bad Nova type", args: []string{"check", "--domain-xml", vm, "--nova-ip-types", "float"}, code: 2,
		stderr: []string{`nova IP type "float"`},
	}, {
		name: "a missing file", args: []string{"check", "--domain-xml", filepath.Join(dir, "nope.xml")}, code: 1,
		stderr: []string{"nope.xml: read: open"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			wantOutput(t, "stdout", stdout, tc.stdout...)
			wantOutput(t, "stderr", stderr, tc.stderr...)
		})
	}
}
