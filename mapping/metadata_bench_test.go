package mapping_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/virtbgp/virtbgp/mapping"
)

// metadataElement is an element of n IPs as virDomainGetMetadata returns
// it: attributes on the element, every other IP with some of its own.
func metadataElement(n int) []byte {
	var b strings.Builder
	b.WriteString(`<vm communities="65001:100 65001:101" large-communities="65001:1:2" med="10" local-pref="200">` + "\n")
	for i := range n {
		if i%2 == 0 {
			fmt.Fprintf(&b, "  <ip prefix=\"192.0.2.%d\" med=\"20\" communities=\"no-export\"/>\n", i+1)
		} else {
			fmt.Fprintf(&b, "  <ip prefix=\"2001:db8::%x\"/>\n", i+1)
		}
	}
	b.WriteString("</vm>\n")
	return []byte(b.String())
}

// BenchmarkParseMetadata is the per-event cost of reading a domain's
// virtbgp element: an element of 1 and 10 IPs as virDomainGetMetadata
// returns it, and the whole domain XML of testdata (Nova's element and
// virtbgp's).
func BenchmarkParseMetadata(b *testing.B) {
	for _, n := range []int{1, 10} {
		data := metadataElement(n)
		b.Run(fmt.Sprintf("element-%dip", n), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				m, err := mapping.ParseMetadata("web-01", data)
				if err != nil || len(m.Routes) != n {
					b.Fatal(err)
				}
			}
		})
	}
	data := readTestdata(b, "domain-nova-virtbgp.xml")
	b.Run("domain-xml", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if m, err := mapping.ParseMetadata("web-01", data); err != nil || len(m.Routes) != 2 {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkParseNova reads Nova's element as libvirt returns it (2 ports,
// 6 IPs, and the rest of what Nova writes) and makes its routes.
func BenchmarkParseNova(b *testing.B) {
	data := readTestdata(b, "nova/getmetadata-instance.xml")
	opts := &mapping.NovaOptions{Types: []string{mapping.NovaFixed}}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		inst, err := mapping.ParseNova("instance-1", data)
		if err != nil {
			b.Fatal(err)
		}
		if routes, _, err := inst.Routes(opts); err != nil || len(routes) != 3 {
			b.Fatal(routes, err)
		}
	}
}

// BenchmarkAllowFilter checks 10 routes against 8 allowed prefixes.
func BenchmarkAllowFilter(b *testing.B) {
	m, err := mapping.ParseMetadata("web-01", metadataElement(10))
	if err != nil {
		b.Fatal(err)
	}
	allow := mapping.Allow{Prefixes: prefixes(
		"10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16", "198.51.100.0/24",
		"2001:db9::/32", "2001:dba::/32", "192.0.2.0/24", "2001:db8::/32")}
	b.ReportAllocs()
	for b.Loop() {
		if _, refused := allow.Filter("web-01", m.Routes); refused != nil {
			b.Fatal(refused)
		}
	}
}
