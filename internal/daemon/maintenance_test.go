package daemon

import (
	"context"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/virtbgp/virtbgp/internal/maintenance"
	"github.com/virtbgp/virtbgp/internal/reconcile"
	"github.com/virtbgp/virtbgp/internal/status"
)

// fakeMaint records what SetMaintenance put in force.
type fakeMaint struct {
	mu  sync.Mutex
	now reconcile.Maintenance
}

func (f *fakeMaint) SetMaintenance(_ context.Context, m reconcile.Maintenance) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = m
	return nil
}

func (f *fakeMaint) uuids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k := range f.now {
		out = append(out, k.UUID)
	}
	slices.Sort(out)
	return out
}

// TestMaintenanceTTL: on a fake clock, a maintenance ends at its TTL (and
// is no longer in the state file), one set again lives on, one without a
// TTL stays; the timer always aims at the next end; each end is counted.
func TestMaintenanceTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		ms, start, err := loadMaintenance(dir, testLogger())
		if err != nil || len(start) != 0 {
			t.Fatalf("loadMaintenance = %v, %v", start, err)
		}
		type change struct {
			n       int
			action  string
			changed int
		}
		var changes []change
		ms.onChange = func(n int, action string, changed int) { changes = append(changes, change{n, action, changed}) }
		rec := &fakeMaint{}
		ctx := context.Background()
		entry := func(uuid string, ttl time.Duration, prev *maintenance.Entry) maintenance.Entry {
			return maintenance.New("dom-"+uuid, uuid, netip.Prefix{}, ttl, "", "uid 0", time.Now(), prev)
		}
		next := map[maintenance.Key]maintenance.Entry{}
		for _, e := range []maintenance.Entry{entry("a", 10*time.Second, nil), entry("b", 10*time.Second, nil), entry("c", 0, nil)} {
			next[e.Key()] = e
		}
		if err := ms.commit(ctx, rec, next, status.MaintenanceOn, 3); err != nil {
			t.Fatal(err)
		}
		serve := func(d time.Duration) {
			deadline := time.After(d)
			for {
				select {
				case <-ms.timerC():
					ms.expire(ctx, rec)
				case <-deadline:
					return
				}
			}
		}
		serve(5 * time.Second)
		again := maps.Clone(ms.entries)
		old := again[maintenance.Key{UUID: "b"}]
		again[old.Key()] = entry("b", 10*time.Second, &old)
		if err := ms.commit(ctx, rec, again, status.MaintenanceOn, 1); err != nil {
			t.Fatal(err)
		}
		serve(5*time.Second - time.Millisecond)
		if got := rec.uuids(); !slices.Equal(got, []string{"a", "b", "c"}) {
			t.Fatalf("just before the first TTL ends: %v", got)
		}
		serve(2 * time.Millisecond)
		if got := rec.uuids(); !slices.Equal(got, []string{"b", "c"}) {
			t.Fatalf("after the first TTL ended: %v, want b (set again) and c", got)
		}
		serve(5 * time.Second)
		if got := rec.uuids(); !slices.Equal(got, []string{"c"}) {
			t.Fatalf("after the second TTL ended: %v, want c only", got)
		}
		if ms.timerC() != nil {
			t.Error("a timer is armed with no TTL left")
		}
		saved, err := maintenance.Load(dir, time.Time{})
		if err != nil || len(saved) != 1 {
			t.Errorf("state file after the TTLs: %v, %v", saved, err)
		}
		want := []change{{3, status.MaintenanceOn, 3}, {3, status.MaintenanceOn, 1}, {2, status.MaintenanceExpired, 1}, {1, status.MaintenanceExpired, 1}}
		if !slices.Equal(changes, want) {
			t.Errorf("changes %v, want %v", changes, want)
		}
	})
}

// TestMaintenanceTTLAcrossRestart: a TTL read back from the state file at
// start still ends at its time.
func TestMaintenanceTTLAcrossRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		e := maintenance.New("web", "u1", netip.Prefix{}, 10*time.Second, "", "uid 0", time.Now(), nil)
		if err := maintenance.Save(dir, map[maintenance.Key]maintenance.Entry{e.Key(): e}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(4 * time.Second) // the restart
		ms, start, err := loadMaintenance(dir, testLogger())
		if err != nil || len(start) != 1 {
			t.Fatalf("loadMaintenance = %v, %v", start, err)
		}
		rec := &fakeMaint{now: start}
		if ms.timerC() == nil {
			t.Fatal("no TTL timer after the start")
		}
		t0 := time.Now()
		<-ms.timerC()
		ms.expire(context.Background(), rec)
		if took := time.Since(t0); took != 6*time.Second || len(rec.uuids()) != 0 {
			t.Errorf("the maintenance ended %v after the start with %v left; want 6s and nothing", took, rec.uuids())
		}
	})
}

// TestMaintenanceSaveFailureKeeps: when the state file cannot be written,
// nothing changes in force.
func TestMaintenanceSaveFailureKeeps(t *testing.T) {
	dir := t.TempDir()
	ms, _, err := loadMaintenance(dir, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	rec := &fakeMaint{}
	e := maintenance.New("web", "u1", netip.Prefix{}, 0, "", "uid 0", time.Now(), nil)
	ms.dir = dir + "/missing"
	if err := ms.commit(context.Background(), rec, map[maintenance.Key]maintenance.Entry{e.Key(): e}, status.MaintenanceOn, 1); err == nil {
		t.Fatal("commit into a missing directory succeeded")
	}
	if len(ms.entries) != 0 || rec.now != nil {
		t.Errorf("after a failed save: entries %v, in force %v", ms.entries, rec.now)
	}
}

// metricValue is the value of the series name{labels...} of the daemon's
// metrics (label values in order), or -1.
func metricValue(t *testing.T, d *Daemon, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := d.metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var vals []string
			for _, l := range m.GetLabel() {
				vals = append(vals, l.GetValue())
			}
			if !slices.Equal(vals, labels) {
				continue
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

// TestMaintenanceDaemon: on a daemon with libvirt's test driver (its
// running domain "test"), maintenance on and off change the routes, the
// state file, the report, the metrics, and log one line each; setting it
// again logs again and keeps who set it first; an entry read back at start
// is logged once, and the entry of a domain libvirt no longer has can be
// ended by its name.
func TestMaintenanceDaemon(t *testing.T) {
	gone := maintenance.New("old-vm", "00000000-0000-0000-0000-00000000dead", netip.Prefix{}, 0, "", "uid 0", time.Now(), nil)
	d, _, logs := startTestDaemonWith(t, "version: 1\nvms:\n  test:\n    ips: [192.0.2.10, 192.0.2.11]\n", "{path: mapping.yaml, watch: false}",
		func(dir string) {
			if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := maintenance.Save(filepath.Join(dir, "state"), map[maintenance.Key]maintenance.Entry{gone.Key(): gone}); err != nil {
				t.Fatal(err)
			}
		}, nil)
	h := handler{d}
	ctx := context.Background()
	announced := func() []string {
		t.Helper()
		r, err := d.Report(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, rt := range r.Routes {
			out = append(out, rt.Prefix)
		}
		return out
	}
	count := func(msg string) int { return strings.Count(logs.String(), `msg="`+msg+`"`) }
	if n := count("maintenance restored"); n != 1 {
		t.Errorf("%d maintenance restored lines at start, want 1:\n%s", n, logs)
	}
	if v := metricValue(t, d, "virtbgp_maintenance_entries"); v != 1 {
		t.Errorf("virtbgp_maintenance_entries at start = %v, want 1", v)
	}

	if _, err := h.MaintenanceOn(ctx, "uid 0", "test", maintenance.Request{IP: "192.0.2.11", Note: "disk"}); err != nil {
		t.Fatal(err)
	}
	if got := announced(); !slices.Equal(got, []string{"192.0.2.10/32"}) {
		t.Errorf("routes after on for .11: %v", got)
	}
	e, err := h.MaintenanceOn(ctx, "token ops", "test", maintenance.Request{IP: "192.0.2.11", Note: "disk, day 2"})
	if err != nil || e.SetBy != "uid 0" || e.UpdatedBy != "token ops" || e.Note != "disk, day 2" {
		t.Errorf("set again = %+v, %v", e, err)
	}
	if n := count("maintenance on"); n != 2 {
		t.Errorf("%d maintenance on lines for two changes, want 2:\n%s", n, logs)
	}
	r, err := d.Report(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Maintenance) != 2 || r.Maintenance[1].Domain != "test" || r.Maintenance[1].Prefix.String() != "192.0.2.11/32" || r.Maintenance[1].SetBy != "uid 0" {
		t.Errorf("report's maintenance: %+v", r.Maintenance)
	}
	if i := slices.IndexFunc(r.Domains, func(sd status.Domain) bool { return sd.Name == "test" }); i < 0 || !slices.Equal(r.Domains[i].Maintenance, []string{"192.0.2.11/32"}) {
		t.Errorf("report's domains: %+v", r.Domains)
	}
	saved, err := maintenance.Load(filepath.Join(filepath.Dir(d.cfg.Mapping.Path), "state"), time.Now())
	if err != nil || len(saved) != 2 {
		t.Errorf("state file: %v, %v", saved, err)
	}

	gotGone, err := h.MaintenanceOff(ctx, "uid 0", "old-vm", "")
	if err != nil || len(gotGone) != 1 || gotGone[0].UUID != gone.UUID {
		t.Errorf("off of a domain libvirt no longer has, by its name = %+v, %v", gotGone, err)
	}
	if _, err := h.MaintenanceOff(ctx, "uid 0", "test", ""); err != nil {
		t.Fatal(err)
	}
	if got := announced(); len(got) != 2 {
		t.Errorf("routes after off: %v", got)
	}
	if n := count("maintenance off"); n != 2 {
		t.Errorf("%d maintenance off lines for two changes, want 2:\n%s", n, logs)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"virtbgp_maintenance_entries", nil, 0},
		{"virtbgp_maintenance_changes_total", []string{"on"}, 2},
		{"virtbgp_maintenance_changes_total", []string{"off"}, 2},
		{"virtbgp_maintenance_changes_total", []string{"expired"}, 0},
	} {
		if v := metricValue(t, d, c.name, c.labels...); v != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, v, c.want)
		}
	}
}
