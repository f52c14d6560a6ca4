// Package health runs the health checks of the mapping's entries (agent,
// tcp, http, exec) for the domains that serve on this host, and turns
// their results into the health of each route: an input of
// reconcile.Resolve.
//
// A Monitor owns every check's state on its own goroutine (Run); each
// check's probe runs on a goroutine of its own, on its interval, and sends
// its result to the monitor. The monitor applies rise and fall (the
// Machine of each check), logs one line per transition, and, when a
// route's verdict changes, publishes a new reconcile.Health and sends a
// hint to the reconciler, which runs a pass and reads it. Checks never
// block the reconciler: Watch and Health only swap pointers.
package health

import (
	"time"
)

// State is a check's state.
type State int

// The states of a check.
const (
	// Starting: the check has not yet passed rise times or failed fall
	// times since it began; it counts as the Health's initial state.
	Starting State = iota
	// Up: the check passed rise times in a row.
	Up
	// Down: the check failed fall times in a row.
	Down
	// Unavailable: the check cannot run (no guest agent channel, a target
	// that cannot be reached by this check, a command that does not
	// exist); not healthy, but not a failure that flaps.
	Unavailable
	// Maintenance: the check's maintenance file exists; not healthy.
	Maintenance
)

var stateNames = [...]string{Starting: "starting", Up: "up", Down: "down", Unavailable: "unavailable", Maintenance: "maintenance"}

func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return "unknown"
	}
	return stateNames[s]
}

// Outcome is what one run of a probe found.
type Outcome int

// The outcomes of a probe run.
const (
	Pass Outcome = iota
	Fail
	CannotRun
	InMaintenance
)

var outcomeNames = [...]string{Pass: "pass", Fail: "fail", CannotRun: "cannot-run", InMaintenance: "maintenance"}

func (o Outcome) String() string {
	if o < 0 || int(o) >= len(outcomeNames) {
		return "unknown"
	}
	return outcomeNames[o]
}

// Result is one run of a probe.
type Result struct {
	Outcome Outcome
	// Detail says what was seen ("status 503", "connection refused").
	Detail string
	At     time.Time
	Took   time.Duration
}

// Machine is the rise/fall state of one check: ExaBGP healthcheck's rules.
// It is a plain value, owned by the monitor's goroutine.
type Machine struct {
	Rise, Fall int
	State      State
	// Since is when State began; Reason is the detail of the result that
	// made it.
	Since  time.Time
	Reason string
	// Last is the last result.
	Last Result
	// passes and fails are the current runs of equal results.
	passes, fails int
}

// NewMachine returns a Starting machine.
func NewMachine(rise, fall int, now time.Time) Machine {
	return Machine{Rise: max(rise, 1), Fall: max(fall, 1), State: Starting, Since: now, Reason: "starting"}
}

// Observe applies one result and returns the state before it and whether
// the state changed:
//
//   - maintenance: Maintenance at once;
//   - cannot run: Unavailable at once (and it stays so, without counting,
//     while the check cannot run);
//   - a pass: Up after Rise passes in a row (from any other state);
//   - a failure: Down after Fall failures in a row from Up or Starting; at
//     once from Unavailable or Maintenance, which were not healthy either.
func (m *Machine) Observe(r Result) (from State, changed bool) {
	from = m.State
	m.Last = r
	to := m.State
	switch r.Outcome {
	case InMaintenance:
		m.passes, m.fails = 0, 0
		to = Maintenance
	case CannotRun:
		m.passes, m.fails = 0, 0
		to = Unavailable
	case Pass:
		m.passes, m.fails = m.passes+1, 0
		if m.State != Up && m.passes >= m.Rise {
			to = Up
		}
	case Fail:
		m.passes, m.fails = 0, m.fails+1
		switch m.State {
		case Up, Starting:
			if m.fails >= m.Fall {
				to = Down
			}
		case Unavailable, Maintenance:
			to = Down
		}
	}
	if to == m.State {
		return from, false
	}
	m.State, m.Since, m.Reason = to, r.At, r.Detail
	if m.Reason == "" {
		m.Reason = r.Outcome.String()
	}
	return from, true
}

// Healthy reports whether the check lets its routes be announced as the
// mapping says: Up, or Starting with initialUp.
func (m *Machine) Healthy(initialUp bool) bool {
	return m.State == Up || (m.State == Starting && initialUp)
}
