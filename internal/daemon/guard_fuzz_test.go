package daemon

import (
	"math"
	"testing"
)

// FuzzHoldReload checks the mass-withdraw guard's decision: it never holds
// a reload that withdraws nothing or when it is off (100%), always holds
// one that withdraws everything (vms: {}) when it is on, holds exactly
// above the share, and holding more withdrawals is never less strict.
func FuzzHoldReload(f *testing.F) {
	for _, s := range [][3]int{{0, 0, 50}, {3, 3, 50}, {1, 4, 50}, {2, 4, 50}, {3, 4, 50}, {100, 200, 50}, {1, 1, 0}, {5, 5, 100}, {-1, 3, 50}} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, withdraw, announced, pct int) {
		if pct < 0 || pct > 100 || announced < 0 || announced > math.MaxInt32 || withdraw > math.MaxInt32 {
			return // the config allows 0-100; counts are of routes
		}
		held := holdReload(withdraw, announced, pct)
		switch {
		case withdraw <= 0 || pct == 100:
			if held {
				t.Fatalf("holdReload(%d, %d, %d) held: nothing to guard", withdraw, announced, pct)
			}
			return
		case withdraw >= announced:
			if !held {
				t.Fatalf("holdReload(%d, %d, %d) did not hold the withdrawal of everything", withdraw, announced, pct)
			}
			return
		}
		want := int64(withdraw)*100 > int64(pct)*int64(announced)
		if held != want {
			t.Fatalf("holdReload(%d, %d, %d) = %v, want %v (%d%% of the routes)", withdraw, announced, pct, held, want, int64(withdraw)*100/int64(announced))
		}
		if held && withdraw < math.MaxInt32 && !holdReload(withdraw+1, announced, pct) {
			t.Fatalf("holdReload holds %d but not %d of %d", withdraw, withdraw+1, announced)
		}
	})
}
