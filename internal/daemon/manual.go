package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"time"

	"github.com/virtbgp/virtbgp/internal/control"
	"github.com/virtbgp/virtbgp/internal/manual"
	"github.com/virtbgp/virtbgp/internal/reconcile"
	"github.com/virtbgp/virtbgp/mapping"
)

// manualRoutes are the API's manual routes. The main loop owns them: the
// record in force, persisted in the state directory after every change
// and before the reconciler is told, and the timer of the next lease to
// expire.
type manualRoutes struct {
	log    *slog.Logger
	path   string
	allow  mapping.Allow
	routes map[netip.Prefix]manual.Route
	timer  expiryTimer // the next lease's end; nil when no lease
	// onChange reports the count after each change (metrics).
	onChange func(n int, expired int)
}

// manualSetter is the reconciler's method that puts manual routes in
// force (a fake in tests).
type manualSetter interface {
	SetManual(ctx context.Context, routes []mapping.Route) error
}

// loadManual reads the manual routes from the state directory; the routes
// for the reconciler's start.
func loadManual(stateDir string, allow mapping.Allow, log *slog.Logger) (*manualRoutes, []mapping.Route, error) {
	mr := &manualRoutes{log: log, path: filepath.Join(stateDir, manual.FileName), allow: allow}
	routes, err := manual.Load(mr.path, time.Now())
	if err != nil {
		return nil, nil, err // it names the file
	}
	mr.routes = routes
	mr.arm() // the leases read back end at their time
	if len(routes) > 0 {
		log.Info("manual routes restored", "path", mr.path, "routes", len(routes))
	}
	return mr, mr.bgp(), nil
}

// bgp is the routes for the reconciler. Load checked every record.
func (mr *manualRoutes) bgp() []mapping.Route {
	out := make([]mapping.Route, 0, len(mr.routes))
	for _, r := range manual.Sorted(mr.routes) {
		if br, err := r.BGP(); err == nil {
			out = append(out, br)
		}
	}
	return out
}

// timerC is the lease timer's channel (nil: none).
func (mr *manualRoutes) timerC() <-chan time.Time { return mr.timer.C() }

// arm sets the timer to the earliest lease's end.
func (mr *manualRoutes) arm() {
	arm(&mr.timer, mr.routes, func(r manual.Route) time.Time { return r.Expires })
}

// commit persists next and puts it in force at the reconciler; on failure
// what was in force stays.
func (mr *manualRoutes) commit(ctx context.Context, rec manualSetter, next map[netip.Prefix]manual.Route, expired int) error {
	if err := manual.Save(mr.path, next); err != nil {
		return err
	}
	mr.routes = next
	mr.arm()
	if mr.onChange != nil {
		mr.onChange(len(next), expired)
	}
	if err := rec.SetManual(ctx, mr.bgp()); err != nil {
		return fmt.Errorf("put the manual routes in force: %w", err)
	}
	return nil
}

// expire withdraws the routes whose lease ended. Runs in the main loop.
func (mr *manualRoutes) expire(ctx context.Context, rec manualSetter) {
	mr.timer.fired()
	next, gone := expired(mr.routes, func(r manual.Route) time.Time { return r.Expires }, time.Now())
	if len(gone) == 0 {
		mr.arm()
		return
	}
	if err := mr.commit(ctx, rec, next, len(gone)); err != nil {
		mr.log.Error("cannot withdraw the expired manual routes", "error", err)
		mr.timer.after(time.Second) // retry
		return
	}
	for _, r := range gone {
		mr.log.Info("manual route lease expired", "prefix", r.Prefix, "created_by", r.CreatedBy, "ttl", r.TTL)
	}
}

// announce validates a request and puts the route in force (a renewal if
// the prefix has a manual route). A prefix that the mapping file gives to
// a VM, or that a domain announces, is a conflict (409) naming the owner.
// Runs in the main loop.
func (d *Daemon) announce(ctx context.Context, who string, req manual.Request) (manual.Route, error) {
	mr := d.manual
	r, ttl, err := manual.Validate(&req, &mr.allow)
	if err != nil {
		return manual.Route{}, err
	}
	snap, err := d.rec.Snapshot(ctx)
	if err != nil {
		return manual.Route{}, fmt.Errorf("read the reconciler's state: %w", err)
	}
	if vm, ok := snap.Mapping.Owner(r.Prefix); ok {
		return manual.Route{}, &control.Error{Status: http.StatusConflict, Field: "prefix",
			Message: fmt.Sprintf("prefix: %s belongs to VM %q of the mapping", r.Prefix, vm)}
	}
	for _, w := range snap.Announced {
		if w.Route.Prefix == r.Prefix && w.Source != reconcile.SourceManual {
			return manual.Route{}, &control.Error{Status: http.StatusConflict, Field: "prefix",
				Message: fmt.Sprintf("prefix: %s is announced for domain %q (from its %s)", r.Prefix, w.Domain, w.Source)}
		}
	}
	var prev *manual.Route
	if p, ok := mr.routes[r.Prefix]; ok {
		prev = &p
	}
	rec := manual.New(r, ttl, req.Note, who, time.Now(), prev)
	next := maps.Clone(mr.routes)
	next[r.Prefix] = rec
	if err := mr.commit(ctx, d.rec, next, 0); err != nil {
		return manual.Route{}, err
	}
	mr.log.Info("manual route announced", "prefix", rec.Prefix, "by", who, "renewal", prev != nil, "ttl", rec.TTL, "note", rec.Note)
	return rec, nil
}

// withdraw removes the manual route of a prefix. Runs in the main loop.
func (d *Daemon) withdraw(ctx context.Context, who, prefix string) (manual.Route, error) {
	mr := d.manual
	p, err := netip.ParsePrefix(prefix)
	if err != nil {
		a, aerr := netip.ParseAddr(prefix)
		if aerr != nil {
			return manual.Route{}, &control.Error{Status: http.StatusBadRequest, Field: "prefix",
				Message: fmt.Sprintf("prefix: want an address or a prefix like 192.0.2.1/32, got %q", prefix)}
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	r, ok := mr.routes[p]
	if !ok {
		return manual.Route{}, &control.Error{Status: http.StatusNotFound, Field: "prefix",
			Message: fmt.Sprintf("no manual route for %s", p)}
	}
	next := maps.Clone(mr.routes)
	delete(next, p)
	if err := mr.commit(ctx, d.rec, next, 0); err != nil {
		return manual.Route{}, err
	}
	mr.log.Info("manual route withdrawn", "prefix", p, "by", who, "created_by", r.CreatedBy)
	return r, nil
}

// list is the manual routes in force, sorted.
func (mr *manualRoutes) list() []manual.Route {
	out := manual.Sorted(mr.routes)
	return slices.Clip(out)
}
