package lab

import (
	"net/netip"
	"testing"
)

func TestListeners(t *testing.T) {
	out := `LISTEN 0      4096      198.18.0.1:179        0.0.0.0:*
LISTEN 0      4096   [fd00:198:18::1]:179           [::]:*
LISTEN 0      4096   [fe80::1%br0]:179           [::]:*
LISTEN 0      4096   127.0.0.1%lo:179        0.0.0.0:*
garbage
`
	got := listeners(out)
	for _, s := range []string{"198.18.0.1", "fd00:198:18::1", "fe80::1", "127.0.0.1"} {
		if !got[netip.MustParseAddr(s)] {
			t.Errorf("listeners: no %s in %v", s, got)
		}
	}
	if len(got) != 4 {
		t.Errorf("listeners: %v, want 4 addresses", got)
	}
}
