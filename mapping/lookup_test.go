package mapping_test

import (
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/virtbgp/virtbgp/mapping"
)

const (
	uuidA = "6695eb01-f6a4-8304-79aa-97f2502e193f"
	uuidB = "6695eb01-f6a4-8304-79aa-97f2502e1940"
	uuidC = "0c1a5e2e-7f9b-4d5c-8f1e-2a3b4c5d6e7f"
)

var lookupSrc = doc(
	"version: 1",
	"vms:",
	"  web-01:",
	"    ips: [192.0.2.1]",
	"  web-02:",
	"    uuid: "+uuidA,
	"    ips: [192.0.2.2, 2001:db8::2]",
	"  6695EB01-F6A4-8304-79AA-97F2502E1940:", // uuidB, in upper case
	"    ips: [192.0.2.3]",
	"  "+uuidC+":",
	"    ips: [192.0.2.64/28]",
)

func TestLookup(t *testing.T) {
	m := mustParse(t, lookupSrc)
	for _, tc := range []struct {
		name, domain, uuid string
		want               string // key, "" for no match
	}{
		{"by name", "web-01", uuidC[:35] + "0", "web-01"},
		{"by name, no UUID known", "web-01", "", "web-01"},
		{"by UUID key", "anything", uuidB, uuidB},
		{"by UUID key in upper case", "", "6695EB01-F6A4-8304-79AA-97F2502E1940", uuidB},
		{"UUID key wins over name", "web-01", uuidC, uuidC},
		{"pin matches", "web-02", uuidA, "web-02"},
		{"pin matches in upper case", "web-02", "6695EB01-F6A4-8304-79AA-97F2502E193F", "web-02"},
		{"pin mismatch", "web-02", uuidC[:35] + "0", ""},
		{"pin, no UUID known", "web-02", "", ""},
		{"renamed pinned domain", "web-99", uuidA, ""},
		{"name that is a UUID key, other UUID", uuidB, uuidC[:35] + "0", ""},
		{"unknown", "web-99", uuidC[:35] + "0", ""},
		{"nothing", "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, routes := m.Lookup(tc.domain, tc.uuid)
			if key != tc.want {
				t.Fatalf("Lookup(%q, %q) = %q, want %q", tc.domain, tc.uuid, key, tc.want)
			}
			if key == "" {
				if routes != nil {
					t.Errorf("no match, but routes %v", routes)
				}
				return
			}
			var want []mapping.Route
			for _, v := range m.VMs() {
				if v.Key == key {
					want = v.Routes
				}
			}
			if len(routes) == 0 || !slices.EqualFunc(routes, want, mapping.Route.Equal) {
				t.Errorf("routes %v, want %v", routes, want)
			}
		})
	}
}

func TestLookupRoutesCannotBeAppendedInto(t *testing.T) {
	m := mustParse(t, doc("version: 1", "vms:", "  a: {ips: [192.0.2.1]}", "  b: {ips: [192.0.2.2]}"))
	_, a := m.Lookup("a", "")
	_ = append(a, mapping.Route{Prefix: netip.MustParsePrefix("203.0.113.1/32")})
	if _, b := m.Lookup("b", ""); len(b) != 1 || b[0].Prefix != netip.MustParsePrefix("192.0.2.2/32") {
		t.Errorf("appending to a's routes changed b's: %v", b)
	}
}

func TestOwner(t *testing.T) {
	m := mustParse(t, lookupSrc)
	for _, tc := range []struct {
		prefix string
		want   string
	}{
		{"192.0.2.1/32", "web-01"},
		{"192.0.2.2/32", "web-02"},
		{"2001:db8::2/128", "web-02"},
		{"192.0.2.3/32", uuidB},
		{"192.0.2.64/28", uuidC},
		{"192.0.2.65/32", ""}, // inside a mapped prefix, but not mapped itself
		{"192.0.2.64/27", ""},
		{"192.0.2.1/31", ""},
		{"192.0.2.1/24", ""}, // not masked
		{"192.0.2.4/32", ""},
		{"2001:db8::3/128", ""},
		{"::ffff:192.0.2.1/128", ""},
	} {
		key, ok := m.Owner(netip.MustParsePrefix(tc.prefix))
		if key != tc.want || ok != (tc.want != "") {
			t.Errorf("Owner(%s) = %q, %v, want %q", tc.prefix, key, ok, tc.want)
		}
	}
	if key, ok := m.Owner(netip.Prefix{}); ok || key != "" {
		t.Errorf("Owner(invalid) = %q, %v", key, ok)
	}
}

func TestVMsAndStats(t *testing.T) {
	m := mustParse(t, lookupSrc)
	vms := m.VMs()
	var keys, uuids []string
	for _, v := range vms {
		keys = append(keys, v.Key)
		uuids = append(uuids, v.UUID)
		if v.File != "m.yaml" {
			t.Errorf("vm %s: File %q", v.Key, v.File)
		}
	}
	if want := []string{uuidC, uuidB, "web-01", "web-02"}; !slices.Equal(keys, want) {
		t.Errorf("VMs() keys = %q, want %q", keys, want)
	}
	if want := []string{uuidC, uuidB, "", uuidA}; !slices.Equal(uuids, want) {
		t.Errorf("VMs() UUIDs = %q, want %q", uuids, want)
	}
	if lines := []int{vms[0].Line, vms[1].Line, vms[2].Line, vms[3].Line}; !slices.Equal(lines, []int{10, 8, 3, 5}) {
		t.Errorf("VMs() lines = %v", lines)
	}
	vms[0].Key = "changed"
	if m.VMs()[0].Key != uuidC {
		t.Error("VMs() returned the mapping's own slice")
	}
	if n, r := m.Stats(); n != 4 || r != 5 {
		t.Errorf("Stats() = %d, %d, want 4, 5", n, r)
	}
}

func TestNilMapping(t *testing.T) {
	var m *mapping.Mapping
	if key, routes := m.Lookup("a", uuidA); key != "" || routes != nil {
		t.Error("Lookup on nil")
	}
	if _, ok := m.Owner(netip.MustParsePrefix("192.0.2.1/32")); ok {
		t.Error("Owner on nil")
	}
	if m.VMs() != nil || m.Sources() != nil {
		t.Error("VMs or Sources on nil")
	}
	if n, r := m.Stats(); n != 0 || r != 0 {
		t.Error("Stats on nil")
	}
}

// TestConcurrentReaders is for the race detector: a Mapping is read by
// many goroutines at once.
func TestConcurrentReaders(t *testing.T) {
	m := mustParse(t, lookupSrc)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if key, routes := m.Lookup("web-02", uuidA); key != "web-02" || len(routes) != 2 {
					t.Error("Lookup")
				}
				if _, ok := m.Owner(netip.MustParsePrefix("192.0.2.64/28")); !ok {
					t.Error("Owner")
				}
				_ = m.VMs()
				_ = mapping.Diff(nil, m)
			}
		})
	}
	wg.Wait()
}
