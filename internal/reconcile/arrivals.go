package reconcile

import (
	"cmp"
	"slices"

	"github.com/virtbgp/virtbgp/mapping"
)

// State reasons (Domain.Reason, in the words of internal/libvirt's
// stateReason) that tell how a domain came to run here.
const (
	// ReasonMigrated: running after an incoming migration completed here.
	ReasonMigrated = "migrated"
	// ReasonPostcopy: running here, the destination of a post-copy
	// migration.
	ReasonPostcopy = "postcopy"
	// ReasonBooted, ReasonRestored and ReasonFromSnapshot: running after
	// a start on this host (a new guest, not one that arrived).
	ReasonBooted       = "booted"
	ReasonRestored     = "restored"
	ReasonFromSnapshot = "from snapshot"
)

// Arrival is the reconciler's record of a domain that arrived on this host
// by an incoming live migration. It is kept from the first pass that sees
// the arrival (the destination's standby, or the guest running with reason
// migrated or postcopy) until the domain is off, gone, or started anew
// here; a pause or an outgoing migration in between does not end it. The
// record lives in the reconciler's memory: a restarted virtbgp records the
// domains whose state still says they arrived by migration, anew.
type Arrival struct {
	// Unmapped: the mapping in force has no entry for the domain and its
	// metadata names no routes either, so none of its routes is announced
	// here (the mapping of the host it came
	// from named it, or it would have had none there either).
	Unmapped bool
	// reported: the arrival was found unmapped once and reported (logged
	// at warn and counted); a later unmapping by a reload is not reported
	// again, so each arrival is reported at most once.
	reported bool
}

// MigratedIn reports whether a domain's state shows that it arrived on
// this host by live migration: it is the paused destination of an incoming
// migration, or it runs with reason migrated or postcopy.
func MigratedIn(d Domain) bool {
	switch d.State {
	case StatePaused:
		return d.Migration == MigrationIncoming
	case StateRunning:
		return d.Reason == ReasonMigrated || d.Reason == ReasonPostcopy
	}
	return false
}

// startedHere reports whether a domain's state ends an arrival: off, or
// running after a start on this host.
func startedHere(d Domain) bool {
	switch d.State {
	case StateOff:
		return true
	case StateRunning:
		return d.Reason == ReasonBooted || d.Reason == ReasonRestored || d.Reason == ReasonFromSnapshot
	}
	return false
}

// ArrivalChanges is what TrackArrivals found new in one pass.
type ArrivalChanges struct {
	// Unmapped are the domains found unmapped for the first time since
	// they arrived: to be reported once.
	Unmapped []Domain
	// Mapped are the domains whose arrival was unmapped and that the
	// mapping in force now names (a reload added them).
	Mapped []Domain
}

// TrackArrivals is the next record of arrivals (UUID -> Arrival) from the
// previous one, the domains on this host (UUID -> Domain) and the mapping
// in force; and what changed. Like Desired it is a pure function of its
// inputs: it does not modify prev, and it reads nothing else. A domain that has no record and does not show
// an arrival by its state (MigratedIn) gets none, so a domain that was
// already running here when virtbgp started is only recorded if its state
// reason still says it arrived by migration.
//
// sources are the domains' sources of routes (Resolution.Domains): a domain
// that the mapping does not name but whose metadata does is not unmapped.
func TrackArrivals(prev map[string]Arrival, domains map[string]Domain, m *mapping.Mapping, sources map[string]DomainRoutes) (map[string]Arrival, ArrivalChanges) {
	var next map[string]Arrival
	var ch ArrivalChanges
	for uuid, d := range domains {
		a, known := prev[uuid]
		if known && startedHere(d) || !known && !MigratedIn(d) {
			continue // the arrival ended, or there is none
		}
		vm, _ := m.Lookup(d.Name, d.UUID)
		wasUnmapped := known && a.Unmapped
		a.Unmapped = vm == "" && sources[uuid].Source == ""
		switch {
		case a.Unmapped && !a.reported:
			a.reported = true
			ch.Unmapped = append(ch.Unmapped, d)
		case !a.Unmapped && wasUnmapped:
			ch.Mapped = append(ch.Mapped, d)
		}
		if next == nil {
			next = make(map[string]Arrival, len(prev)+1)
		}
		next[uuid] = a
	}
	byName := func(a, b Domain) int { return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.UUID, b.UUID)) }
	slices.SortFunc(ch.Unmapped, byName)
	slices.SortFunc(ch.Mapped, byName)
	return next, ch
}
