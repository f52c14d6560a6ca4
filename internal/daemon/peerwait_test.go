package daemon

import (
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/internal/config"
)

// TestPeerWait: the peers wait for libvirt half as long as the peers keep
// the routes, the restart time plus the long-lived stale time, within
// 1s..1m.
func TestPeerWait(t *testing.T) {
	for _, c := range []struct {
		restart, stale, want time.Duration
	}{
		{time.Second, time.Hour, time.Minute},                     // the defaults: 1s + 3600s, at most 1m
		{time.Second, 0, time.Second},                             // GR alone, 1s: at least 1s
		{120 * time.Second, 0, time.Minute},                       // the former default
		{30 * time.Second, 0, 15 * time.Second},                   // GR alone
		{time.Second, 60 * time.Second, 30500 * time.Millisecond}, // LLGR with a short stale time
		{4095 * time.Second, 0, time.Minute},                      // never past the unit's start timeout
	} {
		gr := config.GracefulRestart{Enabled: true, RestartTime: c.restart, LongLivedStaleTime: c.stale}
		if got := peerWait(gr); got != c.want {
			t.Errorf("restart-time %v, long-lived-stale-time %v: wait %v, want %v", c.restart, c.stale, got, c.want)
		}
	}
}
