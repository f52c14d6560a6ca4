package reconcile

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/virtbgp/virtbgp/internal/testutil"
	"github.com/virtbgp/virtbgp/mapping"
)

const (
	uuidM1 = "00000000-0000-0000-0000-0000000000e1"
	uuidM2 = "00000000-0000-0000-0000-0000000000e2"
)

// trust allows metadata 198.51.100.0/24 and Nova 203.0.113.0/24, host
// routes only, no explicit next hops.
var trust = Trust{
	Metadata: mapping.Allow{Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("192.0.2.0/24")}},
	Nova:     mapping.Allow{Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}},
}

// claim is a Claim of host routes with no attributes.
func claim(prefixes ...string) *Claim {
	c := &Claim{}
	for _, p := range prefixes {
		c.Routes = append(c.Routes, mapping.Route{Prefix: netip.MustParsePrefix(p)})
	}
	return c
}

// withClaims is d with the claims.
func withClaims(d Domain, meta, nova *Claim) Domain {
	d.Claims = &Claims{Metadata: meta, Nova: nova}
	return d
}

// TestResolve: precedence between the file, virtbgp metadata and Nova for
// one domain; refusals by the trust rules, by the file, and between two
// domains; a bad element isolates its domain.
func TestResolve(t *testing.T) {
	m := parseMapping(t, testMapping)
	running := func(name, uuid string) Domain { return dom(name, uuid, StateRunning, "booted") }
	type want struct {
		routes  map[string]string // prefix -> domain UUID
		sources map[string]string // UUID -> source
		refused map[string]string // UUID -> "prefix: reason substring; ..."
		errs    map[string]string // UUID -> error substring
		ignored map[string]string // UUID -> ignored source
	}
	tests := []struct {
		name    string
		domains []Domain
		prev    map[netip.Prefix]Want
		want    want
	}{
		{"metadata only",
			[]Domain{withClaims(running("m1", uuidM1), claim("198.51.100.1/32", "198.51.100.2/32"), nil)}, nil,
			want{routes: map[string]string{"198.51.100.1/32": uuidM1, "198.51.100.2/32": uuidM1}, sources: map[string]string{uuidM1: SourceMetadata}}},
		{"nova only",
			[]Domain{withClaims(running("n1", uuidM1), nil, claim("203.0.113.5/32"))}, nil,
			want{routes: map[string]string{"203.0.113.5/32": uuidM1}, sources: map[string]string{uuidM1: SourceNova}}},
		{"metadata wins over nova",
			[]Domain{withClaims(running("m1", uuidM1), claim("198.51.100.1/32"), claim("203.0.113.5/32"))}, nil,
			want{routes: map[string]string{"198.51.100.1/32": uuidM1}, sources: map[string]string{uuidM1: SourceMetadata}, ignored: map[string]string{uuidM1: SourceNova}}},
		{"the file wins over metadata for the domain it maps",
			[]Domain{withClaims(running("web-01", uuidWeb), claim("198.51.100.1/32"), nil)}, nil,
			want{routes: map[string]string{"192.0.2.10/32": uuidWeb, "2001:db8::10/128": uuidWeb}, sources: map[string]string{uuidWeb: SourceFile}, ignored: map[string]string{uuidWeb: SourceMetadata}}},
		{"a bad element gives nothing and does not fall back to nova; the others are untouched",
			[]Domain{
				withClaims(running("m1", uuidM1), &Claim{Err: "virtbgp metadata:1:5: vm: med: bad"}, claim("203.0.113.5/32")),
				withClaims(running("m2", uuidM2), claim("198.51.100.2/32"), nil),
				running("web-01", uuidWeb),
			}, nil,
			want{routes: map[string]string{"198.51.100.2/32": uuidM2, "192.0.2.10/32": uuidWeb, "2001:db8::10/128": uuidWeb},
				sources: map[string]string{uuidM1: SourceMetadata, uuidM2: SourceMetadata, uuidWeb: SourceFile},
				errs:    map[string]string{uuidM1: "med: bad"}, ignored: map[string]string{uuidM1: SourceNova}}},
		{"outside the allowed prefixes, not a host route, a next hop: refused, the rest announced",
			[]Domain{withClaims(running("m1", uuidM1), &Claim{Routes: []mapping.Route{
				{Prefix: netip.MustParsePrefix("10.1.2.3/32")},
				{Prefix: netip.MustParsePrefix("198.51.100.0/28")},
				{Prefix: netip.MustParsePrefix("198.51.100.7/32"), NextHop: netip.MustParseAddr("198.51.100.1")},
				{Prefix: netip.MustParsePrefix("198.51.100.8/32")},
			}}, nil)}, nil,
			want{routes: map[string]string{"198.51.100.8/32": uuidM1}, sources: map[string]string{uuidM1: SourceMetadata},
				refused: map[string]string{uuidM1: "10.1.2.3/32: outside the prefixes allowed; 198.51.100.0/28: a /28, and this source may claim host routes (/32) only; 198.51.100.7/32: next hop 198.51.100.1: this source may not set a next hop"}}},
		{"nova's claim outside nova's pool is refused even inside metadata's",
			[]Domain{withClaims(running("n1", uuidM1), nil, claim("198.51.100.9/32"))}, nil,
			want{routes: map[string]string{}, sources: map[string]string{uuidM1: SourceNova},
				refused: map[string]string{uuidM1: "198.51.100.9/32: outside the prefixes allowed"}}},
		{"a prefix the file maps to another VM is refused, even with that VM elsewhere",
			[]Domain{withClaims(running("m1", uuidM1), claim("192.0.2.20/32", "192.0.2.99/32"), nil)}, nil,
			want{routes: map[string]string{"192.0.2.99/32": uuidM1}, sources: map[string]string{uuidM1: SourceMetadata},
				refused: map[string]string{uuidM1: `192.0.2.20/32: the mapping file gives this prefix to "db-01"`}}},
		{"the file's UUID pin holds: a forged db-01 gets nothing from the file, and its metadata cannot take the file's prefix",
			[]Domain{withClaims(running("db-01", uuidM1), claim("192.0.2.20/32"), nil)}, nil,
			want{routes: map[string]string{}, sources: map[string]string{uuidM1: SourceMetadata},
				refused: map[string]string{uuidM1: `192.0.2.20/32: the mapping file gives this prefix to "db-01"`}}},
		{"two claims, none announced yet: the lower UUID wins",
			[]Domain{withClaims(running("m2", uuidM2), claim("198.51.100.1/32"), nil), withClaims(running("m1", uuidM1), claim("198.51.100.1/32"), nil)}, nil,
			want{routes: map[string]string{"198.51.100.1/32": uuidM1}, sources: map[string]string{uuidM1: SourceMetadata, uuidM2: SourceMetadata},
				refused: map[string]string{uuidM2: `198.51.100.1/32: domain "m1" (` + uuidM1 + `) also claims it, and wins (its UUID is lower)`}}},
		{"two claims: the domain that announces it keeps it",
			[]Domain{withClaims(running("m2", uuidM2), claim("198.51.100.1/32"), nil), withClaims(running("m1", uuidM1), claim("198.51.100.1/32"), nil)},
			map[netip.Prefix]Want{netip.MustParsePrefix("198.51.100.1/32"): {UUID: uuidM2, Source: SourceMetadata}},
			want{routes: map[string]string{"198.51.100.1/32": uuidM2}, sources: map[string]string{uuidM1: SourceMetadata, uuidM2: SourceMetadata},
				refused: map[string]string{uuidM1: `198.51.100.1/32: domain "m2" (` + uuidM2 + `) also claims it, and wins (it announces it already)`}}},
		{"two claims: a running domain wins over a standby one",
			[]Domain{withClaims(running("m2", uuidM2), claim("198.51.100.1/32"), nil), withClaims(Domain{Name: "m1", UUID: uuidM1, State: StatePaused, Migration: MigrationIncoming}, claim("198.51.100.1/32"), nil)}, nil,
			want{routes: map[string]string{"198.51.100.1/32": uuidM2}, sources: map[string]string{uuidM1: SourceMetadata, uuidM2: SourceMetadata},
				refused: map[string]string{uuidM1: "its state ranks higher"}}},
		{"a stopped domain's claim conflicts with nothing",
			[]Domain{withClaims(running("m2", uuidM2), claim("198.51.100.1/32"), nil), withClaims(dom("m1", uuidM1, StateOff, "shutdown"), claim("198.51.100.1/32"), nil)}, nil,
			want{routes: map[string]string{"198.51.100.1/32": uuidM2}, sources: map[string]string{uuidM1: SourceMetadata, uuidM2: SourceMetadata}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Resolve(tt.domains, m, Policy{StandbyPrepend: 3, Trust: trust}, nil, tt.prev, nil, nil)
			got := map[string]string{}
			for p, w := range res.Want {
				got[p.String()] = w.UUID
				if w.Source != res.Domains[w.UUID].Source {
					t.Errorf("%s: want source %q, domain's source %q", p, w.Source, res.Domains[w.UUID].Source)
				}
			}
			if !mapsEqual(got, tt.want.routes) {
				t.Errorf("routes = %v, want %v", got, tt.want.routes)
			}
			srcs := map[string]string{}
			for u, dr := range res.Domains {
				srcs[u] = dr.Source
			}
			if !mapsEqual(srcs, tt.want.sources) {
				t.Errorf("sources = %v, want %v", srcs, tt.want.sources)
			}
			for u, dr := range res.Domains {
				var parts []string
				for _, r := range dr.Refused {
					parts = append(parts, r.Prefix.String()+": "+r.Reason)
				}
				gotRef, wantRef := strings.Join(parts, "; "), tt.want.refused[u]
				if wantRef == "" && gotRef != "" || !containsAll(gotRef, wantRef) {
					t.Errorf("refused of %s = %q, want %q", u, gotRef, wantRef)
				}
				if e := tt.want.errs[u]; e == "" && dr.Err != "" || !strings.Contains(dr.Err, e) {
					t.Errorf("error of %s = %q, want %q", u, dr.Err, e)
				}
				if dr.Ignored != tt.want.ignored[u] {
					t.Errorf("ignored of %s = %q, want %q", u, dr.Ignored, tt.want.ignored[u])
				}
			}
		})
	}
}

// containsAll reports whether got holds every "; "-separated part of want.
func containsAll(got, want string) bool {
	for part := range strings.SplitSeq(want, "; ") {
		if !strings.Contains(got, part) {
			return false
		}
	}
	return true
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestRefusalStaysTheSame: the refusal of the losing claim reads the same
// in the pass that decides and in the next, when the winner announces the
// prefix, so that it is logged once.
func TestRefusalStaysTheSame(t *testing.T) {
	ds := []Domain{
		withClaims(dom("m2", uuidM2, StateRunning, "booted"), claim("198.51.100.1/32"), nil),
		withClaims(dom("m1", uuidM1, StateRunning, "booted"), claim("198.51.100.1/32"), nil),
	}
	p := Policy{Trust: trust}
	first := Resolve(ds, nil, p, nil, nil, nil, nil)
	second := Resolve(ds, nil, p, nil, first.Want, nil, nil)
	if a, b := first.Domains[uuidM2].Refused, second.Domains[uuidM2].Refused; len(a) != 1 || !slices.Equal(a, b) {
		t.Errorf("refusals of m2: first pass %v, second %v; want the same one", a, b)
	}
}

// TestResolveMetadataStandby: a metadata route gets the standby prepends of
// an incoming migration, as a file route does.
func TestResolveMetadataStandby(t *testing.T) {
	d := withClaims(Domain{Name: "m1", UUID: uuidM1, State: StatePaused, Migration: MigrationIncoming}, claim("198.51.100.1/32"), nil)
	w := Resolve([]Domain{d}, nil, Policy{StandbyPrepend: 3, Trust: trust}, nil, nil, nil, nil).Want[netip.MustParsePrefix("198.51.100.1/32")]
	if w.Why != WhyStandby || w.Route.ASPathPrepend != 3 || w.Source != SourceMetadata {
		t.Errorf("want %+v: want standby, prepend 3, from metadata", w)
	}
}

// TestMetadataClaimNeverDisplaces runs the reconciler: a domain announces a
// prefix from its metadata; a second domain's metadata then claims it too
// and gets a refusal (logged once), and the first keeps the route; a third
// claim outside the pool is refused; the first domain's metadata is then
// removed, and the second gets the prefix without a flap.
func TestMetadataClaimNeverDisplaces(t *testing.T) {
	log, logs := testutil.Logger()
	m1 := withClaims(dom("m1", uuidM2, StateRunning, "booted"), claim("198.51.100.1/32"), nil) // the higher UUID
	h := start(t, Options{Policy: Policy{Trust: trust}, Log: log}, m1)
	h.wantPrefixes("198.51.100.1/32")

	m2 := withClaims(dom("m2", uuidM1, StateRunning, "booted"), claim("198.51.100.1/32", "10.0.0.1/32"), nil)
	h.hv.set(m2, true)
	h.wantPrefixes("198.51.100.1/32")
	snap := h.settle()
	if a := snap.Announced[0]; a.UUID != uuidM2 {
		t.Fatalf("198.51.100.1/32 announced for %s, want m1 (%s), which held it", a.Domain, uuidM2)
	}
	if dr := snap.Sources[uuidM1]; len(dr.Refused) != 2 {
		t.Errorf("m2's refusals = %+v, want 2", dr.Refused)
	}
	h.hv.set(m2, true) // the same again: no new warning
	h.settle()
	if n := strings.Count(logs.String(), `msg="route claim refused"`); n != 2 {
		t.Errorf("logged %d refusals, want 2 (once each):\n%s", n, logs)
	}
	for _, field := range []string{"domain=m2", "uuid=" + uuidM1, "source=metadata", "prefix=10.0.0.1/32", `reason="outside the prefixes allowed to this source"`} {
		if !strings.Contains(logs.String(), field) {
			t.Errorf("the refusal log lacks %s:\n%s", field, logs)
		}
	}

	// The same route passes to m2 without a withdrawal or an update.
	h.sp.resetOps()
	m1.Claims = nil
	h.hv.set(m1, true)
	h.wantPrefixes("198.51.100.1/32")
	if a := h.settle().Announced[0]; a.UUID != uuidM1 || a.Source != SourceMetadata {
		t.Errorf("after m1 let go: %+v, want m2's", a)
	}
	if _, ops := h.sp.snapshot(); len(ops) != 0 {
		t.Errorf("speaker calls at the handover %v, want none (the same route)", ops)
	}
}

// TestBadMetadataLoggedOnce: a domain's bad element is logged once per
// change at warn, with the domain and the problem, and its routes are
// withdrawn while another domain's stay.
func TestBadMetadataLoggedOnce(t *testing.T) {
	log, logs := testutil.Logger()
	m1 := withClaims(dom("m1", uuidM1, StateRunning, "booted"), claim("198.51.100.1/32"), nil)
	m2 := withClaims(dom("m2", uuidM2, StateRunning, "booted"), claim("198.51.100.2/32"), nil)
	h := start(t, Options{Policy: Policy{Trust: trust}, Log: log}, m1, m2)
	h.wantPrefixes("198.51.100.1/32", "198.51.100.2/32")
	h.sp.resetOps()

	m1.Claims = &Claims{Metadata: &Claim{Err: `domain "m1": virtbgp metadata:1:5: vm: med: want an integer`}}
	h.hv.set(m1, true)
	h.wantPrefixes("198.51.100.2/32")
	h.hv.set(m1, true)
	h.settle()
	if _, ops := h.sp.snapshot(); !slices.Equal(ops, []string{"withdraw 198.51.100.1/32"}) {
		t.Errorf("speaker calls %v, want only m1's withdrawal", ops)
	}
	if n := strings.Count(logs.String(), `msg="domain metadata rejected" domain=m1 uuid=`+uuidM1+` source=metadata error=`); n != 1 {
		t.Errorf("logged the rejection %d times, want once:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), `msg="route withdrawn" domain=m1 vm="" prefix=198.51.100.1/32 action=withdraw reason=unclaimed`) {
		t.Errorf("withdrawal reason not logged as unclaimed:\n%s", logs)
	}
}

// TestArrivalMappedByMetadata: a domain that arrives by migration with
// routes from its metadata, and no entry in the file, is not an unmapped
// arrival; one whose metadata names nothing is.
func TestArrivalMappedByMetadata(t *testing.T) {
	m := parseMapping(t, testMapping)
	in := Domain{Name: "m1", UUID: uuidM1, State: StatePaused, Migration: MigrationIncoming}
	withMeta := withClaims(in, claim("198.51.100.1/32"), nil)
	for _, tc := range []struct {
		name     string
		d        Domain
		unmapped bool
	}{{"metadata names it", withMeta, false}, {"nothing names it", in, true}} {
		domains := map[string]Domain{uuidM1: tc.d}
		res := Resolve([]Domain{tc.d}, m, Policy{StandbyPrepend: 3, Trust: trust}, nil, nil, nil, nil)
		next, ch := TrackArrivals(nil, domains, m, res.Domains)
		if a, ok := next[uuidM1]; !ok || a.Unmapped != tc.unmapped || (len(ch.Unmapped) == 1) != tc.unmapped {
			t.Errorf("%s: arrival %+v (recorded %v), changes %+v; want unmapped %v", tc.name, a, ok, ch, tc.unmapped)
		}
	}
}
