package libvirt

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	lv "libvirt.org/go/libvirt"

	"github.com/virtbgp/virtbgp/internal/reconcile"
)

var (
	eventLoopOnce    sync.Once
	eventLoopInitErr error

	// barrier is a timer on libvirt's event loop, disarmed while idle,
	// that wakes waiters once the loop has finished whatever it was
	// dispatching (see eventLoopBarrier). One timer is reused for the life
	// of the process: lv.EventAddTimeout never frees the Go side of its
	// callback, so adding a timer per use would leak.
	barrier struct {
		mu      sync.Mutex
		timer   int
		ok      bool
		waiters []chan struct{}
	}
)

// ensureEventLoop registers libvirt's default event loop implementation and
// starts the goroutine that runs it. It does so once per process: libvirt
// requires the registration before any connection is opened, and allows only
// one. The goroutine runs for the life of the process.
func ensureEventLoop(log *slog.Logger) {
	eventLoopOnce.Do(func() {
		if err := lv.EventRegisterDefaultImpl(); err != nil {
			eventLoopInitErr = fmt.Errorf("register the default event loop: %w", err)
			log.Error("cannot register libvirt event loop", "error", err)
			return
		}
		if id, err := lv.EventAddTimeout(-1, barrierFired); err != nil {
			log.Warn("cannot add event loop barrier timer", "error", err)
		} else {
			barrier.timer, barrier.ok = id, true
		}
		go runEventLoop(log)
	})
}

// barrierFired runs on the event loop: it disarms the timer and releases
// the waiters.
func barrierFired(int) {
	barrier.mu.Lock()
	lv.EventUpdateTimeout(barrier.timer, -1)
	ws := barrier.waiters
	barrier.waiters = nil
	barrier.mu.Unlock()
	for _, w := range ws {
		close(w)
	}
}

// eventLoopBarrier returns once libvirt's event loop has completed the
// dispatch it was busy with when called (or after timeout). Deregistering a
// domain event callback while the loop dispatches events only marks it
// deleted; the loop drops it, and its reference on the connection, when
// that dispatch ends. Waiting for the barrier before Close makes Close
// release the connection deterministically.
func eventLoopBarrier(timeout time.Duration) bool {
	if !barrier.ok {
		return false
	}
	ch := make(chan struct{})
	barrier.mu.Lock()
	barrier.waiters = append(barrier.waiters, ch)
	lv.EventUpdateTimeout(barrier.timer, 0) // fire on the next iteration
	barrier.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

func eventLoopErr() error {
	return eventLoopInitErr
}

// runEventLoop dispatches libvirt's events (socket I/O, keepalive timers,
// domain event and close callbacks) for the life of the process. It takes
// no context on purpose: libvirt allows one event loop registration per
// process, shared by every adapter and connection, so the end of one
// adapter's Run must not end it. An iteration fails only on an internal
// error of libvirt's poll loop; the loop then backs off (100 ms doubling
// to 1 s) instead of spinning, and starts over at the first success.
func runEventLoop(log *slog.Logger) {
	bo := backoff{min: 100 * time.Millisecond, max: time.Second}
	for {
		if err := lv.EventRunDefaultImpl(); err != nil {
			d := bo.next()
			log.Error("libvirt event loop iteration failed", "error", err, "retry_in", d)
			time.Sleep(d)
			continue
		}
		bo.reset()
	}
}

// onLifecycle is the lifecycle callback for all domains. It runs on libvirt's
// event loop and must never block it: it reads the name and UUID held in the
// (borrowed, not to be freed) domain object, which makes no RPC, updates the
// migration flag and offers a hint without blocking.
func (a *Adapter) onLifecycle(_ *lv.Connect, d *lv.Domain, ev *lv.DomainEventLifecycle) {
	uuid, err := d.GetUUIDString()
	if err != nil {
		// Cannot happen for a valid domain object; resync everything
		// rather than lose the event.
		a.requestResync(resyncLost)
		return
	}
	uuid = strings.ToLower(uuid)
	name, _ := d.GetName()
	a.trackMigration(uuid, ev.Event, ev.Detail)
	a.meta.onEvent(uuid, ev.Event, ev.Detail)

	h := reconcile.Hint{UUID: uuid, Name: name, Event: eventText(ev.Event, ev.Detail), At: timeNow()}
	a.offer(h)
	a.log.Debug("domain event", "domain", name, "uuid", uuid, "event", h.Event)
}

// timeNow is when an event arrived.
var timeNow = time.Now

// offer sends a hint without blocking; when the channel is full the hint
// is dropped and a full resync requested. Safe on libvirt's event loop.
func (a *Adapter) offer(h reconcile.Hint) {
	select {
	case a.hints <- h:
	default:
		a.lost.Add(1)
		a.requestResync(resyncLost)
	}
}

// trackMigration maintains the "incoming migration in progress" flag of a
// domain from its lifecycle events.
func (a *Adapter) trackMigration(uuid string, ev lv.DomainEventType, detail int) {
	a.migMu.Lock()
	defer a.migMu.Unlock()
	switch ev {
	case lv.DOMAIN_EVENT_STARTED:
		if lv.DomainEventStartedDetailType(detail) == lv.DOMAIN_EVENT_STARTED_MIGRATED {
			a.incoming[uuid] = true
		} else {
			delete(a.incoming, uuid)
		}
	case lv.DOMAIN_EVENT_RESUMED, lv.DOMAIN_EVENT_STOPPED, lv.DOMAIN_EVENT_UNDEFINED:
		delete(a.incoming, uuid)
	}
	switch ev {
	case lv.DOMAIN_EVENT_STARTED, lv.DOMAIN_EVENT_RESUMED, lv.DOMAIN_EVENT_STOPPED, lv.DOMAIN_EVENT_UNDEFINED:
		delete(a.leaving, uuid)
	}
}

// onMigrationIteration is the migration iteration callback: QEMU starts a
// pass over the guest's memory, on the source of a pre-copy migration (the
// first pass starts it). It marks the domain leaving and offers a hint;
// the read that follows confirms it with the domain's job (leavingRole).
// On libvirt's event loop: no RPC, no blocking.
func (a *Adapter) onMigrationIteration(_ *lv.Connect, d *lv.Domain, ev *lv.DomainEventMigrationIteration) {
	uuid, err := d.GetUUIDString()
	if err != nil {
		a.requestResync(resyncLost)
		return
	}
	name, _ := d.GetName()
	a.markLeaving(strings.ToLower(uuid), name, ev.Iteration)
}

// markLeaving marks a domain leaving at a migration iteration, and offers
// a hint at the first one.
func (a *Adapter) markLeaving(uuid, name string, iteration int) {
	a.migMu.Lock()
	first := !a.leaving[uuid]
	a.leaving[uuid] = true
	a.migMu.Unlock()
	if !first {
		return // already leaving: nothing changes
	}
	a.offer(reconcile.Hint{UUID: uuid, Name: name, Event: fmt.Sprintf("Migration Iteration %d", iteration), At: timeNow()})
	a.log.Debug("domain event", "domain", name, "uuid", uuid, "event", "Migration Iteration", "iteration", iteration)
}

// leavingRecheck is how often the job of a leaving domain is read again: a
// pre-copy that fails or is cancelled before its switch-over sends no
// event on the source.
const leavingRecheck = time.Second

// leavingRole tells whether a running domain is leaving: the source of a
// pre-copy migration in progress. A domain marked leaving by an iteration
// event is confirmed by its job (jobOperation, one RPC, made only for a
// domain so marked): while the job is an outgoing migration it is
// MigrationLeaving and read again after leavingRecheck; once not, it is
// no longer marked.
func (a *Adapter) leavingRole(uuid, name string, jobOperation func() (lv.DomainJobOperationType, bool)) reconcile.Migration {
	a.migMu.Lock()
	marked := a.leaving[uuid]
	a.migMu.Unlock()
	if !marked {
		return reconcile.MigrationNone
	}
	if op, ok := jobOperation(); !ok || op != lv.DOMAIN_JOB_OPERATION_MIGRATION_OUT {
		a.migMu.Lock()
		delete(a.leaving, uuid)
		a.migMu.Unlock()
		return reconcile.MigrationNone
	}
	a.migMu.Lock()
	arm := !a.rechecks[uuid]
	a.rechecks[uuid] = true
	a.migMu.Unlock()
	if arm {
		time.AfterFunc(leavingRecheck, func() {
			a.migMu.Lock()
			delete(a.rechecks, uuid)
			still := a.leaving[uuid]
			a.migMu.Unlock()
			if still {
				a.offer(reconcile.Hint{UUID: uuid, Name: name, Event: "Migration Check", At: timeNow()})
			}
		})
	}
	return reconcile.MigrationLeaving
}

func (a *Adapter) incomingMigration(uuid string) bool {
	a.migMu.Lock()
	defer a.migMu.Unlock()
	return a.incoming[uuid]
}

func (a *Adapter) clearIncoming() {
	a.migMu.Lock()
	defer a.migMu.Unlock()
	clear(a.incoming)
	clear(a.leaving)
}

// eventText renders a lifecycle event as "Type Detail", for example
// "Started Booted", "Suspended Paused", "Stopped Failed".
func eventText(ev lv.DomainEventType, detail int) string {
	e, ok := eventNames[ev]
	if !ok {
		return fmt.Sprintf("Event%d Detail%d", int(ev), detail)
	}
	d, ok := e.details[detail]
	if !ok {
		d = fmt.Sprintf("Detail%d", detail)
	}
	return e.name + " " + d
}

type eventName struct {
	name    string
	details map[int]string
}

var eventNames = map[lv.DomainEventType]eventName{
	lv.DOMAIN_EVENT_DEFINED: {"Defined", map[int]string{
		int(lv.DOMAIN_EVENT_DEFINED_ADDED):         "Added",
		int(lv.DOMAIN_EVENT_DEFINED_UPDATED):       "Updated",
		int(lv.DOMAIN_EVENT_DEFINED_RENAMED):       "Renamed",
		int(lv.DOMAIN_EVENT_DEFINED_FROM_SNAPSHOT): "Snapshot",
	}},
	lv.DOMAIN_EVENT_UNDEFINED: {"Undefined", map[int]string{
		int(lv.DOMAIN_EVENT_UNDEFINED_REMOVED): "Removed",
		int(lv.DOMAIN_EVENT_UNDEFINED_RENAMED): "Renamed",
	}},
	lv.DOMAIN_EVENT_STARTED: {"Started", map[int]string{
		int(lv.DOMAIN_EVENT_STARTED_BOOTED):        "Booted",
		int(lv.DOMAIN_EVENT_STARTED_MIGRATED):      "Migrated",
		int(lv.DOMAIN_EVENT_STARTED_RESTORED):      "Restored",
		int(lv.DOMAIN_EVENT_STARTED_FROM_SNAPSHOT): "Snapshot",
		int(lv.DOMAIN_EVENT_STARTED_WAKEUP):        "Wakeup",
		int(lv.DOMAIN_EVENT_STARTED_RECREATED):     "Recreated",
	}},
	lv.DOMAIN_EVENT_SUSPENDED: {"Suspended", map[int]string{
		int(lv.DOMAIN_EVENT_SUSPENDED_PAUSED):          "Paused",
		int(lv.DOMAIN_EVENT_SUSPENDED_MIGRATED):        "Migrated",
		int(lv.DOMAIN_EVENT_SUSPENDED_IOERROR):         "IOError",
		int(lv.DOMAIN_EVENT_SUSPENDED_WATCHDOG):        "Watchdog",
		int(lv.DOMAIN_EVENT_SUSPENDED_RESTORED):        "Restored",
		int(lv.DOMAIN_EVENT_SUSPENDED_FROM_SNAPSHOT):   "Snapshot",
		int(lv.DOMAIN_EVENT_SUSPENDED_API_ERROR):       "APIError",
		int(lv.DOMAIN_EVENT_SUSPENDED_POSTCOPY):        "Postcopy",
		int(lv.DOMAIN_EVENT_SUSPENDED_POSTCOPY_FAILED): "PostcopyFailed",
		int(lv.DOMAIN_EVENT_SUSPENDED_GUEST_SHUTDOWN):  "GuestShutdown",
	}},
	lv.DOMAIN_EVENT_RESUMED: {"Resumed", map[int]string{
		int(lv.DOMAIN_EVENT_RESUMED_UNPAUSED):        "Unpaused",
		int(lv.DOMAIN_EVENT_RESUMED_MIGRATED):        "Migrated",
		int(lv.DOMAIN_EVENT_RESUMED_FROM_SNAPSHOT):   "Snapshot",
		int(lv.DOMAIN_EVENT_RESUMED_POSTCOPY):        "Postcopy",
		int(lv.DOMAIN_EVENT_RESUMED_POSTCOPY_FAILED): "PostcopyFailed",
	}},
	lv.DOMAIN_EVENT_STOPPED: {"Stopped", map[int]string{
		int(lv.DOMAIN_EVENT_STOPPED_SHUTDOWN):      "Shutdown",
		int(lv.DOMAIN_EVENT_STOPPED_DESTROYED):     "Destroyed",
		int(lv.DOMAIN_EVENT_STOPPED_CRASHED):       "Crashed",
		int(lv.DOMAIN_EVENT_STOPPED_MIGRATED):      "Migrated",
		int(lv.DOMAIN_EVENT_STOPPED_SAVED):         "Saved",
		int(lv.DOMAIN_EVENT_STOPPED_FAILED):        "Failed",
		int(lv.DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT): "Snapshot",
		int(lv.DOMAIN_EVENT_STOPPED_RECREATED):     "Recreated",
	}},
	lv.DOMAIN_EVENT_SHUTDOWN: {"Shutdown", map[int]string{
		int(lv.DOMAIN_EVENT_SHUTDOWN_FINISHED): "Finished",
		int(lv.DOMAIN_EVENT_SHUTDOWN_GUEST):    "Guest",
		int(lv.DOMAIN_EVENT_SHUTDOWN_HOST):     "Host",
	}},
	lv.DOMAIN_EVENT_PMSUSPENDED: {"PMSuspended", map[int]string{
		int(lv.DOMAIN_EVENT_PMSUSPENDED_MEMORY): "Memory",
		int(lv.DOMAIN_EVENT_PMSUSPENDED_DISK):   "Disk",
	}},
	lv.DOMAIN_EVENT_CRASHED: {"Crashed", map[int]string{
		int(lv.DOMAIN_EVENT_CRASHED_PANICKED):    "Panicked",
		int(lv.DOMAIN_EVENT_CRASHED_CRASHLOADED): "Crashloaded",
	}},
}

// stateReason renders a state reason in lower-case words, after libvirt's
// names ("booted", "user", "migration", "ioerror", "from snapshot", ...).
func stateReason(st lv.DomainState, reason int) string {
	if r, ok := stateReasons[st][reason]; ok {
		return r
	}
	if reason == 0 { // every state's reason 0 is UNKNOWN
		return "unknown"
	}
	return fmt.Sprintf("reason %d", reason)
}

var stateReasons = map[lv.DomainState]map[int]string{
	lv.DOMAIN_RUNNING: {
		int(lv.DOMAIN_RUNNING_UNKNOWN):            "unknown",
		int(lv.DOMAIN_RUNNING_BOOTED):             "booted",
		int(lv.DOMAIN_RUNNING_MIGRATED):           "migrated",
		int(lv.DOMAIN_RUNNING_RESTORED):           "restored",
		int(lv.DOMAIN_RUNNING_FROM_SNAPSHOT):      "from snapshot",
		int(lv.DOMAIN_RUNNING_UNPAUSED):           "unpaused",
		int(lv.DOMAIN_RUNNING_MIGRATION_CANCELED): "migration canceled",
		int(lv.DOMAIN_RUNNING_SAVE_CANCELED):      "save canceled",
		int(lv.DOMAIN_RUNNING_WAKEUP):             "wakeup",
		int(lv.DOMAIN_RUNNING_CRASHED):            "crashed",
		int(lv.DOMAIN_RUNNING_POSTCOPY):           "postcopy",
		int(lv.DOMAIN_RUNNING_POSTCOPY_FAILED):    "postcopy failed",
	},
	lv.DOMAIN_PAUSED: {
		int(lv.DOMAIN_PAUSED_UNKNOWN):         "unknown",
		int(lv.DOMAIN_PAUSED_USER):            "user",
		int(lv.DOMAIN_PAUSED_MIGRATION):       "migration",
		int(lv.DOMAIN_PAUSED_SAVE):            "save",
		int(lv.DOMAIN_PAUSED_DUMP):            "dump",
		int(lv.DOMAIN_PAUSED_IOERROR):         "ioerror",
		int(lv.DOMAIN_PAUSED_WATCHDOG):        "watchdog",
		int(lv.DOMAIN_PAUSED_FROM_SNAPSHOT):   "from snapshot",
		int(lv.DOMAIN_PAUSED_SHUTTING_DOWN):   "shutting down",
		int(lv.DOMAIN_PAUSED_SNAPSHOT):        "snapshot",
		int(lv.DOMAIN_PAUSED_CRASHED):         "crashed",
		int(lv.DOMAIN_PAUSED_STARTING_UP):     "starting up",
		int(lv.DOMAIN_PAUSED_POSTCOPY):        "postcopy",
		int(lv.DOMAIN_PAUSED_POSTCOPY_FAILED): "postcopy failed",
		int(lv.DOMAIN_PAUSED_API_ERROR):       "api error",
	},
	lv.DOMAIN_SHUTDOWN: {
		int(lv.DOMAIN_SHUTDOWN_UNKNOWN): "unknown",
		int(lv.DOMAIN_SHUTDOWN_USER):    "user",
	},
	lv.DOMAIN_SHUTOFF: {
		int(lv.DOMAIN_SHUTOFF_UNKNOWN):       "unknown",
		int(lv.DOMAIN_SHUTOFF_SHUTDOWN):      "shutdown",
		int(lv.DOMAIN_SHUTOFF_DESTROYED):     "destroyed",
		int(lv.DOMAIN_SHUTOFF_CRASHED):       "crashed",
		int(lv.DOMAIN_SHUTOFF_MIGRATED):      "migrated",
		int(lv.DOMAIN_SHUTOFF_SAVED):         "saved",
		int(lv.DOMAIN_SHUTOFF_FAILED):        "failed",
		int(lv.DOMAIN_SHUTOFF_FROM_SNAPSHOT): "from snapshot",
		int(lv.DOMAIN_SHUTOFF_DAEMON):        "daemon",
	},
	lv.DOMAIN_CRASHED: {
		int(lv.DOMAIN_CRASHED_UNKNOWN):  "unknown",
		int(lv.DOMAIN_CRASHED_PANICKED): "panicked",
	},
	// NOSTATE, BLOCKED and PMSUSPENDED only have UNKNOWN.
}

// mapState reduces a libvirt state to what decides routes.
func mapState(st lv.DomainState) reconcile.State {
	switch st {
	case lv.DOMAIN_RUNNING:
		return reconcile.StateRunning
	case lv.DOMAIN_PAUSED:
		return reconcile.StatePaused
	}
	return reconcile.StateOff
}
