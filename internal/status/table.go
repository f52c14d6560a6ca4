package status

import (
	"cmp"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/virtbgp/virtbgp/internal/maintenance"
)

// Time layouts of the table: the report's own time carries the zone, the
// others are in the same zone (the daemon's).
const (
	tableTime     = "2006-01-02 15:04:05"
	tableTimeZone = "2006-01-02 15:04:05 -0700"
)

// WriteTable writes r for humans, in the spirit of `birdc show protocols`:
// a header (host, version, uptime, readiness, libvirt, drain state, mapping
// in force with its digest, the domains that arrived by migration without
// a mapping entry, and the last reload with its problems), then the BGP
// peers, the libvirt domains (with the source of their routes and how they
// arrived) and the announced routes with their attributes, each as an
// aligned table. Durations are measured up to r.Time, the moment of the
// report. Rows are sorted (peers by address, domains by name, routes by
// prefix) so that two reports compare line by line. It returns the first
// write error.
func WriteTable(w io.Writer, r Report) error {
	now := r.Time
	if now.IsZero() {
		now = time.Now()
	}
	ew := &errWriter{w: w}

	writeHeader(ew, r, now)

	fmt.Fprintf(ew, "\nBGP peers (%d)\n", len(r.Peers))
	if len(r.Peers) == 0 {
		fmt.Fprintln(ew, "  none configured")
	} else {
		peers := slices.Clone(r.Peers)
		slices.SortFunc(peers, func(a, b Peer) int {
			return compareParsed(a.Address, b.Address, netip.ParseAddr, netip.Addr.Compare)
		})
		tw := newTabWriter(ew)
		row(tw, "Address", "ASN", "State", "Since", "Uptime", "Routes sent", "Families", "Updates out/in", "Flaps", "GR", "Last down")
		for _, p := range peers {
			since, uptime := "-", "-"
			if !p.Since.IsZero() {
				since = p.Since.Format(tableTime)
				if p.State == "established" {
					uptime = fmtDuration(now.Sub(p.Since))
				}
			}
			addr, last := p.Address, p.LastDown
			if p.Interface != "" && addr == "" {
				addr = "interface " + p.Interface
			}
			if p.Waiting != "" {
				last = "waiting: " + p.Waiting
			}
			row(tw, addr, strconv.FormatUint(uint64(p.ASN), 10), dash(p.State), since, uptime,
				routesSent(p), peerFamilies(p), fmt.Sprintf("%d/%d", p.UpdatesSent, p.UpdatesReceived), strconv.Itoa(p.Flaps),
				dash(p.GracefulRestart), dash(last))
		}
		_ = tw.Flush()
		for _, p := range peers {
			if p.LastError != "" {
				fmt.Fprintf(ew, "  %s does not come up: %s\n", p.Address, p.LastError)
			}
		}
	}

	fmt.Fprintf(ew, "\nDomains (%d)\n", len(r.Domains))
	if len(r.Domains) == 0 {
		fmt.Fprintln(ew, "  none")
	} else {
		domains := slices.Clone(r.Domains)
		slices.SortFunc(domains, func(a, b Domain) int {
			return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.UUID, b.UUID))
		})
		tw := newTabWriter(ew)
		row(tw, "Name", "State", "Reason", "Migration", "VM", "Routes", "Source", "Note")
		for _, d := range domains {
			n := note(d)
			if len(d.Maintenance) > 0 {
				n = strings.TrimPrefix(n+"; in maintenance: "+strings.Join(d.Maintenance, " "), "; ")
			}
			row(tw, d.Name, dash(d.State), dash(d.Reason), dash(d.Migration), dash(d.VM), strconv.Itoa(d.Routes),
				source(d), dash(n))
		}
		_ = tw.Flush()
	}

	fmt.Fprintf(ew, "\nAnnounced routes (%d)\n", len(r.Routes))
	if len(r.Routes) == 0 {
		fmt.Fprintln(ew, "  none")
	} else {
		routes := slices.Clone(r.Routes)
		slices.SortFunc(routes, func(a, b Route) int {
			return compareParsed(a.Prefix, b.Prefix, netip.ParsePrefix, netip.Prefix.Compare)
		})
		tw := newTabWriter(ew)
		row(tw, "Prefix", "Next hop", "Domain", "Why", "MED", "Local-pref", "Prepend", "Communities", "Large communities", "Note")
		for _, rt := range routes {
			note := "-"
			if rt.NotCarried != "" {
				note = "not sent: " + rt.NotCarried
			}
			row(tw, rt.Prefix, dash(rt.NextHop), dash(rt.Domain), dash(rt.Why), optUint(rt.MED), optUint(rt.LocalPref),
				strconv.Itoa(int(rt.ASPathPrepend)), list(rt.Communities), list(rt.LargeCommunities), note)
		}
		_ = tw.Flush()
	}
	if len(r.ManualRoutes) > 0 {
		fmt.Fprintf(ew, "\nManual routes (%d)\n", len(r.ManualRoutes))
		tw := newTabWriter(ew)
		row(tw, "Prefix", "Created by", "Created", "Expires", "Note")
		for _, m := range r.ManualRoutes {
			exp := "never"
			if !m.Expires.IsZero() {
				exp = m.Expires.UTC().Format(time.RFC3339) + " (" + m.TTL + ")"
			}
			row(tw, m.Prefix.String(), m.CreatedBy, m.Created.UTC().Format(time.RFC3339), exp, dash(m.Note))
		}
		_ = tw.Flush()
	}
	writeMaintenance(ew, r.Maintenance)
	writeHealth(ew, r.Health, now)
	return ew.err
}

// routesSent is a peer's routes sent, per family when it has several:
// "3 (ipv4 2, ipv6 1)".
func routesSent(p Peer) string {
	n := strconv.Itoa(p.RoutesSent)
	if len(p.Families) < 2 || p.RoutesSentByFamily == nil {
		return n
	}
	parts := make([]string, len(p.Families))
	for i, f := range p.Families {
		parts[i] = f + " " + strconv.Itoa(p.RoutesSentByFamily[f])
	}
	return n + " (" + strings.Join(parts, ", ") + ")"
}

// peerFamilies is a peer's families, those not sent marked with why:
// "ipv4,ipv6 (ipv6 not sent: no ipv6 next hop)"; the JSON report has
// the whole reason.
func peerFamilies(p Peer) string {
	s := list(p.Families)
	for _, f := range p.Families {
		if why, ok := p.NotSent[f]; ok {
			short, _, _ := strings.Cut(why, ":")
			s += " (" + f + " not sent: " + short + ")"
		}
	}
	return s
}

// writeHeader writes the daemon-wide lines of the table.
func writeHeader(w io.Writer, r Report, now time.Time) {
	fmt.Fprintf(w, "virtbgp %s on %s\n", dash(r.Version), dash(r.Host))
	tw := newTabWriter(w)
	row(tw, "Time:", now.Format(tableTimeZone))
	if !r.Started.IsZero() {
		row(tw, "Started:", fmt.Sprintf("%s (up %s)", r.Started.Format(tableTime), fmtDuration(now.Sub(r.Started))))
	}
	if r.Ready {
		row(tw, "Ready:", "yes")
	} else {
		row(tw, "Ready:", "no (waiting for the first full sync from libvirt)")
	}
	lv := "not connected"
	if r.Libvirt.Connected {
		lv = "connected"
	}
	if r.Libvirt.URI != "" {
		lv += " to " + r.Libvirt.URI
	}
	row(tw, "Libvirt:", lv)
	drain := r.Drain.State.String()
	if !r.Drain.Since.IsZero() {
		drain += fmt.Sprintf(" since %s (%s ago)", r.Drain.Since.Format(tableTime), fmtDuration(now.Sub(r.Drain.Since)))
	}
	row(tw, "Drain:", drain)

	m := r.Mapping
	mapping := fmt.Sprintf("generation %d, %s, %s", m.Generation, plural(m.VMs, "VM"), plural(m.Routes, "route"))
	if !m.LoadedAt.IsZero() {
		mapping += ", loaded " + m.LoadedAt.Format(tableTime)
	}
	row(tw, "Mapping:", mapping)
	if m.Digest != "" {
		row(tw, "Mapping digest:", m.Digest)
	}
	if m.Path != "" {
		path := m.Path
		if len(m.Files) > 1 || (len(m.Files) == 1 && m.Files[0] != m.Path) {
			path += " (" + plural(len(m.Files), "file") + ")"
		}
		row(tw, "Mapping path:", path)
	}
	if lost := unmappedArrivals(r.Domains); len(lost) > 0 {
		row(tw, "Problems:", fmt.Sprintf("%s arrived by live migration without an entry in this host's mapping, nothing announced: %s",
			plural(len(lost), "domain"), strings.Join(lost, ", ")))
	}
	last := m.LastReload
	switch {
	case last.At.IsZero():
		row(tw, "Last reload:", "none since start")
	case last.OK:
		row(tw, "Last reload:", last.At.Format(tableTime)+" ok")
	default:
		row(tw, "Last reload:", fmt.Sprintf("%s FAILED, generation %d stays in force (%s)",
			last.At.Format(tableTime), m.Generation, plural(len(last.Errors)+last.MoreErrors, "problem")))
	}
	if h := m.Held; h != nil {
		when := "confirm with `virtbgp reload --force`"
		if !h.ApplyAt.IsZero() {
			when += ", or applied at " + h.ApplyAt.Format(tableTime) + " if the files stay unchanged"
		}
		row(tw, "Held reload:", fmt.Sprintf("since %s: would withdraw %d of %d announced routes; %s",
			h.Since.Format(tableTime), h.Withdraw, h.Announced, when))
	}
	if m.Watch.State == "polling" {
		row(tw, "Mapping watch:", "polling: "+m.Watch.Error)
	}
	_ = tw.Flush()
	if !last.At.IsZero() && !last.OK {
		for _, e := range last.Errors {
			fmt.Fprintf(w, "  %s\n", e)
		}
		if last.MoreErrors > 0 {
			fmt.Fprintf(w, "  ... and %d more\n", last.MoreErrors)
		}
	}
}

// source is the Source cell of a domain: the source and the origin in it
// ("file /etc/virtbgp/mapping.yaml:12"), "-" if nothing maps it.
func source(d Domain) string {
	return dash(strings.TrimSpace(d.Source + " " + d.Origin))
}

// note is the Note cell of a domain: how it arrived and its problem.
func note(d Domain) string {
	switch {
	case d.Problem == ProblemUnmappedArrival:
		return "migrated in, NOT IN THE MAPPING here"
	case d.Problem == ProblemMetadataError:
		return "METADATA ERROR: " + d.MetadataError
	case d.Problem == ProblemClaimsRefused:
		parts := make([]string, len(d.Refused))
		for i, r := range d.Refused {
			parts[i] = r.Prefix + " REFUSED: " + r.Reason
		}
		return strings.Join(parts, "; ")
	case d.Problem != "":
		return d.Problem
	case d.MigratedIn:
		return "migrated in"
	}
	return ""
}

// unmappedArrivals are the names of the domains with ProblemUnmappedArrival,
// sorted.
func unmappedArrivals(ds []Domain) []string {
	var names []string
	for _, d := range ds {
		if d.Problem == ProblemUnmappedArrival {
			names = append(names, d.Name)
		}
	}
	slices.Sort(names)
	return names
}

func newTabWriter(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
}

// row writes one table row. The last cell is not tab-terminated, so lines
// carry no trailing blanks.
func row(w io.Writer, cells ...string) {
	fmt.Fprintln(w, strings.Join(cells, "\t"))
}

// dash is s, or "-" for an empty cell.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// list joins a list cell with commas, "-" if empty.
func list(s []string) string { return dash(strings.Join(s, ",")) }

func optUint(v *uint32) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatUint(uint64(*v), 10)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// fmtDuration is d to the second, the largest units first: 3d4h12m,
// 4h12m5s, 12m5s, 5s.
func fmtDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Truncate(time.Second)
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	h, m, s := d/time.Hour, d%time.Hour/time.Minute, d%time.Minute/time.Second
	switch {
	case days > 0:
		return fmt.Sprintf("%dd%dh%dm", days, h, m)
	case h > 0:
		return fmt.Sprintf("%dh%dm%ds", h, m, s)
	case m > 0:
		return fmt.Sprintf("%dm%ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}

// compareParsed orders the strings that parse by cmp (for addresses and
// prefixes: netip's order, IPv4 first), and after them, by text, those
// that do not.
func compareParsed[T any](a, b string, parse func(string) (T, error), cmp func(T, T) int) int {
	pa, erra := parse(a)
	pb, errb := parse(b)
	switch {
	case erra == nil && errb == nil:
		return cmp(pa, pb)
	case erra == nil:
		return -1
	case errb == nil:
		return 1
	}
	return strings.Compare(a, b)
}

// errWriter remembers the first write error and drops every write after
// it, so that WriteTable can write unchecked and report once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	if err != nil {
		e.err = fmt.Errorf("write status table: %w", err)
	}
	return n, e.err
}

// writeMaintenance writes the maintenance entries in force, if any.
func writeMaintenance(w io.Writer, es []maintenance.Entry) {
	if len(es) == 0 {
		return
	}
	fmt.Fprintf(w, "\nMaintenance (%d)\n", len(es))
	tw := newTabWriter(w)
	row(tw, "Domain", "Routes", "Set by", "Since", "Expires", "Note")
	for _, e := range es {
		routes := "all"
		if e.Prefix.IsValid() {
			routes = e.Prefix.String()
		}
		exp := "never"
		if !e.Expires.IsZero() {
			exp = e.Expires.UTC().Format(time.RFC3339) + " (" + e.TTL + ")"
		}
		by := e.SetBy
		if e.UpdatedBy != "" {
			by += " (updated by " + e.UpdatedBy + " " + e.Updated.UTC().Format(time.RFC3339) + ")"
		}
		row(tw, e.Domain, routes, by, e.Since.UTC().Format(time.RFC3339), exp, dash(e.Note))
	}
	_ = tw.Flush()
}
