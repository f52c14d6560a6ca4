package libvirt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	lv "libvirt.org/go/libvirt"

	"github.com/virtbgp/virtbgp/internal/libvirttest"
	"github.com/virtbgp/virtbgp/internal/reconcile"
)

type stateReader = func(*lv.Connect, func(stateRecord) error) error

// withStateReader replaces the bulk state read (readAllStates).
func withStateReader(f stateReader) Option {
	return func(a *Adapter) { a.readStates = f }
}

// countingReader wraps f and counts its calls.
func countingReader(n *atomic.Int32, f stateReader) stateReader {
	return func(c *lv.Connect, each func(stateRecord) error) error {
		n.Add(1)
		return f(c, each)
	}
}

// failingReader fails like a driver whose bulk read returns err.
func failingReader(err error) stateReader {
	return func(*lv.Connect, func(stateRecord) error) error { return err }
}

// TestDomains checks what Domains reports for domains in each state, with
// the bulk read and with each way of falling back to one-by-one reads.
func TestDomains(t *testing.T) {
	noSupport := lv.Error{Code: lv.ERR_NO_SUPPORT, Domain: lv.FROM_DOMAIN, Message: "this function is not supported by the connection driver"}
	modes := []struct {
		name   string
		reader stateReader
		// calls is how often the reader is called by two Domains calls.
		calls int32
	}{
		{"bulk", readAllStates, 2},
		// Remembered for the session: asked once.
		{"fallback no support", failingReader(noSupport), 1},
		// Not remembered: asked each time.
		{"fallback no state stats", failingReader(errNoStateStats), 2},
	}
	cases := []struct {
		name   string
		setup  func(t *testing.T, d *lv.Domain)
		state  reconcile.State
		reason string
	}{
		{"running", func(t *testing.T, d *lv.Domain) { must(t, d.Create()) }, reconcile.StateRunning, "booted"},
		{"paused", func(t *testing.T, d *lv.Domain) { must(t, d.Create()); must(t, d.Suspend()) }, reconcile.StatePaused, "user"},
		{"resumed", func(t *testing.T, d *lv.Domain) { must(t, d.Create()); must(t, d.Suspend()); must(t, d.Resume()) }, reconcile.StateRunning, "unpaused"},
		{"defined", func(t *testing.T, d *lv.Domain) {}, reconcile.StateOff, "unknown"},
		{"destroyed", func(t *testing.T, d *lv.Domain) { must(t, d.Create()); must(t, d.Destroy()) }, reconcile.StateOff, "destroyed"},
		{"shut down", func(t *testing.T, d *lv.Domain) { must(t, d.Create()); must(t, d.Shutdown()) }, reconcile.StateOff, "shutdown"},
	}

	c := openConn(t, testURI)
	want := map[string]reconcile.Domain{} // by UUID
	for _, tc := range cases {
		name := uniqueName(t) + "-" + strings.ReplaceAll(tc.name, " ", "-")
		d, err := c.DomainDefineXML(domainXML(name))
		if err != nil {
			t.Fatal(err)
		}
		uuid := domUUID(t, d)
		t.Cleanup(func() {
			if active, _ := d.IsActive(); active {
				_ = d.Destroy()
			}
			_ = d.Undefine()
			_ = d.Free()
		})
		tc.setup(t, d)
		want[uuid] = reconcile.Domain{Name: name, UUID: uuid, State: tc.state, Reason: tc.reason}
	}

	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			var calls atomic.Int32
			a, _ := startAdapter(t, testURI, slog.LevelInfo, withStateReader(countingReader(&calls, m.reader)))
			ctx := context.Background()
			for range 2 {
				all, err := a.Domains(ctx)
				if err != nil {
					t.Fatalf("Domains: %v", err)
				}
				got := map[string]reconcile.Domain{}
				for _, d := range all {
					if _, dup := got[d.UUID]; dup {
						t.Fatalf("Domains lists %s twice", d.UUID)
					}
					got[d.UUID] = d
				}
				for uuid, w := range want {
					if g, ok := got[uuid]; !ok {
						t.Errorf("Domains lacks %s (%s)", w.Name, uuid)
					} else if g != w {
						t.Errorf("Domains has %+v, want %+v", g, w)
					}
					// Domain (one domain, GetState) agrees.
					if d, found, err := a.Domain(ctx, uuid); err != nil || !found || d != w {
						t.Errorf("Domain(%s) = %+v, %v, %v; want %+v", uuid, d, found, err, w)
					}
				}
				// The whole list, including the other tests' domains,
				// matches the one-by-one read.
				a.mu.RLock()
				ref, err := a.domainsOneByOne(ctx, a.sess)
				a.mu.RUnlock()
				if err != nil {
					t.Fatal(err)
				}
				if len(ref) != len(all) {
					t.Errorf("Domains has %d domains, one-by-one read %d", len(all), len(ref))
				}
				for _, r := range ref {
					if g, ok := got[r.UUID]; ok && g != r {
						t.Errorf("Domains has %+v, one-by-one read %+v", g, r)
					}
				}
			}
			if n := calls.Load(); n != m.calls {
				t.Errorf("bulk read asked %d times, want %d", n, m.calls)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestDomainsBulkErrors: a failed bulk read other than "not supported"
// fails Domains on a live connection without ErrNotConnected, and a
// cancelled context stops it.
func TestDomainsBulkErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls atomic.Int32
	failure := lv.Error{Code: lv.ERR_OPERATION_FAILED, Message: "boom"}
	var fail atomic.Bool
	a, _ := startAdapter(t, testURI, slog.LevelInfo, withStateReader(func(c *lv.Connect, each func(stateRecord) error) error {
		calls.Add(1)
		if fail.Load() {
			return failure
		}
		cancel() // cancelled during the read
		return readAllStates(c, each)
	}))

	fail.Store(true)
	_, err := a.Domains(context.Background())
	if !errors.Is(err, lv.ERR_OPERATION_FAILED) || errors.Is(err, ErrNotConnected) || !a.Connected() {
		t.Fatalf("Domains with a failing bulk read: %v (connected %v); want the failure, not ErrNotConnected", err, a.Connected())
	}
	// Not remembered as unsupported: asked again.
	fail.Store(false)
	if _, err := a.Domains(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Domains with a context cancelled during the read: %v", err)
	}
	if _, err := a.Domains(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Domains with a cancelled context: %v", err)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("bulk read asked %d times, want 2", n)
	}
}

// TestReadAllStates calls the bulk read directly on test:///default and
// on the test driver behind a libvirtd (the remote driver): both support
// it, and the job operation of a domain without a job is unknown.
func TestReadAllStates(t *testing.T) {
	dir := t.TempDir()
	d := libvirttest.Start(t, dir)
	d.WaitAnswering(t)
	for _, uri := range []string{testURI, libvirttest.URI(dir)} {
		t.Run(uri, func(t *testing.T) {
			c := openConn(t, uri)
			name := uniqueName(t)
			dom, err := c.DomainCreateXML(domainXML(name), 0)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = dom.Destroy(); _ = dom.Free() }()
			must(t, dom.Suspend())
			uuid := domUUID(t, dom)

			var seen, test bool
			err = readAllStates(c, func(r stateRecord) error {
				switch r.name {
				case name:
					seen = true
					if r.uuid != uuid || r.state != lv.DOMAIN_PAUSED || r.reason != int(lv.DOMAIN_PAUSED_USER) {
						t.Errorf("record %+v, want uuid %s paused (user)", r, uuid)
					}
					if op, ok := r.jobOperation(); ok {
						t.Errorf("job operation of a domain without a job: %d", op)
					}
				case "test": // the test driver's own domain
					test = true
					if r.state != lv.DOMAIN_RUNNING {
						t.Errorf("record %+v, want running", r)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatalf("readAllStates: %v", err)
			}
			if !seen || !test {
				t.Fatalf("readAllStates did not report %s (%v) and test (%v)", name, seen, test)
			}
			stop := fmt.Errorf("stop")
			n := 0
			if err := readAllStates(c, func(stateRecord) error { n++; return stop }); err != stop || n != 1 {
				t.Fatalf("readAllStates did not stop at the callback's error: %v after %d", err, n)
			}
		})
	}
}

// TestDomainsRemote: through libvirtd, Domains uses the bulk read.
func TestDomainsRemote(t *testing.T) {
	dir := t.TempDir()
	d := libvirttest.Start(t, dir)
	d.WaitAnswering(t)
	var calls atomic.Int32
	a, _ := startAdapter(t, libvirttest.URI(dir), slog.LevelInfo, withStateReader(countingReader(&calls, readAllStates)))
	doms, err := a.Domains(context.Background())
	if err != nil || len(doms) != 1 || doms[0].Name != "test" || doms[0].State != reconcile.StateRunning || doms[0].Reason != "unknown" {
		t.Fatalf("Domains = %+v, %v; want only \"test\", running (unknown)", doms, err)
	}
	if calls.Load() != 1 {
		t.Fatalf("bulk read asked %d times, want 1", calls.Load())
	}
}

// BenchmarkDomains measures a full resync read of 1,000 domains (half of
// them running, plus the test driver's own) from a test-driver libvirtd:
// bulk is the one-RPC read, oneByOne the fallback (one RPC per domain, as
// Domains did before the bulk read).
func BenchmarkDomains(b *testing.B) {
	const n = 1000
	dir := b.TempDir()
	d := libvirttest.Start(b, dir)
	d.WaitAnswering(b)
	uri := libvirttest.URI(dir)
	c, err := lv.NewConnect(uri)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _, _ = c.Close() }()
	for i := range n {
		dom, err := c.DomainDefineXML(domainXML(fmt.Sprintf("bench-%04d", i)))
		if err != nil {
			b.Fatal(err)
		}
		if i%2 == 0 {
			err = dom.Create()
		}
		_ = dom.Free()
		if err != nil {
			b.Fatal(err)
		}
	}

	noSupport := lv.Error{Code: lv.ERR_NO_SUPPORT}
	for _, m := range []struct {
		name   string
		reader stateReader
	}{
		{"bulk", nil},
		{"oneByOne", failingReader(noSupport)},
	} {
		b.Run(m.name, func(b *testing.B) {
			a, _ := startAdapter(b, uri, slog.LevelWarn, withStateReader(m.reader))
			ctx := context.Background()
			b.ReportAllocs()
			cpu0 := processCPU(b)
			for b.Loop() {
				doms, err := a.Domains(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if len(doms) != n+1 {
					b.Fatalf("%d domains, want %d", len(doms), n+1)
				}
			}
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// processCPU is the CPU time (user and system) this process used so far,
// in ns: virtbgp's side of the cost, without libvirtd's.
func processCPU(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// TestDomainAfterEventNeedsNoLookup: Domain reads a domain whose event
// carried its object without a lookup RPC, under the name of its last
// event (a rename); a domain without an event is looked up; an undefined
// domain is gone.
func TestDomainAfterEventNeedsNoLookup(t *testing.T) {
	a, _ := startAdapter(t, testURI, slog.LevelDebug)
	c := openConn(t, testURI)
	name := uniqueName(t)
	dom, err := c.DomainDefineXML(domainXML(name))
	if err != nil {
		t.Fatal(err)
	}
	defer dom.Free()
	uuid := strings.ToLower(domUUID(t, dom))
	ctx := context.Background()
	read := func(what, wantName string, wantFound bool, wantLookups uint64) {
		t.Helper()
		before := a.Lookups()
		d, found, err := a.Domain(ctx, uuid)
		if err != nil || found != wantFound || d.Name != wantName {
			t.Fatalf("%s: Domain = %q, found %v, %v; want %q, found %v", what, d.Name, found, err, wantName, wantFound)
		}
		if n := a.Lookups() - before; n != wantLookups {
			t.Errorf("%s: %d lookups, want %d", what, n, wantLookups)
		}
	}
	waitMetaHint(t, a, uuid, "Defined Added")
	read("after its definition", name, true, 0)
	if err := dom.Create(); err != nil {
		t.Fatal(err)
	}
	waitMetaHint(t, a, uuid, "Started Booted")
	read("after its start", name, true, 0)
	if err := dom.Destroy(); err != nil {
		t.Fatal(err)
	}
	waitMetaHint(t, a, uuid, "Stopped Destroyed")
	if err := dom.Rename(name+"-new", 0); err != nil {
		t.Fatal(err)
	}
	waitMetaHint(t, a, uuid, "Defined Renamed")
	read("after a rename", name+"-new", true, 0)
	if err := dom.Undefine(); err != nil {
		t.Fatal(err)
	}
	waitMetaHint(t, a, uuid, "Undefined Removed")
	read("after its undefinition", "", false, 1)
}
