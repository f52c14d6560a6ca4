package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"time"

	"github.com/virtbgp/virtbgp/internal/config"
	"github.com/virtbgp/virtbgp/internal/manual"
	"github.com/virtbgp/virtbgp/internal/reconcile"
	"github.com/virtbgp/virtbgp/internal/status"
	"github.com/virtbgp/virtbgp/mapping"
)

// reportFields are the parts of the status report that the main loop
// owns, copied in the main loop: cheap, whatever the number of routes.
type reportFields struct {
	uri, path     string
	generation    int
	contentDigest string
	loadedAt      time.Time
	lastReload    status.Reload
	held          *status.HeldReload
	watch         status.Watch
	drainSince    time.Time
	manual        []manual.Route
}

// ownFields copies the main loop's part of the report. Runs in the main
// loop; an answer also proves that the loop is alive.
func (d *Daemon) ownFields(context.Context) (reportFields, error) {
	return reportFields{
		uri:           d.cfg.Libvirt.URI,
		path:          d.cfg.Mapping.Path,
		generation:    d.generation,
		contentDigest: d.contentDigest,
		loadedAt:      d.loadedAt,
		lastReload:    d.lastReload,
		held:          heldCopy(d.held.cur),
		watch:         watchCopy(d.watchState),
		drainSince:    d.drain.since,
		manual:        d.manual.list(),
	}, nil
}

// buildReport assembles the status report from the main loop's fields and
// the reconciler's and the speaker's state, in the caller's goroutine: the
// reconciler's snapshot goes through the reconciler's own loop (so a
// report also proves that it is alive), and the work that grows with the
// routes and domains (the peers' route counts from GoBGP, the report's
// lists) does not hold the main loop (issue 17, finding 7).
func (d *Daemon) buildReport(ctx context.Context, own reportFields) (status.Report, error) {
	snap, err := d.rec.Snapshot(ctx)
	if err != nil {
		return status.Report{}, fmt.Errorf("read the reconciler's state: %w", err)
	}
	peers, err := d.speaker.Peers(ctx)
	if err != nil {
		return status.Report{}, fmt.Errorf("read the BGP peers: %w", err)
	}
	checks, err := d.health.Status(ctx)
	if err != nil {
		return status.Report{}, fmt.Errorf("read the health checks: %w", err)
	}
	vms, routes := snap.Mapping.Stats()
	r := status.Report{
		Version:   d.opts.Version,
		Revision:  d.opts.Revision,
		GoVersion: runtime.Version(),
		Host:      hostname(),
		Started:   d.started,
		Ready:     snap.Synced,
		Libvirt:   status.Libvirt{URI: own.uri, Connected: d.hv.Connected()},
		Mapping: status.Mapping{
			Path:       own.path,
			Generation: own.generation,
			Digest:     own.contentDigest,
			LoadedAt:   own.loadedAt,
			Files:      snap.Mapping.Sources(),
			VMs:        vms,
			Routes:     routes,
			LastReload: own.lastReload,
			Held:       own.held,
			Watch:      own.watch,
		},
		Drain:        status.Drain{State: snap.Drain, Since: own.drainSince},
		ManualRoutes: own.manual,
		Health:       checks,
		Time:         time.Now(),
	}
	carried := map[config.Family]bool{} // by some peer's session
	for _, p := range peers {
		addr := ""
		if p.Address.IsValid() {
			addr = p.Address.String()
		}
		sp := status.Peer{
			Address:        addr,
			Interface:      p.Interface,
			Waiting:        p.Waiting,
			ASN:            p.ASN,
			State:          string(p.State),
			RoutesSent:     int(p.RoutesSent),
			RoutesReceived: int(p.RoutesReceived),
			LastDown:       p.LastDownReason,
			LastError:      p.LastError,
			// What the peer does with our routes when we restart.
			GracefulRestart: string(p.GracefulRestart),
			UpdatesSent:     int(p.UpdatesSent),
			UpdatesReceived: int(p.UpdatesReceived),
			Flaps:           int(p.Flaps),
		}
		for f, n := range p.SentByFamily {
			if sp.RoutesSentByFamily == nil {
				sp.RoutesSentByFamily = map[string]int{}
			}
			sp.RoutesSentByFamily[string(f)] = int(n)
		}
		for f, why := range p.NotSent {
			if sp.NotSent == nil {
				sp.NotSent = map[string]string{}
			}
			sp.NotSent[string(f)] = why
		}
		for _, f := range p.Carries() {
			carried[f] = true
		}
		if p.Uptime > 0 {
			sp.Since = time.Now().Add(-p.Uptime).Truncate(time.Second)
		}
		for _, f := range p.Families {
			sp.Families = append(sp.Families, string(f))
		}
		r.Peers = append(r.Peers, sp)
	}
	perDomain := map[string]int{}
	for _, w := range snap.Announced {
		perDomain[w.UUID]++
		rt := reportRoute(w)
		if f := routeFamily(w.Route.Prefix); !carried[f] {
			rt.NotCarried = "no peer carries " + string(f)
		}
		r.Routes = append(r.Routes, rt)
	}
	orig := d.origins.Load()
	if orig == nil || orig.m != snap.Mapping {
		orig = newOrigins(snap.Mapping)
		d.origins.Store(orig) // a cache: reports made at once may each build it
	}
	for _, dom := range snap.Domains {
		vm, _ := snap.Mapping.Lookup(dom.Name, dom.UUID)
		sd := status.Domain{
			Name:   dom.Name,
			UUID:   dom.UUID,
			State:  dom.State.String(),
			Reason: dom.Reason,
			VM:     vm,
			Routes: perDomain[dom.UUID],
		}
		if vm != "" {
			sd.Source, sd.Origin = status.SourceFile, orig.of(vm)
		}
		addSources(&sd, snap.Sources[dom.UUID])
		if dom.Migration != reconcile.MigrationNone {
			sd.Migration = dom.Migration.String()
		}
		if a, ok := snap.Arrivals[dom.UUID]; ok {
			sd.MigratedIn = true
			if a.Unmapped && sd.Problem == "" {
				sd.Problem = status.ProblemUnmappedArrival
			}
		}
		r.Domains = append(r.Domains, sd)
	}
	return r, nil
}

// addSources puts where a domain's routes come from when its metadata
// names them, and the metadata's problems, into its status.
func addSources(sd *status.Domain, dr reconcile.DomainRoutes) {
	switch dr.Source {
	case reconcile.SourceMetadata:
		sd.Source, sd.Origin = status.SourceMetadata, mapping.MetadataNS
	case reconcile.SourceNova:
		sd.Source, sd.Origin = status.SourceNova, mapping.NovaNS
	}
	sd.Ignored = dr.Ignored
	sd.MetadataError = dr.Err
	for _, r := range dr.Refused {
		sd.Refused = append(sd.Refused, status.Refusal{Prefix: r.Prefix.String(), Reason: r.Reason})
	}
	switch {
	case dr.Err != "":
		sd.Problem = status.ProblemMetadataError
	case len(dr.Refused) > 0:
		sd.Problem = status.ProblemClaimsRefused
	}
}

// routeFamily is the address family of prefix p.
func routeFamily(p netip.Prefix) config.Family {
	if p.Addr().Is4() {
		return config.FamilyIPv4
	}
	return config.FamilyIPv6
}

func reportRoute(w reconcile.Want) status.Route {
	rt := w.Route
	out := status.Route{
		Prefix:        rt.Prefix.String(),
		NextHop:       "self",
		MED:           rt.MED,
		LocalPref:     rt.LocalPref,
		ASPathPrepend: rt.ASPathPrepend,
		Domain:        w.Domain,
		VM:            w.VM,
		Why:           w.Why,
		Source:        w.Source,
		Health:        w.Health,
		HealthReason:  w.HealthReason,
	}
	if rt.NextHop.IsValid() {
		out.NextHop = rt.NextHop.String()
	}
	for _, c := range rt.Communities {
		out.Communities = append(out.Communities, mapping.FormatCommunity(c))
	}
	for _, c := range rt.LargeCommunities {
		out.LargeCommunities = append(out.LargeCommunities, c.String())
	}
	return out
}

// heldCopy copies the held reload for a report, which outlives the main
// loop's turn.
// watchCopy copies w with its own list of directories.
func watchCopy(w status.Watch) status.Watch {
	w.Dirs = slices.Clone(w.Dirs)
	return w
}

func heldCopy(h *status.HeldReload) *status.HeldReload {
	if h == nil {
		return nil
	}
	c := *h
	return &c
}
