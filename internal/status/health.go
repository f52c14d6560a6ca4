package status

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/virtbgp/virtbgp/internal/health"
)

// writeHealth writes the health checks' table, when there are checks: each
// check's domain, IP, name, type, state since when, the reason of its
// last change, and its last result.
func writeHealth(w io.Writer, checks []health.CheckStatus, now time.Time) {
	if len(checks) == 0 {
		return
	}
	fmt.Fprintf(w, "\nHealth checks (%d)\n", len(checks))
	checks = slices.Clone(checks)
	slices.SortFunc(checks, func(a, b health.CheckStatus) int {
		return cmp.Or(strings.Compare(a.Domain, b.Domain), strings.Compare(a.Check, b.Check), a.IP.Compare(b.IP))
	})
	tw := newTabWriter(w)
	row(tw, "Domain", "IP", "Check", "Type", "State", "Since", "Reason", "Last result")
	for _, c := range checks {
		since := "-"
		if !c.Since.IsZero() {
			since = fmtDuration(now.Sub(c.Since)) + " ago"
		}
		last := "-"
		if c.Last != nil {
			last = fmt.Sprintf("%s %s ago (%s)", c.Last.Outcome, fmtDuration(now.Sub(c.Last.At)), c.Last.Detail)
		}
		row(tw, c.Domain, c.IP.String(), c.Check, c.Type, c.State, since, dash(c.Reason), last)
	}
	_ = tw.Flush()
}
