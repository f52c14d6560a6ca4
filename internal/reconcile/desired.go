package reconcile

import (
	"net/netip"

	"github.com/virtbgp/virtbgp/mapping"
)

// Policy is what the operator decides about borderline states.
type Policy struct {
	// KeepPaused keeps the routes of a domain paused for a reason other than
	// an incoming migration (policy.paused: keep).
	KeepPaused bool
	// StandbyPrepend is the number of extra local-AS prepends on the standby
	// route announced while an incoming migration runs, so that peers prefer
	// the source's path until the guest resumes here.
	StandbyPrepend uint8
}

// Want is one route the reconciler wants announced, and why.
type Want struct {
	Route  mapping.Route
	VM     string // mapping key
	Domain string // libvirt domain name
	UUID   string // libvirt domain UUID
	// Why says which rule selected the route: "running", "standby" (incoming
	// migration), "paused-keep".
	Why string
}

// Reasons a route is wanted.
const (
	WhyRunning    = "running"
	WhyStandby    = "standby"
	WhyPausedKeep = "paused-keep"
)

// serving decides from a domain's state whether its routes are wanted, and
// how: the table "When is a domain serving here?" of DESIGN.md.
func serving(d Domain, p Policy) (why string, ok bool) {
	switch d.State {
	case StateRunning:
		return WhyRunning, true
	case StatePaused:
		if d.IncomingMigration {
			return WhyStandby, true
		}
		if p.KeepPaused {
			return WhyPausedKeep, true
		}
	}
	return "", false
}

// Desired computes the routes that should be announced, as a pure function
// of the domains on this host, the mapping and the policy. Only prefixes that
// the mapping names can appear in the result.
func Desired(domains []Domain, m *mapping.Mapping, p Policy) map[netip.Prefix]Want {
	out := make(map[netip.Prefix]Want)
	if m == nil {
		return out
	}
	for _, d := range domains {
		why, ok := serving(d, p)
		if !ok {
			continue
		}
		key, routes := m.Lookup(d.Name, d.UUID)
		for _, r := range routes {
			if why == WhyStandby {
				r = r.Clone()
				r.ASPathPrepend = addPrepend(r.ASPathPrepend, p.StandbyPrepend)
			}
			w := Want{Route: r, VM: key, Domain: d.Name, UUID: d.UUID, Why: why}
			// The mapping gives each prefix to one entry, and an entry
			// matches at most one domain on a host; should two domains
			// still claim a prefix, a running one wins over a standby one.
			if prev, dup := out[r.Prefix]; dup && rank(prev.Why) >= rank(why) {
				continue
			}
			out[r.Prefix] = w
		}
	}
	return out
}

func rank(why string) int {
	switch why {
	case WhyRunning:
		return 2
	case WhyPausedKeep:
		return 1
	}
	return 0
}

func addPrepend(a, b uint8) uint8 {
	if int(a)+int(b) > 255 {
		return 255
	}
	return a + b
}
