// Package reconcile is virtbgp's core: one goroutine that owns the state,
// turns hints (libvirt events, mapping reloads, periodic ticks) into reads of
// the current domain states, computes the desired set of routes as a pure
// function (Desired) and applies only the difference to the BGP speaker.
//
// It is level-triggered: a hint only says where to look, so a lost,
// duplicated or reordered event cannot leave a wrong route behind; the next
// full resync repairs whatever a hint missed.
package reconcile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/virtbgp/virtbgp/mapping"
)

// Options configure a Reconciler.
type Options struct {
	Hypervisor Hypervisor
	Speaker    Speaker
	Log        *slog.Logger
	Policy     Policy
	// Mapping is the mapping in force at start; SetMapping replaces it.
	Mapping *mapping.Mapping
	// Drain is the drain state at start; SetDrain changes it.
	Drain Drain
	// Manual are the manual routes at start (read from the state
	// directory, so that they are in the first sync, before End-of-RIB);
	// SetManual replaces them.
	Manual []mapping.Route
	// Maintenance is the operator's maintenance at start (read from the
	// state directory, like Manual); SetMaintenance replaces it.
	Maintenance Maintenance
	// ResyncInterval is the period of full resyncs; 0 disables them.
	ResyncInterval time.Duration
	// RetryMin and RetryMax bound the backoff after a failed read of
	// libvirt or a failed speaker call (defaults 200ms and 10s).
	RetryMin, RetryMax time.Duration
	// Observer, if set, is told about passes and event latencies.
	Observer Observer
	// Health, if set, runs the health checks of the mapping's entries: the
	// reconciler tells it the domains after each read, and its verdicts
	// are an input of Resolve; a change of them is a hint.
	Health HealthSource
}

type nopObserver struct{}

func (nopObserver) Reconciled(time.Duration, int, bool) {}
func (nopObserver) EventApplied(time.Duration)          {}
func (nopObserver) UnmappedArrival()                    {}

// Reconciler keeps the speaker's routes equal to Desired(domains, mapping,
// policy) (Resolve, with ties between metadata claims kept by the domain
// that announces the prefix). Create it with New and start it with Run; every other method may
// be called from any goroutine.
type Reconciler struct {
	opts   Options
	log    *slog.Logger
	msgs   chan any
	synced chan struct{}
}

// New returns a Reconciler; it does nothing until Run.
func New(opts Options) *Reconciler {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = 200 * time.Millisecond
	}
	if opts.RetryMax < opts.RetryMin {
		opts.RetryMax = max(10*time.Second, opts.RetryMin)
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	return &Reconciler{
		opts:   opts,
		log:    opts.Log,
		msgs:   make(chan any),
		synced: make(chan struct{}),
	}
}

// Synced is closed after the first full sync has been read from libvirt and
// applied to the speaker.
func (r *Reconciler) Synced() <-chan struct{} { return r.synced }

// updateMsg changes the state in the Run goroutine; done is closed after
// the pass that follows.
type updateMsg struct {
	fn   func(st *state)
	done chan struct{}
}

type snapshotMsg struct{ reply chan Snapshot }

// aliveMsg asks the loop to answer, nothing more.
type aliveMsg struct{ reply chan struct{} }

// SetMapping puts a new mapping in force and returns, after the resulting
// route changes were applied (or ctx ended), how it differs from the
// mapping it replaced. The caller validated it.
func (r *Reconciler) SetMapping(ctx context.Context, m *mapping.Mapping) (mapping.Changes, error) {
	var change mapping.Changes
	err := r.update(ctx, "set mapping", func(st *state) {
		change = mapping.Diff(st.mapping, m)
		st.mapping = m
		st.watched = false
	})
	if err != nil {
		// change is the reconciler's until it has run the update.
		return mapping.Changes{}, err
	}
	return change, nil
}

// Drain is the host's drain state. Its text form, "none", "draining" or
// "drained", is the one vocabulary of the drain: the reconciler applies it
// (WithDrain), the daemon persists it, status shows it.
type Drain int

// The drain states.
const (
	// DrainNone: routes as Desired says.
	DrainNone Drain = iota
	// DrainDraining: every route also carries the GRACEFUL_SHUTDOWN
	// community (RFC 8326), so that peers move traffic away first; the
	// daemon withdraws everything at the end of the graceful-shutdown time.
	DrainDraining
	// DrainDrained: nothing is announced.
	DrainDrained
)

var drainNames = [...]string{DrainNone: "none", DrainDraining: "draining", DrainDrained: "drained"}

func (d Drain) String() string {
	if d < 0 || int(d) >= len(drainNames) {
		return fmt.Sprintf("Drain(%d)", int(d))
	}
	return drainNames[d]
}

// MarshalText is the drain state's name; it fails for a value that is not
// one of the states.
func (d Drain) MarshalText() ([]byte, error) {
	if d < 0 || int(d) >= len(drainNames) {
		return nil, fmt.Errorf("invalid drain state %d", int(d))
	}
	return []byte(drainNames[d]), nil
}

// UnmarshalText reads a drain state's name.
func (d *Drain) UnmarshalText(b []byte) error {
	for i, name := range drainNames {
		if string(b) == name {
			*d = Drain(i)
			return nil
		}
	}
	return fmt.Errorf("unknown drain state %q: want none, draining or drained", b)
}

// SetManual puts a new set of manual routes in force and returns after the
// resulting route changes were applied (or ctx ended). The caller
// validated them; the reconciler keeps a copy.
func (r *Reconciler) SetManual(ctx context.Context, routes []mapping.Route) error {
	routes = slices.Clone(routes)
	for i := range routes {
		routes[i] = routes[i].Clone()
	}
	return r.update(ctx, "set manual routes", func(st *state) { st.manual = routes })
}

// SetMaintenance puts the operator's maintenance in force and returns
// after the resulting route changes were applied (or ctx ended). The
// reconciler keeps m as it is: the caller must not modify it after.
func (r *Reconciler) SetMaintenance(ctx context.Context, m Maintenance) error {
	return r.update(ctx, "set maintenance", func(st *state) { st.maint = m })
}

// SetDrain puts a drain state in force and returns after the resulting route
// changes were applied (or ctx ended).
func (r *Reconciler) SetDrain(ctx context.Context, d Drain) error {
	return r.update(ctx, "set drain", func(st *state) {
		if st.drain != d {
			r.log.Info("drain state changed", "from", st.drain, "to", d)
		}
		st.drain = d
	})
}

func (r *Reconciler) update(ctx context.Context, what string, fn func(st *state)) error {
	msg := updateMsg{fn: fn, done: make(chan struct{})}
	select {
	case r.msgs <- msg:
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
	select {
	case <-msg.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
}

// WithDrain applies a drain state to the desired routes: DrainDraining adds
// the GRACEFUL_SHUTDOWN community to every route, DrainDrained removes them
// all.
func WithDrain(want map[netip.Prefix]Want, d Drain) map[netip.Prefix]Want {
	switch d {
	case DrainDrained:
		return map[netip.Prefix]Want{}
	case DrainDraining:
		for p, w := range want {
			w.Route = w.Route.Clone()
			w.Route.Communities = append(w.Route.Communities, mapping.CommunityGracefulShutdown)
			w.Route.Normalize()
			want[p] = w
		}
	}
	return want
}

// Snapshot is a copy of the reconciler's view, for status and tests.
type Snapshot struct {
	Domains   []Domain // sorted by name
	Announced []Want   // sorted by prefix
	Mapping   *mapping.Mapping
	Drain     Drain
	Synced    bool
	LastSync  time.Time // last successful full sync
	// Arrivals are the domains that arrived on this host by live
	// migration, by UUID (see Arrival).
	Arrivals map[string]Arrival
	// Sources are, by UUID, where the domains' routes come from and what
	// was refused (Resolution.Domains of the last pass).
	Sources map[string]DomainRoutes
}

// Alive returns once the reconciler's loop has answered: a round trip
// that copies nothing (Snapshot copies every route), for health checks.
func (r *Reconciler) Alive(ctx context.Context) error {
	msg := aliveMsg{reply: make(chan struct{})}
	select {
	case r.msgs <- msg:
	case <-ctx.Done():
		return fmt.Errorf("alive: %w", ctx.Err())
	}
	select {
	case <-msg.reply:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("alive: %w", ctx.Err())
	}
}

// Snapshot returns a copy of the current state.
func (r *Reconciler) Snapshot(ctx context.Context) (Snapshot, error) {
	msg := snapshotMsg{reply: make(chan Snapshot, 1)}
	select {
	case r.msgs <- msg:
	case <-ctx.Done():
		return Snapshot{}, fmt.Errorf("snapshot: %w", ctx.Err())
	}
	select {
	case s := <-msg.reply:
		return s, nil
	case <-ctx.Done():
		return Snapshot{}, fmt.Errorf("snapshot: %w", ctx.Err())
	}
}

// state is owned by the Run goroutine alone.
type state struct {
	mapping   *mapping.Mapping
	drain     Drain
	manual    []mapping.Route
	maint     Maintenance
	domains   map[string]Domain // by UUID
	announced map[netip.Prefix]Want
	// arrivals are the domains that arrived by live migration, by UUID:
	// TrackArrivals of st.domains and st.mapping after each read.
	arrivals map[string]Arrival
	// sources are Resolution.Domains of the last pass, by UUID.
	sources map[string]DomainRoutes
	// health is the health monitor's verdicts the last pass used.
	health Health
	// watched: the health monitor has been given the domains and the
	// mapping in force (Watch rebuilds every check: a pass woken by a
	// health change alone need not call it).
	watched bool
	// dirty domains (UUID -> the first hint that marked it) and the
	// full-resync flag.
	dirty    map[string]Hint
	dirtyAll bool
	// eventAt holds, during one pass, when the events that made each domain
	// dirty arrived (UUID -> time), for the latency metric.
	eventAt map[string]time.Time
	// failed says the last pass did not converge; retry with backoff.
	failed   bool
	backoff  time.Duration
	synced   bool
	lastSync time.Time
}

// Run reconciles until ctx ends. It starts with a full sync.
func (r *Reconciler) Run(ctx context.Context) error {
	st := &state{
		mapping:   r.opts.Mapping,
		drain:     r.opts.Drain,
		manual:    r.opts.Manual,
		maint:     r.opts.Maintenance,
		domains:   make(map[string]Domain),
		announced: make(map[netip.Prefix]Want),
		dirty:     make(map[string]Hint),
		eventAt:   make(map[string]time.Time),
		dirtyAll:  true,
	}
	var tick <-chan time.Time
	if r.opts.ResyncInterval > 0 {
		t := time.NewTicker(r.opts.ResyncInterval)
		defer t.Stop()
		tick = t.C
	}
	retry := time.NewTimer(0)
	if !retry.Stop() {
		<-retry.C
	}
	hints := r.opts.Hypervisor.Hints()
	var healthChanged <-chan struct{}
	if r.opts.Health != nil {
		healthChanged = r.opts.Health.Changed()
	}
	r.pass(ctx, st)
	for {
		if st.failed {
			retry.Reset(st.backoff)
		}
		var done []chan struct{}
		select {
		case <-ctx.Done():
			retry.Stop()
			return ctx.Err()
		case h := <-hints:
			st.mark(h)
		case <-tick:
			st.dirtyAll = true
		case <-healthChanged:
			// A hint: the pass reads the health in force.
		case <-retry.C:
		case m := <-r.msgs:
			done = r.handle(st, m, done)
			if done == nil {
				// A question (Snapshot, Alive), answered: nothing to
				// reconcile.
				continue
			}
		}
		// Coalesce whatever else is already queued into the same pass.
	drain:
		for {
			select {
			case h := <-hints:
				st.mark(h)
			case m := <-r.msgs:
				done = r.handle(st, m, done)
			default:
				break drain
			}
		}
		retry.Stop()
		r.pass(ctx, st)
		for _, c := range done {
			close(c)
		}
	}
}

func (r *Reconciler) handle(st *state, m any, done []chan struct{}) []chan struct{} {
	switch m := m.(type) {
	case updateMsg:
		m.fn(st)
		done = append(done, m.done)
	case snapshotMsg:
		m.reply <- st.snapshot()
	case aliveMsg:
		close(m.reply)
	}
	return done
}

func (st *state) mark(h Hint) {
	if h.All {
		st.dirtyAll = true
		return
	}
	if h.UUID == "" {
		return
	}
	if prev, ok := st.dirty[h.UUID]; ok && !prev.At.IsZero() {
		h.At = prev.At // the earliest event counts
	}
	st.dirty[h.UUID] = h
}

func (st *state) snapshot() Snapshot {
	s := Snapshot{
		Domains:   slices.Collect(maps.Values(st.domains)),
		Announced: slices.Collect(maps.Values(st.announced)),
		Mapping:   st.mapping,
		Drain:     st.drain,
		Synced:    st.synced,
		LastSync:  st.lastSync,
		Arrivals:  maps.Clone(st.arrivals),
		Sources:   maps.Clone(st.sources),
	}
	slices.SortFunc(s.Domains, func(a, b Domain) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(s.Announced, func(a, b Want) int { return a.Route.Prefix.Compare(b.Route.Prefix) })
	for i := range s.Announced {
		s.Announced[i].Route = s.Announced[i].Route.Clone()
	}
	return s
}

// pass reads what is dirty from libvirt, computes the desired routes and
// applies the difference.
func (r *Reconciler) pass(ctx context.Context, st *state) {
	start := time.Now()
	readOK := r.read(ctx, st)
	domains := slices.Collect(maps.Values(st.domains))
	var health Health
	if r.opts.Health != nil {
		if !st.watched {
			r.opts.Health.Watch(domains, st.mapping, &r.opts.Policy.Trust)
			st.watched = true
		}
		health = r.opts.Health.Health()
	}
	st.health = health
	res := Resolve(domains, st.mapping, r.opts.Policy, st.manual, st.announced, health, st.maint)
	r.reportSources(st, res.Domains)
	r.trackArrivals(st)
	want := WithDrain(res.Want, st.drain)
	applyOK := r.apply(ctx, st, want)
	clear(st.eventAt)
	r.opts.Observer.Reconciled(time.Since(start), len(st.announced), readOK && applyOK)
	if readOK && applyOK {
		st.failed, st.backoff = false, 0
	} else {
		st.failed = true
		st.backoff = min(max(2*st.backoff, r.opts.RetryMin), r.opts.RetryMax)
	}
	if readOK && applyOK && !st.synced && !st.lastSync.IsZero() {
		st.synced = true
		close(r.synced)
		r.log.Info("first full sync done", "domains", len(st.domains), "routes", len(st.announced))
	}
	r.log.Debug("reconciled", "took", time.Since(start), "routes", len(st.announced))
}

// read refreshes st.domains for what is dirty. On failure it keeps what it
// knew, so routes stay as they are while libvirt is away.
func (r *Reconciler) read(ctx context.Context, st *state) bool {
	if st.dirtyAll {
		ds, err := r.opts.Hypervisor.Domains(ctx)
		if errors.Is(err, ErrNotConnected) {
			// The hypervisor sends Hint{All} once it is connected.
			r.log.Info("libvirt not connected; keeping routes as they are until it is", "routes", len(st.announced))
			return true
		}
		if err != nil {
			r.log.Warn("cannot list domains; keeping routes as they are", "error", err)
			return false
		}
		fresh := make(map[string]Domain, len(ds))
		for _, d := range ds {
			fresh[d.UUID] = d
		}
		st.domains, st.watched = fresh, false
		st.dirtyAll = false
		clear(st.dirty)
		st.lastSync = time.Now()
		return true
	}
	ok := true
	for uuid, hint := range st.dirty {
		event := hint.Event
		d, found, err := r.opts.Hypervisor.Domain(ctx, uuid)
		if errors.Is(err, ErrNotConnected) {
			st.dirtyAll = true // resync everything when the hypervisor is back
			return true
		}
		if err != nil {
			r.log.Warn("cannot read domain; keeping its routes", "uuid", uuid, "event", event, "error", err)
			ok = false
			continue
		}
		delete(st.dirty, uuid)
		if !hint.At.IsZero() {
			st.eventAt[uuid] = hint.At
		}
		if !found {
			delete(st.domains, uuid)
			st.watched = false
			continue
		}
		if event != "" {
			r.log.Debug("domain event", "domain", d.Name, "event", event, "state", d.State.String(), "state_reason", d.Reason)
		}
		st.domains[uuid], st.watched = d, false
	}
	return ok
}

// trackArrivals updates the record of domains that arrived by live
// migration (TrackArrivals) and reports each arrival that the mapping does
// not name, once: a warning in the log and the Observer's count.
func (r *Reconciler) trackArrivals(st *state) {
	var ch ArrivalChanges
	st.arrivals, ch = TrackArrivals(st.arrivals, st.domains, st.mapping, st.sources)
	for _, d := range ch.Unmapped {
		r.log.Warn("migrated-in domain has no mapping here", "domain", d.Name, "uuid", d.UUID,
			"state", d.State.String(), "state_reason", d.Reason)
		r.opts.Observer.UnmappedArrival()
	}
	for _, d := range ch.Mapped {
		vm, _ := st.mapping.Lookup(d.Name, d.UUID)
		r.log.Info("migrated-in domain is mapped now", "domain", d.Name, "uuid", d.UUID, "vm", vm)
	}
}

// logEachUpTo is how many route changes of one pass are logged one line
// each at level info; a bigger pass (a cold start, a reload that adds a
// host's worth of VMs) logs them at debug and a summary at info.
const logEachUpTo = 32

// apply makes the speaker's routes equal to want, one prefix at a time.
// Each change is logged as "route announced" or "route withdrawn" with the
// domain, VM, prefix, action, reason and the route's attributes as fields.
func (r *Reconciler) apply(ctx context.Context, st *state, want map[netip.Prefix]Want) bool {
	var announce, withdraw []netip.Prefix
	for p, w := range want {
		if have, on := st.announced[p]; on && have.Route.Equal(w.Route) {
			st.announced[p] = w // same route; refresh why/domain
			continue
		}
		announce = append(announce, p)
	}
	for p := range st.announced {
		if _, keep := want[p]; !keep {
			withdraw = append(withdraw, p)
		}
	}
	if len(announce)+len(withdraw) == 0 {
		return true
	}
	slices.SortFunc(announce, netip.Prefix.Compare)
	slices.SortFunc(withdraw, netip.Prefix.Compare)
	level := slog.LevelInfo
	if len(announce)+len(withdraw) > logEachUpTo {
		level = slog.LevelDebug
	}
	ok := true
	var announced, withdrawn int
	for _, p := range announce {
		w := want[p]
		if !permits(st.mapping, &r.opts.Policy, w) {
			// Resolve only draws from the mapping and the trusted
			// metadata; this is the last guard.
			r.log.Error("refusing to announce a prefix no source may claim", "prefix", p, "source", w.Source, "domain", w.Domain)
			continue
		}
		if err := r.opts.Speaker.Announce(ctx, w.Route); err != nil {
			r.log.Error("announce failed", "domain", w.Domain, "vm", w.VM, "prefix", p, "error", err)
			ok = false
			continue
		}
		st.observeEvent(r.opts.Observer, w.UUID)
		if r.log.Enabled(ctx, level) {
			r.log.LogAttrs(ctx, level, "route announced", announcedAttrs(w)...)
		}
		st.announced[p] = w
		announced++
	}
	for _, p := range withdraw {
		have := st.announced[p]
		if err := r.opts.Speaker.Withdraw(ctx, p); err != nil {
			r.log.Error("withdraw failed", "domain", have.Domain, "vm", have.VM, "prefix", p, "error", err)
			ok = false
			continue
		}
		st.observeEvent(r.opts.Observer, have.UUID)
		if r.log.Enabled(ctx, level) {
			r.log.LogAttrs(ctx, level, "route withdrawn", st.withdrawnAttrs(have, &r.opts.Policy)...)
		}
		delete(st.announced, p)
		withdrawn++
	}
	if level == slog.LevelDebug {
		r.log.Info("routes changed (one line each at log level debug)", "announced", announced, "withdrawn", withdrawn,
			"failed", len(announce)+len(withdraw)-announced-withdrawn, "now", len(st.announced))
	}
	return ok
}

// observeEvent reports the latency of a route change caused by an event.
func (st *state) observeEvent(o Observer, uuid string) {
	if at, ok := st.eventAt[uuid]; ok {
		o.EventApplied(time.Since(at))
	}
}

// announcedAttrs are the log fields of an announce: reason is why the
// route is wanted (WhyRunning, WhyStandby, ...), then the attributes.
func announcedAttrs(w Want) []slog.Attr {
	rt := w.Route
	out := make([]slog.Attr, 0, 11)
	out = append(out,
		slog.String("domain", w.Domain),
		slog.String("vm", w.VM),
		slog.Any("prefix", rt.Prefix),
		slog.String("action", "announce"),
		slog.String("reason", w.Why),
	)
	if w.Health != HealthNone {
		out = append(out, slog.String("health", w.Health))
		if w.HealthReason != "" {
			out = append(out, slog.String("health_reason", w.HealthReason))
		}
	}
	if rt.NextHop.IsValid() {
		out = append(out, slog.Any("next_hop", rt.NextHop))
	} else {
		out = append(out, slog.String("next_hop", "self"))
	}
	if rt.MED != nil {
		out = append(out, slog.Uint64("med", uint64(*rt.MED)))
	}
	if rt.LocalPref != nil {
		out = append(out, slog.Uint64("local_pref", uint64(*rt.LocalPref)))
	}
	if rt.ASPathPrepend > 0 {
		out = append(out, slog.Int("prepend", int(rt.ASPathPrepend)))
	}
	if len(rt.Communities) > 0 {
		cs := make([]string, len(rt.Communities))
		for i, c := range rt.Communities {
			cs[i] = mapping.FormatCommunity(c)
		}
		out = append(out, slog.String("communities", strings.Join(cs, " ")))
	}
	if len(rt.LargeCommunities) > 0 {
		cs := make([]string, len(rt.LargeCommunities))
		for i, c := range rt.LargeCommunities {
			cs[i] = c.String()
		}
		out = append(out, slog.String("large_communities", strings.Join(cs, " ")))
	}
	return out
}

// withdrawnAttrs are the log fields of a withdraw. reason says why the
// route is no longer wanted:
//   - "unmapped": the mapping no longer names the prefix;
//   - "domain-gone": the domain no longer exists;
//   - "domain-renamed" (new_name: the domain's name now);
//   - "entry-mismatch": the domain no longer matches the mapping entry vm;
//   - "health" (health_reason: the failing checks, or "starting"): a
//     route with checks, of any source, of a domain that serves;
//   - for a route from metadata: "source-changed" (the domain's routes
//     come from another source now), "refused" (the claim is refused
//     now: DomainRoutes.Refused says why), "unclaimed" (the metadata no
//     longer claims it, or is gone);
//   - "maintenance": the operator put the domain, or the route, in
//     maintenance (health_reason: by whom);
//   - else the domain's state, "off", "paused" or "running" (drained), with
//     libvirt's state_reason.
func (st *state) withdrawnAttrs(have Want, p *Policy) []slog.Attr {
	out := []slog.Attr{
		slog.String("domain", have.Domain),
		slog.String("vm", have.VM),
		slog.Any("prefix", have.Route.Prefix),
		slog.String("action", "withdraw"),
	}
	if have.Source == SourceManual {
		return append(out, slog.String("reason", "manual"))
	}
	fromFile := have.Source == SourceFile || have.Source == ""
	if fromFile && !names(st.mapping, have.Route.Prefix) {
		return append(out, slog.String("reason", "unmapped"))
	}
	d, ok := st.domains[have.UUID]
	switch {
	case !ok:
		return append(out, slog.String("reason", "domain-gone"))
	case d.Name != have.Domain:
		return append(out, slog.String("reason", "domain-renamed"), slog.String("new_name", d.Name))
	}
	if fromFile {
		if vm, _ := st.mapping.Lookup(d.Name, d.UUID); vm != have.VM {
			return append(out, slog.String("reason", "entry-mismatch"))
		}
		if _, serves := serving(d, *p); serves && st.drain == DrainNone {
			if why, in := st.maint.In(d.UUID, have.Route.Prefix); in {
				return append(out, slog.String("reason", "maintenance"), slog.String("health_reason", why))
			}
			return append(out, st.healthReason(d, have.Route.Prefix)...)
		}
	} else {
		dr := st.sources[d.UUID]
		_, serves := serving(d, *p)
		switch {
		case dr.Source == "":
			return append(out, slog.String("reason", "unclaimed"))
		case dr.Source != have.Source:
			return append(out, slog.String("reason", "source-changed"), slog.String("source", dr.Source))
		case slices.ContainsFunc(dr.Refused, func(r mapping.Refusal) bool { return r.Prefix == have.Route.Prefix }):
			return append(out, slog.String("reason", "refused"))
		case serves && st.drain == DrainNone:
			if why, in := st.maint.In(d.UUID, have.Route.Prefix); in {
				return append(out, slog.String("reason", "maintenance"), slog.String("health_reason", why))
			}
			if _, c := d.Claims.pick(); c != nil && c.Health[have.Route.Prefix] != nil {
				return append(out, st.healthReason(d, have.Route.Prefix)...)
			}
			return append(out, slog.String("reason", "unclaimed"))
		}
	}
	return append(out, slog.String("reason", d.State.String()), slog.String("state_reason", d.Reason))
}

// healthReason is the reason of the withdrawal of a route with checks of
// a serving domain: its failing checks, or "starting".
func (st *state) healthReason(d Domain, prefix netip.Prefix) []slog.Attr {
	if rh, ok := st.health[HealthKey{UUID: d.UUID, Prefix: prefix}]; ok && rh.Failing {
		return []slog.Attr{slog.String("reason", "health"), slog.String("health_reason", rh.Reason)}
	}
	return []slog.Attr{slog.String("reason", "health"), slog.String("health_reason", "starting")}
}

// reportSources puts the sources of a pass in force and logs what changed
// in them: a metadata element with a problem (once per new problem), a
// problem gone, a claim refused (once per new refusal). Constant messages;
// the fields say which domain, prefix and why.
func (r *Reconciler) reportSources(st *state, now map[string]DomainRoutes) {
	for uuid, dr := range now {
		old := st.sources[uuid]
		if dr.Equal(old) {
			continue
		}
		name := st.domains[uuid].Name
		if dr.Err != "" && (dr.Err != old.Err || dr.Source != old.Source) {
			r.log.Warn("domain metadata rejected", "domain", name, "uuid", uuid, "source", dr.Source, "error", dr.Err)
		}
		if dr.Err == "" && old.Err != "" {
			r.log.Info("domain metadata accepted again", "domain", name, "uuid", uuid, "source", dr.Source)
		}
		for _, ref := range dr.Refused {
			if !slices.Contains(old.Refused, ref) {
				r.log.Warn("route claim refused", "domain", name, "uuid", uuid, "source", dr.Source,
					"prefix", ref.Prefix, "reason", ref.Reason)
			}
		}
	}
	st.sources = now
}

func names(m *mapping.Mapping, p netip.Prefix) bool {
	if m == nil {
		return false
	}
	_, ok := m.Owner(p)
	return ok
}
