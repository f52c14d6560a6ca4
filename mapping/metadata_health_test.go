package mapping_test

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/virtbgp/virtbgp/mapping"
)

// healthText renders a Health for comparisons: every field but where it is.
func healthText(h *mapping.Health) string {
	if h == nil {
		return "none"
	}
	var b strings.Builder
	b.WriteString(h.OnFailure.String())
	if h.InitialUp {
		b.WriteString(" initial-up")
	}
	if h.OnFailure == mapping.FailDepreference {
		d := h.Depreference
		var comms []string
		for _, c := range d.Communities {
			comms = append(comms, mapping.FormatCommunity(c))
		}
		med := "none"
		if d.MED != nil {
			med = strconv.Itoa(int(*d.MED))
		}
		b.WriteString(" dep[" + strings.Join(comms, ",") + " med=" + med + " prepend=" + strconv.Itoa(int(d.Prepend)) + "]")
	}
	for _, c := range h.Checks {
		b.WriteString(" {" + c.Name + " " + string(c.Kind) + " " + c.Address + c.URL + strings.Join(c.Command, " ") +
			" " + c.Interval.String() + "/" + c.Timeout.String() + " " + strconv.Itoa(c.Rise) + "/" + strconv.Itoa(c.Fall) +
			" status=" + strconv.Itoa(c.Status) + " body=" + c.Body + " maint=" + c.Maintenance + "}")
	}
	return b.String()
}

// TestParseMetadataHealth: the element's <health> at element and IP level
// resolves as a mapping file's health key does (the IP's replaces the
// element's, which replaces the operator's default), and Element writes it
// back to the same.
func TestParseMetadataHealth(t *testing.T) {
	def := &mapping.Health{Checks: []mapping.Check{{Name: "agent", Kind: mapping.CheckAgent, Interval: 5e9, Timeout: 2e9, Rise: 3, Fall: 3}}}
	for _, tc := range []struct {
		name string
		opts *mapping.MetadataOptions
		xml  string
		want map[string]string // prefix -> healthText
	}{
		{"none", nil, `<vm><ip prefix="192.0.2.1"/></vm>`, map[string]string{"192.0.2.1/32": "none"}},
		{"element level, every IP", nil,
			`<vm><health><check type="tcp" address="{ip}:22"/></health><ip prefix="192.0.2.1"/><ip prefix="2001:db8::1"/></vm>`,
			map[string]string{
				"192.0.2.1/32":    "withdraw {tcp tcp {ip}:22 5s/2s 3/3 status=0 body= maint=}",
				"2001:db8::1/128": "withdraw {tcp tcp {ip}:22 5s/2s 3/3 status=0 body= maint=}",
			}},
		{"IP level replaces the element's", nil,
			`<vm><ip prefix="192.0.2.1"><health initial="up"><check type="http" name="web" url="http://{ip}:8080/h?x=1" status="204" body="ok" interval="2s" timeout="1s" rise="2" fall="4"/></health></ip>` +
				`<health><check type="agent"/></health><ip prefix="192.0.2.2"/></vm>`,
			map[string]string{
				"192.0.2.1/32": "withdraw initial-up {web http http://{ip}:8080/h?x=1 2s/1s 2/4 status=204 body=ok maint=}",
				"192.0.2.2/32": "withdraw {agent agent  5s/2s 3/3 status=0 body= maint=}",
			}},
		{"depreference", nil,
			`<vm><health on-failure="depreference"><depreference communities="65001:666 no-export" med="1000" as-path-prepend="2"/><check type="agent" interval="1s"/></health><ip prefix="192.0.2.1"/></vm>`,
			map[string]string{"192.0.2.1/32": "depreference dep[65001:666,no-export med=1000 prepend=2] {agent agent  1s/1s 3/3 status=0 body= maint=}"}},
		{"the operator's default below both", &mapping.MetadataOptions{Health: def},
			`<vm><ip prefix="192.0.2.1"/><ip prefix="192.0.2.2"><health><check type="tcp" address="{ip}:80"/></health></ip></vm>`,
			map[string]string{
				"192.0.2.1/32": "withdraw {agent agent  5s/2s 3/3 status=0 body= maint=}",
				"192.0.2.2/32": "withdraw {tcp tcp {ip}:80 5s/2s 3/3 status=0 body= maint=}",
			}},
		{"exec and maintenance parse (the trust rules refuse them)", nil,
			`<vm><health><check type="exec" command="/usr/bin/true -x"/><check type="agent" maintenance="/run/m"/></health><ip prefix="192.0.2.1"/></vm>`,
			map[string]string{"192.0.2.1/32": "withdraw {exec exec /usr/bin/true -x 5s/2s 3/3 status=0 body= maint=} {agent agent  5s/2s 3/3 status=0 body= maint=/run/m}"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := tc.opts.Parse("web-01", []byte(tc.xml))
			if err != nil {
				t.Fatal(err)
			}
			check := func(m *mapping.Metadata, what string) {
				t.Helper()
				for _, r := range m.Routes {
					if got, want := healthText(m.Health[r.Prefix]), tc.want[r.Prefix.String()]; got != want {
						t.Errorf("%s: %s: health\n got %s\nwant %s", what, r.Prefix, got, want)
					}
				}
				if len(m.Routes) != len(tc.want) {
					t.Errorf("%s: %d routes, want %d", what, len(m.Routes), len(tc.want))
				}
			}
			check(m, "parsed")
			again, err := tc.opts.Parse("web-01", []byte(m.Element()))
			if err != nil {
				t.Fatalf("Element does not read back: %v\n%s", err, m.Element())
			}
			check(again, "Element read back")
			if !mapping.SameHealth(m.Health, again.Health) {
				t.Errorf("Element reads back to other health:\n%s", m.Element())
			}
		})
	}
}

// TestParseMetadataHealthMatchesYAML: one health block in the element and
// in a mapping file's entry gives equal checks (the rules are shared).
func TestParseMetadataHealthMatchesYAML(t *testing.T) {
	yaml := doc(
		"version: 1",
		"vms:",
		"  web-01:",
		"    health:",
		"      on-failure: depreference",
		"      initial: up",
		"      depreference: {communities: [\"65001:666\"], med: 1000, as-path-prepend: 2}",
		"      checks:",
		"        - {type: http, name: web, url: \"http://{ip}/health\", status: 200, body: ready, interval: 1s, timeout: 500ms, rise: 2, fall: 3}",
		"        - {type: tcp, address: \"{ip}:22\", interval: 10s}",
		"        - {type: agent, maintenance: /run/m}",
		"    ips:",
		"      - 192.0.2.10",
		"      - prefix: 192.0.2.11",
		"        health: {checks: [{type: exec, command: [/usr/local/bin/check, --web]}]}",
	)
	xml := `<vm>
  <health on-failure="depreference" initial="up">
    <depreference communities="65001:666" med="1000" as-path-prepend="2"/>
    <check type="http" name="web" url="http://{ip}/health" status="200" body="ready" interval="1s" timeout="500ms" rise="2" fall="3"/>
    <check type="tcp" address="{ip}:22" interval="10s"/>
    <check type="agent" maintenance="/run/m"/>
  </health>
  <ip prefix="192.0.2.10"/>
  <ip prefix="192.0.2.11"><health><check type="exec" command="/usr/local/bin/check --web"/></health></ip>
</vm>`
	m, err := mapping.ParseMetadata("web-01", []byte(xml))
	if err != nil {
		t.Fatal(err)
	}
	vm, ok := mustParse(t, yaml).LookupVM("web-01", "")
	if !ok {
		t.Fatal("no entry")
	}
	for _, p := range []string{"192.0.2.10/32", "192.0.2.11/32"} {
		pfx := netip.MustParsePrefix(p)
		if !m.Health[pfx].Equal(vm.Health[pfx]) {
			t.Errorf("%s: element\n %s\nfile\n %s", p, healthText(m.Health[pfx]), healthText(vm.Health[pfx]))
		}
	}
}

// TestParseMetadataHealthProblems: every problem of a <health> is
// reported at once, at its line and column, and the element gives nothing.
func TestParseMetadataHealthProblems(t *testing.T) {
	const d = `domain "web-01": virtbgp metadata:`
	for _, tc := range []struct {
		name, xml string
		want      []string
	}{
		{"check keys", `<vm>
<health colour="red" on-failure="sometimes" initial="maybe">
<check type="http" url="ftp://{ip}/" rise="0" fall="101" interval="10ms" bogus="1"/>
<check/>
<check type="ping"/>
<check type="tcp" address="{ip}:80" url="http://{ip}/" timeout="6s"/>
<check type="http" name="bad name!"/>
<check type="exec" command="relative/path"/>
<check type="agent" maintenance="relative"/>
<check type="agent"/>
<check type="agent"/>
</health>
<ip prefix="192.0.2.1"/>
</vm>`, []string{
			d + "2:9: vm: health: unknown attribute \"colour\" (want on-failure, initial)",
			d + "2:22: vm: health: on-failure: want withdraw or depreference, got \"sometimes\"",
			d + "2:45: vm: health: initial: want up or down, got \"maybe\"",
			d + "3:20: vm: health: check[1]: url: want an http or https URL, got \"ftp://{ip}/\"",
			d + "3:38: vm: health: check[1]: rise: want an integer from 1 to 100, got \"0\"",
			d + "3:47: vm: health: check[1]: fall: want an integer from 1 to 100, got \"101\"",
			d + "3:58: vm: health: check[1]: interval: want a duration from 100ms to 1h like \"1s\", got \"10ms\"",
			d + "3:74: vm: health: check[1]: unknown attribute \"bogus\" (want type, name, address, url, status, body, command, interval, timeout, rise, fall, maintenance)",
			d + "4:1: vm: health: check[2]: missing \"type\" (agent, tcp, http or exec)",
			d + "5:8: vm: health: check[3]: type: want agent, tcp, http or exec, got \"ping\"",
			d + "6:37: vm: health: check[4]: url: only for type http",
			d + "6:56: vm: health: check[4]: timeout: 6s is longer than the interval 5s",
			d + "7:1: vm: health: check[5]: missing \"url\" (like \"http://{ip}/health\")",
			d + "7:20: vm: health: check[5]: name: want letters, digits, '-', '_' or '.', got \"bad name!\"",
			d + "8:20: vm: health: check[6]: command: want a list, the program's absolute path first, like [/usr/local/bin/check, --web]",
			d + "9:21: vm: health: check[7]: maintenance: want an absolute file path, got \"relative\"",
			d + "11:1: vm: health: check[9]: check \"agent\" is already defined at 10:1 (give each check of a kind its own name)",
		}},
		{"structure", `<vm>
<health><check type="agent"/></health>
<health><check type="agent"/></health>
<ip prefix="192.0.2.1"><health on-failure="depreference"><check type="agent">text<x/></check></health></ip>
<ip prefix="192.0.2.2"><health><depreference med="1"/><depreference/><foo/></health></ip>
<ip prefix="192.0.2.3"><health on-failure="depreference"><depreference as-path-prepend="0" med="x" large-communities="1:2:3"/><check type="agent"/></health></ip>
</vm>`, []string{
			d + "3:1: vm: a second <health> (the first is at 2:1)",
			d + "4:24: ip[1]: health: on-failure: depreference needs a <depreference> element (communities, med, as-path-prepend)",
			d + "4:78: ip[1]: health: unexpected text \"text\" (the values are attributes)",
			d + "4:82: ip[1]: health: unexpected element <x> inside <check> or <depreference>",
			d + "5:32: ip[2]: health: depreference: only with on-failure=\"depreference\"",
			d + "5:55: ip[2]: health: a second <depreference> (the first is at 5:32)",
			d + "5:70: ip[2]: health: unknown element <foo> (want <check> or <depreference>)",
			d + "5:24: ip[2]: health: want at least one <check>",
			d + "6:72: ip[3]: health: depreference: as-path-prepend: want an integer from 1 to 16, got \"0\"",
			d + "6:92: ip[3]: health: depreference: med: want an integer from 0 to 4294967295, got \"x\"",
			d + "6:100: ip[3]: health: depreference: unknown attribute \"large-communities\" (want communities, med, as-path-prepend)",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := mapping.ParseMetadata("web-01", []byte(tc.xml))
			if m != nil {
				t.Errorf("a Metadata with problems")
			}
			got := metaProblems(t, err, "virtbgp metadata")
			want := slices.Clone(tc.want)
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("problems:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
			}
		})
	}
}
