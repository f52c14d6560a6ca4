package mapping_test

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/mapping"
)

// healthDoc is a mapping whose entries use every health key.
var healthDoc = doc(
	"version: 1",
	"defaults:",
	"  health:",
	"    checks:",
	"      - type: agent",
	"vms:",
	"  web-01:",
	"    health:",
	"      initial: up",
	"      on-failure: depreference",
	"      depreference: {communities: [\"65001:666\"], med: 1000, as-path-prepend: 3}",
	"      checks:",
	"        - type: http",
	"          url: http://{ip}:8080/health",
	"          status: 204",
	"          body: ok",
	"          interval: 500ms",
	"          timeout: 200ms",
	"          rise: 2",
	"          fall: 4",
	"          maintenance: /run/virtbgp/web-01.maint",
	"        - {type: tcp, address: \"{ip}:22\", name: ssh}",
	"        - {type: exec, command: [/usr/local/bin/check, --web]}",
	"    ips:",
	"      - 192.0.2.10",
	"      - prefix: 192.0.2.11",
	"        health: {checks: [{type: tcp, address: \"192.0.2.99:443\"}]}",
	"  db-01:",
	"    ips:",
	"      - {prefix: 198.51.100.1, anycast: true}",
	"  db-02:",
	"    ips:",
	"      - {prefix: 198.51.100.1, anycast: true}",
	"      - 198.51.100.2",
)

func TestParseHealth(t *testing.T) {
	m := mustParse(t, healthDoc)
	vms := m.VMs()
	byKey := map[string]mapping.VM{}
	for _, v := range vms {
		byKey[v.Key] = v
	}
	web := byKey["web-01"]
	h10 := web.Health[netip.MustParsePrefix("192.0.2.10/32")]
	if h10 == nil || !h10.InitialUp || h10.OnFailure != mapping.FailDepreference || h10.Line != 8 || h10.File != "m.yaml" {
		t.Fatalf("health of 192.0.2.10 = %+v", h10)
	}
	if d := h10.Depreference; !slices.Equal(d.Communities, []uint32{65001<<16 | 666}) || d.MED == nil || *d.MED != 1000 || d.Prepend != 3 {
		t.Errorf("depreference = %+v", d)
	}
	want := []mapping.Check{
		{Name: "http", Kind: mapping.CheckHTTP, URL: "http://{ip}:8080/health", Status: 204, Body: "ok",
			Interval: 500 * time.Millisecond, Timeout: 200 * time.Millisecond, Rise: 2, Fall: 4,
			Maintenance: "/run/virtbgp/web-01.maint", Line: 13},
		{Name: "ssh", Kind: mapping.CheckTCP, Address: "{ip}:22", Interval: 5 * time.Second, Timeout: 2 * time.Second, Rise: 3, Fall: 3, Line: 22},
		{Name: "exec", Kind: mapping.CheckExec, Command: []string{"/usr/local/bin/check", "--web"}, Interval: 5 * time.Second, Timeout: 2 * time.Second, Rise: 3, Fall: 3, Line: 23},
	}
	if !slices.EqualFunc(h10.Checks, want, func(a, b mapping.Check) bool {
		return a.Key(netip.Addr{}) == b.Key(netip.Addr{}) && a.Line == b.Line && a.Address == b.Address && a.URL == b.URL
	}) {
		t.Errorf("checks:\n got %+v\nwant %+v", h10.Checks, want)
	}
	if got := h10.Checks[0].Target(netip.MustParseAddr("2001:db8::1")); got != "http://[2001:db8::1]:8080/health" {
		t.Errorf("Target(IPv6) = %q", got)
	}
	h11 := web.Health[netip.MustParsePrefix("192.0.2.11/32")]
	if h11 == nil || len(h11.Checks) != 1 || h11.Checks[0].Address != "192.0.2.99:443" || h11.InitialUp || h11.OnFailure != mapping.FailWithdraw {
		t.Errorf("health of 192.0.2.11 (its own) = %+v", h11)
	}
	for _, key := range []string{"db-01", "db-02"} {
		v := byKey[key]
		h := v.Health[netip.MustParsePrefix("198.51.100.1/32")]
		if h == nil || len(h.Checks) != 1 || h.Checks[0].Kind != mapping.CheckAgent || h.Line != 3 {
			t.Errorf("%s: health from the defaults = %+v", key, h)
		}
		if !v.Anycast[netip.MustParsePrefix("198.51.100.1/32")] || v.Anycast[netip.MustParsePrefix("198.51.100.2/32")] {
			t.Errorf("%s: anycast = %v", key, v.Anycast)
		}
	}
	if key, ok := m.Owner(netip.MustParsePrefix("198.51.100.1/32")); !ok || (key != "db-01" && key != "db-02") {
		t.Errorf("Owner(anycast) = %q, %v", key, ok)
	}
	for _, key := range []string{"db-01", "db-02"} {
		if k, routes := m.Lookup(key, ""); k != key || len(routes) == 0 || routes[0].Prefix != netip.MustParsePrefix("198.51.100.1/32") {
			t.Errorf("Lookup(%s) = %q, %v", key, k, routes)
		}
	}
}

func TestParseHealthProblems(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string
		want  []string
	}{{
		name: "mixed anycast",
		lines: []string{"version: 1", "vms:",
			"  a: {ips: [{prefix: 192.0.2.1, anycast: true}]}",
			"  b: {ips: [192.0.2.1]}",
			"  c: {ips: [{prefix: 192.0.2.1, anycast: true}]}"},
		want: []string{
			`m.yaml:4: vm "b": 192.0.2.1/32 is anycast at m.yaml:3 but not at m.yaml:4 (mark every claim of an anycast IP "anycast: true")`,
		},
	}, {
		name: "non-anycast duplicate and anycast twice in one entry",
		lines: []string{"version: 1", "vms:",
			"  a: {ips: [192.0.2.1, {prefix: 192.0.2.2, anycast: true}, {prefix: 192.0.2.2, anycast: true}]}",
			"  b: {ips: [192.0.2.1]}",
			"  c: {ips: [{prefix: 198.51.100.0/24, anycast: true}]}",
			"  d: {ips: [{prefix: 198.51.100.7, anycast: true}]}"},
		want: []string{
			`m.yaml:3: vm "a": 192.0.2.2/32 is listed twice (first at line 3)`,
			`m.yaml:4: vm "b": 192.0.2.1/32 is already mapped to vm "a" at m.yaml:3`,
			`m.yaml:6: vm "d": 198.51.100.7/32 overlaps 198.51.100.0/24 of vm "c" at m.yaml:5`,
		},
	}, {
		name: "bad health values",
		lines: []string{"version: 1", "defaults:",
			"  health: {checks: []}",
			"vms:",
			"  a:",
			"    health:",
			"      on-failure: depreference",
			"      initial: sideways",
			"      colour: red",
			"      checks:",
			"        - {type: ping}",
			"        - {type: tcp, address: \"host:80\"}",
			"        - {type: tcp, address: \"{ip}:0\", url: \"http://x/\"}",
			"        - {type: http, url: \"ftp://{ip}/\", interval: 50ms}",
			"        - {type: http, url: \"http://{ip}/\", interval: 1s, timeout: 2s, rise: 0, fall: 101, status: 700}",
			"        - {type: exec, command: [check]}",
			"        - {type: agent}",
			"        - {type: agent, maintenance: relative/file}",
			"        - {type: agent, name: \"bad name\"}",
			"        - {name: x}",
			"    ips: [192.0.2.1]",
			"  b:",
			"    health:",
			"      depreference: {}",
			"      checks: [{type: agent}, {type: agent}]",
			"    ips: [192.0.2.2]",
			"  c:",
			"    ips: [{prefix: 192.0.2.3, anycast: 1, health: {checks: [{type: http}], on-failure: drop}}]",
		},
		want: []string{
			`m.yaml:3: defaults: health: checks: want at least one check`,
			`m.yaml:7: vm "a": health: on-failure: depreference needs a "depreference" block (communities, med, as-path-prepend)`,
			`m.yaml:8: vm "a": health: initial: want up or down, got "sideways"`,
			`m.yaml:9: vm "a": health: unknown key "colour" (allowed: checks, on-failure, initial, depreference)`,
			`m.yaml:11: vm "a": health: checks[0]: type: want agent, tcp, http or exec, got "ping"`,
			`m.yaml:12: vm "a": health: checks[1]: address: host "host": want an IP address or {ip}`,
			`m.yaml:13: vm "a": health: checks[2]: address: port "0": want 1..65535`,
			`m.yaml:13: vm "a": health: checks[2]: url: only for type http`,
			`m.yaml:14: vm "a": health: checks[3]: interval: want a duration from 100ms to 1h like "1s", got "50ms"`,
			`m.yaml:14: vm "a": health: checks[3]: url: want an http or https URL, got "ftp://{ip}/"`,
			`m.yaml:15: vm "a": health: checks[4]: fall: want an integer from 1 to 100, got 101`,
			`m.yaml:15: vm "a": health: checks[4]: rise: want an integer from 1 to 100, got 0`,
			`m.yaml:15: vm "a": health: checks[4]: status: want an integer from 100 to 599, got 700`,
			`m.yaml:15: vm "a": health: checks[4]: timeout: 2s is longer than the interval 1s`,
			`m.yaml:16: vm "a": health: checks[5]: command: want a list, the program's absolute path first, like [/usr/local/bin/check, --web]`,
			`m.yaml:18: vm "a": health: checks[7]: maintenance: want an absolute file path, got "relative/file"`,
			`m.yaml:25: vm "b": health: checks[1]: check "agent" is already defined at line 25 (give each check of a kind its own name)`,
			`m.yaml:19: vm "a": health: checks[8]: name: want letters, digits, '-', '_' or '.', got "bad name"`,
			`m.yaml:20: vm "a": health: checks[9]: missing "type" (agent, tcp, http or exec)`,
			`m.yaml:24: vm "b": health: depreference: only with on-failure: depreference`,
			`m.yaml:24: vm "b": health: depreference: want at least one of communities, med, as-path-prepend`,
			`m.yaml:28: vm "c" ips[0]: anycast: want true or false, got 1`,
			`m.yaml:28: vm "c" ips[0]: health: checks[0]: missing "url" (like "http://{ip}/health")`,
			`m.yaml:28: vm "c" ips[0]: health: on-failure: want withdraw or depreference, got "drop"`,
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mapping.Parse("m.yaml", doc(tc.lines...))
			got := problems(t, err)
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("problems:\n got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
		})
	}
}

// FuzzParseHealth is FuzzParse seeded with the health and anycast keys: it
// checks that Parse never panics and reports problems as file:line, and
// that what it accepts is consistent: every health has checks, with names
// unique, timings in range and the timeout within the interval, and every
// anycast prefix is owned by an entry that marks it anycast.
func FuzzParseHealth(f *testing.F) {
	f.Add(healthDoc)
	f.Add(doc("version: 1", "vms:", "  a: {ips: [{prefix: 192.0.2.1, anycast: true}]}", "  b: {ips: [{prefix: 192.0.2.1, anycast: true}]}"))
	f.Add(doc("version: 1", "vms:", "  a: {health: {checks: [{type: tcp, address: \"[2001:db8::1]:80\"}]}, ips: [192.0.2.1]}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := mapping.Parse("m.yaml", data)
		if err != nil {
			checkProblems(t, err)
			return
		}
		checkMapping(t, m)
		anycastBy := map[string]map[netip.Prefix]bool{}
		for _, v := range m.VMs() {
			anycastBy[v.Key] = v.Anycast
		}
		for _, v := range m.VMs() {
			for p, h := range v.Health {
				if !slices.ContainsFunc(v.Routes, func(r mapping.Route) bool { return r.Prefix == p }) {
					t.Errorf("vm %q: health for %s, which it does not map", v.Key, p)
				}
				if len(h.Checks) == 0 {
					t.Errorf("vm %q: %s: a health without checks", v.Key, p)
				}
				names := map[string]bool{}
				for _, c := range h.Checks {
					if names[c.Name] || c.Name == "" {
						t.Errorf("vm %q: check name %q empty or twice", v.Key, c.Name)
					}
					names[c.Name] = true
					if c.Interval < 100*time.Millisecond || c.Timeout <= 0 || c.Timeout > c.Interval || c.Rise < 1 || c.Fall < 1 {
						t.Errorf("vm %q: check %+v out of range", v.Key, c)
					}
				}
			}
			for p := range v.Anycast {
				key, ok := m.Owner(p)
				if !ok {
					t.Fatalf("anycast %s has no owner", p)
				}
				if !anycastBy[key][p] {
					t.Errorf("anycast %s of vm %q is owned by vm %q, which does not mark it anycast", p, v.Key, key)
				}
			}
		}
	})
}

// TestCheckShown: logs and status show a check's target without what may
// hold a secret.
func TestCheckShown(t *testing.T) {
	ip := netip.MustParseAddr("192.0.2.1")
	for _, tc := range []struct {
		c    mapping.Check
		want string
	}{
		{mapping.Check{Kind: mapping.CheckHTTP, URL: "https://{ip}/health?token=s3cret"}, "https://192.0.2.1/health"},
		{mapping.Check{Kind: mapping.CheckHTTP, URL: "http://{ip}:8080/h#frag"}, "http://192.0.2.1:8080/h"},
		{mapping.Check{Kind: mapping.CheckExec, Command: []string{"/usr/bin/check", "--password", "s3cret"}}, "/usr/bin/check"},
		{mapping.Check{Kind: mapping.CheckTCP, Address: "{ip}:22"}, "192.0.2.1:22"},
		{mapping.Check{Kind: mapping.CheckAgent}, ""},
	} {
		if got := tc.c.Shown(ip); got != tc.want {
			t.Errorf("Shown(%+v) = %q, want %q", tc.c, got, tc.want)
		}
	}
}
