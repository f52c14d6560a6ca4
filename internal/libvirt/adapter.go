// Package libvirt is virtbgp's adapter to libvirt. It implements
// reconcile.Hypervisor on top of the libvirt C API (libvirt.org/go/libvirt).
//
// # What it does
//
//   - It runs libvirt's default event loop: lv.EventRegisterDefaultImpl is
//     called exactly once per process (from New, before any connection is
//     opened) and one goroutine runs lv.EventRunDefaultImpl forever. Lifecycle
//     and close callbacks, and keepalive, are driven by that loop.
//   - Run owns the connection: it opens it, enables keepalive, registers the
//     close callback and a lifecycle callback for all domains, and when the
//     connection dies (close callback, or a call that fails on a connection
//     that is no longer alive) it tears everything down and reconnects with
//     exponential backoff (100 ms doubling to 1 s, with jitter). After every
//     successful (re)connect it sends Hint{All: true} so that the reconciler
//     resyncs.
//   - The lifecycle callback only turns the event into a reconcile.Hint and
//     offers it to a buffered channel without blocking. If the channel is
//     full the event is dropped and a goroutine of the adapter (never the
//     event loop) delivers one Hint{All: true} as soon as there is room.
//     Hints are hints: the reconciler reads the state with Domains/Domain.
//   - Domains and Domain read the current state. While disconnected they
//     return ErrNotConnected, and the reconciler keeps its routes as they are.
//
// # Migration direction
//
// libvirt reports the destination of an incoming live migration as a PAUSED
// domain (reason "migration") until the guest resumes there, which looks the
// same as the source's switch-over pause. Domain and Domains therefore tell a
// paused domain's reconcile.Migration role:
//
//   - MigrationIncoming if "Started Migrated" was seen for the UUID (the
//     flag is forgotten on any Resumed, Stopped or other Started event, on
//     Undefined and on every reconnect), or, when virtbgp did not see that
//     event (it started or reconnected during the migration), if the
//     domain's migration job reports the operation migration_in;
//   - MigrationFailed for the reason "postcopy failed";
//   - MigrationOutgoing for any other pause with reason "migration" or
//     "postcopy" (the source during the switch-over or in post-copy);
//   - MigrationNone otherwise.
//
// A running domain is MigrationLeaving while it is the source of a pre-copy
// migration: from its first migration iteration event (QEMU's
// MIGRATION_PASS) while its job's operation is migration_out, read again
// every leavingRecheck (a failed or cancelled pre-copy sends no event on
// the source).
//
// # libvirt traps this package avoids
//
//   - The *lv.Domain and *lv.Connect handed to callbacks are borrowed from
//     libvirt: they must not be freed or closed (double free). Every
//     *lv.Domain this package obtains itself (ListAllDomains, Lookup*) is
//     freed exactly once.
//   - Registered event callbacks and the close callback hold references on
//     the connection; they are deregistered before Close, which must then
//     report no remaining references (a positive count is logged as a leak).
//     A lifecycle callback deregistered while the event loop is dispatching
//     events is only marked deleted and dropped when that dispatch ends, so
//     teardown waits for one event loop iteration before Close.
//   - lv.EventAddTimeout never frees its Go callback; the one timer this
//     package needs is created once and re-armed.
//   - When the close callback fires, libvirt drops its reference on the
//     connection only after the callback returned, under the close-callback
//     lock. Teardown therefore always unregisters the close callback (which
//     takes that lock, and is a harmless no-op after it fired) before Close.
//   - Keepalive is not supported by in-process drivers such as test:///
//     (VIR_ERR_NO_SUPPORT); that is logged at debug and ignored.
package libvirt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lv "libvirt.org/go/libvirt"

	"github.com/virtbgp/virtbgp/internal/reconcile"
)

// ErrNotConnected is returned by Domains and Domain while the adapter has no
// live libvirt connection. Callers should keep their current state and wait
// for the Hint{All: true} that follows the reconnect.
var ErrNotConnected = reconcile.ErrNotConnected

const (
	// DefaultHintBuffer is the capacity of the hint channel.
	DefaultHintBuffer = 1024
	// reconnectMin is the first reconnect delay.
	reconnectMin = 100 * time.Millisecond
	// reconnectMax caps the reconnect delay, so that virtbgp is back
	// within about a second of libvirtd answering again.
	reconnectMax = time.Second

	// keepaliveInterval and keepaliveCount: a peer that stops answering is
	// declared dead after about interval*(count+1) = 20 s.
	keepaliveInterval = 5
	keepaliveCount    = 3
)

// Resync reasons, as Event text of a Hint{All: true}.
const (
	resyncReconnect uint32 = 1 << iota
	resyncLost
)

var _ reconcile.Hypervisor = (*Adapter)(nil)

// Option configures an Adapter.
type Option func(*Adapter)

// WithHintBuffer sets the capacity of the hint channel (minimum 1). Events
// arriving while it is full are dropped and replaced by one Hint{All: true}.
func WithHintBuffer(n int) Option {
	return func(a *Adapter) {
		if n < 1 {
			n = 1
		}
		a.hintBuffer = n
	}
}

// Adapter connects virtbgp to one libvirt URI. It implements
// reconcile.Hypervisor. Create it with New and start it with Run; Domains,
// Domain, Hints, Connected and WaitConnected are safe for concurrent use.
type Adapter struct {
	uri        string
	log        *slog.Logger
	hintBuffer int

	hints chan reconcile.Hint

	// resync holds pending Hint{All: true} reasons (resync* bits);
	// resyncKick wakes the goroutine that delivers them.
	resync     atomic.Uint32
	resyncKick chan struct{}
	// lost counts events dropped because the hint channel was full.
	lost atomic.Uint64
	// lookups counts the domain lookups (one RPC each) that Domain made
	// because no event had given it the domain's object.
	lookups atomic.Uint64

	running   atomic.Bool
	connected atomic.Bool

	// mu guards sess and up. Domains/Domain hold it shared for the whole
	// libvirt call so that Run cannot close the connection under them.
	mu   sync.RWMutex
	sess *session
	// up is closed while connected, and replaced by a fresh channel on
	// disconnect; WaitConnected waits on it.
	up chan struct{}

	// migMu guards incoming: UUIDs for which "Started Migrated" was seen
	// and no later Resumed/Stopped/Started event; leaving: UUIDs for which
	// a migration iteration was seen (the source of a pre-copy) and no
	// later Resumed/Stopped/Started event nor a read without an outgoing
	// migration job; and rechecks, the leaving domains whose job is read
	// again soon. Never held across a libvirt call, so the event loop only
	// ever waits for a map access.
	migMu    sync.Mutex
	incoming map[string]bool
	leaving  map[string]bool
	rechecks map[string]bool

	// meta caches the claims of the domains' metadata; nil when no
	// metadata is read (WithMetadata).
	meta *metaCache

	// agentEvent, if set, is called with the UUID of a domain whose guest
	// agent connected or disconnected (WithAgentEvents).
	agentEvent func(uuid string)

	// readStates replaces readAllStates in tests (nil: readAllStates).
	readStates func(*lv.Connect, func(stateRecord) error) error
}

// New returns an adapter for the libvirt URI (for example "qemu:///system").
// It registers libvirt's default event loop implementation and starts the
// goroutine that runs it, once per process. log is the only logger the
// adapter uses (nil discards); the event loop goroutine keeps the logger of
// the first adapter of the process for its own errors.
func New(uri string, log *slog.Logger, opts ...Option) *Adapter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Adapter{
		uri:        uri,
		log:        log.With("uri", uri),
		hintBuffer: DefaultHintBuffer,
		resyncKick: make(chan struct{}, 1),
		up:         make(chan struct{}),
		incoming:   make(map[string]bool),
		leaving:    make(map[string]bool),
		rechecks:   make(map[string]bool),
	}
	for _, o := range opts {
		o(a)
	}
	a.hints = make(chan reconcile.Hint, a.hintBuffer)
	ensureEventLoop(a.log)
	return a
}

// Hints returns the channel of change hints. It is never closed.
func (a *Adapter) Hints() <-chan reconcile.Hint { return a.hints }

// Connected reports whether the adapter currently has a live connection with
// its callbacks registered.
func (a *Adapter) Connected() bool { return a.connected.Load() }

// WaitConnected blocks until the adapter is connected or ctx is done.
func (a *Adapter) WaitConnected(ctx context.Context) error {
	for {
		a.mu.RLock()
		up := a.up
		a.mu.RUnlock()
		select {
		case <-up:
			// up may be a channel of an earlier connection that has
			// since been lost; check the current state.
			if a.Connected() {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Run connects to libvirt and keeps the connection up until ctx is done, then
// deregisters the callbacks, closes the connection and returns ctx.Err(). It
// returns early only if libvirt's event loop could not be registered or Run
// is already running.
func (a *Adapter) Run(ctx context.Context) error {
	if err := eventLoopErr(); err != nil {
		return err
	}
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("already running")
	}
	defer a.running.Store(false)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.deliverResyncs(ctx)
	}()
	defer wg.Wait()

	bo := backoff{min: reconnectMin, max: reconnectMax}
	var (
		downSince time.Time // zero until the first connection was lost
		attempts  int
	)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		attempts++
		s, err := a.connect()
		if err != nil {
			d := bo.next()
			if attempts == 1 || attempts%60 == 0 { // then about once a minute
				a.log.Warn("cannot connect to libvirt, retrying", "error", err, "attempt", attempts, "retry_in", d)
			} else {
				a.log.Debug("cannot connect to libvirt, retrying", "error", err, "attempt", attempts, "retry_in", d)
			}
			if !sleepCtx(ctx, d) {
				return ctx.Err()
			}
			continue
		}
		if downSince.IsZero() {
			a.log.Info("connected to libvirt", "attempts", attempts)
		} else {
			a.log.Info("reconnected to libvirt", "attempts", attempts, "down_for", time.Since(downSince).Round(time.Millisecond))
		}
		bo.reset()
		attempts = 0
		a.install(s)

		select {
		case <-ctx.Done():
			a.uninstall()
			s.teardown(a.log)
			a.log.Info("disconnected from libvirt", "reason", "shutting down")
			return ctx.Err()
		case <-s.dead:
			downSince = time.Now()
			a.log.Warn("libvirt connection lost, reconnecting", "reason", s.reason)
			a.uninstall()
			s.teardown(a.log)
			if !sleepCtx(ctx, bo.next()) {
				return ctx.Err()
			}
		}
	}
}

// connect opens a connection and registers everything on it. On error nothing
// is left open or registered.
func (a *Adapter) connect() (*session, error) {
	conn, err := lv.NewConnect(a.uri)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", a.uri, err)
	}
	s := &session{conn: conn, lifecycleID: -1, metadataID: -1, agentID: -1, migrationID: -1, dead: make(chan struct{}), handles: map[string]*lv.Domain{}}

	if err := conn.SetKeepAlive(keepaliveInterval, keepaliveCount); err != nil {
		if errors.Is(err, lv.ERR_NO_SUPPORT) {
			a.log.Debug("keepalive not supported by this driver", "error", err)
		} else {
			a.log.Warn("cannot enable keepalive", "error", err)
		}
	}

	if err := conn.RegisterCloseCallback(s.onClose); err != nil {
		s.teardown(a.log)
		return nil, fmt.Errorf("register close callback: %w", err)
	}
	s.closeCB = true

	// A migration that was in flight while we were away can no longer be
	// told apart from an ordinary pause. Forget them before the callback
	// can report new ones. (A domain still leaving is seen again at its
	// next iteration.)
	a.clearIncoming()

	id, err := conn.DomainEventLifecycleRegister(nil, func(c *lv.Connect, d *lv.Domain, ev *lv.DomainEventLifecycle) {
		// The object first, then the hint that makes the reconciler read
		// the domain.
		if uuid, err := d.GetUUIDString(); err == nil {
			s.keep(strings.ToLower(uuid), d, ev.Event == lv.DOMAIN_EVENT_UNDEFINED)
		}
		a.onLifecycle(c, d, ev)
	})
	if err != nil {
		s.teardown(a.log)
		return nil, fmt.Errorf("register lifecycle callback: %w", err)
	}
	s.lifecycleID = id

	if a.meta != nil {
		// Metadata changed while we were away is read again by the
		// resync that follows the connect.
		a.meta.clear()
		id, err := conn.DomainEventMetadataChangeRegister(nil, a.onMetadataChange)
		if err != nil {
			s.teardown(a.log)
			return nil, fmt.Errorf("register metadata change callback: %w", err)
		}
		s.metadataID = id
	}

	if a.agentEvent != nil {
		id, err := conn.DomainEventAgentLifecycleRegister(nil, a.onAgentLifecycle)
		switch {
		case errors.Is(err, lv.ERR_NO_SUPPORT):
			a.log.Debug("guest agent events not supported by this driver", "error", err)
		case err != nil:
			s.teardown(a.log)
			return nil, fmt.Errorf("register guest agent lifecycle callback: %w", err)
		default:
			s.agentID = id
		}
	}

	// The source of a pre-copy migration: the first iteration over the
	// guest's memory starts it (QEMU's MIGRATION_PASS).
	id, err = conn.DomainEventMigrationIterationRegister(nil, a.onMigrationIteration)
	switch {
	case errors.Is(err, lv.ERR_NO_SUPPORT):
		a.log.Debug("migration iteration events not supported by this driver", "error", err)
	case err != nil:
		s.teardown(a.log)
		return nil, fmt.Errorf("register migration iteration callback: %w", err)
	default:
		s.migrationID = id
	}

	// The peer may have gone away during the setup, before the close
	// callback was in place.
	if alive, err := conn.IsAlive(); err != nil || !alive {
		s.teardown(a.log)
		return nil, fmt.Errorf("connection died during setup: %w", errors.Join(ErrNotConnected, err))
	}
	return s, nil
}

// install publishes a freshly connected session and asks for a full resync.
func (a *Adapter) install(s *session) {
	a.mu.Lock()
	a.sess = s
	a.connected.Store(true)
	close(a.up)
	a.mu.Unlock()
	a.requestResync(resyncReconnect)
}

// uninstall unpublishes the current session. It waits for running Domains and
// Domain calls, so the caller may tear the session down afterwards.
func (a *Adapter) uninstall() {
	a.mu.Lock()
	a.sess = nil
	if a.connected.Swap(false) {
		a.up = make(chan struct{})
	}
	a.mu.Unlock()
}

// requestResync asks the delivery goroutine for a Hint{All: true}. It never
// blocks and is safe to call from libvirt's event loop.
func (a *Adapter) requestResync(reason uint32) {
	a.resync.Or(reason)
	select {
	case a.resyncKick <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// deliverResyncs sends one Hint{All: true} per batch of resync requests,
// blocking until the hint channel has room. It runs for the lifetime of Run.
func (a *Adapter) deliverResyncs(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.resyncKick:
		}
		// Clearing before sending: a request made while we wait for
		// room is covered by this hint and merely causes one more.
		reasons := a.resync.Swap(0)
		if reasons == 0 {
			continue
		}
		h := reconcile.Hint{All: true, Event: resyncText(reasons)}
		select {
		case a.hints <- h:
			a.log.Debug("full resync requested", "reason", h.Event)
		case <-ctx.Done():
			return
		}
	}
}

func resyncText(reasons uint32) string {
	switch reasons {
	case resyncReconnect:
		return "Connected"
	case resyncLost:
		return "Events Lost"
	}
	return "Connected, Events Lost"
}

// session is one libvirt connection and what is registered on it.
type session struct {
	conn        *lv.Connect
	lifecycleID int  // -1 when not registered
	metadataID  int  // the metadata change callback; -1 when not registered
	agentID     int  // the guest agent lifecycle callback; -1 when not registered
	migrationID int  // the migration iteration callback; -1 when not registered
	closeCB     bool // close callback registered

	dead     chan struct{} // closed once the connection is known dead
	deadOnce sync.Once
	reason   string // why it died; read after <-dead

	// oneByOne is set once the driver answered VIR_ERR_NO_SUPPORT to the
	// bulk state read: Domains then reads states one domain at a time.
	oneByOne atomic.Bool

	// handles are the domain objects that this connection's lifecycle
	// events carried, by UUID, each with a reference of its own
	// (virDomainRef, no RPC): Domain reads a domain that had an event
	// without looking it up first (one RPC less per event). The name a
	// handle holds is the one of its last event (a rename is an event).
	hmu     sync.Mutex
	handles map[string]*lv.Domain
}

// keep holds a reference to the domain object of an event, replacing the
// one held for uuid; forget drops it. Runs on libvirt's event loop: no
// RPC (virDomainRef and virDomainFree are local).
func (s *session) keep(uuid string, d *lv.Domain, forget bool) {
	s.hmu.Lock()
	defer s.hmu.Unlock()
	if old, ok := s.handles[uuid]; ok {
		_ = old.Free()
		delete(s.handles, uuid)
	}
	if forget {
		return
	}
	h := *d // the event's object is borrowed: take a reference of our own
	if h.Ref() == nil {
		s.handles[uuid] = &h
	}
}

// handle returns a new reference to the domain object held for uuid (the
// caller frees it), or nil.
func (s *session) handle(uuid string) *lv.Domain {
	s.hmu.Lock()
	defer s.hmu.Unlock()
	h, ok := s.handles[uuid]
	if !ok {
		return nil
	}
	c := *h
	if c.Ref() != nil {
		return nil
	}
	return &c
}

// pruneHandles drops the handles of the domains not in keep; nil drops
// them all (before the connection closes: a handle references it).
func (s *session) pruneHandles(keep map[string]bool) {
	s.hmu.Lock()
	defer s.hmu.Unlock()
	for u, h := range s.handles {
		if keep == nil || !keep[u] {
			_ = h.Free()
			delete(s.handles, u)
		}
	}
}

// onClose is the close callback. It runs on libvirt's event loop; the
// connection it gets is borrowed and must not be closed here.
func (s *session) onClose(_ *lv.Connect, r lv.ConnectCloseReason) {
	s.markDead("close callback: " + closeReasonText(r))
}

func (s *session) markDead(reason string) {
	s.deadOnce.Do(func() {
		s.reason = reason
		close(s.dead)
	})
}

// teardown deregisters the callbacks and closes the connection. Errors are
// expected on a dead connection and only logged.
func (s *session) teardown(log *slog.Logger) {
	if s.lifecycleID >= 0 {
		// On a dead remote connection the local deregistration succeeds
		// and only the RPC to the daemon fails.
		if err := s.conn.DomainEventDeregister(s.lifecycleID); err != nil {
			log.Debug("cannot deregister lifecycle callback", "error", err)
		}
		s.lifecycleID = -1
	}
	if s.metadataID >= 0 {
		if err := s.conn.DomainEventDeregister(s.metadataID); err != nil {
			log.Debug("cannot deregister metadata change callback", "error", err)
		}
		s.metadataID = -1
	}
	if s.agentID >= 0 {
		if err := s.conn.DomainEventDeregister(s.agentID); err != nil {
			log.Debug("cannot deregister guest agent lifecycle callback", "error", err)
		}
		s.agentID = -1
	}
	if s.migrationID >= 0 {
		if err := s.conn.DomainEventDeregister(s.migrationID); err != nil {
			log.Debug("cannot deregister migration iteration callback", "error", err)
		}
		s.migrationID = -1
	}
	if s.closeCB {
		// Also needed after the callback fired: libvirt runs the callback
		// and only then drops its reference on the connection, both under
		// the close-callback lock. Unregistering takes that lock, so it
		// waits until libvirt is done; without it Close can race and
		// report a reference that is released just afterwards. After a
		// fired callback unregistering is a no-op (the free function was
		// already called and cleared), not a double free. On a dead remote
		// connection it reports an error (the remote driver first tells
		// the daemon, which fails) but still waited for the lock.
		if err := s.conn.UnregisterCloseCallback(); err != nil {
			log.Debug("cannot unregister close callback", "error", err)
		}
		s.closeCB = false
	}
	// Let a dispatch that was running during deregistration finish, so
	// that libvirt has dropped the callbacks' references.
	if !eventLoopBarrier(time.Second) {
		log.Debug("libvirt event loop did not answer the barrier")
	}
	s.pruneHandles(nil)
	refs, err := s.conn.Close()
	switch {
	case err != nil:
		log.Warn("cannot close libvirt connection", "error", err)
	case refs > 0:
		log.Warn("libvirt connection still referenced after close (leak)", "refs", refs)
	default:
		log.Debug("libvirt connection closed")
	}
}

func closeReasonText(r lv.ConnectCloseReason) string {
	switch r {
	case lv.CONNECT_CLOSE_REASON_ERROR:
		return "error"
	case lv.CONNECT_CLOSE_REASON_EOF:
		return "eof"
	case lv.CONNECT_CLOSE_REASON_KEEPALIVE:
		return "keepalive timeout"
	case lv.CONNECT_CLOSE_REASON_CLIENT:
		return "closed by client"
	}
	return fmt.Sprintf("reason %d", int(r))
}

// backoff yields reconnect delays: min, 2*min, ... capped at max, each
// shortened by up to 20% of jitter so that many hosts do not retry in step.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	}
	d := b.cur
	b.cur = min(b.cur*2, b.max)
	return d - rand.N(d/5+1)
}

func (b *backoff) reset() { b.cur = 0 }

// sleepCtx sleeps for d; it reports false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
