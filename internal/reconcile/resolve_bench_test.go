package reconcile

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/virtbgp/virtbgp/mapping"
)

// BenchmarkResolve: one reconcile pass's Resolve over 200 running domains,
// their routes from the mapping file or from their virtbgp metadata (the
// event suite's shape: two routes each).
func BenchmarkResolve(b *testing.B) {
	for _, src := range []string{SourceFile, SourceMetadata} {
		b.Run(src, func(b *testing.B) {
			var yaml string
			var domains []Domain
			for i := range 200 {
				name := fmt.Sprintf("vm%03d", i)
				uuid := fmt.Sprintf("00000000-0000-0000-0000-%012d", i)
				d := dom(name, uuid, StateRunning, "booted")
				v4 := fmt.Sprintf("192.0.2.%d/32", i+1)
				v6 := fmt.Sprintf("2001:db8::%x/128", i+1)
				if src == SourceFile {
					yaml += fmt.Sprintf("  %s:\n    ips: [%q, %q]\n", name, v4, v6)
				} else {
					d.Claims = &Claims{Metadata: &Claim{Routes: []mapping.Route{
						{Prefix: netip.MustParsePrefix(v4)}, {Prefix: netip.MustParsePrefix(v6)}}}}
				}
				domains = append(domains, d)
			}
			m, err := mapping.Parse("m.yaml", []byte("version: 1\nvms:\n"+yaml))
			if err != nil && src == SourceFile {
				b.Fatal(err)
			}
			p := Policy{Trust: Trust{Metadata: mapping.Allow{Prefixes: []netip.Prefix{
				netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")}}}}
			prev := Resolve(domains, m, p, nil, nil, nil, nil).Want
			b.ReportAllocs()
			for b.Loop() {
				Resolve(domains, m, p, nil, prev, nil, nil)
			}
		})
	}
}
