package fleetgen_test

import (
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/virtbgp/virtbgp/internal/fleetgen"
	"github.com/virtbgp/virtbgp/mapping"
)

// The generated mapping loads, has n VMs with 2 IPs each, and salt changes
// what Diff finds, only every 100th entry.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ n, salt int }{{1000, 0}, {1000, 1}, {7, 0}} {
		p := filepath.Join(dir, "m.yaml")
		if err := fleetgen.Write(p, tc.n, tc.salt); err != nil {
			t.Fatal(err)
		}
		m, err := mapping.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		if vms, routes := m.Stats(); vms != tc.n || routes != 2*tc.n {
			t.Errorf("n=%d: Stats() = %d, %d; want %d, %d", tc.n, vms, routes, tc.n, 2*tc.n)
		}
		// Every 5th entry's IPv4 has MED 50 and one prepend.
		if _, rs := m.Lookup("vm-000005", ""); len(rs) != 2 || rs[0].Prefix != netip.MustParsePrefix("10.0.0.5/32") ||
			rs[0].MED == nil || *rs[0].MED != 50 || rs[0].ASPathPrepend != 1 {
			t.Errorf("n=%d: vm-000005: %v", tc.n, rs)
		}
	}
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	if err := fleetgen.Write(a, 1000, 0); err != nil {
		t.Fatal(err)
	}
	if err := fleetgen.Write(b, 1000, 1); err != nil {
		t.Fatal(err)
	}
	ma, err := mapping.Load(a)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := mapping.Load(b)
	if err != nil {
		t.Fatal(err)
	}
	if d := mapping.Diff(ma, mb); len(d.Changed) != 10 || len(d.Added) != 0 || len(d.Removed) != 0 {
		t.Errorf("Diff of salt 0 and 1: %+v, want 10 changed", d)
	}
}
