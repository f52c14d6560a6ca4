package mapping_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/virtbgp/virtbgp/mapping"
)

const ns = mapping.MetadataNS

// metaRoutes renders the routes of a Metadata, one Route.String each.
func metaRoutes(m *mapping.Metadata) []string {
	out := []string{}
	for _, r := range m.Routes {
		out = append(out, r.String())
	}
	return out
}

// metaProblems returns the lines of an error that must be a
// MetadataErrorList of the domain "web-01" and source src.
func metaProblems(t *testing.T, err error, src string) []string {
	t.Helper()
	if err == nil {
		t.Fatal("no error, want problems")
	}
	var list mapping.MetadataErrorList
	if !errors.As(err, &list) || len(list) == 0 {
		t.Fatalf("error %v (%T) is not a non-empty MetadataErrorList", err, err)
	}
	out := make([]string, len(list))
	for i, e := range list {
		if e.Domain != "web-01" || e.Source != src {
			t.Errorf("problem %#v: want domain web-01, source %q", e, src)
		}
		out[i] = e.Error()
	}
	if got := strings.Join(out, "\n"); got != err.Error() {
		t.Errorf("Error() = %q, want the problems one per line %q", err.Error(), got)
	}
	return out
}

func TestParseMetadataResolves(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want []string
	}{{
		name: "bare, as virDomainGetMetadata returns it",
		src: `<vm med="10" communities="65001:80 65001:81" local-pref="200" as-path-prepend="1">
  <ip prefix="192.0.2.80" med="20"/>
  <ip prefix="2001:db8::80/128"/>
</vm>`,
		want: []string{
			"192.0.2.80/32 next-hop self med 20 local-pref 200 prepend 1 community [65001:80 65001:81]",
			"2001:db8::80/128 next-hop self med 10 local-pref 200 prepend 1 community [65001:80 65001:81]",
		},
	}, {
		name: "prefixed namespace, as the domain XML shows it",
		src: `<virtbgp:vm xmlns:virtbgp="` + ns + `" large-communities="65001:1:2">
  <virtbgp:ip prefix="192.0.2.64/28" communities="no-export"/>
</virtbgp:vm>`,
		want: []string{"192.0.2.64/28 next-hop self community [no-export] large-community [65001:1:2]"},
	}, {
		name: "default namespace",
		src:  `<vm xmlns="` + ns + `" next-hop="192.0.2.1"><ip prefix="192.0.2.80"/><ip prefix="2001:db8::1" next-hop="2001:db8::fe"/><ip prefix="198.51.100.1" next-hop="self"/></vm>`,
		want: []string{
			"192.0.2.80/32 next-hop 192.0.2.1",
			"198.51.100.1/32 next-hop self",
			"2001:db8::1/128 next-hop 2001:db8::fe",
		},
	}, {
		name: "communities add up, sorted and unique; white space of any kind",
		src: "<vm communities='65001:2\n\t65001:1  blackhole' large-communities=''>\n" +
			"<!-- a comment -->\n<ip prefix='192.0.2.1' communities='65001:1 no-advertise graceful-shutdown' large-communities='1:2:3 1:2:3'/></vm>",
		want: []string{"192.0.2.1/32 next-hop self community [65001:1 65001:2 graceful-shutdown blackhole no-advertise] large-community [1:2:3]"},
	}, {
		name: "an IP overrides the element, also with zero",
		src:  `<vm med="10" local-pref="10" as-path-prepend="3"><ip prefix="192.0.2.1" med="0" local-pref="4294967295" as-path-prepend="0"/></vm>`,
		want: []string{"192.0.2.1/32 next-hop self med 0 local-pref 4294967295"},
	}, {
		name: "XML declaration, comments, an IPv6 address in any case",
		src:  "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- set by the orchestrator -->\n<vm><ip prefix=\"2001:DB8::A\"></ip></vm>\n<!-- end -->\n",
		want: []string{"2001:db8::a/128 next-hop self"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := mapping.ParseMetadata("web-01", []byte(tc.src))
			if err != nil {
				t.Fatalf("ParseMetadata: %v", err)
			}
			if got := metaRoutes(m); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("routes:\n got %q\nwant %q", got, tc.want)
			}
			if m.Domain != "web-01" || m.Line < 1 || m.Column < 1 {
				t.Errorf("Domain, Line, Column = %q, %d, %d", m.Domain, m.Line, m.Column)
			}
		})
	}
}

// TestParseMetadataMatchesYAML checks the one promise of the format: an
// element resolves as the same entry of a mapping file does, the caller's
// defaults standing for the file's.
func TestParseMetadataMatchesYAML(t *testing.T) {
	yaml := doc(
		"version: 1",
		"defaults:",
		"  communities: [\"65001:100\"]",
		"  large-communities: [\"65001:1:2\"]",
		"  med: 10",
		"  local-pref: 200",
		"  as-path-prepend: 1",
		"  next-hop: self",
		"vms:",
		"  web-01:",
		"    med: 20",
		"    communities: [\"65001:200\", no-export]",
		"    next-hop: 192.0.2.1",
		"    ips:",
		"      - 192.0.2.10",
		"      - 192.0.2.64/28",
		"      - prefix: 192.0.2.11",
		"        med: 50",
		"        as-path-prepend: 0",
		"        next-hop: self",
		"        communities: [\"65001:100\"]",
		"        large-communities: [\"65001:1:1\"]",
		"      - prefix: 2001:db8::10",
		"        next-hop: 2001:db8::1",
	)
	xml := `<vm med="20" communities="65001:200 no-export" next-hop="192.0.2.1">
  <ip prefix="192.0.2.10"/>
  <ip prefix="192.0.2.64/28"/>
  <ip prefix="192.0.2.11" med="50" as-path-prepend="0" next-hop="self" communities="65001:100" large-communities="65001:1:1"/>
  <ip prefix="2001:db8::10" next-hop="2001:db8::1"/>
</vm>`
	med, lp, prepend := uint32(10), uint32(200), uint8(1)
	opts := &mapping.MetadataOptions{Defaults: mapping.Attributes{
		Communities:      []uint32{65001<<16 | 100},
		LargeCommunities: []mapping.LargeCommunity{{GlobalAdmin: 65001, LocalData1: 1, LocalData2: 2}},
		MED:              &med, LocalPref: &lp, ASPathPrepend: &prepend, NextHopSelf: true,
	}}
	m, err := opts.Parse("web-01", []byte(xml))
	if err != nil {
		t.Fatal(err)
	}
	want := routeStrings(mustParse(t, yaml))["web-01"]
	if got := metaRoutes(m); !reflect.DeepEqual(got, want) {
		t.Errorf("metadata routes:\n got %q\nwant %q (the mapping file's)", got, want)
	}
	for i, r := range m.Routes {
		_, yr := mustParse(t, yaml).Lookup("web-01", "")
		if !r.Equal(yr[i]) {
			t.Errorf("route %d: %v is not Equal to the file's %v", i, r, yr[i])
		}
	}
}

func TestParseMetadataDomainXML(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "domain-nova-virtbgp.xml"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := mapping.ParseMetadata("test", data)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"192.0.2.80/32 next-hop self med 20 community [65001:100]",
		"2001:db8::80/128 next-hop self med 10 community [65001:100]",
	}
	if got := metaRoutes(m); !reflect.DeepEqual(got, want) {
		t.Errorf("routes:\n got %q\nwant %q", got, want)
	}
	if m.Line != 37 || m.Column != 5 {
		t.Errorf("the element at %d:%d, want 37:5", m.Line, m.Column)
	}
}

func TestParseMetadataAbsent(t *testing.T) {
	for _, src := range []string{
		`<domain type='kvm'><name>web-01</name></domain>`,
		`<domain type='kvm'><name>web-01</name><metadata/></domain>`,
		`<domain><metadata><app:vm xmlns:app="urn:other"><app:ip prefix="192.0.2.1"/></app:vm></metadata></domain>`,
		// The element in no namespace inside a domain is not virtbgp's.
		`<domain><metadata><vm><ip prefix="192.0.2.1"/></vm></metadata><devices/></domain>`,
		// Nova's only.
		`<domain><metadata><nova:instance xmlns:nova="` + mapping.NovaNS + `"/></metadata></domain>`,
	} {
		m, err := mapping.ParseMetadata("web-01", []byte(src))
		if m != nil || err != nil {
			t.Errorf("ParseMetadata(%s) = %v, %v, want nil, nil", src, m, err)
		}
	}
}

func TestParseMetadataProblems(t *testing.T) {
	const d = `domain "web-01": virtbgp metadata:`
	for _, tc := range []struct {
		name string
		src  string
		want []string
	}{{
		name: "empty",
		src:  " \n",
		want: []string{`domain "web-01": virtbgp metadata: no XML element in the document`},
	}, {
		name: "not well-formed: nothing after the error",
		src:  "<vm med='x'>\n<ip prefix='192.0.2.1'>\n</vm>",
		want: []string{
			d + "1:5: vm: med: want an integer from 0 to 4294967295, got \"x\"",
			d + "3:6: XML syntax error: element <ip> closed by </vm>",
		},
	}, {
		name: "every problem of the element, at its attribute",
		src: "<vm med='-1' colour='blue'\n    local-pref='4294967296' as-path-prepend='17' next-hop='127.0.0.1'\n" +
			"    communities='65536:1 x 1:1' large-communities='1:2'>\n" +
			"  <ip prefix='192.0.2.300'/>\n" +
			"  <ip prefix='192.0.2.65/28'/>\n" +
			"  <ip prefix='127.0.0.1'/>\n" +
			"  <ip prefix='fe80::1%eth0'/>\n" +
			"  <ip med='1'/>\n" +
			"  <ip prefix='::ffff:192.0.2.1'/>\n" +
			"</vm>",
		want: []string{
			d + "1:5: vm: med: want an integer from 0 to 4294967295, got \"-1\"",
			d + "1:14: vm: unknown attribute \"colour\" (want communities, large-communities, med, local-pref, as-path-prepend, next-hop)",
			d + "2:5: vm: local-pref: want an integer from 0 to 4294967295, got \"4294967296\"",
			d + "2:29: vm: as-path-prepend: want an integer from 0 to 16, got \"17\"",
			d + "2:50: vm: next-hop: 127.0.0.1 is a reserved address (loopback)",
			d + "3:5: vm: communities: invalid community \"65536:1\" (want ASN:value, each from 0 to 65535, or no-export, no-advertise, blackhole, graceful-shutdown)",
			d + "3:5: vm: communities: invalid community \"x\" (want ASN:value, each from 0 to 65535, or no-export, no-advertise, blackhole, graceful-shutdown)",
			d + "3:33: vm: large-communities: invalid large community \"1:2\" (want GA:LD1:LD2, each from 0 to 4294967295)",
			d + "4:7: ip[1]: prefix: invalid IP address \"192.0.2.300\"",
			d + "5:7: ip[2]: prefix: 192.0.2.65/28 has host bits set (the prefix is 192.0.2.64/28)",
			d + "6:7: ip[3]: prefix: 127.0.0.1 is a reserved address (loopback)",
			d + "7:7: ip[4]: prefix: fe80::1%eth0: IPv6 zones are not allowed",
			d + "8:3: ip[5]: missing attribute \"prefix\" (an IP address or prefix)",
			d + "9:7: ip[6]: prefix: ::ffff:192.0.2.1 is a reserved address (IPv4-mapped)",
		},
	}, {
		name: "structure",
		src: "<vm>\n" +
			"  <ip prefix='192.0.2.1' prefix='192.0.2.2'/>\n" +
			"  <route prefix='192.0.2.3'/>\n" +
			"  192.0.2.4\n" +
			"  <ip prefix='192.0.2.5'>192.0.2.6<x/></ip>\n" +
			"  <ip prefix='192.0.2.7' virtbgp:med='1' xmlns:virtbgp='" + ns + "'/>\n" +
			"  <virtbgp:ip prefix='192.0.2.8' xmlns:virtbgp='" + ns + "'/>\n" +
			"</vm>",
		want: []string{
			d + "2:3: ip[1]: attribute \"prefix\" is given twice",
			d + "3:3: vm: unknown element <route> (want <ip> or <health>)",
			d + "3:30: vm: unexpected text \"192.0.2.4\" (the values are attributes)",
			d + "5:26: ip[2]: unexpected text \"192.0.2.6\" (the values are attributes)",
			d + "5:35: ip[2]: unexpected element <x> inside <ip> (want <health>)",
			d + "6:26: ip[3]: attribute \"med\" has the namespace \"" + ns + "\": want it without a prefix",
			d + "7:3: vm: unknown element <{" + ns + "}ip> (want <ip> or <health>)",
		},
	}, {
		name: "no IPs",
		src:  "<vm med='1'>\n</vm>",
		want: []string{d + "1:1: vm has no IPs (want at least one <ip prefix=\"...\"/>; to remove the element, use virsh metadata --remove)"},
	}, {
		name: "an IP twice, a prefix inside another",
		src:  "<vm>\n<ip prefix='192.0.2.1'/>\n<ip prefix='192.0.2.0/24'/>\n<ip prefix='2001:db8::1'/>\n<ip prefix='2001:db8::1/128'/>\n</vm>",
		want: []string{
			d + "2:5: ip[1]: 192.0.2.1/32 overlaps 192.0.2.0/24 (ip[2], at 3:5)",
			d + "5:5: ip[4]: 2001:db8::1/128 is listed twice (first as ip[3], at 4:5)",
		},
	}, {
		name: "next hop of the other family",
		src:  "<vm next-hop='192.0.2.254'>\n<ip prefix='2001:db8::1'/>\n<ip prefix='192.0.2.1' next-hop='2001:db8::fe'/></vm>",
		want: []string{
			d + "2:5: ip[1]: 2001:db8::1/128 is IPv6 but its next-hop 192.0.2.254 (from the vm, line 1) is IPv4",
			d + "3:5: ip[2]: 192.0.2.1/32 is IPv4 but its next-hop 2001:db8::fe (set on this IP, line 3) is IPv6",
		},
	}, {
		name: "the element in another namespace",
		src:  "<x:vm xmlns:x='urn:x'><x:ip prefix='192.0.2.1'/></x:vm>",
		want: []string{d + "1:1: <vm> is in the namespace \"urn:x\": want \"" + ns + "\", or none (as virsh metadata prints it)"},
	}, {
		name: "another root",
		src:  "<metadata><vm/></metadata>",
		want: []string{d + "1:1: the root element is <metadata>: want virtbgp's element (<vm> in the namespace " + ns + ", or in none) or a whole domain XML (<domain>)"},
	}, {
		name: "DOCTYPE, text and a second root",
		src:  "<!DOCTYPE vm [<!ENTITY x 'y'>]>\nhello<vm><ip prefix='192.0.2.1'/></vm>\n<vm/>",
		want: []string{
			d + "1:1: a directive (<!DOCTYPE ...>) is not allowed",
			d + "1:32: text \"hello\" before the root element",
			d + "3:1: a second root element <vm>: want one",
		},
	}, {
		name: "two elements in a domain",
		src: "<domain><metadata>\n<virtbgp:vm xmlns:virtbgp='" + ns + "'><virtbgp:ip prefix='192.0.2.1'/></virtbgp:vm>\n" +
			"<v:vm xmlns:v='" + ns + "'><v:ip prefix='192.0.2.2'/></v:vm>\n</metadata></domain>",
		want: []string{d + "3:1: a second <vm> in the namespace " + ns + " (the first is at 2:1): libvirt keeps one"},
	}, {
		name: "a problem in the element inside a domain",
		src:  "<domain>\n  <name>web-01</name>\n  <metadata>\n    <virtbgp:vm xmlns:virtbgp='" + ns + "'>\n      <virtbgp:ip prefix='10.0.0.1/8'/>\n    </virtbgp:vm>\n  </metadata>\n</domain>",
		want: []string{d + "5:19: ip[1]: prefix: 10.0.0.1/8 has host bits set (the prefix is 10.0.0.0/8)"},
	}, {
		name: "a broken domain after the element",
		src:  "<domain><metadata><virtbgp:vm xmlns:virtbgp='" + ns + "'><virtbgp:ip prefix='192.0.2.1'/></virtbgp:vm></metadata><devices>",
		want: []string{d + "1:154: XML syntax error: unexpected EOF"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := mapping.ParseMetadata("web-01", []byte(tc.src))
			if m != nil {
				t.Errorf("a Metadata and problems")
			}
			diffLines(t, metaProblems(t, err, "virtbgp metadata"), tc.want)
		})
	}
}

func TestMetadataOptions(t *testing.T) {
	bad := uint8(17)
	opts := &mapping.MetadataOptions{Defaults: mapping.Attributes{ASPathPrepend: &bad}}
	_, err := opts.Parse("web-01", []byte(`<vm><ip prefix="192.0.2.1"/></vm>`))
	want := []string{`domain "web-01": virtbgp metadata: the caller's defaults: attributes: as-path-prepend: want an integer from 0 to 16, got 17`}
	diffLines(t, metaProblems(t, err, "virtbgp metadata"), want)

	opts = &mapping.MetadataOptions{Defaults: mapping.Attributes{NextHop: netip.MustParseAddr("192.0.2.254")}}
	_, err = opts.Parse("web-01", []byte("<vm>\n<ip prefix=\"2001:db8::1\"/></vm>"))
	want = []string{`domain "web-01": virtbgp metadata:2:5: ip[1]: 2001:db8::1/128 is IPv6 but its next-hop 192.0.2.254 (from the defaults) is IPv4`}
	diffLines(t, metaProblems(t, err, "virtbgp metadata"), want)
}

func TestAttributesValidate(t *testing.T) {
	p17, p16 := uint8(17), uint8(16)
	for _, tc := range []struct {
		a    mapping.Attributes
		want string
	}{
		{mapping.Attributes{}, ""},
		{mapping.Attributes{ASPathPrepend: &p16, NextHopSelf: true}, ""},
		{mapping.Attributes{NextHop: netip.MustParseAddr("2001:db8::1")}, ""},
		{mapping.Attributes{ASPathPrepend: &p17}, "attributes: as-path-prepend: want an integer from 0 to 16, got 17"},
		{mapping.Attributes{NextHop: netip.MustParseAddr("224.0.0.1")}, "attributes: next-hop: 224.0.0.1 is a reserved address (multicast)"},
		{mapping.Attributes{NextHop: netip.MustParseAddr("fe80::1%eth0")}, "attributes: next-hop: fe80::1%eth0: IPv6 zones are not allowed"},
		{mapping.Attributes{NextHop: netip.MustParseAddr("192.0.2.1"), NextHopSelf: true}, "attributes: next-hop: both 192.0.2.1 and self"},
	} {
		err := tc.a.Validate()
		if got := fmt.Sprint(err); (err == nil && tc.want != "") || (err != nil && got != tc.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.a, err, tc.want)
		}
	}
}

func TestParseCommunity(t *testing.T) {
	for _, s := range []string{"65001:100", "no-export", "0:0", "65535:65535", "graceful-shutdown"} {
		c, err := mapping.ParseCommunity(s)
		if err != nil || mapping.FormatCommunity(c) != s {
			t.Errorf("ParseCommunity(%q) = %v, %v; formats as %q", s, c, err, mapping.FormatCommunity(c))
		}
	}
	if _, err := mapping.ParseCommunity("65536:1"); err == nil || !strings.Contains(err.Error(), `invalid community "65536:1"`) {
		t.Errorf("ParseCommunity(65536:1): %v", err)
	}
	if c, err := mapping.ParseLargeCommunity("65001:1:2"); err != nil || c.String() != "65001:1:2" {
		t.Errorf("ParseLargeCommunity: %v, %v", c, err)
	}
	if _, err := mapping.ParseLargeCommunity("1:2"); err == nil {
		t.Error("ParseLargeCommunity(1:2): no error")
	}
}

func TestMetadataElement(t *testing.T) {
	src := `<virtbgp:vm xmlns:virtbgp="` + ns + `" next-hop="self" med="10" as-path-prepend="0" communities="65001:2 no-export 65001:1" large-communities="2:2:2 1:1:1" local-pref="5">
  <!-- web -->
  <virtbgp:ip prefix="2001:DB8::80/128" next-hop="2001:db8::1"/>
  <virtbgp:ip med="20" prefix="192.0.2.80"/>
  <virtbgp:ip prefix="192.0.2.64/28" communities=""/>
</virtbgp:vm>`
	m, err := mapping.ParseMetadata("web-01", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := `<vm communities="65001:1 65001:2 no-export" large-communities="1:1:1 2:2:2" med="10" local-pref="5" as-path-prepend="0" next-hop="self">
  <ip prefix="2001:db8::80" next-hop="2001:db8::1"/>
  <ip prefix="192.0.2.80" med="20"/>
  <ip prefix="192.0.2.64/28"/>
</vm>
`
	el := m.Element()
	if el != want {
		t.Errorf("Element() =\n%s\nwant\n%s", el, want)
	}
	again, err := mapping.ParseMetadata("web-01", []byte(el))
	if err != nil {
		t.Fatalf("the canonical element does not parse: %v", err)
	}
	if !reflect.DeepEqual(metaRoutes(again), metaRoutes(m)) {
		t.Errorf("routes of the canonical element %q, want %q", metaRoutes(again), metaRoutes(m))
	}
	if again.Element() != el {
		t.Errorf("Element() is not stable:\n%s", again.Element())
	}
}

func TestMetadataErrors(t *testing.T) {
	_, err := mapping.ParseMetadata("web-01", []byte("<vm/>"))
	wrapped := fmt.Errorf("domain web-01: %w", err)
	if l := mapping.MetadataErrors(wrapped); len(l) != 1 || l[0].Line != 1 || l[0].Column != 1 {
		t.Errorf("MetadataErrors = %v", l)
	}
	one := fmt.Errorf("x: %w", mapping.MetadataError{Domain: "d", Source: "s", Msg: "m"})
	if l := mapping.MetadataErrors(one); len(l) != 1 || l[0].Error() != `domain "d": s: m` {
		t.Errorf("MetadataErrors(one) = %v", l)
	}
	if mapping.MetadataErrors(errors.New("x")) != nil {
		t.Error("MetadataErrors of another error is not nil")
	}
}
