package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/virtbgp/virtbgp/internal/testutil"
	"github.com/virtbgp/virtbgp/mapping"
)

const testMapping = `version: 1
defaults:
  communities: ["65001:100"]
vms:
  web-01:
    med: 10
    ips: [192.0.2.10, "2001:db8::10"]
  db-01:
    uuid: 00000000-0000-0000-0000-0000000000d1
    ips: [192.0.2.20]
  c0ffee00-0000-0000-0000-000000000001:
    ips: [192.0.2.30]
`

const (
	uuidWeb   = "00000000-0000-0000-0000-0000000000a1"
	uuidDB    = "00000000-0000-0000-0000-0000000000d1"
	uuidByKey = "c0ffee00-0000-0000-0000-000000000001"
)

func parseMapping(t testing.TB, text string) *mapping.Mapping {
	t.Helper()
	m, err := mapping.Parse("test.yaml", []byte(text))
	if err != nil {
		t.Fatalf("parse mapping: %v", err)
	}
	return m
}

func dom(name, uuid string, s State, reason string) Domain {
	return Domain{Name: name, UUID: uuid, State: s, Reason: reason}
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

type harness struct {
	t   *testing.T
	hv  *fakeHV
	sp  *fakeSpeaker
	r   *Reconciler
	ctx context.Context
}

func start(t *testing.T, opts Options, ds ...Domain) *harness {
	t.Helper()
	h := &harness{t: t, hv: newFakeHV(ds...), sp: newFakeSpeaker()}
	opts.Hypervisor, opts.Speaker = h.hv, h.sp
	if opts.Log == nil {
		opts.Log = testLogger(t)
	}
	if opts.Mapping == nil {
		opts.Mapping = parseMapping(t, testMapping)
	}
	if opts.RetryMin == 0 {
		opts.RetryMin, opts.RetryMax = 5*time.Millisecond, 20*time.Millisecond
	}
	h.r = New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	h.ctx = ctx
	done := make(chan error, 1)
	go func() { done <- h.r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
	return h
}

// settle returns, with a snapshot, once every hint sent before it was
// reconciled (see barrier).
func (h *harness) settle() Snapshot {
	h.t.Helper()
	barrier(h.t, h.ctx, h.r)
	s, err := h.r.Snapshot(h.ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// barrier returns after a pass that saw every hint sent before it. Run
// takes an update, and then every hint and message already queued, before
// the pass that closes the update's done; a hint sent before the update
// is queued by then. (Two snapshots in a row are no barrier: Run may serve
// the second one while it still collects the batch of the first, before
// the pass.)
func barrier(t testing.TB, ctx context.Context, r *Reconciler) {
	t.Helper()
	if err := r.update(ctx, "barrier", func(*state) {}); err != nil {
		t.Fatal(err)
	}
}

// appliedAt checks, on the fake clock, that the speaker still has no routes
// just before d from now, and exactly want routes at d: what names the step
// that must happen at d.
func (h *harness) appliedAt(d time.Duration, want int, what string) {
	h.t.Helper()
	time.Sleep(d - time.Nanosecond)
	synctest.Wait()
	if got := h.sp.prefixes(); len(got) != 0 {
		h.t.Fatalf("routes %v before %s (due after %v)", got, what, d)
	}
	time.Sleep(time.Nanosecond)
	synctest.Wait()
	if got := h.sp.prefixes(); len(got) != want {
		h.t.Fatalf("routes after %s = %v, want %d", what, got, want)
	}
}

func (h *harness) wantPrefixes(want ...string) {
	h.t.Helper()
	h.settle()
	got := h.sp.prefixes()
	slices.Sort(want)
	if !slices.Equal(got, want) {
		h.t.Fatalf("announced %v, want %v", got, want)
	}
}

func (h *harness) route(p string) mapping.Route {
	h.t.Helper()
	routes, _ := h.sp.snapshot()
	r, ok := routes[netip.MustParsePrefix(p)]
	if !ok {
		h.t.Fatalf("%s not announced", p)
	}
	return r
}

func TestStartAnnouncesRunningMappedDomains(t *testing.T) {
	h := start(t, Options{},
		dom("web-01", uuidWeb, StateRunning, "booted"),
		dom("db-01", uuidDB, StateRunning, "booted"),
		dom("other", "00000000-0000-0000-0000-0000000000ff", StateRunning, "booted"),
		dom("anyname", uuidByKey, StateRunning, "booted"),
	)
	select {
	case <-h.r.Synced():
	case <-time.After(5 * time.Second):
		t.Fatal("Synced not closed after the first full sync")
	}
	h.wantPrefixes("192.0.2.10/32", "2001:db8::10/128", "192.0.2.20/32", "192.0.2.30/32")
	r := h.route("192.0.2.10/32")
	if r.MED == nil || *r.MED != 10 || !slices.Equal(r.Communities, []uint32{65001<<16 | 100}) {
		t.Errorf("web-01 route attributes = %s", r)
	}
}

func TestUUIDPinMismatchAnnouncesNothing(t *testing.T) {
	h := start(t, Options{},
		dom("db-01", "00000000-0000-0000-0000-0000000000d2", StateRunning, "booted"), // forged: other UUID
	)
	h.wantPrefixes()
}

func TestLifecycle(t *testing.T) {
	web := dom("web-01", uuidWeb, StateOff, "shutoff")
	h := start(t, Options{}, web)
	h.wantPrefixes()

	web.State, web.Reason = StateRunning, "booted"
	h.hv.set(web, true)
	h.wantPrefixes("192.0.2.10/32", "2001:db8::10/128")

	web.State, web.Reason = StatePaused, "user"
	h.hv.set(web, true)
	h.wantPrefixes() // default policy: withdraw when paused

	web.State, web.Reason = StateRunning, "unpaused"
	h.hv.set(web, true)
	h.wantPrefixes("192.0.2.10/32", "2001:db8::10/128")

	web.State, web.Reason = StateOff, "destroyed"
	h.hv.set(web, true)
	h.wantPrefixes()

	web.State, web.Reason = StateRunning, "booted"
	h.hv.set(web, true)
	h.wantPrefixes("192.0.2.10/32", "2001:db8::10/128")
	h.hv.remove(uuidWeb, true) // transient domain gone
	h.wantPrefixes()
}

func TestPausedPolicyKeep(t *testing.T) {
	web := dom("web-01", uuidWeb, StateRunning, "booted")
	h := start(t, Options{Policy: Policy{KeepPaused: true}}, web)
	h.wantPrefixes("192.0.2.10/32", "2001:db8::10/128")
	h.sp.resetOps()
	web.State, web.Reason = StatePaused, "user"
	h.hv.set(web, true)
	h.wantPrefixes("192.0.2.10/32", "2001:db8::10/128")
	if _, ops := h.sp.snapshot(); len(ops) != 0 {
		t.Errorf("pause with policy keep sent %v, want nothing", ops)
	}
	web.State = StateOff
	h.hv.set(web, true)
	h.wantPrefixes()
}

func TestIncomingMigrationStandbyThenResume(t *testing.T) {
	web := dom("web-01", uuidWeb, StatePaused, "migration")
	web.Migration = MigrationIncoming
	h := start(t, Options{Policy: Policy{StandbyPrepend: 3}}, web)
	h.wantPrefixes("192.0.2.10/32", "2001:db8::10/128")
	if r := h.route("192.0.2.10/32"); r.ASPathPrepend != 3 {
		t.Fatalf("standby route prepend = %d, want 3", r.ASPathPrepend)
	}
	web.State, web.Reason, web.Migration = StateRunning, "migrated", MigrationNone
	h.hv.set(web, true)
	h.wantPrefixes("192.0.2.10/32", "2001:db8::10/128")
	if r := h.route("192.0.2.10/32"); r.ASPathPrepend != 0 || r.MED == nil || *r.MED != 10 {
		t.Fatalf("after resume route = %s, want normal attributes", r)
	}

	// A failed incoming migration: the destination's domain stops.
	web.State, web.Reason, web.Migration = StatePaused, "migration", MigrationIncoming
	h.hv.set(web, true)
	h.wantPrefixes("192.0.2.10/32", "2001:db8::10/128")
	h.hv.remove(uuidWeb, true)
	h.wantPrefixes()
}

func TestMappingChangeAppliesOnlyTheDifference(t *testing.T) {
	h := start(t, Options{},
		dom("web-01", uuidWeb, StateRunning, "booted"),
		dom("db-01", uuidDB, StateRunning, "booted"),
	)
	h.wantPrefixes("192.0.2.10/32", "2001:db8::10/128", "192.0.2.20/32")
	h.sp.resetOps()

	edited := strings.Replace(testMapping, "med: 10", "med: 20", 1)
	if _, err := h.r.SetMapping(h.ctx, parseMapping(t, edited)); err != nil {
		t.Fatal(err)
	}
	_, ops := h.sp.snapshot()
	if len(ops) != 2 || !strings.HasPrefix(ops[0], "announce 192.0.2.10/32") || !strings.Contains(ops[0], "med 20") ||
		!strings.HasPrefix(ops[1], "announce 2001:db8::10/128") {
		t.Fatalf("MED edit sent %q, want exactly the two web-01 routes with med 20", ops)
	}

	h.sp.resetOps()
	if _, err := h.r.SetMapping(h.ctx, parseMapping(t, edited)); err != nil {
		t.Fatal(err)
	}
	if _, ops := h.sp.snapshot(); len(ops) != 0 {
		t.Fatalf("reload with no change sent %q", ops)
	}

	// Remove db-01 from the mapping: its route goes, nothing else moves.
	noDB := strings.Replace(edited, "  db-01:\n    uuid: 00000000-0000-0000-0000-0000000000d1\n    ips: [192.0.2.20]\n", "", 1)
	if _, err := h.r.SetMapping(h.ctx, parseMapping(t, noDB)); err != nil {
		t.Fatal(err)
	}
	if _, ops := h.sp.snapshot(); !slices.Equal(ops, []string{"withdraw 192.0.2.20/32"}) {
		t.Fatalf("removing db-01 sent %q", ops)
	}
	h.wantPrefixes("192.0.2.10/32", "2001:db8::10/128")
}

func TestLibvirtAwayKeepsRoutesAndResyncsOnReconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		web := dom("web-01", uuidWeb, StateRunning, "booted")
		db := dom("db-01", uuidDB, StateOff, "shutoff")
		h := start(t, Options{}, web, db)
		h.wantPrefixes("192.0.2.10/32", "2001:db8::10/128")
		h.sp.resetOps()

		h.hv.setDown(true)
		h.hv.hints <- Hint{All: true} // e.g. a periodic tick while down
		h.hv.hints <- Hint{UUID: uuidWeb}
		h.wantPrefixes("192.0.2.10/32", "2001:db8::10/128") // kept while away
		// Changes while away, whose events are lost.
		web.State = StateOff
		db.State = StateRunning
		h.hv.set(web, false)
		h.hv.set(db, false)
		// Whatever timers the reconciler has set fire (fake clock, far past
		// RetryMax); Wait returns once it is idle again: it never touched
		// the routes.
		time.Sleep(time.Minute)
		synctest.Wait()
		h.wantPrefixes("192.0.2.10/32", "2001:db8::10/128")
		if _, ops := h.sp.snapshot(); len(ops) != 0 {
			t.Fatalf("while libvirt was away the speaker got %q, want nothing", ops)
		}

		h.hv.setDown(false)
		h.hv.hints <- Hint{All: true} // what the adapter sends after reconnecting
		h.wantPrefixes("192.0.2.20/32")
	})
}

// TestRetryAfterSpeakerFailure: a pass whose speaker calls fail is retried
// after RetryMin, not before, and then converges.
func TestRetryAfterSpeakerFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const retryMin = 200 * time.Millisecond
		h := start(t, Options{RetryMin: retryMin, RetryMax: 10 * retryMin})
		h.wantPrefixes()
		h.sp.setFail(2)
		h.hv.set(dom("web-01", uuidWeb, StateRunning, "booted"), true)
		synctest.Wait() // the pass ran: both announces failed
		if got := h.sp.prefixes(); len(got) != 0 {
			t.Fatalf("routes after two failed announces = %v, want none", got)
		}
		h.appliedAt(retryMin, 2, "the retry")
	})
}

// TestBurstCoalesces: hints that queue up while a pass reads libvirt are
// coalesced into one pass after it.
func TestBurstCoalesces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		web := dom("web-01", uuidWeb, StateOff, "shutoff")
		h := start(t, Options{}, web)
		h.wantPrefixes()

		// Hold libvirt reads while 1000 events queue up, as in a burst.
		gate := make(chan struct{})
		h.hv.mu.Lock()
		h.hv.gate = gate
		before := h.hv.lookups[uuidWeb]
		h.hv.mu.Unlock()
		h.hv.hints <- Hint{UUID: uuidWeb} // the pass that blocks on the gate
		synctest.Wait()                   // it does
		for i := range 1000 {
			if i%2 == 0 {
				web.State = StateRunning
			} else {
				web.State = StateOff
			}
			h.hv.set(web, true)
		}
		web.State = StateRunning
		h.hv.set(web, true)
		h.hv.mu.Lock()
		h.hv.gate = nil
		h.hv.mu.Unlock()
		close(gate)

		h.wantPrefixes("192.0.2.10/32", "2001:db8::10/128")
		h.hv.mu.Lock()
		reads := h.hv.lookups[uuidWeb] - before
		h.hv.mu.Unlock()
		if reads > 2 {
			t.Fatalf("1001 hints for one domain caused %d reads, want 2 (the blocked pass, then one for all the rest)", reads)
		}
	})
}

// TestPeriodicResyncRepairsLostEvents: a change whose event was lost is
// applied at the next periodic resync, not before.
func TestPeriodicResyncRepairsLostEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = time.Minute
		web := dom("web-01", uuidWeb, StateOff, "shutoff")
		h := start(t, Options{ResyncInterval: interval}, web) // the ticker starts now
		h.wantPrefixes()
		web.State = StateRunning
		h.hv.set(web, false) // no event at all
		h.appliedAt(interval, 2, "the periodic resync of a domain whose event was lost")
	})
}

func TestDesired(t *testing.T) {
	m := parseMapping(t, testMapping)
	web := func(s State, m Migration) Domain {
		d := dom("web-01", uuidWeb, s, "")
		d.Migration = m
		return d
	}
	tests := []struct {
		name    string
		domains []Domain
		policy  Policy
		want    map[string]string // prefix -> why
	}{
		{"running", []Domain{web(StateRunning, MigrationNone)}, Policy{}, map[string]string{"192.0.2.10/32": WhyRunning, "2001:db8::10/128": WhyRunning}},
		{"paused withdraw", []Domain{web(StatePaused, MigrationNone)}, Policy{}, map[string]string{}},
		{"paused keep", []Domain{web(StatePaused, MigrationNone)}, Policy{KeepPaused: true}, map[string]string{"192.0.2.10/32": WhyPausedKeep, "2001:db8::10/128": WhyPausedKeep}},
		{"incoming migration", []Domain{web(StatePaused, MigrationIncoming)}, Policy{StandbyPrepend: 2}, map[string]string{"192.0.2.10/32": WhyStandby, "2001:db8::10/128": WhyStandby}},
		{"outgoing switch-over", []Domain{web(StatePaused, MigrationOutgoing)}, Policy{StandbyPrepend: 3}, map[string]string{"192.0.2.10/32": WhySwitchover, "2001:db8::10/128": WhySwitchover}},
		{"postcopy source", []Domain{web(StatePaused, MigrationOutgoing)}, Policy{StandbyPrepend: 3}, map[string]string{"192.0.2.10/32": WhySwitchover, "2001:db8::10/128": WhySwitchover}},
		{"postcopy failed", []Domain{web(StatePaused, MigrationFailed)}, Policy{KeepPaused: true}, map[string]string{}},
		{"off", []Domain{web(StateOff, MigrationNone)}, Policy{KeepPaused: true}, map[string]string{}},
		{"unmapped", []Domain{dom("nope", "00000000-0000-0000-0000-000000000999", StateRunning, "")}, Policy{}, map[string]string{}},
		{"pin mismatch", []Domain{dom("db-01", "00000000-0000-0000-0000-000000000999", StateRunning, "")}, Policy{}, map[string]string{}},
		{"uuid key any name", []Domain{dom("renamed", uuidByKey, StateRunning, "")}, Policy{}, map[string]string{"192.0.2.30/32": WhyRunning}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Desired(tt.domains, m, tt.policy, nil, nil, nil)
			if len(got) != len(tt.want) {
				t.Fatalf("Desired = %v, want %v", got, tt.want)
			}
			for p, why := range tt.want {
				w, ok := got[netip.MustParsePrefix(p)]
				if !ok || w.Why != why {
					t.Fatalf("Desired[%s] = %+v, want why %q", p, w, why)
				}
				if why == WhyStandby && w.Route.ASPathPrepend != tt.policy.StandbyPrepend {
					t.Errorf("standby prepend = %d, want %d", w.Route.ASPathPrepend, tt.policy.StandbyPrepend)
				}
				if why == WhySwitchover && w.Route.ASPathPrepend != SwitchoverPrepend {
					t.Errorf("switch-over prepend = %d, want %d", w.Route.ASPathPrepend, SwitchoverPrepend)
				}
			}
		})
	}
	if got := Desired([]Domain{web(StateRunning, MigrationNone)}, nil, Policy{}, nil, nil, nil); len(got) != 0 {
		t.Errorf("Desired with no mapping = %v, want nothing", got)
	}
}

// TestMigrationMakeBeforeBreak walks the event sequences of DESIGN.md
// through the desired routes of a source host A and a destination host B,
// and checks what a ToR choosing the shortest AS path would do at each step:
// it always has a path, never prefers B before the guest resumes there (and
// never has a tie it could break towards B), and prefers B right after.
func TestMigrationMakeBeforeBreak(t *testing.T) {
	m := parseMapping(t, testMapping)
	pol := Policy{StandbyPrepend: 3}
	p := netip.MustParsePrefix("192.0.2.10/32")
	type step struct {
		event string
		a, b  Domain // StateOff with no name: no domain on that host
		want  string // "A", "B", or "" for no route (never wanted)
	}
	run := dom("web-01", uuidWeb, StateRunning, "booted")
	gone := Domain{}
	pausedAs := func(m Migration, reason string) Domain {
		d := dom("web-01", uuidWeb, StatePaused, reason)
		d.Migration = m
		return d
	}
	sequences := map[string][]step{
		"pre-copy": {
			{"before", run, gone, "A"},
			{"B: Started Migrated", run, pausedAs(MigrationIncoming, "migration"), "A"},
			{"A: Suspended Migrated", pausedAs(MigrationOutgoing, "migration"), pausedAs(MigrationIncoming, "migration"), "A"},
			{"B: Resumed Migrated", pausedAs(MigrationOutgoing, "migration"), run, "B"},
			{"A: Stopped Migrated", gone, run, "B"},
		},
		"aborted before switch-over": {
			{"B: Started Migrated", run, pausedAs(MigrationIncoming, "migration"), "A"},
			{"B: Stopped Failed", run, gone, "A"},
		},
		"aborted during switch-over": {
			{"B: Started Migrated", run, pausedAs(MigrationIncoming, "migration"), "A"},
			{"A: Suspended Migrated", pausedAs(MigrationOutgoing, "migration"), pausedAs(MigrationIncoming, "migration"), "A"},
			{"B: Stopped Failed", pausedAs(MigrationOutgoing, "migration"), gone, "A"},
			{"A: Resumed Migrated", run, gone, "A"},
		},
		"post-copy": {
			{"B: Started Migrated", run, pausedAs(MigrationIncoming, "migration"), "A"},
			{"A: Suspended Migrated", pausedAs(MigrationOutgoing, "migration"), pausedAs(MigrationIncoming, "migration"), "A"},
			// The source reports Suspended Post-copy before the guest
			// resumes at the destination: its route must still win.
			{"A: Suspended Postcopy", pausedAs(MigrationOutgoing, "postcopy"), pausedAs(MigrationIncoming, "migration"), "A"},
			{"B: Resumed Postcopy", pausedAs(MigrationOutgoing, "postcopy"), run, "B"},
			{"A: Stopped Migrated", gone, run, "B"},
		},
		"post-copy failed": {
			{"A: Suspended Postcopy", pausedAs(MigrationOutgoing, "postcopy"), pausedAs(MigrationIncoming, "migration"), "A"},
			{"B: Resumed Postcopy", pausedAs(MigrationOutgoing, "postcopy"), run, "B"},
			{"A: Suspended Post-copy Error", pausedAs(MigrationFailed, "postcopy failed"), pausedAs(MigrationFailed, "postcopy failed"), ""},
		},
	}
	hostRoutes := func(d Domain) (mapping.Route, bool) {
		if d.UUID == "" {
			return mapping.Route{}, false
		}
		w, ok := Desired([]Domain{d}, m, pol, nil, nil, nil)[p]
		return w.Route, ok
	}
	for name, steps := range sequences {
		t.Run(name, func(t *testing.T) {
			for _, s := range steps {
				ra, okA := hostRoutes(s.a)
				rb, okB := hostRoutes(s.b)
				got := ""
				switch {
				case okA && okB && ra.ASPathPrepend == rb.ASPathPrepend:
					t.Fatalf("%s: A and B tie (prepend %d): the ToR may pick B before the guest runs there", s.event, ra.ASPathPrepend)
				case okA && (!okB || ra.ASPathPrepend < rb.ASPathPrepend):
					got = "A"
				case okB:
					got = "B"
				}
				if got != s.want {
					t.Fatalf("%s: ToR prefers %q (A: %v %d, B: %v %d), want %q", s.event, got, okA, ra.ASPathPrepend, okB, rb.ASPathPrepend, s.want)
				}
			}
		})
	}
}

type recObserver struct {
	mu        sync.Mutex
	passes    int
	latencies []time.Duration
	unmapped  int
}

func (o *recObserver) UnmappedArrival() {
	o.mu.Lock()
	o.unmapped++
	o.mu.Unlock()
}

func (o *recObserver) unmappedArrivals() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.unmapped
}

func (o *recObserver) Reconciled(took time.Duration, announced int, ok bool) {
	o.mu.Lock()
	o.passes++
	o.mu.Unlock()
}

func (o *recObserver) EventApplied(l time.Duration) {
	o.mu.Lock()
	o.latencies = append(o.latencies, l)
	o.mu.Unlock()
}

func TestObserverGetsEventLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		obs := &recObserver{}
		web := dom("web-01", uuidWeb, StateOff, "shutoff")
		h := start(t, Options{Observer: obs}, web)
		h.wantPrefixes()
		web.State = StateRunning
		h.hv.mu.Lock()
		h.hv.domains[uuidWeb] = web
		h.hv.mu.Unlock()
		sent := time.Now().Add(-5 * time.Millisecond) // the event arrived 5ms ago
		h.hv.hints <- Hint{UUID: uuidWeb, Event: "Started Booted", At: sent}
		h.wantPrefixes("192.0.2.10/32", "2001:db8::10/128")
		obs.mu.Lock()
		defer obs.mu.Unlock()
		if len(obs.latencies) != 2 {
			t.Fatalf("EventApplied called %d times, want 2 (one per route)", len(obs.latencies))
		}
		for _, l := range obs.latencies {
			if l != 5*time.Millisecond { // the fake clock did not move since
				t.Errorf("latency %v, want 5ms (the event's age)", l)
			}
		}
		if obs.passes < 2 {
			t.Errorf("Reconciled called %d times, want one per pass (>= 2)", obs.passes)
		}
	})
}

func TestDrain(t *testing.T) {
	h := start(t, Options{}, dom("web-01", uuidWeb, StateRunning, "booted"))
	h.wantPrefixes("192.0.2.10/32", "2001:db8::10/128")
	if err := h.r.SetDrain(h.ctx, DrainDraining); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"192.0.2.10/32", "2001:db8::10/128"} {
		r := h.route(p)
		if !slices.Equal(r.Communities, []uint32{65001<<16 | 100, mapping.CommunityGracefulShutdown}) {
			t.Errorf("draining %s communities = %v, want the mapped one plus GRACEFUL_SHUTDOWN", p, r.Communities)
		}
	}
	// A domain that starts while draining is announced draining too.
	h.hv.set(dom("db-01", uuidDB, StateRunning, "booted"), true)
	h.wantPrefixes("192.0.2.10/32", "2001:db8::10/128", "192.0.2.20/32")
	if r := h.route("192.0.2.20/32"); !slices.Contains(r.Communities, mapping.CommunityGracefulShutdown) {
		t.Errorf("route of a domain started while draining lacks GRACEFUL_SHUTDOWN: %s", r)
	}
	if err := h.r.SetDrain(h.ctx, DrainDrained); err != nil {
		t.Fatal(err)
	}
	h.wantPrefixes()
	h.hv.set(dom("web-01", uuidWeb, StateRunning, "unpaused"), true) // events while drained announce nothing
	h.wantPrefixes()
	if s := h.settle(); s.Drain != DrainDrained {
		t.Errorf("snapshot drain = %v", s.Drain)
	}
	if err := h.r.SetDrain(h.ctx, DrainNone); err != nil {
		t.Fatal(err)
	}
	h.wantPrefixes("192.0.2.10/32", "2001:db8::10/128", "192.0.2.20/32")
	if r := h.route("192.0.2.10/32"); slices.Contains(r.Communities, mapping.CommunityGracefulShutdown) {
		t.Errorf("undrained route still carries GRACEFUL_SHUTDOWN: %s", r)
	}
}

// A pass that changes a few routes logs each at info; a big one (a cold
// start of a full host) logs one summary at info, each route at debug.
func TestLogVolumeOfAPass(t *testing.T) {
	for _, tc := range []struct {
		vms         int
		perRoute    int // info lines "route announced"
		summaryLine bool
	}{
		{vms: 1, perRoute: 1},
		{vms: logEachUpTo, perRoute: logEachUpTo},
		{vms: logEachUpTo + 1, perRoute: 0, summaryLine: true},
		{vms: 500, perRoute: 0, summaryLine: true},
	} {
		t.Run(strconv.Itoa(tc.vms), func(t *testing.T) {
			var text strings.Builder
			text.WriteString("version: 1\nvms:\n")
			var ds []Domain
			for i := range tc.vms {
				fmt.Fprintf(&text, "  vm%d:\n    ips: [10.9.%d.%d]\n", i, i/250, i%250+1)
				ds = append(ds, dom(fmt.Sprintf("vm%d", i), fmt.Sprintf("00000000-0000-0000-0000-%012d", i), StateRunning, "booted"))
			}
			var buf testutil.SyncBuffer
			hv, sp := newFakeHV(ds...), newFakeSpeaker()
			r := New(Options{Hypervisor: hv, Speaker: sp, Mapping: parseMapping(t, text.String()),
				Log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			defer func() { cancel(); <-done }()
			<-r.Synced()
			if got := len(sp.prefixes()); got != tc.vms {
				t.Fatalf("announced %d routes, want %d", got, tc.vms)
			}
			out := buf.String()
			if got := strings.Count(out, `msg="route announced"`); got != tc.perRoute {
				t.Errorf("%d per-route info lines, want %d:\n%s", got, tc.perRoute, out)
			}
			summary := fmt.Sprintf("announced=%d withdrawn=0 failed=0 now=%d", tc.vms, tc.vms)
			if got := strings.Contains(out, summary); got != tc.summaryLine {
				t.Errorf("summary %q logged: %v, want %v:\n%s", summary, got, tc.summaryLine, out)
			}
		})
	}
}

// TestRouteLog: each route change is one record with a constant message and
// the domain, VM, prefix, action, reason and attributes as fields.
func TestRouteLog(t *testing.T) {
	log, buf := testutil.Logger()
	web := dom("web-01", uuidWeb, StateRunning, "booted")
	hv, sp := newFakeHV(web), newFakeSpeaker()
	m := parseMapping(t, strings.Replace(testMapping, "    med: 10\n", "    med: 10\n    local-pref: 200\n    large-communities: [\"65001:1:2\"]\n", 1))
	r := New(Options{Hypervisor: hv, Speaker: sp, Mapping: m, Log: log, Policy: Policy{StandbyPrepend: 2}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-r.Synced()

	// settle returns after the pass that follows the hints sent before it.
	settle := func() {
		t.Helper()
		barrier(t, ctx, r)
	}
	web.State, web.Reason, web.Migration = StatePaused, "migration", MigrationIncoming
	hv.set(web, true)
	settle()
	web.State, web.Reason, web.Migration = StateOff, "destroyed", MigrationNone
	hv.set(web, true)
	settle()
	out := buf.String()
	for _, want := range []string{
		`level=INFO msg="route announced" domain=web-01 vm=web-01 prefix=192.0.2.10/32 action=announce reason=running next_hop=self med=10 local_pref=200 communities=65001:100 large_communities=65001:1:2` + "\n",
		`level=INFO msg="route announced" domain=web-01 vm=web-01 prefix=192.0.2.10/32 action=announce reason=standby next_hop=self med=10 local_pref=200 prepend=2 communities=65001:100 large_communities=65001:1:2` + "\n",
		`level=INFO msg="route withdrawn" domain=web-01 vm=web-01 prefix=2001:db8::10/128 action=withdraw reason=off state_reason=destroyed` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log has no\n%s\nlog:\n%s", want, out)
		}
	}

	// The mapping drops the VM: reason unmapped.
	hv.set(dom("db-01", uuidDB, StateRunning, "booted"), true)
	settle()
	noDB := strings.Replace(testMapping, "  db-01:\n    uuid: 00000000-0000-0000-0000-0000000000d1\n    ips: [192.0.2.20]\n", "", 1)
	if _, err := r.SetMapping(ctx, parseMapping(t, noDB)); err != nil {
		t.Fatal(err)
	}
	if want := `msg="route withdrawn" domain=db-01 vm=db-01 prefix=192.0.2.20/32 action=withdraw reason=unmapped`; !strings.Contains(buf.String(), want) {
		t.Errorf("log has no\n%s\nlog:\n%s", want, buf.String())
	}
}

// TestQuestionsRunNoPass: Snapshot and Alive are answered without a pass
// (a status report or a health check does not make the reconciler compute
// the desired routes again); an update is followed by one.
func TestQuestionsRunNoPass(t *testing.T) {
	obs := &recObserver{}
	h := start(t, Options{Observer: obs}, dom("web-01", uuidWeb, StateRunning, "booted"))
	h.settle()
	passes := func() int {
		obs.mu.Lock()
		defer obs.mu.Unlock()
		return obs.passes
	}
	before := passes()
	for range 10 {
		if _, err := h.r.Snapshot(h.ctx); err != nil {
			t.Fatal(err)
		}
		if err := h.r.Alive(h.ctx); err != nil {
			t.Fatal(err)
		}
	}
	barrier(t, h.ctx, h.r) // one pass, which must follow the questions
	if got := passes() - before; got != 1 {
		t.Errorf("%d passes for 10 snapshots, 10 alive checks and one update, want 1", got)
	}
}
