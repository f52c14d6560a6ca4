package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/virtbgp/virtbgp/internal/control"
	"github.com/virtbgp/virtbgp/internal/maintenance"
	"github.com/virtbgp/virtbgp/internal/reconcile"
	"github.com/virtbgp/virtbgp/internal/status"
	"github.com/virtbgp/virtbgp/mapping"
)

// maintenanceSet is the operator's maintenance entries (`virtbgp
// maintenance on`). The main loop owns them: the record in force,
// persisted in the state directory after every change and before the
// reconciler is told, and the timer of the next TTL to end.
type maintenanceSet struct {
	log     *slog.Logger
	dir     string // the state directory
	entries map[maintenance.Key]maintenance.Entry
	timer   expiryTimer // the next TTL's end; nil when none
	// onChange reports the count after each change and the change
	// (metrics: status.Metrics.Maintenance).
	onChange func(n int, action string, changed int)
}

// maintenanceSetter is the reconciler's method that puts maintenance in
// force (a fake in tests).
type maintenanceSetter interface {
	SetMaintenance(ctx context.Context, m reconcile.Maintenance) error
}

// loadMaintenance reads the maintenance entries from the state directory;
// the reconciler's input for its start.
func loadMaintenance(stateDir string, log *slog.Logger) (*maintenanceSet, reconcile.Maintenance, error) {
	ms := &maintenanceSet{log: log, dir: stateDir}
	entries, err := maintenance.Load(stateDir, time.Now())
	if err != nil {
		return nil, nil, err // it names the file
	}
	ms.entries = entries
	ms.arm()
	for _, e := range maintenance.Sorted(entries) {
		log.Warn("maintenance restored", maintenanceAttrs(e)...)
	}
	return ms, maintenance.ForReconciler(entries), nil
}

// maintenanceAttrs are the log fields of an entry.
func maintenanceAttrs(e maintenance.Entry) []any {
	out := []any{"domain", e.Domain, "uuid", e.UUID}
	if e.Prefix.IsValid() {
		out = append(out, "prefix", e.Prefix)
	} else {
		out = append(out, "prefix", "all")
	}
	out = append(out, "set_by", e.SetBy, "since", e.Since)
	if e.TTL != "" {
		out = append(out, "ttl", e.TTL, "expires", e.Expires)
	}
	if e.Note != "" {
		out = append(out, "note", e.Note)
	}
	return out
}

// timerC is the TTL timer's channel (nil: none).
func (ms *maintenanceSet) timerC() <-chan time.Time { return ms.timer.C() }

// arm sets the timer to the earliest TTL's end.
func (ms *maintenanceSet) arm() {
	arm(&ms.timer, ms.entries, func(e maintenance.Entry) time.Time { return e.Expires })
}

// commit persists next and puts it in force at the reconciler; if it
// cannot be persisted, what was in force stays.
func (ms *maintenanceSet) commit(ctx context.Context, rec maintenanceSetter, next map[maintenance.Key]maintenance.Entry, action string, changed int) error {
	if err := maintenance.Save(ms.dir, next); err != nil {
		return err
	}
	ms.entries = next
	ms.arm()
	if ms.onChange != nil {
		ms.onChange(len(next), action, changed)
	}
	if err := rec.SetMaintenance(ctx, maintenance.ForReconciler(next)); err != nil {
		return fmt.Errorf("put the maintenance in force: %w", err)
	}
	return nil
}

// expire ends the maintenance whose TTL ended. Runs in the main loop.
func (ms *maintenanceSet) expire(ctx context.Context, rec maintenanceSetter) {
	ms.timer.fired()
	next, gone := expired(ms.entries, func(e maintenance.Entry) time.Time { return e.Expires }, time.Now())
	if len(gone) == 0 {
		ms.arm()
		return
	}
	if err := ms.commit(ctx, rec, next, status.MaintenanceExpired, len(gone)); err != nil {
		ms.log.Error("cannot end the expired maintenance", "error", err)
		ms.timer.after(time.Second) // retry
		return
	}
	for _, e := range gone {
		ms.log.Info("maintenance expired", maintenanceAttrs(e)...)
	}
}

// list is the entries in force, sorted.
func (ms *maintenanceSet) list() []maintenance.Entry {
	return slices.Clip(maintenance.Sorted(ms.entries))
}

// findDomain returns the domain of the reconciler's snapshot named name,
// or whose UUID is name.
func findDomain(snap *reconcile.Snapshot, name string) (reconcile.Domain, bool) {
	for _, d := range snap.Domains {
		if d.Name == name || strings.EqualFold(d.UUID, name) {
			return d, true
		}
	}
	return reconcile.Domain{}, false
}

// maintenanceOn validates a request and puts the domain, or one route of
// it, in maintenance (or sets it again). The domain must be one libvirt
// has (a name or a UUID), and an IP one of its routes (mapping file, or
// metadata claims). Runs in the main loop.
func (d *Daemon) maintenanceOn(ctx context.Context, who, domain string, req maintenance.Request) (maintenance.Entry, error) {
	ms := d.maint
	p, ttl, err := maintenance.ParseRequest(&req)
	if err != nil {
		return maintenance.Entry{}, err
	}
	snap, err := d.rec.Snapshot(ctx)
	if err != nil {
		return maintenance.Entry{}, fmt.Errorf("read the reconciler's state: %w", err)
	}
	dom, ok := findDomain(&snap, domain)
	if !ok {
		return maintenance.Entry{}, &control.Error{Status: http.StatusNotFound, Field: "domain",
			Message: fmt.Sprintf("domain: no domain %q on this host (a libvirt name or UUID)", domain)}
	}
	if p.IsValid() {
		routes := reconcile.DomainPrefixes(dom, snap.Mapping)
		if !slices.Contains(routes, p) {
			return maintenance.Entry{}, &control.Error{Status: http.StatusUnprocessableEntity, Field: "ip",
				Message: fmt.Sprintf("ip: %s is not a route of domain %q (its routes: %s)", p, dom.Name, prefixList(routes))}
		}
	}
	key := maintenance.Key{UUID: dom.UUID, Prefix: p}
	var prev *maintenance.Entry
	if e, ok := ms.entries[key]; ok {
		prev = &e
	}
	e := maintenance.New(dom.Name, dom.UUID, p, ttl, req.Note, who, time.Now(), prev)
	next := maps.Clone(ms.entries)
	next[key] = e
	if err := ms.commit(ctx, d.rec, next, status.MaintenanceOn, 1); err != nil {
		return maintenance.Entry{}, err
	}
	ms.log.Info("maintenance on", append(maintenanceAttrs(e), "by", who, "again", prev != nil)...)
	return e, nil
}

// maintenanceOff ends the maintenance of a domain (a name or a UUID, of
// the domain now or of the entry, so that an undefined domain's entry can
// be removed): every entry of it with ip empty, else that route's. Runs in
// the main loop.
func (d *Daemon) maintenanceOff(ctx context.Context, who, domain, ip string) ([]maintenance.Entry, error) {
	ms := d.maint
	var p netip.Prefix
	if ip != "" {
		var err error
		if p, err = mapping.ParsePrefix(ip); err != nil {
			return nil, &control.Error{Status: http.StatusBadRequest, Field: "ip", Message: "ip: " + err.Error()}
		}
	}
	snap, err := d.rec.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the reconciler's state: %w", err)
	}
	uuid := ""
	if dom, ok := findDomain(&snap, domain); ok {
		uuid = dom.UUID
	}
	next := maps.Clone(ms.entries)
	var gone []maintenance.Entry
	for k, e := range ms.entries {
		of := e.UUID == uuid || strings.EqualFold(e.UUID, domain) || uuid == "" && e.Domain == domain
		if of && (ip == "" || e.Prefix == p) {
			delete(next, k)
			gone = append(gone, e)
		}
	}
	if len(gone) == 0 {
		what := fmt.Sprintf("domain %q", domain)
		if ip != "" {
			what = fmt.Sprintf("route %s of domain %q", p, domain)
		}
		return nil, &control.Error{Status: http.StatusNotFound, Field: "domain", Message: "no maintenance for " + what}
	}
	if err := ms.commit(ctx, d.rec, next, status.MaintenanceOff, len(gone)); err != nil {
		return nil, err
	}
	slices.SortFunc(gone, maintenance.Compare)
	for _, e := range gone {
		ms.log.Info("maintenance off", append(maintenanceAttrs(e), "by", who)...)
	}
	return gone, nil
}

// prefixList is prefixes for a message: "192.0.2.1/32, 192.0.2.2/32", or
// "none".
func prefixList(ps []netip.Prefix) string {
	if len(ps) == 0 {
		return "none"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}
