package bgptest

import (
	"context"
	"testing"
	"time"
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

// Eventually calls cond every 10ms until it returns "" and fails the test
// with cond's last message if that has not happened within timeout.
func Eventually(t testing.TB, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
