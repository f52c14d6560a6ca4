package status

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/internal/maintenance"
)

// TestTableMaintenance: the table lists the maintenance entries with the
// routes they cover, who set them, when, the TTL and the note; none, no
// section.
func TestTableMaintenance(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		entries []maintenance.Entry
		want    []string
		notWant []string
	}{
		{"none", nil, nil, []string{"Maintenance"}},
		{"a domain and a route", []maintenance.Entry{
			{Domain: "web-1", UUID: "u1", SetBy: "uid 0", Since: t0, Note: "kernel upgrade CHG-7"},
			{Domain: "web-2", UUID: "u2", Prefix: netip.MustParsePrefix("192.0.2.7/32"), SetBy: "token ops", Since: t0,
				TTL: "30m0s", Expires: t0.Add(30 * time.Minute), UpdatedBy: "uid 0", Updated: t0.Add(time.Minute)},
		}, []string{"Maintenance (2)", "web-1", "all", "uid 0", "2026-12-02T04:00:00Z", "kernel upgrade CHG-7", "never",
			"web-2", "192.0.2.7/32", "token ops (updated by uid 0 2026-12-02T04:01:00Z)", "2026-12-02T04:30:00Z (30m0s)"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := WriteTable(&b, Report{Time: t0, Maintenance: tt.entries}); err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("table lacks %q:\n%s", w, b.String())
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(b.String(), w) {
					t.Errorf("table has %q:\n%s", w, b.String())
				}
			}
		})
	}
}

// TestMaintenanceMetrics: the count of entries in force and of changes by
// action, every action's series there from the start.
func TestMaintenanceMetrics(t *testing.T) {
	m := NewMetrics()
	gather := func() map[string]float64 {
		mfs, err := m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			for _, mt := range mf.GetMetric() {
				name := mf.GetName()
				for _, l := range mt.GetLabel() {
					name += "/" + l.GetValue()
				}
				switch {
				case mt.GetGauge() != nil:
					got[name] = mt.GetGauge().GetValue()
				case mt.GetCounter() != nil:
					got[name] = mt.GetCounter().GetValue()
				}
			}
		}
		return got
	}
	got := gather()
	for _, a := range []string{"on", "off", "expired"} {
		if v, ok := got["virtbgp_maintenance_changes_total/"+a]; !ok || v != 0 {
			t.Errorf("virtbgp_maintenance_changes_total{action=%q} at start = %v, %v; want 0", a, v, ok)
		}
	}
	m.Maintenance(2, MaintenanceOn, 1)
	m.Maintenance(1, MaintenanceExpired, 1)
	m.Maintenance(0, MaintenanceOff, 1)
	m.Maintenance(1, MaintenanceOn, 1)
	got = gather()
	for name, want := range map[string]float64{
		"virtbgp_maintenance_entries":               1,
		"virtbgp_maintenance_changes_total/on":      2,
		"virtbgp_maintenance_changes_total/off":     1,
		"virtbgp_maintenance_changes_total/expired": 1,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
}

// TestTableDomainInMaintenance: the domains table notes what of a domain
// is in maintenance, after its other note.
func TestTableDomainInMaintenance(t *testing.T) {
	tests := []struct {
		name string
		d    Domain
		want string
	}{
		{"all", Domain{Name: "web-1", State: "running", Maintenance: []string{"all"}}, "in maintenance: all"},
		{"routes, after another note", Domain{Name: "web-2", State: "running", MigratedIn: true, Maintenance: []string{"192.0.2.1/32", "192.0.2.2/32"}},
			"migrated in; in maintenance: 192.0.2.1/32 192.0.2.2/32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := WriteTable(&b, Report{Domains: []Domain{tt.d}}); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), tt.want) {
				t.Errorf("table lacks %q:\n%s", tt.want, b.String())
			}
		})
	}
}
