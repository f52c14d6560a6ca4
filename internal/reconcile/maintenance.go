package reconcile

import (
	"net/netip"
	"slices"

	"github.com/virtbgp/virtbgp/mapping"
)

// Maintenance is what an operator took out of service through the API
// (`virtbgp maintenance on`): an input of Resolve like Health. A key with
// a zero Prefix covers every route of the domain UUID; a key with a prefix
// covers that route alone. The value says why, for logs and status
// ("maintenance by uid 0"). Shared and never modified.
//
// A route in maintenance is taken out whether or not its mapping entry has
// checks: withdrawn, or depreferenced when its entry's health says
// "on-failure: depreference" (as a failing check would do).
type Maintenance map[HealthKey]string

// In reports whether route p of the domain uuid is in maintenance, and why
// (the domain's whole entry first).
func (m Maintenance) In(uuid string, p netip.Prefix) (string, bool) {
	if len(m) == 0 {
		return "", false
	}
	if why, ok := m[HealthKey{UUID: uuid}]; ok {
		return why, true
	}
	why, ok := m[HealthKey{UUID: uuid, Prefix: p}]
	return why, ok
}

// applyMaintenance is applyHealth for a route in maintenance: withdrawn,
// or depreferenced when its entry has checks with "on-failure:
// depreference".
func applyMaintenance(r mapping.Route, h *mapping.Health, why string) (mapping.Route, string, string, bool) {
	if h == nil || h.OnFailure != mapping.FailDepreference {
		return r, healthOff, why, false
	}
	return h.Depreference.Apply(r), HealthFailing, why, true
}

// DomainPrefixes returns the prefixes that domain d may announce, sorted:
// its mapping file entry's routes if the file maps it, else those its
// metadata (or Nova's) claims, as Resolve picks the source. It is what an
// operator may put in maintenance one route at a time.
func DomainPrefixes(d Domain, m *mapping.Mapping) []netip.Prefix {
	var routes []mapping.Route
	if vm, ok := m.LookupVM(d.Name, d.UUID); ok {
		routes = vm.Routes
	} else if _, c := d.Claims.pick(); c != nil {
		routes = c.Routes
	}
	out := make([]netip.Prefix, 0, len(routes))
	for _, r := range routes {
		out = append(out, r.Prefix)
	}
	slices.SortFunc(out, netip.Prefix.Compare)
	return slices.Compact(out)
}
