//go:build linux

package bgp

import (
	"bytes"
	"net"
	"testing"
)

// TestRouterAdvertisement checks the advertisement's bytes (RFC 4861 4.2):
// type 134, code 0, checksum left to the kernel, router lifetime 0 (no
// default router), and the source link-layer address option.
func TestRouterAdvertisement(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0, 1, 2, 3}
	tests := []struct {
		name string
		mac  net.HardwareAddr
		want []byte
	}{
		{"with mac", mac, append([]byte{134, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1}, mac...)},
		{"without mac", nil, []byte{134, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := routerAdvertisement(tt.mac)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("advertisement % x\nwant % x", got, tt.want)
			}
		})
	}
}
