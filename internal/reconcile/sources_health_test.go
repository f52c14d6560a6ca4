package reconcile

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/virtbgp/virtbgp/internal/testutil"
	"github.com/virtbgp/virtbgp/mapping"
)

// metaClaim is the Claim of a virtbgp element, parsed as the adapter does.
func metaClaim(t *testing.T, name, xml string) *Claim {
	t.Helper()
	m, err := mapping.ParseMetadata(name, []byte(xml))
	if err != nil {
		t.Fatal(err)
	}
	return &Claim{Routes: m.Routes, Health: m.Health}
}

// TestResolveMetadataHealth: the routes of virtbgp's element follow their
// checks as a file entry's do; a route whose checks break the trust rules
// is refused with the reason; Checked, what the monitor runs, lists the
// checks of exactly the routes Resolve may announce.
func TestResolveMetadataHealth(t *testing.T) {
	m := parseMapping(t, testMapping)
	p1, p2, p3 := netip.MustParsePrefix("198.51.100.1/32"), netip.MustParsePrefix("198.51.100.2/32"), netip.MustParsePrefix("198.51.100.3/32")
	outside, fileOwned := netip.MustParsePrefix("10.9.9.9/32"), netip.MustParsePrefix("192.0.2.20/32")
	const element = `<vm>
  <health on-failure="depreference"><depreference med="900"/><check type="agent"/></health>
  <ip prefix="198.51.100.1"/>
  <ip prefix="198.51.100.2"><health><check type="tcp" address="{ip}:22"/></health></ip>
  <ip prefix="198.51.100.3"><health><check type="exec" command="/bin/true"/></health></ip>
  <ip prefix="10.9.9.9"><health><check type="tcp" address="{ip}:22"/></health></ip>
  <ip prefix="192.0.2.20"><health><check type="tcp" address="{ip}:22"/></health></ip>
  <ip prefix="198.51.100.4"/>
</vm>`
	d := withClaims(dom("m1", uuidM1, StateRunning, "booted"), metaClaim(t, "m1", element), nil)
	down := RouteHealth{Failing: true, Reason: "check agent down: no answer"}
	type want struct {
		health string
		med    uint32
	}
	p4 := netip.MustParsePrefix("198.51.100.4/32")
	for _, tc := range []struct {
		name   string
		health Health
		want   map[netip.Prefix]want
	}{
		{"not checked yet: starting, depreferenced or withdrawn", nil,
			map[netip.Prefix]want{p1: {HealthFailing, 900}, p4: {HealthFailing, 900}}},
		{"healthy", Health{{uuidM1, p1}: {}, {uuidM1, p2}: {}, {uuidM1, p4}: {}},
			map[netip.Prefix]want{p1: {HealthUp, 0}, p2: {HealthUp, 0}, p4: {HealthUp, 0}}},
		{"failing", Health{{uuidM1, p1}: down, {uuidM1, p2}: down, {uuidM1, p4}: {}},
			map[netip.Prefix]want{p1: {HealthFailing, 900}, p4: {HealthUp, 0}}},
		{"a refused route stays refused whatever its health", Health{{uuidM1, p3}: {}, {uuidM1, outside}: {}},
			map[netip.Prefix]want{p1: {HealthFailing, 900}, p4: {HealthFailing, 900}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := Resolve([]Domain{d}, m, Policy{Trust: trust}, nil, nil, tc.health, nil)
			if len(res.Want) != len(tc.want) {
				t.Errorf("Want = %v, want %v", res.Want, tc.want)
			}
			for p, w := range tc.want {
				g, ok := res.Want[p]
				med := uint32(0)
				if ok && g.Route.MED != nil {
					med = *g.Route.MED
				}
				if !ok || g.Health != w.health || med != w.med || g.Source != SourceMetadata {
					t.Errorf("%s: got %+v (present %v), want %+v", p, g, ok, w)
				}
			}
			var refused []string
			for _, r := range res.Domains[uuidM1].Refused {
				refused = append(refused, r.Prefix.String()+": "+r.Reason)
			}
			for _, w := range []string{
				`10.9.9.9/32: outside the prefixes allowed to this source`,
				`192.0.2.20/32: the mapping file gives this prefix to "db-01"`,
				`198.51.100.3/32: health check "exec": exec checks are not allowed from metadata`,
			} {
				if !slices.ContainsFunc(refused, func(s string) bool { return strings.HasPrefix(s, w) }) {
					t.Errorf("refusals %q lack %q", refused, w)
				}
			}
			if len(refused) != 3 {
				t.Errorf("refusals %q, want 3", refused)
			}
		})
	}
	// The monitor runs the checks of 198.51.100.1, .2 and .4 only: not those
	// of the refused routes (a tcp check of 10.9.9.9 would probe an
	// address outside the pools from the hypervisor).
	vm, routes, health := Checked(d, m, &trust)
	var checked []string
	for _, r := range routes {
		if health[r.Prefix] != nil {
			checked = append(checked, r.Prefix.String())
		}
	}
	if vm != "" || strings.Join(checked, " ") != "198.51.100.1/32 198.51.100.2/32 198.51.100.4/32" {
		t.Errorf("Checked = %q, %q; want the checks of 198.51.100.1/32, .2 and .4 only", vm, checked)
	}
	// Without the trust rules for metadata (the source disabled), nothing.
	if _, routes, _ := Checked(d, m, &Trust{}); len(routes) != 0 {
		t.Errorf("Checked with metadata allowed nothing: %v", routes)
	}
	// A file entry's checks are the file's, whatever the domain's metadata.
	web := withClaims(dom("db-01", uuidDB, StateRunning, "booted"), metaClaim(t, "db-01", element), nil)
	if vm, routes, _ := Checked(web, m, &trust); vm != "db-01" || len(routes) != 1 || routes[0].Prefix != fileOwned {
		t.Errorf("Checked of a file entry = %q %v", vm, routes)
	}
}

// TestResolveNovaHealth: the operator's checks of Nova's routes apply as
// the file's; Nova's routes need no HealthTrust.
func TestResolveNovaHealth(t *testing.T) {
	m := parseMapping(t, testMapping)
	p := netip.MustParsePrefix("203.0.113.5/32")
	h := &mapping.Health{Checks: []mapping.Check{{Name: "exec", Kind: mapping.CheckExec, Command: []string{"/bin/true"}, Interval: 1e9, Timeout: 1e9, Rise: 1, Fall: 1}}}
	c := claim("203.0.113.5/32")
	c.Health = map[netip.Prefix]*mapping.Health{p: h}
	d := withClaims(dom("n1", uuidM2, StateRunning, "booted"), nil, c)
	if res := Resolve([]Domain{d}, m, Policy{Trust: trust}, nil, nil, nil, nil); len(res.Want) != 0 || len(res.Domains[uuidM2].Refused) != 0 {
		t.Errorf("starting: Want %v, refused %v; want nothing, no refusal", res.Want, res.Domains[uuidM2].Refused)
	}
	res := Resolve([]Domain{d}, m, Policy{Trust: trust}, nil, nil, Health{{uuidM2, p}: {}}, nil)
	if w, ok := res.Want[p]; !ok || w.Health != HealthUp || w.Source != SourceNova {
		t.Errorf("healthy: %+v %v", w, ok)
	}
	if _, routes, health := Checked(d, m, &trust); len(routes) != 1 || health[p] != h {
		t.Errorf("Checked = %v", routes)
	}
}

// fakeHealth is a HealthSource whose verdicts the test sets.
type fakeHealth struct {
	mu      sync.Mutex
	h       Health
	changed chan struct{}
	watches int // Watch calls
}

func (f *fakeHealth) Watch([]Domain, *mapping.Mapping, *Trust) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.watches++
}

func (f *fakeHealth) watched() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.watches
}
func (f *fakeHealth) Health() Health {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.h
}
func (f *fakeHealth) Changed() <-chan struct{} { return f.changed }

// set puts h in force and hints the reconciler.
func (f *fakeHealth) set(h Health) {
	f.mu.Lock()
	f.h = h
	f.mu.Unlock()
	f.changed <- struct{}{}
}

// TestMetadataHealthWithdrawReason: a metadata route that its checks hold
// back is announced when they pass and withdrawn when they fail, logged
// with reason health and the checks' reason (not "unclaimed").
func TestMetadataHealthWithdrawReason(t *testing.T) {
	log, logs := testutil.Logger()
	hs := &fakeHealth{changed: make(chan struct{}, 1)}
	m1 := withClaims(dom("m1", uuidM1, StateRunning, "booted"),
		metaClaim(t, "m1", `<vm><health><check type="agent"/></health><ip prefix="198.51.100.1"/></vm>`), nil)
	m2 := withClaims(dom("m2", uuidM2, StateRunning, "booted"), claim("198.51.100.2/32"), nil)
	h := start(t, Options{Policy: Policy{Trust: trust}, Log: log, Health: hs}, m1, m2)
	h.wantPrefixes("198.51.100.2/32") // m1's: starting
	watches := hs.watched()
	if watches == 0 {
		t.Fatal("the monitor was never told the domains")
	}
	key := HealthKey{UUID: uuidM1, Prefix: netip.MustParsePrefix("198.51.100.1/32")}
	hs.set(Health{key: {}})
	h.wantPrefixes("198.51.100.1/32", "198.51.100.2/32")
	hs.set(Health{key: {Failing: true, Reason: "check agent down: no answer"}})
	h.wantPrefixes("198.51.100.2/32")
	// The passes of health changes alone gave the monitor nothing new.
	if n := hs.watched(); n != watches {
		t.Errorf("Watch called %d more times by health changes alone", n-watches)
	}
	want := `msg="route withdrawn" domain=m1 vm="" prefix=198.51.100.1/32 action=withdraw reason=health health_reason="check agent down: no answer"`
	if !strings.Contains(logs.String(), want) {
		t.Errorf("log lacks %s:\n%s", want, logs)
	}
}
