package daemon

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestHeldReloadTimer: on a fake clock, a held reload's timer fires
// exactly withdraw-confirm-after after the files were first held; the same
// files held again keep their time; other files start it again; a dropped
// reload's timer never fires; 0 arms no timer.
func TestHeldReloadTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := heldReload{after: 10 * time.Minute}
		start := time.Now()
		// wait serves the loop's select for d and returns the time the
		// timer fired, or the zero time.
		wait := func(d time.Duration) time.Time {
			select {
			case at := <-h.C():
				return at
			case <-time.After(d):
				return time.Time{}
			}
		}

		got := h.hold("A", 3, 4)
		if got.Since != start || got.ApplyAt != start.Add(10*time.Minute) || got.Withdraw != 3 || got.Announced != 4 {
			t.Fatalf("held %+v", got)
		}
		if at := wait(4 * time.Minute); !at.IsZero() {
			t.Fatalf("fired at %v, 4m after holding", at.Sub(start))
		}
		// The same files again (e.g. another reload): the first time stays.
		if got := h.hold("A", 2, 4); got.Since != start || got.ApplyAt != start.Add(10*time.Minute) || got.Withdraw != 2 {
			t.Fatalf("held again %+v", got)
		}
		if at := wait(6*time.Minute - time.Nanosecond); !at.IsZero() {
			t.Fatalf("fired at %v, before 10m", at.Sub(start))
		}
		if at := wait(time.Second); at != start.Add(10*time.Minute) {
			t.Fatalf("fired at %v, want 10m", at.Sub(start))
		}
		if r := h.fired(); r == nil || r.Digest != "A" {
			t.Fatalf("fired() = %+v, want the held A", r)
		}
		if h.C() != nil {
			t.Fatal("a timer is armed after it fired")
		}

		// Other files: a new time and a new timer.
		h.hold("A", 3, 4)
		t1 := time.Now()
		if at := wait(time.Minute); !at.IsZero() {
			t.Fatal("fired early")
		}
		got = h.hold("B", 4, 4)
		if got.Since != t1.Add(time.Minute) || got.ApplyAt != t1.Add(11*time.Minute) {
			t.Fatalf("other files held %+v, want since %v", got, t1.Add(time.Minute).Sub(start))
		}
		if at := wait(time.Hour); at != t1.Add(11*time.Minute) {
			t.Fatalf("fired at %v, want 10m after B", at.Sub(t1))
		}
		h.fired()

		// Dropped: its timer never fires.
		h.hold("C", 3, 4)
		if !h.drop() || h.C() != nil || h.cur != nil {
			t.Fatal("drop left a held reload or a timer")
		}
		if h.drop() {
			t.Fatal("drop of nothing reports a held reload")
		}

		// 0: only on confirmation.
		h0 := heldReload{}
		if got := h0.hold("D", 3, 4); !got.ApplyAt.IsZero() || h0.C() != nil {
			t.Fatalf("withdraw-confirm-after 0 armed a timer: %+v", got)
		}
	})
}
