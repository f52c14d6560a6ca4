// Package fleetgen writes the generated fleet mapping that the mapping
// benchmarks (mapping/bench_test.go) and the fleet benchmark suite
// (bench/fleet) load: one generator, so both measure the same file.
package fleetgen

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
)

// Write writes a mapping of n VMs with 2 IPs each (one IPv4, one IPv6) and
// a few attributes to path, as a fleet's generated mapping would look: most
// entries by name, every 10th keyed by UUID, every 10th pinned, every 5th
// with an IP of its own attributes. salt changes the attributes of every
// 100th entry, to give Diff something to find.
func Write(path string, n, salt int) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("fleet mapping: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("fleet mapping: %w", cerr)
		}
	}()
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
		return fmt.Errorf("fleet mapping: %w", err)
	}
	return nil
}
