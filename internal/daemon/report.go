package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"time"

	"github.com/virtbgp/virtbgp/internal/config"
	"github.com/virtbgp/virtbgp/internal/reconcile"
	"github.com/virtbgp/virtbgp/internal/status"
	"github.com/virtbgp/virtbgp/mapping"
)

// buildReport assembles the status report. Runs in the main loop; the
// reconciler's snapshot goes through the reconciler's own loop, so a report
// also proves that both loops are alive.
func (d *Daemon) buildReport(ctx context.Context) (status.Report, error) {
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
		Libvirt:   status.Libvirt{URI: d.cfg.Libvirt.URI, Connected: d.hv.Connected()},
		Mapping: status.Mapping{
			Path:       d.cfg.Mapping.Path,
			Generation: d.generation,
			Digest:     d.contentDigest,
			LoadedAt:   d.loadedAt,
			Files:      snap.Mapping.Sources(),
			VMs:        vms,
			Routes:     routes,
			LastReload: d.lastReload,
		},
		Drain:        status.Drain{State: snap.Drain, Since: d.drain.since},
		ManualRoutes: d.manual.list(),
		Health:       checks,
		Time:         time.Now(),
	}
	carried := map[config.Family]bool{} // by some peer's session
	for _, p := range peers {
		sp := status.Peer{
			Address:    p.Address.String(),
			ASN:        p.ASN,
			State:      string(p.State),
			RoutesSent: int(p.RoutesSent),
			LastDown:   p.LastDownReason,
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
	if d.origins == nil || d.origins.m != snap.Mapping {
		d.origins = newOrigins(snap.Mapping)
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
			sd.Source, sd.Origin = status.SourceFile, d.origins.of(vm)
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
