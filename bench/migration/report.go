package migration

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/virtbgp/virtbgp/bench"
)

// figures are one router's figures over a variant's migrations.
type figures struct {
	Switch      []time.Duration // switch time minus the destination's Resumed Migrated
	NoSwitch    int             // migrations without an observed switch
	Windows     []time.Duration // longest no-route window per migration (0 if none)
	WithWindow  int
	Early       int // switched before the guest resumed
	OK          int
	Downtime    []time.Duration
	DowntimeSrc map[string]int
}

func collect(r *runResult, router string) figures {
	f := figures{DowntimeSrc: map[string]int{}}
	for _, m := range r.Migrations {
		o := m.Routers[router]
		if o == nil || m.Resumed.IsZero() {
			continue
		}
		f.OK++
		if o.Switch.IsZero() {
			f.NoSwitch++
		} else {
			d := o.Switch.Sub(m.Resumed)
			f.Switch = append(f.Switch, d)
			if d < 0 {
				f.Early++
			}
		}
		w := o.longest()
		f.Windows = append(f.Windows, w)
		if len(o.Windows) > 0 {
			f.WithWindow++
		}
		if m.DowntimeFrom != "" {
			f.Downtime = append(f.Downtime, m.Downtime)
			f.DowntimeSrc[m.DowntimeFrom]++
		}
	}
	return f
}

func triple(xs []time.Duration) string {
	if len(xs) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%s / %s / %s", bench.Ms(bench.Quantile(xs, 0.5)), bench.Ms(bench.Quantile(xs, 0.99)), bench.Ms(bench.Max(xs)))
}

func (s *suite) section(runs []*runResult) *bench.Section {
	var b strings.Builder
	sec := &bench.Section{}
	kvm := map[bool]string{true: "KVM", false: "TCG"}
	fmt.Fprintf(&b, `Live migrations of one mapped guest (diskless, 64 MiB, 1 vCPU, %s) back and forth
between hvA and hvB in the real-world lab (integration/lab: one libvirtd and one
virtbgp per hypervisor namespace, BIRD 2 and FRR as ToRs), plain pre-copy
`+"`virsh migrate --live`"+`, %d per variant, alternating hvA->hvB and hvB->hvA.

- **Variants**: *before* and *after* are file-mapped: both hosts' mapping files
  name the guest (MED 10, community 65001:80, its /32 and /128), and the guest
  is transient (`+"`virsh create`"+`, plain `+"`virsh migrate --live`"+`). *metadata* is the
  working tree with the guest's IPs only in its virtbgp metadata element
  (issue 10): the hosts' mapping files name another VM, not the guest, and
  `+"`mapping.metadata`"+` is enabled (allowed-prefixes 192.0.2.0/24, 2001:db8::/32);
  the guest is defined, started, and given
  `+"`<vm med=\"10\" communities=\"65001:80\"><ip prefix=\"192.0.2.80\"/><ip prefix=\"2001:db8:80::80\"/></vm>`"+`
  (the same routes and attributes as the file's entry) with
  `+"`virsh metadata ... --live --config`"+`, and migrated with
  `+"`--persistent --undefinesource`"+` so that both its definitions travel
  (docs/metadata.md); the destination's virtbgp reads the element at the
  incoming migration's Started event. After the boot and after each migration
  the suite checks that the destination's `+"`virtbgp status`"+` has the guest's two
  routes from source `+"`metadata`"+` without problem.
- **Switch delay**: when the ToR's best path for the guest's IPv4 /32 switched to
  the destination's next hop, minus when the destination libvirtd's
  `+"`Resumed Migrated`"+` lifecycle event reached this process (libvirt.org/go/libvirt,
  in-process, on this machine's clock). The switch is the first install of the
  route via the destination in the ToR's kernel table as `+"`ip -ts monitor route`"+`
  in the ToR namespace timestamps it (µs): BIRD's best paths in table 100, FRR's
  (zebra) in the main table; FRR's install lands there tens of ms after its
  best-path change (zebra), BIRD's within about a millisecond. Negative: the ToR
  preferred the destination before the guest ran there. The reference is this
  process's copy of the event; the destination's virtbgp gets its own copy of
  the same event from the same libvirtd, which can reach it a millisecond or so
  earlier on a loaded machine, so a switch a fraction of a millisecond "before
  Resumed" is within that skew: the timelines below add virtbgp's and BIRD's
  own log lines (millisecond timestamps) to tell the two apart.
- **No-route window**: any time the ToR's table had no route for the /32 at all
  (a delete not followed at once by an add); per migration the longest, and the
  number of migrations that had any.
- **Downtime**: the guest's `+"`Total downtime`"+` from `+"`virsh domjobinfo --completed`"+`
  (the source's while it still knows the guest; the guest is gone from the
  source at once, transient or undefined there by `+"`--undefinesource`"+`, so it
  is the destination's, which libvirt fills from the source's statistics).
- p99 is by nearest rank: with fewer than 100 migrations it is the maximum.
- After each migration the suite waits until both ToRs have only the
  destination's path (the source withdrew), plus %s, before the next.

`, s.guestDesc(runs), s.n, s.settle)

	b.WriteString("| virtbgp | ToR | switch delay after Resumed, p50 / p99 / max | switched before Resumed | no-route window, p50 / p99 / max | migrations with a no-route window | guest downtime, p50 / p99 / max |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	b.WriteString("| issue 3's do-it-yourself script (`virsh event` -> gobgp CLI; quoted from the issue, **not measured here**) | GoBGP-fed ToR | 27 ms / — / 41 ms (median / — / worst) | — | up to 79 ms | 9 of 10 | — |\n")
	for _, r := range runs {
		for _, router := range []string{"BIRD", "FRR"} {
			f := collect(r, router)
			sw := triple(f.Switch)
			if f.NoSwitch > 0 {
				sw += fmt.Sprintf(" (no switch seen in %d)", f.NoSwitch)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %d of %d | %s | %d of %d | %s |\n",
				r.V.Label, router, sw, f.Early, f.OK, triple(f.Windows), f.WithWindow, f.OK, triple(f.Downtime))
			sec.Summary = append(sec.Summary, fmt.Sprintf("%-28s %-4s switch p50/p99/max %s (early %d/%d); no-route %d/%d, max %s; downtime p50/p99/max %s",
				r.V.Label, router, triple(f.Switch), f.Early, f.OK, f.WithWindow, f.OK, bench.Ms(bench.Max(f.Windows)), triple(f.Downtime)))
		}
	}
	b.WriteString("\nTarget (issue 3): switch delay p99 <= 15 ms after the guest resumes, and no no-route window at all.\n")

	for _, r := range runs {
		fmt.Fprintf(&b, "\n### %s\n\n", r.V.Label)
		bin := "built by the lab from the working tree"
		if r.V.Binary != "" {
			bin = fmt.Sprintf("built from a temporary `git worktree` at %s, run through a wrapper that drops the config keys `state-dir` and `control` (newer than it; they only place files)", r.V.Rev)
		}
		fmt.Fprintf(&b, "- virtbgp: %s\n", bin)
		if r.V.Metadata {
			fmt.Fprintf(&b, "- routes from the guest's virtbgp metadata element only (the mapping files do not name it; `mapping.metadata` enabled); guest defined, element set with `virsh metadata --live --config`, migrated with `--persistent --undefinesource`; `virtbgp status` showed source `metadata` with both routes and no problem in %d of %d checks (after the boot and after each migration)\n",
				r.SourceChecks, len(r.Migrations)+1)
		}
		if r.V.Key == "before" {
			b.WriteString("- what this revision does in a migration (its internal/reconcile/desired.go and the timelines below): the destination already announces a *standby* route (AS path prepended, `policy.standby-prepend`) from the destination's `Started Migrated` on, and the source withdraws its route when the guest pauses for the switch-over (`Suspended Migrated`, policy.paused withdraw). The ToR therefore never lacks a path, but it switches to the destination's standby path when the source pauses, before the guest runs there. What the make-before-break change (88b2075) added is the source keeping its route, depreferenced by one prepend, until the guest resumes on the destination (README \"When are routes announced?\"). No revision of virtbgp announces nothing from the destination until the guest runs; issue 3's do-it-yourself script is the reference for that behaviour.\n")
		}
		fmt.Fprintf(&b, "- guests: %s; %d migrations, %d failed; lab setup %s, migrations %s\n", kvm[r.KVM], len(r.Migrations), r.Failed,
			r.SetupTook.Round(time.Millisecond), r.MigsTook.Round(time.Millisecond))
		fmt.Fprintf(&b, "- load at the start: `%s`\n- load at the end: `%s`\n", r.LoadStart, r.LoadEnd)
		writeAnomalies(&b, r)
		writeSlowest(&b, r)
		writeTable(&b, r)
	}
	sec.Markdown = b.String()
	for _, r := range runs {
		sec.Notes = append(sec.Notes, fmt.Sprintf("%s: %s guests, load `%s` at the start, `%s` at the end", r.V.Label, kvm[r.KVM], loadavg(r.LoadStart), loadavg(r.LoadEnd)))
	}
	return sec
}

func (s *suite) guestDesc(runs []*runResult) string {
	k := []string{}
	for _, r := range runs {
		if r.KVM {
			k = append(k, "KVM")
		} else {
			k = append(k, "TCG")
		}
	}
	d := strings.Join(dedup(k), "/")
	if s.fillMiB > 0 {
		d += fmt.Sprintf(", %d MiB of its memory filled", s.fillMiB)
	} else {
		d += ", idle"
	}
	return d
}

func dedup(xs []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

func loadavg(uptime string) string {
	if _, after, ok := strings.Cut(uptime, "load average:"); ok {
		return strings.TrimSpace(after)
	}
	return uptime
}

// writeAnomalies lists, with their timelines, the migrations in which a
// ToR switched before the guest resumed or had no route, or that failed.
func writeAnomalies(b *strings.Builder, r *runResult) {
	var lines []string
	for _, m := range r.Migrations {
		var why []string
		if m.Err != "" {
			why = append(why, "error: "+m.Err)
		}
		for _, router := range []string{"BIRD", "FRR"} {
			o := m.Routers[router]
			if o == nil {
				continue
			}
			if !o.Switch.IsZero() && !m.Resumed.IsZero() && o.Switch.Before(m.Resumed) {
				why = append(why, fmt.Sprintf("%s switched %s before Resumed", router, bench.Ms(m.Resumed.Sub(o.Switch))))
			}
			for _, w := range o.Windows {
				open := ""
				if w.Open {
					open = " (still none when the observation ended)"
				}
				why = append(why, fmt.Sprintf("%s had no route for %s%s", router, bench.Ms(w.Len()), open))
			}
		}
		if len(why) == 0 {
			continue
		}
		lines = append(lines, fmt.Sprintf("- #%d %s->%s: %s\n\n```\n%s```\n", m.I+1, m.From.Name, m.To.Name, strings.Join(why, "; "), timeline(m)))
	}
	if len(lines) == 0 {
		b.WriteString("- no migration had a no-route window or switched before the guest resumed\n")
		return
	}
	fmt.Fprintf(b, "\nMigrations where a ToR switched before the guest resumed, or had no route (times relative to the destination's Resumed Migrated):\n\n")
	b.WriteString(strings.Join(lines, "\n"))
}

// timeline renders a migration's lifecycle events and the ToRs' route
// events for the /32, relative to the destination's Resumed Migrated.
func timeline(m *record) string {
	type item struct {
		at   time.Time
		text string
	}
	var items []item
	items = append(items, item{m.Started, "virsh migrate started"}, item{m.Ended, "virsh migrate ended"})
	for _, e := range m.Lifecycle {
		items = append(items, item{e.At, fmt.Sprintf("%s: libvirt event %s", e.Host, e)})
	}
	for _, router := range []string{"BIRD", "FRR"} {
		if o := m.Routers[router]; o != nil {
			for _, ev := range o.Events {
				items = append(items, item{ev.Time, fmt.Sprintf("%s kernel route: %s", router, ev.Line)})
			}
		}
	}
	for _, ll := range m.BIRDLog {
		items = append(items, item{ll.At, "BIRD log (ms): " + ll.Text})
	}
	for _, ll := range m.VirtbgpLog {
		items = append(items, item{ll.At, ll.Text})
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].at.Before(items[j].at) })
	ref := m.Resumed
	var b strings.Builder
	for _, it := range items {
		rel := "        "
		if !ref.IsZero() {
			rel = fmt.Sprintf("%+9.3f ms", float64(it.at.Sub(ref))/float64(time.Millisecond))
		}
		fmt.Fprintf(&b, "%s  %s  %s\n", it.at.Format("15:04:05.000000"), rel, it.text)
	}
	return b.String()
}

// writeTable writes every migration's figures.
func writeTable(b *strings.Builder, r *runResult) {
	b.WriteString("\n<details><summary>Every migration</summary>\n\n")
	b.WriteString("| # | direction | virsh migrate | src Suspended -> dst Resumed | BIRD switch | BIRD no route | FRR switch | FRR no route | downtime |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, m := range r.Migrations {
		susp := "n/a"
		if !m.Suspended.IsZero() && !m.Resumed.IsZero() {
			susp = bench.Ms(m.Resumed.Sub(m.Suspended))
		}
		cell := func(router string) (string, string) {
			o := m.Routers[router]
			if o == nil {
				return "n/a", "n/a"
			}
			nr := "none"
			if len(o.Windows) > 0 {
				nr = bench.Ms(o.longest())
			}
			return delay(m, router), nr
		}
		bs, bn := cell("BIRD")
		fs, fn := cell("FRR")
		dt := "n/a"
		if m.DowntimeFrom != "" {
			dt = fmt.Sprintf("%s (%s)", bench.Ms(m.Downtime), m.DowntimeFrom)
		}
		fmt.Fprintf(b, "| %d | %s->%s | %s | %s | %s | %s | %s | %s | %s |\n", m.I+1, m.From.Name, m.To.Name,
			m.Ended.Sub(m.Started).Round(time.Millisecond), susp, bs, bn, fs, fn, dt)
	}
	b.WriteString("\n</details>\n")
}

// writeSlowest shows the timeline of the slowest BIRD switch of a run, to
// show where the time went (virtbgp's announcement in BIRD's log, then the
// kernel install).
func writeSlowest(b *strings.Builder, r *runResult) {
	var slow *record
	var worst time.Duration
	for _, m := range r.Migrations {
		o := m.Routers["BIRD"]
		if o == nil || o.Switch.IsZero() || m.Resumed.IsZero() {
			continue
		}
		if d := o.Switch.Sub(m.Resumed); slow == nil || d > worst {
			slow, worst = m, d
		}
	}
	if slow == nil {
		return
	}
	fmt.Fprintf(b, "\nThe slowest BIRD switch of this run, #%d %s->%s, %s after Resumed (times relative to the destination's Resumed Migrated):\n\n```\n%s```\n",
		slow.I+1, slow.From.Name, slow.To.Name, bench.Ms(worst), timeline(slow))
}
