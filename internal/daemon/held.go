package daemon

import (
	"time"

	"github.com/virtbgp/virtbgp/internal/status"
)

// heldReload is the mapping reload held by the mass-withdraw guard, and the
// timer that applies it once its files have stayed unchanged for
// mapping.withdraw-confirm-after. The main loop owns it.
type heldReload struct {
	after time.Duration // withdraw-confirm-after; 0: only on confirmation
	cur   *status.HeldReload
	timer *time.Timer
}

// hold records the files of digest as held, withdrawing withdraw of
// announced routes, and returns the held reload. Files held again with
// the same digest keep their first time and their timer; other files
// start both again.
func (h *heldReload) hold(digest string, withdraw, announced int) *status.HeldReload {
	if h.cur == nil || h.cur.Digest != digest {
		h.drop()
		now := time.Now()
		h.cur = &status.HeldReload{Since: now, Digest: digest}
		if h.after > 0 {
			h.cur.ApplyAt = now.Add(h.after)
			h.timer = time.NewTimer(h.after)
		}
	}
	h.cur.Withdraw, h.cur.Announced = withdraw, announced
	return h.cur
}

// drop forgets the held reload and stops its timer; it reports whether a
// reload was held.
func (h *heldReload) drop() bool {
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
	was := h.cur != nil
	h.cur = nil
	return was
}

// C is the timer's channel, nil when none is armed.
func (h *heldReload) C() <-chan time.Time {
	if h.timer == nil {
		return nil
	}
	return h.timer.C
}

// fired is called when C fired: it returns the reload to apply (it stays
// held until applied), nil if none is held any more.
func (h *heldReload) fired() *status.HeldReload {
	h.timer = nil
	return h.cur
}
