package reconcile

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/virtbgp/virtbgp/internal/testutil"
)

const maintMapping = `version: 1
vms:
  web-a:
    health:
      checks: [{type: agent}]
    ips: [{prefix: 192.0.2.50, anycast: true}, 192.0.2.51]
  web-b:
    health:
      on-failure: depreference
      depreference: {communities: ["65001:666"], med: 1000, as-path-prepend: 2}
      checks: [{type: agent}]
    ips: [{prefix: 192.0.2.50, anycast: true}]
  plain:
    ips: [192.0.2.60, 192.0.2.61]
`

// TestResolveMaintenance: the operator's maintenance takes a domain's
// routes out whether or not they have checks: withdrawn, depreferenced
// where the entry's health says so, one route alone when named, a
// metadata claim not made; and an anycast prefix goes to the member not
// in maintenance.
func TestResolveMaintenance(t *testing.T) {
	m := parseMapping(t, maintMapping)
	const uuidA, uuidB, uuidP = "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b", "00000000-0000-0000-0000-0000000000f0"
	any, a51 := netip.MustParsePrefix("192.0.2.50/32"), netip.MustParsePrefix("192.0.2.51/32")
	p60, p61 := netip.MustParsePrefix("192.0.2.60/32"), netip.MustParsePrefix("192.0.2.61/32")
	meta := netip.MustParsePrefix("198.51.100.1/32")
	a := dom("web-a", uuidA, StateRunning, "")
	b := dom("web-b", uuidB, StateRunning, "")
	plain := dom("plain", uuidP, StateRunning, "")
	m1 := withClaims(dom("m1", uuidM1, StateRunning, ""), claim("198.51.100.1/32"), nil)
	healthy := Health{{uuidA, any}: {}, {uuidA, a51}: {}, {uuidB, any}: {}}
	const why = "maintenance by uid 0"
	type want struct {
		domain, health string
	}
	tests := []struct {
		name    string
		domains []Domain
		maint   Maintenance
		want    map[netip.Prefix]want
	}{
		{"none: everything announced", []Domain{a, plain, m1}, nil,
			map[netip.Prefix]want{any: {"web-a", HealthUp}, a51: {"web-a", HealthUp}, p60: {"plain", HealthNone}, p61: {"plain", HealthNone}, meta: {"m1", HealthNone}}},
		{"a domain without checks: all its routes withdrawn", []Domain{a, plain}, Maintenance{{UUID: uuidP}: why},
			map[netip.Prefix]want{any: {"web-a", HealthUp}, a51: {"web-a", HealthUp}}},
		{"one route of a domain: that route alone", []Domain{plain}, Maintenance{{uuidP, p61}: why},
			map[netip.Prefix]want{p60: {"plain", HealthNone}}},
		{"a route not of the domain changes nothing", []Domain{plain}, Maintenance{{uuidP, a51}: why},
			map[netip.Prefix]want{p60: {"plain", HealthNone}, p61: {"plain", HealthNone}}},
		{"healthy checks with on-failure withdraw: withdrawn", []Domain{a}, Maintenance{{UUID: uuidA}: why},
			map[netip.Prefix]want{}},
		{"on-failure depreference: depreferenced", []Domain{b}, Maintenance{{UUID: uuidB}: why},
			map[netip.Prefix]want{any: {"web-b", HealthFailing}}},
		{"anycast: the member in maintenance gives way to the other", []Domain{a, b}, Maintenance{{UUID: uuidA}: why},
			map[netip.Prefix]want{any: {"web-b", HealthUp}}},
		{"anycast: a depreferenced member in maintenance loses to a healthy one", []Domain{a, b}, Maintenance{{UUID: uuidB}: why},
			map[netip.Prefix]want{any: {"web-a", HealthUp}, a51: {"web-a", HealthUp}}},
		{"a metadata domain: its claim is not made", []Domain{m1, plain}, Maintenance{{UUID: uuidM1}: why},
			map[netip.Prefix]want{p60: {"plain", HealthNone}, p61: {"plain", HealthNone}}},
		{"another domain's maintenance changes nothing", []Domain{plain}, Maintenance{{UUID: uuidA}: why},
			map[netip.Prefix]want{p60: {"plain", HealthNone}, p61: {"plain", HealthNone}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Desired(tt.domains, m, Policy{Trust: trust}, nil, healthy, tt.maint)
			if len(got) != len(tt.want) {
				t.Fatalf("Desired = %v, want %v", slices.Collect(maps.Keys(got)), tt.want)
			}
			for p, w := range tt.want {
				g, ok := got[p]
				if !ok {
					t.Fatalf("Desired lacks %s: %v", p, slices.Collect(maps.Keys(got)))
				}
				if g.Domain != w.domain || g.Health != w.health {
					t.Errorf("%s: got domain %s health %q, want %+v", p, g.Domain, g.Health, w)
				}
				if w.health == HealthFailing {
					if g.HealthReason != why || g.Route.MED == nil || *g.Route.MED != 1000 || g.Route.ASPathPrepend != 2 {
						t.Errorf("%s: depreferenced route %+v, reason %q; want med 1000, prepend 2, reason %q", p, g.Route, g.HealthReason, why)
					}
				}
			}
		})
	}
}

// TestDomainPrefixes: a domain may put in maintenance the routes of its
// mapping entry, else of its metadata claim.
func TestDomainPrefixes(t *testing.T) {
	m := parseMapping(t, maintMapping)
	tests := []struct {
		name string
		d    Domain
		want []string
	}{
		{"mapped", dom("plain", "u1", StateOff, ""), []string{"192.0.2.60/32", "192.0.2.61/32"}},
		{"metadata", withClaims(dom("m1", uuidM1, StateRunning, ""), claim("198.51.100.2/32", "198.51.100.1/32"), nil), []string{"198.51.100.1/32", "198.51.100.2/32"}},
		{"nova", withClaims(dom("n1", uuidM2, StateRunning, ""), nil, claim("203.0.113.9/32")), []string{"203.0.113.9/32"}},
		{"neither", dom("other", "u2", StateRunning, ""), []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DomainPrefixes(tt.d, m)
			var gs []string
			for _, p := range got {
				gs = append(gs, p.String())
			}
			if gs == nil {
				gs = []string{}
			}
			if !slices.Equal(gs, tt.want) {
				t.Errorf("DomainPrefixes = %v, want %v", gs, tt.want)
			}
		})
	}
}

// TestReconcilerMaintenance: SetMaintenance withdraws the routes in
// maintenance (logged with reason maintenance and who set it), the
// maintenance at start keeps them out of the first sync, and ending it
// announces them again.
func TestReconcilerMaintenance(t *testing.T) {
	log, buf := testutil.Logger()
	web := dom("web-01", uuidWeb, StateRunning, "booted")
	hv, sp := newFakeHV(web, dom("db-01", uuidDB, StateRunning, "booted")), newFakeSpeaker()
	m := parseMapping(t, testMapping)
	v6 := netip.MustParsePrefix("2001:db8::10/128")
	r := New(Options{Hypervisor: hv, Speaker: sp, Mapping: m, Log: log, Policy: Policy{StandbyPrepend: 2},
		Maintenance: Maintenance{{UUID: uuidDB}: "maintenance by uid 0"}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-r.Synced()
	if got := sp.prefixes(); !slices.Equal(got, []string{"192.0.2.10/32", "2001:db8::10/128"}) {
		t.Fatalf("first sync announced %v, want web-01's routes only (db-01 in maintenance)", got)
	}
	if err := r.SetMaintenance(ctx, Maintenance{{UUID: uuidWeb, Prefix: v6}: "maintenance by token ops"}); err != nil {
		t.Fatal(err)
	}
	if got := sp.prefixes(); !slices.Equal(got, []string{"192.0.2.10/32", "192.0.2.20/32"}) {
		t.Errorf("after the maintenance moved: %v, want 192.0.2.10 and db-01's 192.0.2.20", got)
	}
	want := `msg="route withdrawn" domain=web-01 vm=web-01 prefix=2001:db8::10/128 action=withdraw reason=maintenance health_reason="maintenance by token ops"`
	if !strings.Contains(buf.String(), want) {
		t.Errorf("log has no\n%s\nlog:\n%s", want, buf.String())
	}
	if err := r.SetMaintenance(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got := sp.prefixes(); len(got) != 3 {
		t.Errorf("after the maintenance ended: %v, want all three", got)
	}
}
