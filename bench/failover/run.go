package failover

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/virtbgp/virtbgp/integration/lab"
)

// recoverTimeout bounds the comeback of the dead host after a run: link
// up, virtbgp started, sessions established, its stale routes gone.
const recoverTimeout = 3 * time.Minute

// runRecord is one run: host From dies in way Failure, the VM starts on To.
type runRecord struct {
	Failure  lab.Failure
	I        int // run of this failure, from 0
	From, To string
	// Failed is when the failure took effect (Host.Fail's time).
	Failed time.Time
	// Created is when the VM had been created on To (virsh create
	// returned).
	Created time.Time
	// Announced is when To's virtbgp logged "route announced" for each
	// prefix (its log's millisecond timestamps).
	Announced map[netip.Prefix]time.Time
	// Log is To's virtbgp log from the failure on, up to its reading
	// after the switch.
	Log  []string
	ToRs []*torRecord // in lab.Routers' order
	// TimedOut: a ToR did not notice or did not switch within the
	// timeout; those figures are missing.
	TimedOut bool
	// Err ends the variant's runs: the lab is in an unknown state.
	Err string
	// Recovered is how long the comeback of From took.
	Recovered time.Duration
}

// torRecord is what one ToR did in a run.
type torRecord struct {
	Name  string // BIRD, FRR
	Table int
	// Detected is when the suite saw the ToR's IPv4 session with the dead
	// host down (zero: not within the timeout).
	Detected time.Time
	// Switched is, per prefix, the kernel route event of the switch: the
	// first install via the live host alone (zero: none within the
	// timeout).
	Switched map[netip.Prefix]time.Time
	// Until is what the ToR's kernel table had for the IPv4 prefix from
	// the failure until the switch: its last change before it ("" if none:
	// the dead host's route all along).
	Until string
	// Later are the ToR's kernel route changes of the VM's prefixes after
	// its switch, up to the end of the dead host's comeback.
	Later []string
}

// displayName is a router's name for the tables.
func displayName(r lab.Router) string { return strings.ToUpper(r.Name()) }

// nextHop is h's next hop for p's family.
func nextHop(h *lab.Host, p netip.Prefix) netip.Addr {
	if p.Addr().Is6() {
		return h.IPv6
	}
	return h.IPv4
}

// onlyVia waits until both ToRs have a path for each of the VM's prefixes
// via h and none via another host.
func onlyVia(ctx context.Context, l *lab.Lab, h *lab.Host, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return l.WaitRIBs(ctx, 50*time.Millisecond, func(_ lab.Router, rib lab.RIB) error {
		for _, p := range prefixes {
			if nhs := rib.NextHops(p); !slices.Equal(nhs, []netip.Addr{nextHop(h, p)}) {
				return fmt.Errorf("%s: want only %s's path, have %v", p, h.Name, nhs)
			}
		}
		return nil
	})
}

// switchEvent tells whether ev installs p in table via host to alone.
func switchEvent(ev lab.RouteEvent, table int, p netip.Prefix, from, to *lab.Host) bool {
	return !ev.Deleted && ev.Table == table && ev.Prefix == p &&
		ev.Gateway == nextHop(to, p) && !slices.Contains(ev.Nexthops, nextHop(from, p))
}

// runOnce runs and measures one failover: from dies in way f with the VM,
// the VM starts on to; then from comes back without it.
func (s *suite) runOnce(ctx context.Context, l *lab.Lab, mon *lab.RouteMonitor, cfg lab.VirtbgpConfig, f lab.Failure, i int, from, to *lab.Host) *runRecord {
	rec := &runRecord{Failure: f, I: i, From: from.Name, To: to.Name}
	for _, r := range l.Routers() {
		rec.ToRs = append(rec.ToRs, &torRecord{Name: displayName(r), Table: r.Table(), Switched: map[netip.Prefix]time.Time{}})
	}
	if err := s.measure(ctx, l, mon, rec, f, from, to); err != nil {
		rec.Err = err.Error()
		return rec
	}
	t0 := time.Now()
	if err := comeback(ctx, l, mon, cfg, rec, from, to); err != nil {
		rec.Err = err.Error()
		return rec
	}
	rec.Recovered = time.Since(t0)
	return rec
}

// measure fails from, moves the VM to to, and waits (at most the run's
// timeout) until each ToR noticed and switched.
func (s *suite) measure(ctx context.Context, l *lab.Lab, mon *lab.RouteMonitor, rec *runRecord, f lab.Failure, from, to *lab.Host) error {
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	monFrom := mon.Len()
	logFrom := fileSize(to.VirtbgpLogPath())

	type detection struct {
		at  time.Time
		err error
	}
	detected := make([]chan detection, len(rec.ToRs))
	for k, r := range l.Routers() {
		ch := make(chan detection, 1)
		detected[k] = ch
		go func() {
			at, err := l.WaitSessionDown(rctx, r, from.IPv4)
			ch <- detection{at, err}
		}()
	}
	failed, err := from.Fail(rctx, f)
	if err != nil {
		return err
	}
	rec.Failed = failed
	if err := from.DestroyGuest(rctx, guestName); err != nil {
		return err
	}
	if err := to.CreateGuest(rctx, lab.Guest{Name: guestName}); err != nil {
		return err
	}
	rec.Created = time.Now()

	for k, r := range l.Routers() {
		tr := rec.ToRs[k]
		for _, p := range prefixes {
			ev, err := mon.Wait(rctx, monFrom, func(ev lab.RouteEvent) bool { return switchEvent(ev, r.Table(), p, from, to) })
			switch {
			case err == nil:
				tr.Switched[p] = ev.Time
			case rctx.Err() != nil:
				rec.TimedOut = true
			default:
				return fmt.Errorf("%s: %s via %s: %w", tr.Name, p, to.Name, err)
			}
		}
	}
	evs := mon.Events()[monFrom:]
	for _, tr := range rec.ToRs {
		tr.Until = until(evs, tr, prefixes[0], rec.Failed)
	}
	for k, ch := range detected {
		d := <-ch
		switch {
		case d.err == nil:
			rec.ToRs[k].Detected = d.at
		case rctx.Err() != nil:
			rec.TimedOut = true
		default:
			return fmt.Errorf("%s: session with %s: %w", rec.ToRs[k].Name, from.Name, d.err)
		}
	}

	// The live host's announcement, from its log (it is there by now,
	// unless the run timed out before it was written).
	actx, acancel := context.WithTimeout(ctx, 10*time.Second)
	defer acancel()
	err = lab.Eventually(actx, 20*time.Millisecond, func(context.Context) error {
		rec.Log = readLog(to.VirtbgpLogPath(), logFrom)
		rec.Announced = lab.RoutesAnnounced(rec.Log)
		for _, p := range prefixes {
			if _, ok := rec.Announced[p]; !ok {
				return fmt.Errorf("%s's virtbgp log has no \"route announced\" of %s", to.Name, p)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("the announcement: %w", err)
	}
	return nil
}

// until describes the last change of tr's kernel route for p before its
// switch, relative to the failure at failed.
func until(evs []lab.RouteEvent, tr *torRecord, p netip.Prefix, failed time.Time) string {
	sw, ok := tr.Switched[p]
	var last *lab.RouteEvent
	for k := range evs {
		ev := &evs[k]
		if ev.Table != tr.Table || ev.Prefix != p || (ok && !ev.Time.Before(sw)) {
			continue
		}
		last = ev
	}
	if last == nil {
		return ""
	}
	at := "+" + seconds(last.Time.Sub(failed))
	switch {
	case last.Deleted:
		return "no route from " + at
	case len(last.Nexthops) > 0:
		var nhs []string
		for _, nh := range last.Nexthops {
			nhs = append(nhs, nh.String())
		}
		return "ECMP " + strings.Join(nhs, ", ") + " from " + at
	}
	return "via " + last.Gateway.String() + " from " + at
}

// comeback brings from back without the VM: its link up (or its traffic
// flowing), its virtbgp started with the same config, its sessions up,
// and its stale routes gone at its End-of-RIB: the ToRs have the live
// host's paths only. Then it records each ToR's kernel route changes of
// the VM's prefixes after its switch.
func comeback(ctx context.Context, l *lab.Lab, mon *lab.RouteMonitor, cfg lab.VirtbgpConfig, rec *runRecord, from, to *lab.Host) error {
	ctx, cancel := context.WithTimeout(ctx, recoverTimeout)
	defer cancel()
	if err := from.Recover(ctx); err != nil {
		return err
	}
	if err := from.StartVirtbgp(ctx, cfg); err != nil {
		return err
	}
	if err := l.WaitEstablished(ctx, from); err != nil {
		return fmt.Errorf("%s back: %w", from.Name, err)
	}
	if err := onlyVia(ctx, l, to, recoverTimeout); err != nil {
		return fmt.Errorf("%s back: %w", from.Name, err)
	}
	if err := mon.Sync(ctx); err != nil {
		return err
	}
	evs := mon.Events()
	for _, tr := range rec.ToRs {
		for _, ev := range evs {
			sw, ok := tr.Switched[ev.Prefix]
			if ok && ev.Table == tr.Table && ev.Time.After(sw) {
				tr.Later = append(tr.Later, ev.Time.Format("15:04:05.000000")+" "+ev.Line)
			}
		}
	}
	return nil
}

// readLog returns the lines of a log from byte offset off on.
func readLog(path string, off int64) []string {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < off {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b[off:]), "\n"), "\n")
}

// logTime is the time= of a virtbgp log line (slog text), zero if none.
func logTime(line string) time.Time {
	v, ok := strings.CutPrefix(line, "time=")
	if !ok {
		return time.Time{}
	}
	v, _, _ = strings.Cut(v, " ")
	t, _ := time.Parse(time.RFC3339Nano, v)
	return t
}

func fileSize(path string) int64 {
	if st, err := os.Stat(path); err == nil {
		return st.Size()
	}
	return 0
}

// Figures of a run; ok is false where the run has none (timed out).

func (r *runRecord) detection(tr *torRecord) (time.Duration, bool) {
	if tr.Detected.IsZero() {
		return 0, false
	}
	return tr.Detected.Sub(r.Failed), true
}

// fromAnnouncement is the later of the prefixes' switches, each from its
// own announcement.
func (r *runRecord) fromAnnouncement(tr *torRecord) (time.Duration, bool) {
	var worst time.Duration
	for k, p := range prefixes {
		d, ok := r.prefixFromAnnouncement(tr, p)
		if !ok {
			return 0, false
		}
		if k == 0 || d > worst {
			worst = d
		}
	}
	return worst, true
}

func (r *runRecord) prefixFromAnnouncement(tr *torRecord, p netip.Prefix) (time.Duration, bool) {
	sw, ok1 := tr.Switched[p]
	an, ok2 := r.Announced[p]
	if !ok1 || !ok2 {
		return 0, false
	}
	return sw.Sub(an), true
}

// announcedAt is when the later of the prefixes was announced, from the
// failure.
func (r *runRecord) announcedAt() (time.Duration, bool) {
	var last time.Time
	for _, p := range prefixes {
		an, ok := r.Announced[p]
		if !ok {
			return 0, false
		}
		if an.After(last) {
			last = an
		}
	}
	return last.Sub(r.Failed), true
}

// fromFailure is when the later of the prefixes switched, from the
// failure.
func (r *runRecord) fromFailure(tr *torRecord) (time.Duration, bool) {
	var last time.Time
	for _, p := range prefixes {
		sw, ok := tr.Switched[p]
		if !ok {
			return 0, false
		}
		if sw.After(last) {
			last = sw
		}
	}
	return last.Sub(r.Failed), true
}

// logAttrs are the run's figures for the progress log.
func (r *runRecord) logAttrs() []any {
	a := []any{"failure", r.Failure.String(), "run", r.I + 1, "dies", r.From}
	fig := func(d time.Duration, ok bool) string {
		if !ok {
			return "none"
		}
		return d.Round(100 * time.Microsecond).String()
	}
	for _, tr := range r.ToRs {
		n := strings.ToLower(tr.Name)
		a = append(a,
			n+"_detection", fig(r.detection(tr)),
			n+"_switch_from_announcement", fig(r.fromAnnouncement(tr)),
			n+"_switch_from_failure", fig(r.fromFailure(tr)))
	}
	if r.TimedOut {
		a = append(a, "timed_out", true)
	}
	if r.Err != "" {
		a = append(a, "error", errors.New(r.Err))
	}
	return a
}
