package libvirt

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	lv "libvirt.org/go/libvirt"

	"github.com/virtbgp/virtbgp/internal/reconcile"
	"github.com/virtbgp/virtbgp/internal/testutil"
)

// TestLifecycle drives a domain through its life on a second connection to
// test:///default and checks the hints and the state the adapter reports.
func TestLifecycle(t *testing.T) {
	a, _ := startAdapter(t, testURI, slog.LevelDebug)
	if h := waitAllHint(t, a, 5*time.Second); h.Event != "Connected" {
		t.Errorf("first hint = %+v, want All with Event Connected", h)
	}
	c := openConn(t, testURI)
	ctx := context.Background()

	name := uniqueName(t)
	dom, err := c.DomainDefineXML(domainXML(name))
	if err != nil {
		t.Fatalf("define: %v", err)
	}
	defer func() { _ = dom.Free() }()
	uuid := domUUID(t, dom)
	if uuid != strings.ToLower(uuid) {
		t.Errorf("test driver UUID %q not lower-case", uuid)
	}

	h := waitHint(t, a, uuid, "Defined Added")
	if h.Name != name {
		t.Errorf("hint name %q, want %q", h.Name, name)
	}
	checkDomain(t, a, uuid, name, reconcile.StateOff, "unknown")

	steps := []struct {
		do     func() error
		event  string
		state  reconcile.State
		reason string
	}{
		{dom.Create, "Started Booted", reconcile.StateRunning, "booted"},
		{dom.Suspend, "Suspended Paused", reconcile.StatePaused, "user"},
		{dom.Resume, "Resumed Unpaused", reconcile.StateRunning, "unpaused"},
		{dom.Destroy, "Stopped Destroyed", reconcile.StateOff, "destroyed"},
		{dom.Create, "Started Booted", reconcile.StateRunning, "booted"},
		{dom.Shutdown, "Stopped Shutdown", reconcile.StateOff, "shutdown"},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("before %q: %v", s.event, err)
		}
		waitHint(t, a, uuid, s.event)
		checkDomain(t, a, uuid, name, s.state, s.reason)
	}

	if err := dom.Undefine(); err != nil {
		t.Fatalf("undefine: %v", err)
	}
	waitHint(t, a, uuid, "Undefined Removed")
	if _, found, err := a.Domain(ctx, uuid); found || err != nil {
		t.Fatalf("Domain after undefine: found %v, err %v; want not found, nil", found, err)
	}
	all, err := a.Domains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var sawTest bool
	for _, d := range all {
		if d.UUID == uuid {
			t.Errorf("Domains() still lists undefined domain: %+v", d)
		}
		if d.Name == "test" {
			// The test driver boots it with reason "unknown".
			sawTest = d.State == reconcile.StateRunning
		}
	}
	if !sawTest {
		t.Errorf("Domains() lacks the running built-in domain %q: %+v", "test", all)
	}
}

// TestUppercaseUUIDLookup checks that Domain accepts any case and reports the
// canonical lower-case form.
func TestUppercaseUUIDLookup(t *testing.T) {
	a, _ := startAdapter(t, testURI, slog.LevelInfo)
	c := openConn(t, testURI)
	dom, err := c.DomainCreateXML(domainXML(uniqueName(t)), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = dom.Free() }()
	defer func() { _ = dom.Destroy() }()
	uuid := domUUID(t, dom)
	d, found, err := a.Domain(context.Background(), strings.ToUpper(uuid))
	if err != nil || !found || d.UUID != uuid {
		t.Fatalf("Domain(upper) = %+v, %v, %v; want UUID %s", d, found, err, uuid)
	}
}

func TestUnknownDomain(t *testing.T) {
	a, _ := startAdapter(t, testURI, slog.LevelInfo)
	ctx := context.Background()
	d, found, err := a.Domain(ctx, "6f1b0b52-3c1e-4a4e-9d36-5d2c0ad1e000")
	if err != nil || found {
		t.Fatalf("Domain(unknown) = %+v, found %v, err %v; want not found, nil", d, found, err)
	}
	// A malformed UUID is an error of the caller, not "not found".
	if _, found, err := a.Domain(ctx, "not-a-uuid"); err == nil || found {
		t.Fatalf("Domain(malformed) = found %v, err %v; want an error", found, err)
	} else if errors.Is(err, ErrNotConnected) {
		t.Fatalf("Domain(malformed) error %v must not mean disconnected", err)
	}
	if !a.Connected() {
		t.Fatal("a failed lookup must not drop a live connection")
	}
}

// TestIncomingMigration checks the migration-direction flag. The test driver
// cannot migrate, so "Started Migrated" is injected into the tracker; the
// domain's real state comes from libvirt.
func TestIncomingMigration(t *testing.T) {
	a, _ := startAdapter(t, testURI, slog.LevelInfo)
	c := openConn(t, testURI)
	ctx := context.Background()
	name := uniqueName(t)
	dom, err := c.DomainCreateXML(domainXML(name), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = dom.Free() }()
	uuid := domUUID(t, dom)
	waitHint(t, a, uuid, "Started Booted")

	incoming := func() bool {
		t.Helper()
		d, found, err := a.Domain(ctx, uuid)
		if err != nil || !found {
			t.Fatalf("Domain: %v %v", found, err)
		}
		all, err := a.Domains(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range all {
			if x.UUID == uuid && x.Migration != d.Migration {
				t.Fatalf("Domain and Domains disagree: %+v vs %+v", d, x)
			}
		}
		return d.Migration == reconcile.MigrationIncoming
	}

	a.trackMigration(uuid, lv.DOMAIN_EVENT_STARTED, int(lv.DOMAIN_EVENT_STARTED_MIGRATED))
	if incoming() {
		t.Fatal("incoming migration role set for a running domain")
	}
	if err := dom.Suspend(); err != nil {
		t.Fatal(err)
	}
	waitHint(t, a, uuid, "Suspended Paused") // a suspend does not end the migration
	if !incoming() {
		t.Fatal("incoming migration role not set for a paused domain after Started Migrated")
	}
	if err := dom.Resume(); err != nil {
		t.Fatal(err)
	}
	waitHint(t, a, uuid, "Resumed Unpaused")
	if err := dom.Suspend(); err != nil {
		t.Fatal(err)
	}
	waitHint(t, a, uuid, "Suspended Paused")
	if incoming() {
		t.Fatal("incoming migration role still set after Resumed")
	}

	// Stopped (an aborted migration: Stopped Failed) clears it too.
	a.trackMigration(uuid, lv.DOMAIN_EVENT_STARTED, int(lv.DOMAIN_EVENT_STARTED_MIGRATED))
	if !incoming() {
		t.Fatal("incoming migration role not set")
	}
	a.trackMigration(uuid, lv.DOMAIN_EVENT_STOPPED, int(lv.DOMAIN_EVENT_STOPPED_FAILED))
	if incoming() {
		t.Fatal("incoming migration role still set after Stopped Failed")
	}
	// Started for another reason clears it.
	a.trackMigration(uuid, lv.DOMAIN_EVENT_STARTED, int(lv.DOMAIN_EVENT_STARTED_MIGRATED))
	a.trackMigration(uuid, lv.DOMAIN_EVENT_STARTED, int(lv.DOMAIN_EVENT_STARTED_RESTORED))
	if incoming() {
		t.Fatal("incoming migration role still set after Started Restored")
	}
	// Suspended Migrated (this host is the source) does not set it.
	a.trackMigration(uuid, lv.DOMAIN_EVENT_SUSPENDED, int(lv.DOMAIN_EVENT_SUSPENDED_MIGRATED))
	if incoming() {
		t.Fatal("incoming migration role set by Suspended Migrated")
	}
	if err := dom.Destroy(); err != nil {
		t.Fatal(err)
	}
}

func TestNotConnected(t *testing.T) {
	log, _ := newTestLogger(t, slog.LevelDebug)
	a := New(testURI, log)
	ctx := context.Background()
	if a.Connected() {
		t.Fatal("connected before Run")
	}
	if _, err := a.Domains(ctx); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Domains before Run: %v, want ErrNotConnected", err)
	}
	if _, _, err := a.Domain(ctx, "6f1b0b52-3c1e-4a4e-9d36-5d2c0ad1e000"); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Domain before Run: %v, want ErrNotConnected", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := a.WaitConnected(wctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitConnected before Run: %v", err)
	}

	// Run against a socket that does not exist keeps retrying and returns
	// ctx.Err() when cancelled.
	b := New("test+unix:///default?socket="+t.TempDir()+"/nope", log)
	rctx, rcancel := context.WithTimeout(ctx, 400*time.Millisecond)
	defer rcancel()
	if err := b.Run(rctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run without daemon returned %v", err)
	}
}

// TestRunStops checks that Run returns ctx.Err() when ctx ends and leaves
// the adapter disconnected.
func TestRunStops(t *testing.T) {
	log, sink := newTestLogger(t, slog.LevelDebug)
	a := New(testURI, log)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	if err := a.WaitConnected(wctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Domains(ctx); err != nil {
		t.Fatalf("Domains while connected: %v", err)
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if a.Connected() {
		t.Fatal("Connected after Run returned")
	}
	if _, err := a.Domains(context.Background()); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Domains after Run returned: %v, want ErrNotConnected", err)
	}
	if w := sink.warnings(""); len(w) > 0 {
		t.Fatalf("warnings logged: %q", w)
	}
}

func TestRunTwice(t *testing.T) {
	a, _ := startAdapter(t, testURI, slog.LevelInfo)
	if err := a.Run(context.Background()); err == nil {
		t.Fatal("second Run of the same adapter succeeded")
	}
}

// TestHintBurst overflows a tiny hint buffer and checks that lost events are
// replaced by a full-resync hint.
func TestHintBurst(t *testing.T) {
	const buffer, ops = 4, 300
	a, _ := startAdapter(t, testURI, slog.LevelInfo, WithHintBuffer(buffer))
	waitAllHint(t, a, 5*time.Second)
	c := openConn(t, testURI)

	// Nobody reads hints during the burst.
	start := time.Now()
	prefix := uniqueName(t)
	for i := range ops {
		dom, err := c.DomainCreateXML(domainXML(prefix+"-"+itoa(i)), 0)
		if err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
		if err := dom.Destroy(); err != nil {
			t.Fatalf("destroy %d: %v", i, err)
		}
		_ = dom.Free()
	}
	t.Logf("%d create+destroy in %v", ops, time.Since(start))

	// 2*ops events for a buffer of 4: events must have been lost, and one
	// Hint{All: true} must follow as soon as there is room. Read hints
	// until every event is accounted for, delivered or lost.
	testutil.WaitFor(t, 5*time.Second, "lost events", func() bool { return a.lost.Load() > 0 })
	var got, all int
	resync := func(h reconcile.Hint) {
		all++
		if !strings.Contains(h.Event, "Events Lost") {
			t.Errorf("resync hint %+v does not say events were lost", h)
		}
	}
	deadline := time.After(10 * time.Second)
	for uint64(got)+a.lost.Load() < 2*ops || all == 0 {
		select {
		case h := <-a.Hints():
			if h.All {
				resync(h)
			} else {
				got++
			}
		case <-deadline:
			if all == 0 {
				t.Fatalf("%d events lost but no Hint{All: true} arrived", a.lost.Load())
			}
			t.Fatalf("after 10s: %d hints delivered + %d lost of %d events", got, a.lost.Load(), 2*ops)
		}
	}
	lost := a.lost.Load()
	t.Logf("buffer %d: %d hints delivered, %d lost, %d full-resync hints", buffer, got, lost, all)
	if uint64(got)+lost != 2*ops {
		t.Errorf("delivered %d + lost %d != %d events", got, lost, 2*ops)
	}

	// After the burst the adapter still works and events flow again. The
	// new domain's event comes after every event of the burst, so its
	// hint is the first one that is not a resync: no hint of the burst
	// may come late, and no event may be lost late.
	dom, err := c.DomainCreateXML(domainXML(prefix+"-after"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = dom.Free() }()
	uuid := domUUID(t, dom)
	timeout := time.After(5 * time.Second)
	for done := false; !done; {
		select {
		case h := <-a.Hints():
			switch {
			case h.All:
				resync(h)
			case h.UUID != uuid:
				t.Errorf("hint %+v after all %d events of the burst were accounted for", h, 2*ops)
			case h.Event != "Started Booted":
				t.Fatalf("hint for %s: event %q, want %q", uuid, h.Event, "Started Booted")
			default:
				done = true
			}
		case <-timeout:
			t.Fatalf("no hint %q for %s within 5s", "Started Booted", uuid)
		}
	}
	if n := a.lost.Load(); n != lost {
		t.Errorf("%d events lost after all %d events of the burst were accounted for", n-lost, 2*ops)
	}
	if err := dom.Destroy(); err != nil {
		t.Fatal(err)
	}
}

func itoa(i int) string {
	const digits = "0123456789"
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{digits[i%10]}, b...)
	}
	return string(b)
}

func TestEventText(t *testing.T) {
	tests := []struct {
		ev     lv.DomainEventType
		detail int
		want   string
	}{
		{lv.DOMAIN_EVENT_STARTED, int(lv.DOMAIN_EVENT_STARTED_BOOTED), "Started Booted"},
		{lv.DOMAIN_EVENT_SUSPENDED, int(lv.DOMAIN_EVENT_SUSPENDED_PAUSED), "Suspended Paused"},
		{lv.DOMAIN_EVENT_RESUMED, int(lv.DOMAIN_EVENT_RESUMED_UNPAUSED), "Resumed Unpaused"},
		{lv.DOMAIN_EVENT_STOPPED, int(lv.DOMAIN_EVENT_STOPPED_DESTROYED), "Stopped Destroyed"},
		{lv.DOMAIN_EVENT_STARTED, int(lv.DOMAIN_EVENT_STARTED_MIGRATED), "Started Migrated"},
		{lv.DOMAIN_EVENT_SUSPENDED, int(lv.DOMAIN_EVENT_SUSPENDED_MIGRATED), "Suspended Migrated"},
		{lv.DOMAIN_EVENT_RESUMED, int(lv.DOMAIN_EVENT_RESUMED_MIGRATED), "Resumed Migrated"},
		{lv.DOMAIN_EVENT_STOPPED, int(lv.DOMAIN_EVENT_STOPPED_MIGRATED), "Stopped Migrated"},
		{lv.DOMAIN_EVENT_STOPPED, int(lv.DOMAIN_EVENT_STOPPED_FAILED), "Stopped Failed"},
		{lv.DOMAIN_EVENT_RESUMED, int(lv.DOMAIN_EVENT_RESUMED_POSTCOPY), "Resumed Postcopy"},
		{lv.DOMAIN_EVENT_SUSPENDED, int(lv.DOMAIN_EVENT_SUSPENDED_POSTCOPY_FAILED), "Suspended PostcopyFailed"},
		{lv.DOMAIN_EVENT_SUSPENDED, int(lv.DOMAIN_EVENT_SUSPENDED_IOERROR), "Suspended IOError"},
		{lv.DOMAIN_EVENT_DEFINED, int(lv.DOMAIN_EVENT_DEFINED_ADDED), "Defined Added"},
		{lv.DOMAIN_EVENT_UNDEFINED, int(lv.DOMAIN_EVENT_UNDEFINED_REMOVED), "Undefined Removed"},
		{lv.DOMAIN_EVENT_SHUTDOWN, int(lv.DOMAIN_EVENT_SHUTDOWN_FINISHED), "Shutdown Finished"},
		{lv.DOMAIN_EVENT_CRASHED, int(lv.DOMAIN_EVENT_CRASHED_PANICKED), "Crashed Panicked"},
		{lv.DOMAIN_EVENT_STOPPED, 99, "Stopped Detail99"},
		{lv.DomainEventType(42), 1, "Event42 Detail1"},
	}
	for _, tt := range tests {
		if got := eventText(tt.ev, tt.detail); got != tt.want {
			t.Errorf("eventText(%d, %d) = %q, want %q", tt.ev, tt.detail, got, tt.want)
		}
	}
}

func TestStateMapping(t *testing.T) {
	tests := []struct {
		st     lv.DomainState
		reason int
		state  reconcile.State
		want   string
	}{
		{lv.DOMAIN_RUNNING, int(lv.DOMAIN_RUNNING_BOOTED), reconcile.StateRunning, "booted"},
		{lv.DOMAIN_RUNNING, int(lv.DOMAIN_RUNNING_MIGRATED), reconcile.StateRunning, "migrated"},
		{lv.DOMAIN_RUNNING, int(lv.DOMAIN_RUNNING_POSTCOPY), reconcile.StateRunning, "postcopy"},
		{lv.DOMAIN_PAUSED, int(lv.DOMAIN_PAUSED_USER), reconcile.StatePaused, "user"},
		{lv.DOMAIN_PAUSED, int(lv.DOMAIN_PAUSED_MIGRATION), reconcile.StatePaused, "migration"},
		{lv.DOMAIN_PAUSED, int(lv.DOMAIN_PAUSED_IOERROR), reconcile.StatePaused, "ioerror"},
		{lv.DOMAIN_PAUSED, int(lv.DOMAIN_PAUSED_POSTCOPY_FAILED), reconcile.StatePaused, "postcopy failed"},
		{lv.DOMAIN_SHUTOFF, int(lv.DOMAIN_SHUTOFF_DESTROYED), reconcile.StateOff, "destroyed"},
		{lv.DOMAIN_SHUTOFF, int(lv.DOMAIN_SHUTOFF_MIGRATED), reconcile.StateOff, "migrated"},
		{lv.DOMAIN_SHUTDOWN, int(lv.DOMAIN_SHUTDOWN_USER), reconcile.StateOff, "user"},
		{lv.DOMAIN_CRASHED, int(lv.DOMAIN_CRASHED_PANICKED), reconcile.StateOff, "panicked"},
		{lv.DOMAIN_PMSUSPENDED, 0, reconcile.StateOff, "unknown"},
		{lv.DOMAIN_BLOCKED, 0, reconcile.StateOff, "unknown"},
		{lv.DOMAIN_NOSTATE, 0, reconcile.StateOff, "unknown"},
		{lv.DOMAIN_RUNNING, 77, reconcile.StateRunning, "reason 77"},
	}
	for _, tt := range tests {
		if got := mapState(tt.st); got != tt.state {
			t.Errorf("mapState(%d) = %v, want %v", tt.st, got, tt.state)
		}
		if got := stateReason(tt.st, tt.reason); got != tt.want {
			t.Errorf("stateReason(%d, %d) = %q, want %q", tt.st, tt.reason, got, tt.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	b := backoff{min: 100 * time.Millisecond, max: time.Second}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		w *= time.Millisecond
		d := b.next()
		if d > w || d < w*8/10 {
			t.Errorf("delay %d = %v, want in [%v, %v]", i, d, w*8/10, w)
		}
	}
	b.reset()
	if d := b.next(); d > 100*time.Millisecond {
		t.Errorf("after reset: %v", d)
	}
}
