package bench

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Quantile returns the q-quantile (0 < q <= 1) of xs by nearest rank: the
// smallest sample with at least q of the samples at or below it. With
// fewer than 100 samples the 0.99 quantile is the maximum. It returns 0
// for no samples.
func Quantile(xs []time.Duration, q float64) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	r := int(math.Ceil(q * float64(len(s))))
	r = min(max(r, 1), len(s))
	return s[r-1]
}

// Max returns the largest of xs, 0 for none.
func Max(xs []time.Duration) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	return slices.Max(xs)
}

// Min returns the smallest of xs, 0 for none.
func Min(xs []time.Duration) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	return slices.Min(xs)
}

// Met renders whether a figure met its target, for a results table:
// "met", or "**missed**" (bold: a miss must stand out).
func Met(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// Ms renders d in milliseconds to 0.1 ms: "12.3 ms",
// "-0.4 ms".
func Ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}
