package reconcile

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/virtbgp/virtbgp/mapping"
)

// State is a domain's run state, reduced to what decides its routes.
type State int

// The states. Anything libvirt reports that is not running or paused
// (shut off, crashed, pmsuspended, shutdown, blocked, nostate) is StateOff.
const (
	StateOff State = iota
	StateRunning
	StatePaused
)

func (s State) String() string {
	switch s {
	case StateRunning:
		return "running"
	case StatePaused:
		return "paused"
	}
	return "off"
}

// Domain is what the reconciler needs to know of one libvirt domain.
type Domain struct {
	Name  string
	UUID  string // canonical lower-case 8-4-4-4-12 form
	State State
	// Reason is libvirt's state reason in words ("booted", "migration",
	// "user", ...), for logs and status.
	Reason string
	// Migration is the domain's role in a migration in progress: for a
	// paused domain, or MigrationLeaving for a running one; MigrationNone
	// otherwise.
	Migration Migration
	// Claims is what the domain's live metadata claims (nil: nothing, or
	// metadata is not read). Shared and never modified.
	Claims *Claims
}

// Migration is a domain's role in a live migration.
type Migration int

// The migration roles.
const (
	MigrationNone Migration = iota
	// MigrationIncoming: this host is the destination and the guest has not
	// resumed here yet (Started Migrated seen, neither Resumed nor Stopped).
	MigrationIncoming
	// MigrationOutgoing: this host is the source, paused for the pre-copy
	// switch-over (Suspended Migrated) or in post-copy (Suspended
	// Post-copy); the guest is about to resume at the destination (or, for
	// a failed pre-copy, here again). Its route stays, depreferenced, until
	// the destination's normal route takes over at the resume.
	MigrationOutgoing
	// MigrationFailed: post-copy failed; the guest runs nowhere.
	MigrationFailed
	// MigrationLeaving: this host is the source of a pre-copy migration
	// in progress and the guest still runs here (a migration iteration
	// event was seen and the domain's job is an outgoing migration). Its
	// routes stay as they are, but for anycast ones, which are
	// depreferenced so that the ToRs move the anycast traffic to the
	// other members before the guest pauses for the switch-over.
	MigrationLeaving
)

func (m Migration) String() string {
	switch m {
	case MigrationIncoming:
		return "incoming"
	case MigrationOutgoing:
		return "outgoing"
	case MigrationFailed:
		return "postcopy-failed"
	case MigrationLeaving:
		return "leaving"
	}
	return "none"
}

// Hint tells the reconciler what may have changed. Hints are never the
// truth: the reconciler reads the current state itself.
type Hint struct {
	// UUID names the domain that changed; empty with All.
	UUID string
	// Name of the domain, for logs.
	Name string
	// All asks for a full resync (reconnect, lost events).
	All bool
	// Event is the libvirt event in words ("Started Booted"), for logs.
	Event string
	// At is when the hypervisor received the event (zero if unknown), for
	// the event-to-announce latency.
	At time.Time
}

// Observer is told what the reconciler does, for metrics. Its methods are
// called from the reconciler's goroutine and must not block.
type Observer interface {
	// Reconciled reports one pass: how long it took, how many routes are
	// announced after it, and whether it converged.
	Reconciled(took time.Duration, announced int, ok bool)
	// EventApplied reports an announce or withdraw caused by a libvirt
	// event, with the time from the event's arrival to the speaker call's
	// return.
	EventApplied(latency time.Duration)
	// UnmappedArrival reports a domain that arrived on this host by live
	// migration and that the mapping in force does not name: once per
	// arrival (see Arrival).
	UnmappedArrival()
}

// ErrNotConnected is what a Hypervisor returns (wrapped or not) while it has
// no connection. The reconciler keeps routes as they are and waits for the
// Hint{All: true} the hypervisor sends after it connects.
var ErrNotConnected = errors.New("libvirt: not connected")

// Hypervisor is the reconciler's view of libvirt.
type Hypervisor interface {
	// Domains lists every domain libvirt knows, active or not.
	Domains(ctx context.Context) ([]Domain, error)
	// Domain reads one domain by UUID; found is false if it does not exist.
	Domain(ctx context.Context, uuid string) (d Domain, found bool, err error)
	// Hints delivers change hints. It is never closed while the adapter runs.
	Hints() <-chan Hint
}

// Speaker is the reconciler's view of the BGP speaker. The reconciler owns
// what is announced (state.announced): the speaker keeps no routes of its
// own, and is told each change once.
type Speaker interface {
	// Announce adds the route, or replaces the route announced for the same
	// prefix with these attributes.
	Announce(ctx context.Context, r mapping.Route) error
	// Withdraw removes exactly the route announced for this prefix.
	Withdraw(ctx context.Context, p netip.Prefix) error
}
