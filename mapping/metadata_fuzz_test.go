package mapping_test

import (
	"cmp"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/mapping"
)

// metadataSeeds are valid and invalid documents that reach every part of
// the metadata parsers, besides the files in testdata.
var metadataSeeds = []string{
	"",
	"<vm/>",
	`<vm><ip prefix="192.0.2.1"/></vm>`,
	`<vm med="10" communities="65001:80 65001:81 no-export" large-communities="1:2:3" local-pref="200" as-path-prepend="1" next-hop="192.0.2.254">` +
		`<ip prefix="192.0.2.80" med="20" next-hop="self"/><ip prefix="2001:db8::80/128" next-hop="2001:db8::1"/><ip prefix="192.0.2.64/28"/></vm>`,
	`<virtbgp:vm xmlns:virtbgp="` + mapping.MetadataNS + `"><virtbgp:ip prefix="2001:db8::/48"/></virtbgp:vm>`,
	`<vm xmlns="` + mapping.MetadataNS + `"><ip prefix="198.51.100.7"/></vm>`,
	"<?xml version='1.0'?>\n<!-- c -->\n<vm>\n  <ip prefix='192.0.2.1'/>\n</vm>\n",
	`<vm med="x" colour="1" med="2"><ip/><ip prefix="127.0.0.1"/><ip prefix="192.0.2.1/24"/><foo/>text</vm>`,
	`<vm><ip prefix="192.0.2.0/24"/><ip prefix="192.0.2.1"/><ip prefix="192.0.2.1"/></vm>`,
	`<vm next-hop="192.0.2.1"><ip prefix="2001:db8::1"/></vm>`,
	`<x:vm xmlns:x="urn:x"/>`,
	`<!DOCTYPE vm><vm/>`,
	`<vm><ip prefix="192.0.2.1">`,
	`<vm/><vm/>`,
	`<domain><metadata><virtbgp:vm xmlns:virtbgp="` + mapping.MetadataNS + `"><virtbgp:ip prefix="192.0.2.1"/></virtbgp:vm>` +
		`<v:vm xmlns:v="` + mapping.MetadataNS + `"/></metadata><devices/></domain>`,
	`<domain><name>x</name></domain>`,
	"&\n0", // a syntax error after a newline the decoder put back
	"<vm a:b='1' xmlns:x=\"\r\"><x:ip/></vm>",
	`<instance><ports><port uuid="6695eb01-f6a4-8304-79aa-97f2502e193f"><ip type="fixed" address="192.0.2.1" ipVersion="4"/>` +
		`<ip type="floating" address="2001:db8::1" ipVersion="6"/></port></ports></instance>`,
	`<nova:instance xmlns:nova="` + mapping.NovaNS + `"><nova:ports><nova:port uuid="x"><nova:ip type="" address="fe80::1%x" ipVersion="5"/></nova:port></nova:ports><nova:ports/></nova:instance>`,
	`<domain><metadata><nova:instance xmlns:nova="` + mapping.NovaNS + `"><nova:ports><nova:port uuid="6695eb01-f6a4-8304-79aa-97f2502e193f"/></nova:ports></nova:instance></metadata></domain>`,
	// Health checks: every key of <health>, <depreference> and <check>.
	`<vm><health on-failure="depreference" initial="up"><depreference communities="65001:666 no-export" med="1000" as-path-prepend="2"/>` +
		`<check type="http" name="web" url="http://{ip}:8080/health?x=1" status="204" body="ready" interval="2s" timeout="500ms" rise="2" fall="4"/>` +
		`<check type="tcp" address="{ip}:22"/><check type="agent" maintenance="/run/m"/><check type="exec" name="x" command="/bin/true -a b"/></health>` +
		`<ip prefix="192.0.2.1"><health initial="down" on-failure="withdraw"><check type="agent" interval="1h"/></health></ip><ip prefix="2001:db8::1"/></vm>`,
	`<vm><health colour="1"><check type="ping" rise="0" fall="x" status="99" interval="1" timeout="9h"/><check/><check type="agent"/><check type="agent"/><depreference/><foo/>t</health>` +
		`<health/><ip prefix="192.0.2.1"><health on-failure="depreference"><check type="tcp" url="x" address="[::1]:0"><x/></check></health><health/></ip></vm>`,
	`<v:vm xmlns:v="` + mapping.MetadataNS + `"><v:health><v:check type="tcp" address="{ip}:80"/><x:check xmlns:x="urn:x"/></v:health><v:ip prefix="192.0.2.1"><v:health><v:check type="agent" v:rise="1"/></v:health></v:ip></v:vm>`,
}

// addSeeds adds the seeds and the XML files of testdata.
func addSeeds(f *testing.F) {
	for _, s := range metadataSeeds {
		f.Add([]byte(s))
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.xml"))
	more, _ := filepath.Glob(filepath.Join("testdata", "nova", "*.xml"))
	for _, name := range append(files, more...) {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
}

// FuzzParseMetadata checks that ParseMetadata never panics, that every
// problem it reports is well-formed and in order, and that what it accepts
// is: canonical prefixes, sorted, none twice or inside another, none
// reserved, next hops of the prefix's family, and an Element that reads
// back to the same routes.
func FuzzParseMetadata(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := mapping.ParseMetadata("web-01", data)
		if err != nil {
			checkMetadataProblems(t, err, "virtbgp metadata")
			if m != nil {
				t.Fatal("a Metadata and an error")
			}
			return
		}
		if m == nil {
			return // a domain XML without the element
		}
		if len(m.Routes) == 0 {
			t.Fatal("no routes and no error")
		}
		checkRoutes(t, m.Routes)
		again, err := mapping.ParseMetadata("web-01", []byte(m.Element()))
		if err != nil {
			t.Fatalf("Element() does not read back: %v\n%s", err, m.Element())
		}
		if !slices.EqualFunc(again.Routes, m.Routes, mapping.Route.Equal) {
			t.Fatalf("Element() reads back to %v, want %v", again.Routes, m.Routes)
		}
		if !mapping.SameHealth(again.Health, m.Health) {
			t.Fatalf("Element() reads back to other health checks:\n%s", m.Element())
		}
		for p, h := range m.Health {
			checkHealth(t, p, h)
		}
		// The trust rules never panic, and split the routes.
		accepted, refused := (&mapping.HealthTrust{}).Filter("web-01", m.Routes, m.Health)
		if len(accepted)+len(refused) != len(m.Routes) {
			t.Fatalf("HealthTrust.Filter: %d accepted and %d refused of %d", len(accepted), len(refused), len(m.Routes))
		}
	})
}

// FuzzParseNova checks that ParseNova never panics, that its problems are
// well-formed, that what it accepts is what it promises, and that Routes
// gives sorted, unique, unreserved host routes.
func FuzzParseNova(f *testing.F) {
	addSeeds(f)
	opts := &mapping.NovaOptions{Types: []string{mapping.NovaFixed, mapping.NovaFloating}}
	f.Fuzz(func(t *testing.T, data []byte) {
		inst, err := mapping.ParseNova("web-01", data)
		if err != nil {
			checkMetadataProblems(t, err, "nova metadata")
			if inst != nil {
				t.Fatal("an instance and an error")
			}
			return
		}
		if inst == nil {
			return
		}
		ips := 0
		uuids := map[string]bool{}
		for _, p := range inst.Ports {
			if u := strings.ToLower(p.UUID); u != p.UUID || len(u) != 36 || uuids[u] {
				t.Errorf("port UUID %q: not a lower-case UUID, or twice", p.UUID)
			}
			uuids[p.UUID] = true
			for _, ip := range p.IPs {
				ips++
				if ip.Type == "" || !ip.Address.IsValid() || ip.Address.Zone() != "" || (ip.Version == 4) != ip.Address.Is4() || (ip.Version != 4 && ip.Version != 6) {
					t.Errorf("IP %+v is not what ParseNova promises", ip)
				}
			}
		}
		routes, refused, err := inst.Routes(opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(routes)+len(refused) > ips {
			t.Errorf("%d routes and %d refusals from %d IPs", len(routes), len(refused), ips)
		}
		checkRoutes(t, routes)
		for _, r := range routes {
			if !r.Prefix.IsSingleIP() {
				t.Errorf("%s is not a host route", r.Prefix)
			}
		}
	})
}

func checkMetadataProblems(t *testing.T, err error, source string) {
	t.Helper()
	list := mapping.MetadataErrors(err)
	if len(list) == 0 {
		t.Fatalf("error %v (%T) is not a non-empty MetadataErrorList", err, err)
	}
	for i, e := range list {
		if e.Domain != "web-01" || e.Source != source || e.Line < 0 || e.Column < 0 || (e.Line == 0) != (e.Column == 0) ||
			e.Msg == "" || strings.ContainsAny(e.Msg, "\n\r") {
			t.Errorf("malformed problem %#v", e)
		}
		want := `domain "web-01": ` + source + ":" + strconv.Itoa(e.Line) + ":" + strconv.Itoa(e.Column) + ": " + e.Msg
		if e.Line == 0 {
			want = `domain "web-01": ` + source + ": " + e.Msg
		}
		if e.Error() != want {
			t.Errorf("problem renders as %q, want %q", e.Error(), want)
		}
		if i > 0 && cmp.Or(cmp.Compare(list[i-1].Line, e.Line), cmp.Compare(list[i-1].Column, e.Column)) > 0 {
			t.Errorf("problems not sorted: %d:%d after %d:%d", e.Line, e.Column, list[i-1].Line, list[i-1].Column)
		}
	}
}

// checkRoutes checks what every accepted set of routes of one domain is.
func checkRoutes(t *testing.T, routes []mapping.Route) {
	t.Helper()
	for j, r := range routes {
		p := r.Prefix
		if !p.IsValid() || p != p.Masked() || p.Addr().Zone() != "" || p.Addr().Is4In6() ||
			p.Addr().IsLoopback() || p.Addr().IsMulticast() || p.Addr().IsLinkLocalUnicast() || p.Addr().IsUnspecified() {
			t.Errorf("prefix %s is not canonical, or reserved", p)
		}
		if j > 0 && routes[j-1].Prefix.Compare(p) >= 0 {
			t.Errorf("routes %s, %s: not sorted", routes[j-1].Prefix, p)
		}
		for _, o := range routes[:j] {
			if q := o.Prefix; q.Overlaps(p) {
				t.Errorf("routes %s and %s overlap", q, p)
			}
		}
		if nh := r.NextHop; nh.IsValid() && (nh.Is4() != p.Addr().Is4() || nh.Zone() != "") {
			t.Errorf("%s: next hop %s", p, nh)
		}
		if !slices.IsSorted(r.Communities) || len(slices.Compact(slices.Clone(r.Communities))) != len(r.Communities) {
			t.Errorf("%s: communities %v not normalized", p, r.Communities)
		}
		if r.ASPathPrepend > 16 {
			t.Errorf("%s: prepend %d", p, r.ASPathPrepend)
		}
	}
}

// checkHealth checks what every parsed health is: checks with unique
// names, the times and counts in range, the keys of their kind.
func checkHealth(t *testing.T, p netip.Prefix, h *mapping.Health) {
	t.Helper()
	if h == nil || len(h.Checks) == 0 {
		t.Fatalf("%s: a health without checks", p)
	}
	names := map[string]bool{}
	for _, c := range h.Checks {
		if names[c.Name] || c.Name == "" {
			t.Errorf("%s: check name %q empty or twice", p, c.Name)
		}
		names[c.Name] = true
		if c.Interval < 100*time.Millisecond || c.Interval > time.Hour || c.Timeout <= 0 || c.Timeout > c.Interval ||
			c.Rise < 1 || c.Rise > 100 || c.Fall < 1 || c.Fall > 100 {
			t.Errorf("%s: check %+v out of range", p, c)
		}
		if (c.Kind == mapping.CheckTCP) != (c.Address != "") || (c.Kind == mapping.CheckHTTP) != (c.URL != "") ||
			(c.Kind == mapping.CheckExec) != (len(c.Command) > 0) {
			t.Errorf("%s: check %+v has the keys of another kind", p, c)
		}
	}
}
