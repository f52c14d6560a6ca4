package mapping_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/virtbgp/virtbgp/fileerr"
	"github.com/virtbgp/virtbgp/mapping"
)

// Issue 17, finding 4: `ips: ["2000::/3", 1.0.0.0/8]` loaded and was
// announced. CheckLimits names each prefix that breaks the config's
// limits at its line, and the rule it breaks.
func TestCheckLimits(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "m.yaml")
	data := strings.Join([]string{
		"version: 1",
		"vms:",
		"  web:",
		`    ips: ["2000::/3", 1.0.0.0/8, 198.51.100.0/24]`,
		"  db:",
		"    ips:",
		"      - 203.0.113.9",
		"      - prefix: 203.0.114.0/23",
	}, "\n") + "\n"
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := mapping.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		limits mapping.Limits
		want   []string
	}{
		{"defaults", mapping.DefaultLimits, []string{
			file + `:4: vm "web": 1.0.0.0/8 is a /8, shorter than routes.min-prefix-length.ipv4 (/24): too broad for a service address`,
			file + `:4: vm "web": 2000::/3 is a /3, shorter than routes.min-prefix-length.ipv6 (/48): too broad for a service address`,
			file + `:8: vm "db": 203.0.114.0/23 is a /23, shorter than routes.min-prefix-length.ipv4 (/24): too broad for a service address`,
		}},
		{"pools", mapping.Limits{MinBits4: 16, MinBits6: 32, Pools: []netip.Prefix{
			netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8::/32")}}, []string{
			file + `:4: vm "web": 1.0.0.0/8 is a /8, shorter than routes.min-prefix-length.ipv4 (/16): too broad for a service address`,
			file + `:4: vm "web": 2000::/3 is a /3, shorter than routes.min-prefix-length.ipv6 (/32): too broad for a service address`,
			file + `:7: vm "db": 203.0.113.9/32 lies outside routes.allowed-prefixes [198.51.100.0/24 2001:db8::/32]`,
			file + `:8: vm "db": 203.0.114.0/23 lies outside routes.allowed-prefixes [198.51.100.0/24 2001:db8::/32]`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, e := range fileerr.Errors(m.CheckLimits(tt.limits)) {
				got = append(got, e.Error())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("CheckLimits:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
		})
	}
	if err := m.CheckLimits(mapping.Limits{MinBits4: 8, MinBits6: 3}); err != nil {
		t.Errorf("CheckLimits with limits the mapping keeps: %v", err)
	}
}
