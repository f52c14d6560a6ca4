package mapping_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/virtbgp/virtbgp/mapping"
)

const novaNS = mapping.NovaNS

// novaTestConfigPorts are the ports of every LibvirtConfigGuestMetadataNovaTest
// in Nova's test_config.py (testdata/nova/README.md).
var novaTestConfigPorts = []mapping.NovaPort{
	{UUID: "567a4527-b0e4-4d0a-bcc2-71fda37897f7", IPs: []mapping.NovaIP{
		{Type: "fixed", Address: netip.MustParseAddr("192.168.1.1"), Version: 4},
		{Type: "fixed", Address: netip.MustParseAddr("fe80::f95c:b030:7094"), Version: 6},
		{Type: "floating", Address: netip.MustParseAddr("11.22.33.44"), Version: 4},
	}},
	{UUID: "a3ca97e2-0cf9-4159-9bfc-afd55bc13ead", IPs: []mapping.NovaIP{
		{Type: "fixed", Address: netip.MustParseAddr("10.0.0.1"), Version: 4},
		{Type: "fixed", Address: netip.MustParseAddr("fdf8:f53b:82e4::52"), Version: 6},
		{Type: "floating", Address: netip.MustParseAddr("1.2.3.4"), Version: 4},
	}},
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestParseNovaAsNovaWritesIt reads the XML of Nova's own tests, as Nova
// passes it to virDomainSetMetadata, as libvirt returns it, and inside a
// whole domain XML.
func TestParseNovaAsNovaWritesIt(t *testing.T) {
	for _, name := range []string{
		"nova/test_config_metadata_flavor_extra_specs.xml",
		"nova/test_config_metadata_from_image.xml",
		"nova/test_config_metadata_from_volume_image.xml",
		"nova/test_config_metadata_from_volume_no_image.xml",
		"nova/getmetadata-instance.xml",
		"domain-nova-virtbgp.xml",
	} {
		t.Run(name, func(t *testing.T) {
			inst, err := mapping.ParseNova("instance-00000001", readTestdata(t, name))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(inst.Ports, novaTestConfigPorts) {
				t.Errorf("Ports =\n%+v\nwant\n%+v", inst.Ports, novaTestConfigPorts)
			}
			if inst.Domain != "instance-00000001" || inst.Line < 1 {
				t.Errorf("Domain, Line = %q, %d", inst.Domain, inst.Line)
			}
		})
	}
}

func TestParseNovaTolerates(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []mapping.NovaPort
	}{{
		name: "no ports (Nova before 23, or none)",
		src:  `<nova:instance xmlns:nova="` + novaNS + `"><nova:package version="27.0.0"/><nova:name>vm</nova:name></nova:instance>`,
	}, {
		name: "empty ports",
		src:  `<instance><ports/></instance>`,
		want: nil,
	}, {
		name: "a port without IPs, unknown elements, attributes and text",
		src: `<nova:instance xmlns:nova="` + novaNS + `" xmlns:x="urn:x" future="1">
  <nova:ports x:y="z">text
    <nova:port uuid="6695EB01-F6A4-8304-79AA-97F2502E193F" mac="aa:bb:cc:dd:ee:ff"><nova:mtu>1500</nova:mtu></nova:port>
    <nova:port uuid="6695eb01-f6a4-8304-79aa-97f2502e1940">
      <nova:ip type="fixed" address="2001:db8::5" ipVersion="6" subnet="x"><nova:note>hi</nova:note></nova:ip>
      <x:ip type="fixed" address="not looked at" ipVersion="9"/>
      <ip type="fixed" address="in no namespace: not Nova's" ipVersion="4"/>
      <nova:ip type="reserved-by-a-future-nova" address="192.0.2.9" ipVersion="4"/>
    </nova:port>
    <nova:trunk/>
  </nova:ports>
</nova:instance>`,
		want: []mapping.NovaPort{
			{UUID: "6695eb01-f6a4-8304-79aa-97f2502e193f"},
			{UUID: "6695eb01-f6a4-8304-79aa-97f2502e1940", IPs: []mapping.NovaIP{
				{Type: "fixed", Address: netip.MustParseAddr("2001:db8::5"), Version: 6},
				{Type: "reserved-by-a-future-nova", Address: netip.MustParseAddr("192.0.2.9"), Version: 4},
			}},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			inst, err := mapping.ParseNova("web-01", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(inst.Ports, tc.want) {
				t.Errorf("Ports = %+v, want %+v", inst.Ports, tc.want)
			}
		})
	}
}

func TestParseNovaAbsent(t *testing.T) {
	for _, src := range []string{
		`<domain><name>x</name></domain>`,
		`<domain><metadata><nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.0"><nova:name>old</nova:name></nova:instance></metadata></domain>`,
		`<domain><metadata><vm xmlns="` + ns + `"><ip prefix="192.0.2.1"/></vm></metadata></domain>`,
	} {
		if inst, err := mapping.ParseNova("web-01", []byte(src)); inst != nil || err != nil {
			t.Errorf("ParseNova(%s) = %v, %v, want nil, nil", src, inst, err)
		}
	}
}

func TestParseNovaProblems(t *testing.T) {
	const d = `domain "web-01": nova metadata:`
	for _, tc := range []struct {
		name string
		src  string
		want []string
	}{{
		name: "what virtbgp uses must be right",
		src: "<instance><ports>\n" +
			"<port><ip type='fixed' address='192.0.2.1' ipVersion='4'/></port>\n" +
			"<port uuid='vif1'/>\n" +
			"<port uuid='6695eb01-f6a4-8304-79aa-97f2502e193f'>\n" +
			"  <ip address='192.0.2.2' ipVersion='4'/>\n" +
			"  <ip type='' address='192.0.2.3' ipVersion='4'/>\n" +
			"  <ip type='fixed' address='192.0.2.300' ipVersion='4'/>\n" +
			"  <ip type='fixed' address='fe80::1%eth0' ipVersion='6'/>\n" +
			"  <ip type='fixed' address='192.0.2.4' ipVersion='None'/>\n" +
			"  <ip type='fixed' address='2001:db8::1' ipVersion='4'/>\n" +
			"  <ip type='fixed' type='floating' address='192.0.2.5' ipVersion='4'/>\n" +
			"</port>\n" +
			"<port uuid='6695EB01-F6A4-8304-79AA-97F2502E193F'/>\n" +
			"</ports><ports/></instance>",
		want: []string{
			d + "2:1: port[1]: missing attribute \"uuid\"",
			d + "3:7: port[2]: uuid: want a UUID like 6695eb01-f6a4-8304-79aa-97f2502e193f, got \"vif1\"",
			d + "5:3: port[3] ip[1]: missing attribute \"type\"",
			d + "6:7: port[3] ip[1]: type is empty",
			d + "7:20: port[3] ip[1]: address: invalid IP address \"192.0.2.300\"",
			d + "8:20: port[3] ip[1]: address: fe80::1%eth0: IPv6 zones are not allowed",
			d + "9:40: port[3] ip[1]: ipVersion: want 4 or 6, got \"None\"",
			d + "10:42: port[3] ip[1]: ipVersion is 4 but the address 2001:db8::1 is IPv6",
			d + "11:3: port[3] ip[1]: attribute \"type\" is given twice",
			d + "13:7: port[4]: port 6695eb01-f6a4-8304-79aa-97f2502e193f is listed twice (first at 4:7)",
			d + "14:9: a second <ports> (the first is at 1:11)",
		},
	}, {
		name: "in another namespace",
		src:  `<nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.0"/>`,
		want: []string{d + "1:1: <instance> is in the namespace \"http://openstack.org/xmlns/libvirt/nova/1.0\": want \"" + novaNS + "\", or none (as virsh metadata prints it)"},
	}, {
		name: "not XML",
		src:  "instance",
		want: []string{
			`domain "web-01": nova metadata: no XML element in the document`,
			d + "1:1: text \"instance\" before the root element",
		},
	}, {
		name: "broken",
		src:  "<instance><ports><port uuid='6695eb01-f6a4-8304-79aa-97f2502e193f'></ports></instance>",
		want: []string{d + "1:76: XML syntax error: element <port> closed by </ports>"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			inst, err := mapping.ParseNova("web-01", []byte(tc.src))
			if inst != nil {
				t.Error("an instance and problems")
			}
			diffLines(t, metaProblems(t, err, "nova metadata"), tc.want)
		})
	}
}

func TestNovaRoutes(t *testing.T) {
	inst, err := mapping.ParseNova("instance-1", readTestdata(t, "nova/test_config_metadata_from_image.xml"))
	if err != nil {
		t.Fatal(err)
	}
	med := uint32(50)
	for _, tc := range []struct {
		name    string
		opts    *mapping.NovaOptions
		routes  []string
		refused []string
	}{{
		name: "no options: nothing",
	}, {
		name: "no types: nothing",
		opts: &mapping.NovaOptions{Attributes: mapping.Attributes{MED: &med}},
	}, {
		name: "fixed, with the config's attributes; the link-local refused",
		opts: &mapping.NovaOptions{Types: []string{mapping.NovaFixed}, Attributes: mapping.Attributes{
			MED: &med, Communities: []uint32{65001<<16 | 7}}},
		routes: []string{
			"10.0.0.1/32 next-hop self med 50 community [65001:7]",
			"192.168.1.1/32 next-hop self med 50 community [65001:7]",
			"fdf8:f53b:82e4::52/128 next-hop self med 50 community [65001:7]",
		},
		refused: []string{`domain "instance-1": fe80::f95c:b030:7094/128 refused: nova port 567a4527-b0e4-4d0a-bcc2-71fda37897f7, fixed IP: a reserved address (link-local)`},
	}, {
		name:   "floating",
		opts:   &mapping.NovaOptions{Types: []string{mapping.NovaFloating}},
		routes: []string{"1.2.3.4/32 next-hop self", "11.22.33.44/32 next-hop self"},
	}, {
		name: "an IPv4 next hop refuses the IPv6 IPs",
		opts: &mapping.NovaOptions{Types: []string{mapping.NovaFixed, mapping.NovaFloating},
			Attributes: mapping.Attributes{NextHop: netip.MustParseAddr("192.0.2.254")}},
		routes: []string{
			"1.2.3.4/32 next-hop 192.0.2.254",
			"10.0.0.1/32 next-hop 192.0.2.254",
			"11.22.33.44/32 next-hop 192.0.2.254",
			"192.168.1.1/32 next-hop 192.0.2.254",
		},
		refused: []string{
			`domain "instance-1": fe80::f95c:b030:7094/128 refused: nova port 567a4527-b0e4-4d0a-bcc2-71fda37897f7, fixed IP: a reserved address (link-local)`,
			`domain "instance-1": fdf8:f53b:82e4::52/128 refused: nova port a3ca97e2-0cf9-4159-9bfc-afd55bc13ead, fixed IP: fdf8:f53b:82e4::52/128 is IPv6 but its next-hop 192.0.2.254 (from the defaults) is IPv4`,
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			routes, refused, err := inst.Routes(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			var got, gotRefused []string
			for _, r := range routes {
				got = append(got, r.String())
			}
			for _, r := range refused {
				gotRefused = append(gotRefused, r.String())
			}
			if !reflect.DeepEqual(got, tc.routes) || !reflect.DeepEqual(gotRefused, tc.refused) {
				t.Errorf("routes %q\nrefused %q\nwant %q\nrefused %q", got, gotRefused, tc.routes, tc.refused)
			}
		})
	}
}

func TestNovaRoutesDeduplicates(t *testing.T) {
	inst, err := mapping.ParseNova("x", []byte(`<instance><ports>
<port uuid="6695eb01-f6a4-8304-79aa-97f2502e193f"><ip type="fixed" address="192.0.2.1" ipVersion="4"/></port>
<port uuid="6695eb01-f6a4-8304-79aa-97f2502e1940"><ip type="fixed" address="192.0.2.1" ipVersion="4"/></port>
</ports></instance>`))
	if err != nil {
		t.Fatal(err)
	}
	routes, refused, err := inst.Routes(&mapping.NovaOptions{Types: []string{"fixed"}})
	if err != nil || len(routes) != 1 || len(refused) != 0 {
		t.Errorf("Routes = %v, %v, %v, want one route", routes, refused, err)
	}
}

func TestNovaOptionsValidate(t *testing.T) {
	big := uint8(20)
	for _, tc := range []struct {
		opts mapping.NovaOptions
		want string
	}{
		{mapping.NovaOptions{Types: []string{"fixed", "floating"}}, ""},
		{mapping.NovaOptions{Types: []string{"float"}}, `nova IP type "float": want fixed or floating`},
		{mapping.NovaOptions{Types: []string{"fixed"}, Attributes: mapping.Attributes{ASPathPrepend: &big}}, "as-path-prepend"},
	} {
		err := tc.opts.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.opts, err, tc.want)
		}
		if tc.want != "" {
			if _, _, err := (&mapping.NovaInstance{}).Routes(&tc.opts); err == nil {
				t.Errorf("Routes with %+v: no error", tc.opts)
			}
		}
	}
}
