package fleet

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
)

// writeFleet writes a mapping of n VMs with 2 IPs each (one IPv4, one
// IPv6) and a few attributes to path, byte for byte what writeFleet in
// mapping/bench_test.go writes for the go test benchmarks (a test file
// cannot be imported, so it is a copy; fleet_test.go pins its output):
// most entries by name, every 10th keyed by UUID, every 10th pinned, every
// 5th with an IP of its own attributes. salt changes the attributes of
// every 100th entry.
func writeFleet(path string, n, salt int) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
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
	return w.Flush()
}

// configYAML is the smallest config `virtbgp check` accepts, with the
// mapping at mappingPath (relative to the config's directory).
func configYAML(mappingPath string) string {
	return `version: 1
bgp:
  asn: 65001
  router-id: 192.0.2.1
mapping:
  path: ` + mappingPath + `
`
}
