package health

import (
	"context"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/virtbgp/virtbgp/internal/reconcile"
	"github.com/virtbgp/virtbgp/mapping"
)

// Observer is told of every check transition, for metrics. Its methods are
// called from the monitor's goroutine and must not block.
type Observer interface {
	// Transition reports that a check of this kind went from one state to
	// another.
	Transition(kind mapping.CheckKind, from, to State)
}

// Options configure a Monitor.
type Options struct {
	Log *slog.Logger
	// Agent pings guest agents; without it agent checks cannot run.
	Agent Agent
	// Observer, if set, is told of transitions.
	Observer Observer
}

// Monitor runs the checks and computes the health of the routes. Create it
// with New, start it with Run; Watch, Health, Changed, AgentEvent and
// Status may be called from any goroutine. It implements
// reconcile.HealthSource.
type Monitor struct {
	log   *slog.Logger
	agent Agent
	obs   Observer

	watchMu sync.Mutex
	watch   *watchReq // the latest Watch, for Run to take
	kick    chan struct{}

	results chan probeResult
	agentEv chan string // UUIDs whose guest agent connected or left
	reqs    chan func(*monState)
	changed chan struct{}
	health  atomic.Pointer[reconcile.Health]
}

type watchReq struct {
	domains []reconcile.Domain
	m       *mapping.Mapping
	trust   *reconcile.Trust
}

type probeResult struct {
	c *check
	r Result
}

// New returns a Monitor; no check runs before Run.
func New(opts Options) *Monitor {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	m := &Monitor{
		log:     opts.Log,
		agent:   opts.Agent,
		obs:     opts.Observer,
		kick:    make(chan struct{}, 1),
		results: make(chan probeResult, 256),
		agentEv: make(chan string, 256),
		reqs:    make(chan func(*monState)),
		changed: make(chan struct{}, 1),
	}
	empty := reconcile.Health{}
	m.health.Store(&empty)
	return m
}

// Watch tells the monitor the domains, the mapping and the trust rules in
// force (nil: the zero Trust, which lets metadata claim nothing); it takes
// the latest on its goroutine. It never blocks.
func (m *Monitor) Watch(domains []reconcile.Domain, mp *mapping.Mapping, t *reconcile.Trust) {
	if t == nil {
		t = &reconcile.Trust{}
	}
	m.watchMu.Lock()
	m.watch = &watchReq{domains: domains, m: mp, trust: t}
	m.watchMu.Unlock()
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Health returns the health in force; shared, never modified.
func (m *Monitor) Health() reconcile.Health { return *m.health.Load() }

// Changed receives a value after Health changed.
func (m *Monitor) Changed() <-chan struct{} { return m.changed }

// AgentEvent is a hint that the guest agent of the domain with this UUID
// connected or disconnected (libvirt's agent lifecycle event): its agent
// checks run now. It never blocks; a full queue drops the hint (the next
// interval runs the check anyway).
func (m *Monitor) AgentEvent(uuid string) {
	select {
	case m.agentEv <- uuid:
	default:
	}
}

// check is one running probe and its state, owned by Run.
type check struct {
	key    string
	t      target
	health *mapping.Health // of the first route that made it; for initial
	mach   Machine
	routes map[reconcile.HealthKey]bool
	cancel context.CancelFunc
	wake   chan struct{}
}

// route is one route with checks.
type route struct {
	health *mapping.Health
	checks []*check
	domain string
	vm     string
}

// monState is owned by Run.
type monState struct {
	checks  map[string]*check
	routes  map[reconcile.HealthKey]*route
	verdict reconcile.Health
}

// Run runs the checks until ctx ends.
func (m *Monitor) Run(ctx context.Context) error {
	st := &monState{checks: map[string]*check{}, routes: map[reconcile.HealthKey]*route{}, verdict: reconcile.Health{}}
	var wg sync.WaitGroup
	defer func() {
		for _, c := range st.checks {
			c.cancel()
		}
		wg.Wait()
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.kick:
			m.watchMu.Lock()
			w := m.watch
			m.watch = nil
			m.watchMu.Unlock()
			if w != nil {
				m.apply(ctx, st, w, &wg)
			}
		case pr := <-m.results:
			m.result(st, pr)
		case uuid := <-m.agentEv:
			for _, c := range st.checks {
				if c.t.uuid == uuid && c.t.check.Kind == mapping.CheckAgent {
					select {
					case c.wake <- struct{}{}:
					default:
					}
				}
			}
		case fn := <-m.reqs:
			fn(st)
		}
	}
}

// checksRun reports whether a domain in this state has its checks run: it
// runs, or it is paused. A paused domain's checks go on (and fail after
// fall intervals if the pause lasts) rather than stop and start again: the
// source of a live migration, paused for the switch-over, keeps its
// route's health (up) and so its depreferenced route, which the
// destination's route replaces without a gap; the paused destination
// started up.
func checksRun(d reconcile.Domain) bool {
	return d.State == reconcile.StateRunning || d.State == reconcile.StatePaused
}

// apply makes the running checks those of the domains and mapping in w.
func (m *Monitor) apply(ctx context.Context, st *monState, w *watchReq, wg *sync.WaitGroup) {
	routes := map[reconcile.HealthKey]*route{}
	want := map[string]*check{}
	for _, d := range w.domains {
		if !checksRun(d) {
			continue
		}
		vmKey, vmRoutes, vmHealth := reconcile.Checked(d, w.m, w.trust)
		if len(vmHealth) == 0 {
			continue
		}
		for _, r := range vmRoutes {
			h := vmHealth[r.Prefix]
			if h == nil {
				continue
			}
			hk := reconcile.HealthKey{UUID: d.UUID, Prefix: r.Prefix}
			rt := &route{health: h, domain: d.Name, vm: vmKey}
			routes[hk] = rt
			for i := range h.Checks {
				c := &h.Checks[i]
				ip := r.Prefix.Addr()
				key := d.UUID + "|" + c.Key(ip)
				ck, ok := want[key]
				if !ok {
					ck = st.checks[key]
					if ck == nil {
						ck = &check{key: key, t: target{uuid: d.UUID, domain: d.Name, vm: vmKey, ip: ip, check: *c}, health: h,
							mach: NewMachine(c.Rise, c.Fall, time.Now()), wake: make(chan struct{}, 1)}
						if old := predecessor(st.checks, d.UUID, ip, c.Name); old != nil {
							// The same check, edited (another interval,
							// target, rise): its state carries over, so
							// that a reload does not make a route start
							// again.
							ck.mach.State, ck.mach.Since, ck.mach.Reason, ck.mach.Last = old.mach.State, old.mach.Since, old.mach.Reason, old.mach.Last
						} else if reconcile.MigratedIn(d) {
							ck.mach.State, ck.mach.Reason = Up, "arrived by live migration"
						}
					}
					ck.routes = map[reconcile.HealthKey]bool{}
					want[key] = ck
				}
				ck.t.domain = d.Name
				ck.routes[hk] = true
				rt.checks = append(rt.checks, ck)
			}
		}
	}
	for key, c := range st.checks {
		if _, keep := want[key]; !keep {
			c.cancel()
			m.log.Debug("health check stopped", "domain", c.t.domain, "check", c.t.check.Name, "target", c.t.check.Shown(c.t.ip))
		}
	}
	for key, c := range want {
		if _, running := st.checks[key]; !running {
			cctx, cancel := context.WithCancel(ctx)
			c.cancel = cancel
			wg.Add(1)
			go func() {
				defer wg.Done()
				m.loop(cctx, c)
			}()
			m.log.Debug("health check started", "domain", c.t.domain, "check", c.t.check.Name, "target", c.t.check.Shown(c.t.ip))
		}
	}
	st.checks, st.routes = want, routes
	m.publish(st)
}

// predecessor returns the running check of domain uuid and IP ip with
// this name, if any.
func predecessor(checks map[string]*check, uuid string, ip netip.Addr, name string) *check {
	for _, c := range checks {
		if c.t.uuid == uuid && c.t.ip == ip && c.t.check.Name == name {
			return c
		}
	}
	return nil
}

// loop runs the probe of c every interval (and when woken) until ctx ends.
func (m *Monitor) loop(ctx context.Context, c *check) {
	t := time.NewTimer(0)
	defer t.Stop()
	var hc httpConn // the http check's connection, kept between runs
	defer hc.close()
	var due time.Time // when the last run was due (zero: the first)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.wake:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		}
		r := m.run(ctx, &c.t, &hc)
		if ctx.Err() != nil {
			return
		}
		select {
		case m.results <- probeResult{c: c, r: r}:
		case <-ctx.Done():
			return
		}
		due = nextDue(due, r.At, time.Now(), c.t.check.Interval)
		t.Reset(time.Until(due))
	}
}

// runGrid is the grid that runs are aligned to: a run starts at most this
// much later than its interval says, and the checks due within one grid
// step run in one wake-up of the process instead of one each (a thousand
// checks a second wake it ten times).
const runGrid = 100 * time.Millisecond

// nextDue returns when the run after one due at due (zero for the first
// run, which started at start) is due: interval later, on the grid
// (rounded up), never before now. A check's runs thus keep their cadence
// (an interval that is a multiple of the grid exactly), and no two runs
// are less than an interval apart.
func nextDue(due, start, now time.Time, interval time.Duration) time.Time {
	if due.IsZero() {
		due = start
	}
	next := alignUp(due.Add(interval))
	if next.Before(now) {
		next = alignUp(now) // overdue (a slow run): the runs missed are skipped
	}
	return next
}

// alignUp rounds t up to the grid.
func alignUp(t time.Time) time.Time {
	if g := t.Truncate(runGrid); g.Before(t) {
		return g.Add(runGrid)
	}
	return t
}

// result applies one probe result: one log line per transition, and a new
// verdict if a route's changed.
func (m *Monitor) result(st *monState, pr probeResult) {
	c := pr.c
	if st.checks[c.key] != c {
		return // stopped since
	}
	from, changed := c.mach.Observe(pr.r)
	if !changed {
		return
	}
	level := slog.LevelInfo
	if c.mach.State == Down || c.mach.State == Unavailable {
		level = slog.LevelWarn
	}
	m.log.Log(context.Background(), level, "health check changed", "domain", c.t.domain, "vm", c.t.vm, "uuid", c.t.uuid,
		"check", c.t.check.Name, "type", string(c.t.check.Kind), "target", c.t.check.Shown(c.t.ip),
		"from", from.String(), "to", c.mach.State.String(), "reason", c.mach.Reason)
	if m.obs != nil {
		m.obs.Transition(c.t.check.Kind, from, c.mach.State)
	}
	m.publish(st)
}

// publish computes every route's verdict and, if any differs from the one
// in force, puts the new one in force and hints the reconciler.
func (m *Monitor) publish(st *monState) {
	v := make(reconcile.Health, len(st.routes))
	for hk, rt := range st.routes {
		rh := reconcile.RouteHealth{}
		var why []string
		for _, c := range rt.checks {
			if !c.mach.Healthy(rt.health.InitialUp) {
				rh.Failing = true
				why = append(why, "check "+c.t.check.Name+" "+c.mach.State.String()+": "+c.mach.Reason)
			}
		}
		rh.Reason = strings.Join(why, "; ")
		v[hk] = rh
	}
	if maps.Equal(v, st.verdict) {
		return
	}
	st.verdict = v
	m.health.Store(&v)
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// CheckStatus is one check's state, for status.
type CheckStatus struct {
	Domain string     `json:"domain"`
	UUID   string     `json:"uuid"`
	VM     string     `json:"vm"`
	IP     netip.Addr `json:"ip"`
	Check  string     `json:"check"`
	Type   string     `json:"type"`
	// Target is what the check probes, without what may hold a secret
	// (mapping.Check.Shown).
	Target string         `json:"target,omitempty"`
	State  string         `json:"state"`
	Since  time.Time      `json:"since"`
	Reason string         `json:"reason"`
	Last   *ResultStatus  `json:"last,omitempty"`
	Routes []netip.Prefix `json:"routes"`
}

// ResultStatus is a check's last result, for status.
type ResultStatus struct {
	Outcome string        `json:"outcome"`
	Detail  string        `json:"detail"`
	At      time.Time     `json:"at"`
	Took    time.Duration `json:"took_ns"`
}

// Status returns every check's state, sorted by domain, check and IP.
func (m *Monitor) Status(ctx context.Context) ([]CheckStatus, error) {
	reply := make(chan []CheckStatus, 1)
	fn := func(st *monState) {
		out := make([]CheckStatus, 0, len(st.checks))
		for _, c := range st.checks {
			cs := CheckStatus{Domain: c.t.domain, UUID: c.t.uuid, VM: c.t.vm, IP: c.t.ip, Check: c.t.check.Name,
				Type: string(c.t.check.Kind), Target: c.t.check.Shown(c.t.ip), State: c.mach.State.String(),
				Since: c.mach.Since, Reason: c.mach.Reason}
			if !c.mach.Last.At.IsZero() {
				l := c.mach.Last
				cs.Last = &ResultStatus{Outcome: l.Outcome.String(), Detail: l.Detail, At: l.At, Took: l.Took}
			}
			for hk := range c.routes {
				cs.Routes = append(cs.Routes, hk.Prefix)
			}
			slices.SortFunc(cs.Routes, netip.Prefix.Compare)
			out = append(out, cs)
		}
		slices.SortFunc(out, func(a, b CheckStatus) int {
			if c := strings.Compare(a.Domain, b.Domain); c != 0 {
				return c
			}
			if c := strings.Compare(a.Check, b.Check); c != 0 {
				return c
			}
			return a.IP.Compare(b.IP)
		})
		reply <- out
	}
	select {
	case m.reqs <- fn:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case out := <-reply:
		return out, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
