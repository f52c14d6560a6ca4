package daemon

import (
	"testing"
)

// TestReportFlagsRoutesNoPeerCarries: with peers whose sessions carry
// IPv4 only (the default for an IPv4 peer), the announced /128 is flagged
// in the report as sent to no peer and the /32 is not; the metrics count
// it. With no peer at all, every route is flagged.
func TestReportFlagsRoutesNoPeerCarries(t *testing.T) {
	for _, tc := range []struct {
		name string
		bgp  string
		want map[string]string // prefix -> NotCarried
	}{
		{"ipv4 peers", "{asn: 65001, router-id: 192.0.2.1, peers: [{address: 127.0.0.1, asn: 65000, port: 9}, {address: 127.0.0.2, asn: 65000, port: 9, families: [ipv4]}]}",
			map[string]string{"192.0.2.10/32": "", "2001:db8::10/128": "no peer carries ipv6"}},
		{"an ipv6 session", "{asn: 65001, router-id: 192.0.2.1, peers: [{address: 127.0.0.1, asn: 65000, port: 9}, {address: '::1', asn: 65000, port: 9}]}",
			map[string]string{"192.0.2.10/32": "", "2001:db8::10/128": ""}},
		{"ipv6 filtered by the export policy", "{asn: 65001, router-id: 192.0.2.1, peers: [{address: 127.0.0.1, asn: 65000, port: 9, families: [ipv4, ipv6], next-hop-ipv6: '2001:db8::1', export: {families: [ipv4]}}]}",
			map[string]string{"192.0.2.10/32": "", "2001:db8::10/128": "no peer carries ipv6"}},
		{"no peers", "{asn: 65001, router-id: 192.0.2.1, peers: []}",
			map[string]string{"192.0.2.10/32": "no peer carries ipv4", "2001:db8::10/128": "no peer carries ipv6"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, _, _ := startTestDaemonBGP(t, reloadMapping, tc.bgp)
			r, _, _ := reportOf(t, d)
			got := map[string]string{}
			for _, rt := range r.Routes {
				got[rt.Prefix] = rt.NotCarried
			}
			if len(got) != len(tc.want) {
				t.Fatalf("routes %v, want %v", got, tc.want)
			}
			for p, w := range tc.want {
				if got[p] != w {
					t.Errorf("%s: not carried %q, want %q", p, got[p], w)
				}
			}
		})
	}
}
