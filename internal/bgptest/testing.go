package bgptest

import (
	"context"
	"testing"
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
