package mapping_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/virtbgp/virtbgp/internal/fleetgen"
	"github.com/virtbgp/virtbgp/mapping"
)

// writeFleet writes the generated fleet mapping (internal/fleetgen).
func writeFleet(tb testing.TB, path string, n, salt int) {
	tb.Helper()
	if err := fleetgen.Write(path, n, salt); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkLoad loads (reads, parses, validates) a generated mapping of
// 10,000 and 100,000 VMs with 2 IPs each.
func BenchmarkLoad(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "mapping.yaml")
			writeFleet(b, path, n, 0)
			if st, err := os.Stat(path); err == nil {
				b.SetBytes(st.Size())
			}
			b.ReportAllocs()
			for b.Loop() {
				m, err := mapping.Load(path)
				if err != nil {
					b.Fatal(err)
				}
				if vms, routes := m.Stats(); vms != n || routes != 2*n {
					b.Fatalf("Stats() = %d, %d", vms, routes)
				}
			}
		})
	}
}

// BenchmarkLoadDiff is what a reload costs: load the new mapping and diff
// it against the one in force.
func BenchmarkLoadDiff(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			dir := b.TempDir()
			oldPath, newPath := filepath.Join(dir, "old.yaml"), filepath.Join(dir, "new.yaml")
			writeFleet(b, oldPath, n, 0)
			writeFleet(b, newPath, n, 1)
			old, err := mapping.Load(oldPath)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				m, err := mapping.Load(newPath)
				if err != nil {
					b.Fatal(err)
				}
				if c := mapping.Diff(old, m); len(c.Changed) != n/100 {
					b.Fatalf("Diff: %s", c)
				}
			}
		})
	}
}

// BenchmarkDiff is Diff alone, between two mappings of 10,000 and 100,000
// VMs that differ in 1% of the entries.
func BenchmarkDiff(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			dir := b.TempDir()
			oldPath, newPath := filepath.Join(dir, "old.yaml"), filepath.Join(dir, "new.yaml")
			writeFleet(b, oldPath, n, 0)
			writeFleet(b, newPath, n, 1)
			old, err := mapping.Load(oldPath)
			if err != nil {
				b.Fatal(err)
			}
			m, err := mapping.Load(newPath)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if c := mapping.Diff(old, m); len(c.Changed) != n/100 {
					b.Fatalf("Diff: %s", c)
				}
			}
		})
	}
}

// BenchmarkLookup is the per-domain cost in a reconcile pass over a
// 100,000-VM mapping.
func BenchmarkLookup(b *testing.B) {
	path := filepath.Join(b.TempDir(), "mapping.yaml")
	writeFleet(b, path, 100_000, 0)
	m, err := mapping.Load(path)
	if err != nil {
		b.Fatal(err)
	}
	const n = 1000
	var names, uuids [n]string
	for i := range n {
		names[i] = fmt.Sprintf("vm-%06d", i*97)
		uuids[i] = fmt.Sprintf("6695eb01-f6a4-8304-79aa-%012x", i*97)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i = (i + 1) % n
		if key, _ := m.Lookup(names[i], uuids[i]); key == "" {
			b.Fatalf("Lookup(%s, %s): no match", names[i], uuids[i])
		}
	}
}
