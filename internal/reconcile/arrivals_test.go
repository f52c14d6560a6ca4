package reconcile

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/virtbgp/virtbgp/internal/testutil"
)

const uuidLost = "00000000-0000-0000-0000-00000000010a"

// withLost is testMapping plus an entry for the domain "lost".
var withLost = testMapping + "  lost:\n    ips: [192.0.2.99]\n"

func TestMigratedIn(t *testing.T) {
	paused := func(m Migration, reason string) Domain {
		d := dom("x", uuidLost, StatePaused, reason)
		d.Migration = m
		return d
	}
	for _, tc := range []struct {
		d    Domain
		want bool
	}{
		{paused(MigrationIncoming, "migration"), true},
		{dom("x", uuidLost, StateRunning, ReasonMigrated), true},
		{dom("x", uuidLost, StateRunning, ReasonPostcopy), true},
		{dom("x", uuidLost, StateRunning, ReasonBooted), false},
		{dom("x", uuidLost, StateRunning, "unpaused"), false},
		{dom("x", uuidLost, StateRunning, "migration canceled"), false}, // the source, after a cancelled migration
		{paused(MigrationOutgoing, "migration"), false},
		{paused(MigrationFailed, "postcopy failed"), false},
		{paused(MigrationNone, "user"), false},
		{dom("x", uuidLost, StateOff, "migrated"), false}, // the source, after the migration
	} {
		if got := MigratedIn(tc.d); got != tc.want {
			t.Errorf("MigratedIn(%s %s %s) = %v, want %v", tc.d.State, tc.d.Reason, tc.d.Migration, got, tc.want)
		}
	}
}

// TestTrackArrivals: which domains have an arrival record after a pass,
// whether unmapped, and which changes are reported, from the
// previous record, the domains and the mapping alone.
func TestTrackArrivals(t *testing.T) {
	without, with := parseMapping(t, testMapping), parseMapping(t, withLost)
	incoming := dom("lost", uuidLost, StatePaused, "migration")
	incoming.Migration = MigrationIncoming
	migrated := dom("lost", uuidLost, StateRunning, ReasonMigrated)
	known := func(unmapped, reported bool) map[string]Arrival {
		return map[string]Arrival{uuidLost: {Unmapped: unmapped, reported: reported}}
	}
	type result struct {
		next             map[string]Arrival
		unmapped, mapped []string // names
	}
	for _, tc := range []struct {
		name string
		prev map[string]Arrival
		d    Domain // with Name "": no domain
		m    bool   // the mapping names lost
		want result
	}{
		{"booted here: no record", nil, dom("lost", uuidLost, StateRunning, ReasonBooted), false, result{}},
		{"standby of an incoming migration, unmapped: reported", nil, incoming, false,
			result{next: known(true, true), unmapped: []string{"lost"}}},
		{"running after a migration, unmapped: reported", nil, migrated, false,
			result{next: known(true, true), unmapped: []string{"lost"}}},
		{"post-copy destination, mapped: recorded, nothing to report", nil, dom("lost", uuidLost, StateRunning, ReasonPostcopy), true,
			result{next: known(false, false)}},
		{"standby resumed: the same arrival, not reported again", known(true, true), migrated, false,
			result{next: known(true, true)}},
		{"paused and unpaused since: still the arrival", known(true, true), dom("lost", uuidLost, StateRunning, "unpaused"), false,
			result{next: known(true, true)}},
		{"a reload maps it: flag cleared", known(true, true), migrated, true,
			result{next: known(false, true), mapped: []string{"lost"}}},
		{"a reload unmaps it again: flagged, not reported twice", known(false, true), migrated, false,
			result{next: known(true, true)}},
		{"mapped at arrival, a reload unmaps it: reported once", known(false, false), migrated, false,
			result{next: known(true, true), unmapped: []string{"lost"}}},
		{"off: the arrival ends", known(true, true), dom("lost", uuidLost, StateOff, "destroyed"), false, result{}},
		{"started anew here: the arrival ends", known(true, true), dom("lost", uuidLost, StateRunning, ReasonBooted), false, result{}},
		{"gone: the arrival ends", known(true, true), Domain{}, false, result{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			domains := map[string]Domain{}
			if tc.d.Name != "" {
				domains[tc.d.UUID] = tc.d
			}
			// A domain that never arrived is never recorded.
			domains[uuidWeb] = dom("web-01", uuidWeb, StateRunning, ReasonBooted)
			m := without
			if tc.m {
				m = with
			}
			prevCopy := maps.Clone(tc.prev)
			next, ch := TrackArrivals(tc.prev, domains, m, nil)
			if !maps.Equal(next, tc.want.next) {
				t.Errorf("next = %+v, want %+v", next, tc.want.next)
			}
			names := func(ds []Domain) (out []string) {
				for _, d := range ds {
					out = append(out, d.Name)
				}
				return out
			}
			if got := names(ch.Unmapped); !slices.Equal(got, tc.want.unmapped) {
				t.Errorf("reported unmapped %v, want %v", got, tc.want.unmapped)
			}
			if got := names(ch.Mapped); !slices.Equal(got, tc.want.mapped) {
				t.Errorf("reported mapped now %v, want %v", got, tc.want.mapped)
			}
			if !maps.Equal(tc.prev, prevCopy) {
				t.Errorf("TrackArrivals modified prev: %+v, was %+v", tc.prev, prevCopy)
			}
		})
	}
}

// TestUnmappedArrivalWarnsOnce runs the scenario of issue 10 through the
// reconciler: a domain arrives by live migration and the mapping does not
// name it. It is logged at warn once per arrival (not again when it
// resumes, nor at a full resync), counted once, and flagged in the
// snapshot until a mapping that names it is put in force.
func TestUnmappedArrivalWarnsOnce(t *testing.T) {
	log, buf := testutil.Logger()
	obs := &recObserver{}
	hv, sp := newFakeHV(dom("web-01", uuidWeb, StateRunning, ReasonBooted)), newFakeSpeaker()
	r := New(Options{Hypervisor: hv, Speaker: sp, Mapping: parseMapping(t, testMapping), Log: log, Observer: obs})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	h := &harness{t: t, hv: hv, sp: sp, r: r, ctx: ctx}
	h.wantPrefixes("192.0.2.10/32", "2001:db8::10/128")

	const warning = `level=WARN msg="migrated-in domain has no mapping here" domain=lost uuid=` + uuidLost
	warnings := func() int { return strings.Count(buf.String(), warning) }
	flag := func(s Snapshot) (Arrival, bool) { a, ok := s.Arrivals[uuidLost]; return a, ok }

	// Started Migrated: the standby of the incoming migration.
	lost := dom("lost", uuidLost, StatePaused, "migration")
	lost.Migration = MigrationIncoming
	hv.set(lost, true)
	s := h.settle()
	if a, ok := flag(s); !ok || !a.Unmapped {
		t.Fatalf("snapshot arrival of lost = %+v, %v; want unmapped", a, ok)
	}
	if n := warnings(); n != 1 {
		t.Fatalf("%d warnings after the arrival, want 1; log:\n%s", n, buf.String())
	}
	if want := warning + " state=paused state_reason=migration\n"; !strings.Contains(buf.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, buf.String())
	}

	// Resumed Migrated, then a full resync: the same arrival.
	lost = dom("lost", uuidLost, StateRunning, ReasonMigrated)
	hv.set(lost, true)
	h.settle()
	hv.hints <- Hint{All: true}
	s = h.settle()
	if n, c := warnings(), obs.unmappedArrivals(); n != 1 || c != 1 {
		t.Fatalf("after resume and resync: %d warnings, %d counted; want 1 and 1", n, c)
	}
	if a, ok := flag(s); !ok || !a.Unmapped {
		t.Fatalf("after resume: arrival %+v, %v; want unmapped", a, ok)
	}
	h.wantPrefixes("192.0.2.10/32", "2001:db8::10/128") // nothing for lost

	// It stops and arrives again: a new arrival, reported again.
	hv.set(dom("lost", uuidLost, StateOff, "migrated"), true)
	if s = h.settle(); len(s.Arrivals) != 0 {
		t.Fatalf("arrivals after the domain stopped: %+v, want none", s.Arrivals)
	}
	hv.set(lost, true)
	h.settle()
	if n, c := warnings(), obs.unmappedArrivals(); n != 2 || c != 2 {
		t.Fatalf("after a second arrival: %d warnings, %d counted; want 2 and 2", n, c)
	}

	// A reload maps it: announced, the flag clears, no new warning.
	if _, err := r.SetMapping(ctx, parseMapping(t, withLost)); err != nil {
		t.Fatal(err)
	}
	h.wantPrefixes("192.0.2.10/32", "2001:db8::10/128", "192.0.2.99/32")
	s = h.settle()
	if a, ok := flag(s); !ok || a.Unmapped {
		t.Fatalf("after the mapping names it: arrival %+v, %v; want a mapped arrival", a, ok)
	}
	if want := `level=INFO msg="migrated-in domain is mapped now" domain=lost uuid=` + uuidLost + " vm=lost\n"; !strings.Contains(buf.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, buf.String())
	}
	if n, c := warnings(), obs.unmappedArrivals(); n != 2 || c != 2 {
		t.Errorf("after the reload: %d warnings, %d counted; want still 2 and 2", n, c)
	}
}
