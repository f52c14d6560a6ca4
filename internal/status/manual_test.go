package status

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/internal/manual"
)

// TestTableManualRoutes: the table lists the manual routes with who
// created them, when, and the lease; none, no section.
func TestTableManualRoutes(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	var b strings.Builder
	if err := WriteTable(&b, Report{Time: t0}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "Manual routes") {
		t.Errorf("a section without manual routes:\n%s", b.String())
	}
	b.Reset()
	r := Report{Time: t0, ManualRoutes: []manual.Route{
		{Prefix: netip.MustParsePrefix("198.51.100.7/32"), CreatedBy: "token automation", Created: t0, TTL: "30s", Expires: t0.Add(30 * time.Second), Note: "rtbh"},
	}}
	if err := WriteTable(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Manual routes (1)", "198.51.100.7/32", "token automation", "2026-12-02T04:00:30Z (30s)", "rtbh"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

// TestManualMetrics: the count of manual routes and of ended leases.
func TestManualMetrics(t *testing.T) {
	m := NewMetrics()
	m.ManualRoutes(3, 0)
	m.ManualRoutes(2, 1)
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			switch {
			case mt.GetGauge() != nil:
				got[mf.GetName()] = mt.GetGauge().GetValue()
			case mt.GetCounter() != nil:
				got[mf.GetName()] = mt.GetCounter().GetValue()
			}
		}
	}
	if got["virtbgp_manual_routes"] != 2 || got["virtbgp_manual_routes_expired_total"] != 1 {
		t.Errorf("virtbgp_manual_routes %v, virtbgp_manual_routes_expired_total %v; want 2 and 1",
			got["virtbgp_manual_routes"], got["virtbgp_manual_routes_expired_total"])
	}
}
