package daemon

import (
	"maps"
	"time"
)

// expiryTimer is the timer of the next end among entries that expire (the
// manual routes' leases, the maintenance TTLs). The main loop owns it; its
// channel is nil when nothing is armed.
type expiryTimer struct{ t *time.Timer }

// C is the timer's channel, nil when none is armed.
func (e *expiryTimer) C() <-chan time.Time {
	if e.t == nil {
		return nil
	}
	return e.t.C
}

// fired is called when C fired.
func (e *expiryTimer) fired() { e.t = nil }

// after arms the timer to fire after d (a retry).
func (e *expiryTimer) after(d time.Duration) {
	e.stop()
	e.t = time.NewTimer(d)
}

func (e *expiryTimer) stop() {
	if e.t != nil {
		e.t.Stop()
		e.t = nil
	}
}

// arm aims the timer at the earliest end of m's entries (a zero end never
// comes); none disarms it.
func arm[K comparable, V any](e *expiryTimer, m map[K]V, end func(V) time.Time) {
	e.stop()
	var next time.Time
	for _, v := range m {
		if t := end(v); !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if !next.IsZero() {
		e.t = time.NewTimer(time.Until(next))
	}
}

// expired splits m at now: the entries that stay (a copy) and those whose
// end has come.
func expired[K comparable, V any](m map[K]V, end func(V) time.Time, now time.Time) (next map[K]V, gone []V) {
	next = maps.Clone(m)
	for k, v := range m {
		if t := end(v); !t.IsZero() && !t.After(now) {
			delete(next, k)
			gone = append(gone, v)
		}
	}
	return next, gone
}
