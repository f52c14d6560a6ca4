package reconcile

import (
	"net/netip"

	"github.com/virtbgp/virtbgp/mapping"
)

// HealthKey names one route of one domain.
type HealthKey struct {
	UUID   string
	Prefix netip.Prefix
}

// RouteHealth is what the health checks say of one route of one domain.
type RouteHealth struct {
	// Failing is true when a check of the route is not healthy: failing,
	// in maintenance, unable to run, or starting with "initial: down".
	Failing bool
	// Reason says why, for logs and status ("check http: status 503").
	Reason string
}

// Health is the health of the routes whose mapping entry has checks, as
// the health monitor last computed it: an input of Resolve like the
// domains. A route with checks that is not in it has not been checked yet
// ("starting"), and follows its Health's initial state. Shared and never
// modified.
type Health map[HealthKey]RouteHealth

// HealthSource is the reconciler's view of the health monitor
// (internal/health). Its methods must not block.
type HealthSource interface {
	// Watch tells the monitor the domains, the mapping and the trust
	// rules in force (which checks to run: Checked), after a read that
	// changed the domains and after a new mapping.
	Watch(domains []Domain, m *mapping.Mapping, t *Trust)
	// Health returns the health in force now.
	Health() Health
	// Changed receives a value when Health has changed (a hint: the
	// reconciler runs a pass and reads Health again).
	Changed() <-chan struct{}
}

// Health states of a wanted route (Want.Health).
const (
	HealthNone    = ""         // the route has no checks
	HealthUp      = "up"       // every check passes (or starting with "initial: up")
	HealthFailing = "failing"  // announced, depreferenced
	healthOff     = "withdraw" // not announced (never in a Want)
)

// applyHealth returns the route r of domain d as its health wants it (a
// depreferenced copy with a failing check and on-failure: depreference),
// the health state for Want.Health, and false if the route is withdrawn.
//
// A route not checked yet is starting: it follows the Health's initial
// state, except on a domain that arrived by live migration, whose guest
// was serving on the source: up.
func applyHealth(r mapping.Route, d Domain, h *mapping.Health, hs Health) (mapping.Route, string, string, bool) {
	if h == nil {
		return r, HealthNone, "", true
	}
	rh, known := hs[HealthKey{UUID: d.UUID, Prefix: r.Prefix}]
	switch {
	case known:
	case MigratedIn(d):
		rh = RouteHealth{Reason: "arrived by live migration"}
	default:
		rh = RouteHealth{Failing: !h.InitialUp, Reason: "starting"}
	}
	if !rh.Failing {
		return r, HealthUp, rh.Reason, true
	}
	if h.OnFailure == mapping.FailWithdraw {
		return r, healthOff, rh.Reason, false
	}
	return h.Depreference.Apply(r), HealthFailing, rh.Reason, true
}
