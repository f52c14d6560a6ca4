package reconcile

import (
	"net/netip"
	"testing"
)

const healthMapping = `version: 1
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
  web-c:
    health:
      initial: up
      checks: [{type: agent}]
    ips: [192.0.2.52]
`

func TestDesiredHealth(t *testing.T) {
	m := parseMapping(t, healthMapping)
	const uuidA, uuidB, uuidC = "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b", "00000000-0000-0000-0000-00000000000c"
	a := dom("web-a", uuidA, StateRunning, "")
	b := dom("web-b", uuidB, StateRunning, "")
	c := dom("web-c", uuidC, StateRunning, "")
	any, a51, c52 := netip.MustParsePrefix("192.0.2.50/32"), netip.MustParsePrefix("192.0.2.51/32"), netip.MustParsePrefix("192.0.2.52/32")
	up := RouteHealth{}
	down := RouteHealth{Failing: true, Reason: "check agent: no answer"}
	type want struct {
		domain, health string
		med            uint32 // 0: none
		prepend        uint8
	}
	tests := []struct {
		name    string
		domains []Domain
		health  Health
		want    map[netip.Prefix]want
	}{
		{"starting, initial down: withdrawn; initial up: announced", []Domain{a, c}, nil,
			map[netip.Prefix]want{c52: {"web-c", HealthUp, 0, 0}}},
		{"all healthy: the anycast IP from the lower UUID", []Domain{a, b, c},
			Health{{uuidA, any}: up, {uuidA, a51}: up, {uuidB, any}: up, {uuidC, c52}: up},
			map[netip.Prefix]want{any: {"web-a", HealthUp, 0, 0}, a51: {"web-a", HealthUp, 0, 0}, c52: {"web-c", HealthUp, 0, 0}}},
		{"a failing member (withdraw) leaves the anycast IP to the other", []Domain{a, b},
			Health{{uuidA, any}: down, {uuidA, a51}: down, {uuidB, any}: up},
			map[netip.Prefix]want{any: {"web-b", HealthUp, 0, 0}}},
		{"a depreferenced member loses to a healthy one", []Domain{a, b},
			Health{{uuidA, any}: up, {uuidA, a51}: up, {uuidB, any}: down},
			map[netip.Prefix]want{any: {"web-a", HealthUp, 0, 0}, a51: {"web-a", HealthUp, 0, 0}}},
		{"the last member failing: depreferenced, not withdrawn", []Domain{a, b},
			Health{{uuidA, any}: down, {uuidA, a51}: down, {uuidB, any}: down},
			map[netip.Prefix]want{any: {"web-b", HealthFailing, 1000, 2}}},
		{"a failing check after initial up withdraws", []Domain{c},
			Health{{uuidC, c52}: down}, map[netip.Prefix]want{}},
		{"a stopped domain is not announced, whatever its health", []Domain{dom("web-c", uuidC, StateOff, "")},
			Health{{uuidC, c52}: up}, map[netip.Prefix]want{}},
		// Migrating out (pre-copy): its anycast IP gets the switch-over
		// prepend, so the ToRs prefer other members before the guest
		// pauses; its other IPs stay as they are (make-before-break).
		{"a member leaving: its anycast IP depreferenced, its other IP not", []Domain{leaving(a)},
			Health{{uuidA, any}: up, {uuidA, a51}: up},
			map[netip.Prefix]want{any: {"web-a", HealthUp, 0, SwitchoverPrepend}, a51: {"web-a", HealthUp, 0, 0}}},
		{"a member leaving loses the anycast IP to a local one staying", []Domain{leaving(a), b},
			Health{{uuidA, any}: up, {uuidA, a51}: up, {uuidB, any}: up},
			map[netip.Prefix]want{any: {"web-b", HealthUp, 0, 0}, a51: {"web-a", HealthUp, 0, 0}}},
		{"a leaving member beats a failing one", []Domain{leaving(a), b},
			Health{{uuidA, any}: up, {uuidA, a51}: up, {uuidB, any}: down},
			map[netip.Prefix]want{any: {"web-a", HealthUp, 0, SwitchoverPrepend}, a51: {"web-a", HealthUp, 0, 0}}},
		// Arrived by live migration (running after a pre-copy or in
		// post-copy): its guest was serving on the source, so its routes
		// start up, not "starting" (initial down).
		{"arrived by pre-copy: up before its first check", []Domain{dom("web-a", uuidA, StateRunning, ReasonMigrated)}, nil,
			map[netip.Prefix]want{any: {"web-a", HealthUp, 0, 0}, a51: {"web-a", HealthUp, 0, 0}}},
		{"arrived by post-copy: up before its first check", []Domain{dom("web-a", uuidA, StateRunning, ReasonPostcopy)}, nil,
			map[netip.Prefix]want{any: {"web-a", HealthUp, 0, 0}, a51: {"web-a", HealthUp, 0, 0}}},
		{"a non-anycast IP of a leaving domain stays", []Domain{leaving(c)},
			Health{{uuidC, c52}: up}, map[netip.Prefix]want{c52: {"web-c", HealthUp, 0, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Desired(tt.domains, m, Policy{}, nil, tt.health, nil)
			if len(got) != len(tt.want) {
				t.Fatalf("Desired = %v, want %v", got, tt.want)
			}
			for p, w := range tt.want {
				g, ok := got[p]
				if !ok {
					t.Fatalf("Desired lacks %s: %v", p, got)
				}
				med := uint32(0)
				if g.Route.MED != nil {
					med = *g.Route.MED
				}
				wantWhy := WhyRunning
				if w.prepend == SwitchoverPrepend {
					wantWhy = WhyLeaving
				}
				if g.Domain != w.domain || g.Health != w.health || med != w.med || g.Route.ASPathPrepend != w.prepend || (w.health == HealthUp && g.Why != wantWhy) {
					t.Errorf("%s: got domain %s health %s med %d prepend %d, want %+v", p, g.Domain, g.Health, med, g.Route.ASPathPrepend, w)
				}
				if w.health == HealthFailing && (len(g.Route.Communities) != 1 || g.Route.Communities[0] != 65001<<16|666 || g.HealthReason != down.Reason) {
					t.Errorf("%s: depreferenced route %v, reason %q", p, g.Route, g.HealthReason)
				}
			}
		})
	}
}

// leaving is d migrating out, still running here.
func leaving(d Domain) Domain {
	d.Migration = MigrationLeaving
	return d
}

// TestResolveAnycastKeepsHolder: between two healthy members of equal
// state the one announcing the prefix keeps it, so that a member coming up
// moves nothing.
func TestResolveAnycastKeepsHolder(t *testing.T) {
	m := parseMapping(t, healthMapping)
	const uuidA, uuidB = "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b"
	any := netip.MustParsePrefix("192.0.2.50/32")
	ds := []Domain{dom("web-a", uuidA, StateRunning, ""), dom("web-b", uuidB, StateRunning, "")}
	h := Health{{uuidA, any}: {}, {uuidB, any}: {}}
	prev := map[netip.Prefix]Want{any: {UUID: uuidB, Source: SourceFile, Domain: "web-b"}}
	if got := Resolve(ds, m, Policy{}, nil, prev, h, nil).Want[any]; got.Domain != "web-b" {
		t.Errorf("anycast prefix held by web-b went to %s", got.Domain)
	}
	if got := Resolve(ds, m, Policy{}, nil, nil, h, nil).Want[any]; got.Domain != "web-a" {
		t.Errorf("anycast prefix held by none went to %s, want the lower UUID", got.Domain)
	}
}
