package bgptest

import (
	"context"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/internal/testutil"
)

// MustStart is Start for a test: it fails the test if the ToR does not
// start, and stops the ToR when the test and its subtests end (t.Cleanup).
func MustStart(t testing.TB, cfg Config, neighbors ...Neighbor) *ToR {
	t.Helper()
	tor, err := Start(context.Background(), cfg, neighbors...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tor.Stop)
	return tor
}

// Eventually is testutil.Eventually.
//
// Deprecated: use testutil.Eventually.
func Eventually(t testing.TB, timeout time.Duration, cond func() string) {
	t.Helper()
	testutil.Eventually(t, timeout, cond)
}
