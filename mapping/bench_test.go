package mapping_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/virtbgp/virtbgp/mapping"
)

// writeFleet writes a mapping of n VMs with 2 IPs each (one IPv4, one IPv6)
// and a few attributes, as a fleet's generated mapping would look: most
// entries by name, every 10th keyed by UUID, every 10th pinned, every 5th
// with an IP of its own attributes. salt changes the attributes of every
// 100th entry, to give Diff something to find.
func writeFleet(tb testing.TB, path string, n, salt int) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriter(f)
	w.WriteString("version: 1\ndefaults:\n  communities: [\"65001:100\"]\n  med: 10\nvms:\n")
	for i := range n {
		uuid := fmt.Sprintf("6695eb01-f6a4-8304-79aa-%012x", i)
		switch i % 10 {
		case 3:
			fmt.Fprintf(w, "  %s:\n", uuid)
		case 7:
			fmt.Fprintf(w, "  vm-%06d:\n    uuid: %s\n", i, uuid)
		default:
			fmt.Fprintf(w, "  vm-%06d:\n", i)
		}
		lp := 100 + i%3
		if i%100 == 0 {
			lp += salt
		}
		fmt.Fprintf(w, "    local-pref: %d\n    communities: [\"65001:%d\"]\n    ips:\n", lp, 1000+i%50)
		v4 := "10." + strconv.Itoa(i>>16&255) + "." + strconv.Itoa(i>>8&255) + "." + strconv.Itoa(i&255)
		v6 := "2001:db8::" + strconv.FormatInt(int64(i>>16), 16) + ":" + strconv.FormatInt(int64(i&0xffff), 16)
		if i%5 == 0 {
			fmt.Fprintf(w, "      - prefix: %s\n        med: 50\n        as-path-prepend: 1\n", v4)
		} else {
			fmt.Fprintf(w, "      - %s\n", v4)
		}
		fmt.Fprintf(w, "      - %s\n", v6)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
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
