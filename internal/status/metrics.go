package status

import (
	"context"
	"log/slog"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/virtbgp/virtbgp/internal/reconcile"
)

// namespace prefixes every virtbgp metric name.
const namespace = "virtbgp"

// Metrics is virtbgp's Prometheus instrumentation. It owns its registry (not
// the global one), which also holds the Go runtime and process collectors,
// and is served at /metrics by a Server.
//
// Three kinds of series live in it:
//
//   - what the reconciler reports as it works, through the reconcile.Observer
//     methods Reconciled, EventApplied and UnmappedArrival (pass duration,
//     failed passes, event-to-announce latency, unmapped arrivals);
//   - what the daemon reports about mapping reloads, through ReloadResult;
//   - the daemon's state (peers, routes, domains, mapping, drain, libvirt,
//     readiness), read from the Server's Source at scrape time, so that it
//     always agrees with /status. virtbgp_status_source_up says whether that
//     read succeeded; when it did not, the state series are left out of the
//     scrape rather than reported stale.
//
// The methods are safe for concurrent use and do not block.
type Metrics struct {
	reg *prometheus.Registry

	reconcileDuration prometheus.Histogram
	reconcileErrors   prometheus.Counter
	eventToAnnounce   prometheus.Histogram
	unmappedArrivals  prometheus.Counter

	reloadSuccess     prometheus.Gauge
	reloadTimestamp   prometheus.Gauge
	reloadOKTimestamp prometheus.Gauge
	reloads           *prometheus.CounterVec
	reloadHeld        prometheus.Gauge
	watchOK           prometheus.Gauge
	manualRoutes      prometheus.Gauge
	manualExpired     prometheus.Counter
	maintEntries      prometheus.Gauge
	maintChanges      *prometheus.CounterVec

	state *stateCollector
}

// Reload results, the values of the result label of
// virtbgp_mapping_reloads_total.
const (
	reloadOK    = "ok"
	reloadError = "error"
)

// NewMetrics builds the metrics with a fresh registry holding every virtbgp
// series and the Go runtime and process collectors. The state series stay
// empty until a Server gives the Metrics its Source.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		reconcileDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "reconcile_duration_seconds",
			Help:      "Time one reconcile pass took: read the domains, compute the desired routes, apply the difference.",
			Buckets:   []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		reconcileErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "reconcile_errors_total",
			Help:      "Reconcile passes that did not converge (libvirt could not be read or the speaker refused a change); the next pass retries.",
		}),
		eventToAnnounce: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "event_to_announce_seconds",
			Help:      "Time from a libvirt lifecycle event's arrival to the return of the announce or withdraw it caused.",
			Buckets:   []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		unmappedArrivals: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "unmapped_arrivals_total",
			Help:      "Domains that arrived on this host by live migration and that the mapping in force did not name (nothing announced for them), each arrival counted once.",
		}),
		reloadSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "mapping_reload_success",
			Help:      "1 if the last mapping load or reload succeeded, 0 if it was rejected and the previous mapping stays in force.",
		}),
		reloadTimestamp: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "mapping_reload_timestamp_seconds",
			Help:      "Unix time of the last mapping load or reload attempt, successful or not.",
		}),
		reloadOKTimestamp: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "mapping_reload_success_timestamp_seconds",
			Help:      "Unix time of the last successful mapping load or reload.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "mapping_reloads_total",
			Help:      "Mapping loads and reloads by result (ok, or error when the new mapping was rejected).",
		}, []string{"result"}),
		reloadHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "mapping_reload_held_withdrawals",
			Help:      "Routes a held mapping reload would withdraw (0: none held). A reload that withdraws more than mapping.max-withdraw-percent of the announced routes waits for `virtbgp reload --force` or for mapping.withdraw-confirm-after.",
		}),
		watchOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "mapping_watch_ok",
			Help:      "1 if inotify watches every directory the mapping path goes through, 0 if a watch is lost and the mapping is polled instead (or mapping.watch is off).",
		}),
		manualRoutes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "manual_routes",
			Help:      "Manual routes of the API in force (announced unless the mapping file or the allowed prefixes refuse them now).",
		}),
		manualExpired: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "manual_routes_expired_total",
			Help:      "Manual routes withdrawn because their lease (TTL) ended without a renewal.",
		}),
		maintEntries: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "maintenance_entries",
			Help:      "Maintenance entries of the API in force: domains, or single routes of a domain, that an operator took out of service (`virtbgp maintenance on`).",
		}),
		maintChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "maintenance_changes_total",
			Help:      "Maintenance entries set (on, including a new note or TTL), ended by an operator (off), or ended by their TTL (expired).",
		}, []string{"action"}),
		state: newStateCollector(),
	}
	for _, a := range []string{MaintenanceOn, MaintenanceOff, MaintenanceExpired} {
		m.maintChanges.WithLabelValues(a)
	}
	// Both results exist from the start, so that rate() and increase() see
	// the first error.
	m.reloads.WithLabelValues(reloadOK)
	m.reloads.WithLabelValues(reloadError)

	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.reconcileDuration,
		m.reconcileErrors,
		m.eventToAnnounce,
		m.unmappedArrivals,
		m.reloadSuccess,
		m.reloadTimestamp,
		m.reloadOKTimestamp,
		m.reloads,
		m.reloadHeld,
		m.watchOK,
		m.manualRoutes,
		m.manualExpired,
		m.maintEntries,
		m.maintChanges,
		m.state,
	)
	return m
}

// ManualRoutes records the count of manual routes in force after a
// change, and how many leases the change ended.
func (m *Metrics) ManualRoutes(n, expired int) {
	m.manualRoutes.Set(float64(n))
	m.manualExpired.Add(float64(expired))
}

// The actions of virtbgp_maintenance_changes_total.
const (
	MaintenanceOn      = "on"
	MaintenanceOff     = "off"
	MaintenanceExpired = "expired"
)

// Maintenance records the count of maintenance entries in force after a
// change, and the change: action (MaintenanceOn, MaintenanceOff,
// MaintenanceExpired) for changed entries.
func (m *Metrics) Maintenance(n int, action string, changed int) {
	m.maintEntries.Set(float64(n))
	if changed > 0 {
		m.maintChanges.WithLabelValues(action).Add(float64(changed))
	}
}

// Registry is the registry holding every series, for serving it elsewhere
// or registering more collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Reconciled implements reconcile.Observer: it records the pass's duration
// and counts it as an error unless it converged. The number of routes
// announced is not taken from here: virtbgp_routes_announced is read from
// the Source at scrape time, like the rest of the state.
func (m *Metrics) Reconciled(took time.Duration, _ int, ok bool) {
	m.reconcileDuration.Observe(took.Seconds())
	if !ok {
		m.reconcileErrors.Inc()
	}
}

// EventApplied implements reconcile.Observer: it records the time from a
// libvirt event's arrival to the announce or withdraw it caused.
func (m *Metrics) EventApplied(latency time.Duration) {
	m.eventToAnnounce.Observe(latency.Seconds())
}

// UnmappedArrival implements reconcile.Observer: it counts a domain that
// arrived by live migration without an entry in the mapping in force.
func (m *Metrics) UnmappedArrival() {
	m.unmappedArrivals.Inc()
}

// ReloadResult records a mapping load or reload attempt made at at: ok is
// false when the new mapping was rejected. Call it for the initial load too,
// so that virtbgp_mapping_reload_success starts at 1.
func (m *Metrics) ReloadResult(ok bool, at time.Time) {
	ts := float64(at.UnixNano()) / 1e9
	m.reloadTimestamp.Set(ts)
	if ok {
		m.reloadSuccess.Set(1)
		m.reloadOKTimestamp.Set(ts)
		m.reloads.WithLabelValues(reloadOK).Inc()
		return
	}
	m.reloadSuccess.Set(0)
	m.reloads.WithLabelValues(reloadError).Inc()
}

// ReloadHeld records that a mapping reload that would withdraw n routes is
// held for confirmation (n = 0: none is).
func (m *Metrics) ReloadHeld(n int) { m.reloadHeld.Set(float64(n)) }

// WatchOK records whether the mapping watcher watches everything it should
// (false: it polls).
func (m *Metrics) WatchOK(ok bool) {
	if ok {
		m.watchOK.Set(1)
	} else {
		m.watchOK.Set(0)
	}
}

// setSource makes the state series read from src, with at most timeout per
// scrape; log gets the failures.
func (m *Metrics) setSource(src Source, timeout time.Duration, log *slog.Logger) {
	m.state.set(src, timeout, log)
}

// stateCollector is the prometheus.Collector of the series read from the
// Source at scrape time.
type stateCollector struct {
	mu      sync.Mutex
	src     Source
	timeout time.Duration
	log     *slog.Logger

	sourceUp       *prometheus.Desc
	buildInfo      *prometheus.Desc
	ready          *prometheus.Desc
	libvirt        *prometheus.Desc
	drainState     *prometheus.Desc
	peerUp         *prometheus.Desc
	peerSince      *prometheus.Desc
	peerRoutesSent *prometheus.Desc
	peerRoutesRecv *prometheus.Desc
	peerFamSent    *prometheus.Desc
	peerUpdSent    *prometheus.Desc
	peerUpdRecv    *prometheus.Desc
	peerFlaps      *prometheus.Desc
	notCarried     *prometheus.Desc
	routes         *prometheus.Desc
	domains        *prometheus.Desc
	mappingGen     *prometheus.Desc
	mappingInfo    *prometheus.Desc
	mappingVMs     *prometheus.Desc
	mappingRoutes  *prometheus.Desc
	unmappedNow    *prometheus.Desc
	metaErrors     *prometheus.Desc
	claimsRefused  *prometheus.Desc
}

func newStateCollector() *stateCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
	}
	return &stateCollector{
		sourceUp:       d("status_source_up", "1 if the daemon's state could be read for this scrape (its main loop answered in time), else 0 and the state series are absent."),
		buildInfo:      d("build_info", "Always 1; the labels are the running virtbgp's release version, the commit it was built from and the Go release that built it.", "version", "revision", "goversion"),
		ready:          d("ready", "1 once the first full sync from libvirt was applied, else 0."),
		libvirt:        d("libvirt_connected", "1 if the connection to libvirtd is up, else 0."),
		drainState:     d("drain_state", "The host's drain state: 1 for the current state (none, draining or drained), 0 for the others.", "state"),
		peerUp:         d("peer_up", "1 if the BGP session with the peer is established, else 0.", "peer", "asn"),
		peerSince:      d("peer_established_timestamp_seconds", "Unix time the BGP session with the peer was established, 0 while it is not.", "peer"),
		peerRoutesSent: d("peer_routes_sent", "Routes currently advertised to the peer.", "peer"),
		peerRoutesRecv: d("peer_routes_received", "Routes the peer sent, not imported but kept in memory (receive-limit).", "peer"),
		peerFamSent:    d("peer_family_routes_sent", "Routes currently advertised to the peer, by address family (GoBGP's Adj-RIB-Out after the export policy).", "peer", "family"),
		peerUpdSent:    d("peer_updates_sent", "UPDATE messages sent to the peer in the current session (0 while it is not established).", "peer"),
		peerUpdRecv:    d("peer_updates_received", "UPDATE messages received from the peer in the current session (0 while it is not established).", "peer"),
		peerFlaps:      d("peer_flaps", "Times the BGP session with the peer went down from established since virtbgp started.", "peer"),
		notCarried:     d("routes_not_carried", "Routes announced by this host that no peer is sent (no session carries their family, or none has a next hop of it), by address family.", "family"),
		routes:         d("routes_announced", "Routes announced by this host, by address family; sum() for the total.", "family"),
		domains:        d("domains", "libvirt domains on this host by state (running, paused, off).", "state"),
		mappingGen:     d("mapping_generation", "Generation of the mapping in force: 1 at start, +1 per reload that changed its content."),
		mappingInfo:    d("mapping_info", "Always 1; the digest label is the SHA-256 of the mapping's content (entries, UUID pins, routes with resolved attributes; not the files' layout): equal on hosts that map the same VMs to the same routes.", "digest"),
		mappingVMs:     d("mapping_vms", "VMs named by the mapping in force."),
		mappingRoutes:  d("mapping_routes", "Routes (IPs) named by the mapping in force, on this host or not."),
		unmappedNow:    d("unmapped_arrival_domains", "Domains on this host that arrived by live migration and that the mapping in force does not name: nothing is announced for them."),
		metaErrors:     d("metadata_errors", "Domains on this host whose metadata element (virtbgp's or Nova's, the source label) has a problem: nothing is announced from it.", "source"),
		claimsRefused:  d("claims_refused", "Prefixes that domains on this host claim in their metadata and that are not announced (outside the allowed prefixes, the mapping file's, another domain's), by source.", "source"),
	}
}

func (c *stateCollector) set(src Source, timeout time.Duration, log *slog.Logger) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.src, c.timeout, c.log = src, timeout, log
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.sourceUp, c.buildInfo, c.ready, c.libvirt, c.drainState,
		c.peerUp, c.peerSince, c.peerRoutesSent, c.peerRoutesRecv, c.peerFamSent, c.peerUpdSent, c.peerUpdRecv, c.peerFlaps, c.notCarried, c.routes, c.domains,
		c.mappingGen, c.mappingInfo, c.mappingVMs, c.mappingRoutes, c.unmappedNow,
		c.metaErrors, c.claimsRefused,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: it reads a Report from the
// Source and turns it into gauges.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	src, timeout, log := c.src, c.timeout, c.log
	c.mu.Unlock()
	if src == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	r, err := callSource(ctx, src)
	if err != nil {
		log.Warn("metrics without the daemon's state", "error", err)
		ch <- gauge(c.sourceUp, 0)
		return
	}
	ch <- gauge(c.sourceUp, 1)
	ch <- gauge(c.buildInfo, 1, r.Version, r.Revision, r.GoVersion)
	ch <- gauge(c.ready, b2f(r.Ready))
	ch <- gauge(c.libvirt, b2f(r.Libvirt.Connected))

	for _, s := range []reconcile.Drain{reconcile.DrainNone, reconcile.DrainDraining, reconcile.DrainDrained} {
		ch <- gauge(c.drainState, b2f(s == r.Drain.State), s.String())
	}

	seen := make(map[string]bool, len(r.Peers))
	for _, p := range r.Peers {
		if seen[p.Label()] {
			continue // one series per peer, even if a Report repeats one
		}
		seen[p.Label()] = true
		up := p.State == "established"
		since := 0.0
		if up && !p.Since.IsZero() {
			since = float64(p.Since.UnixNano()) / 1e9
		}
		ch <- gauge(c.peerUp, b2f(up), p.Label(), strconv.FormatUint(uint64(p.ASN), 10))
		ch <- gauge(c.peerSince, since, p.Label())
		ch <- gauge(c.peerRoutesSent, float64(p.RoutesSent), p.Label())
		ch <- gauge(c.peerRoutesRecv, float64(p.RoutesReceived), p.Label())
		for _, f := range p.Families {
			ch <- gauge(c.peerFamSent, float64(p.RoutesSentByFamily[f]), p.Label(), f)
		}
		ch <- gauge(c.peerUpdSent, float64(p.UpdatesSent), p.Label())
		ch <- gauge(c.peerUpdRecv, float64(p.UpdatesReceived), p.Label())
		ch <- gauge(c.peerFlaps, float64(p.Flaps), p.Label())
	}

	byFamily := map[string]int{"ipv4": 0, "ipv6": 0}
	notCarried := map[string]int{"ipv4": 0, "ipv6": 0}
	for _, rt := range r.Routes {
		byFamily[family(rt.Prefix)]++
		if rt.NotCarried != "" {
			notCarried[family(rt.Prefix)]++
		}
	}
	for f, n := range byFamily {
		ch <- gauge(c.routes, float64(n), f)
		ch <- gauge(c.notCarried, float64(notCarried[f]), f)
	}

	byState := map[string]int{"running": 0, "paused": 0, "off": 0}
	unmapped := 0
	metaErrs := map[string]int{SourceMetadata: 0, SourceNova: 0}
	refused := map[string]int{SourceMetadata: 0, SourceNova: 0}
	for _, d := range r.Domains {
		if d.MetadataError != "" {
			metaErrs[d.Source]++
		}
		if d.Source != SourceFile {
			refused[d.Source] += len(d.Refused)
		}
		s := d.State
		if s == "" {
			s = "unknown"
		}
		byState[s]++
		if d.Problem == ProblemUnmappedArrival {
			unmapped++
		}
	}
	for s, n := range byState {
		ch <- gauge(c.domains, float64(n), s)
	}
	ch <- gauge(c.unmappedNow, float64(unmapped))
	for _, src := range []string{SourceMetadata, SourceNova} {
		ch <- gauge(c.metaErrors, float64(metaErrs[src]), src)
		ch <- gauge(c.claimsRefused, float64(refused[src]), src)
	}

	ch <- gauge(c.mappingGen, float64(r.Mapping.Generation))
	if r.Mapping.Digest != "" {
		ch <- gauge(c.mappingInfo, 1, r.Mapping.Digest)
	}
	ch <- gauge(c.mappingVMs, float64(r.Mapping.VMs))
	ch <- gauge(c.mappingRoutes, float64(r.Mapping.Routes))
}

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// family is "ipv4" or "ipv6" for a prefix or address, "unknown" if it is
// neither.
func family(prefix string) string {
	var a netip.Addr
	if p, err := netip.ParsePrefix(prefix); err == nil {
		a = p.Addr()
	} else if a, err = netip.ParseAddr(prefix); err != nil {
		return "unknown"
	}
	if a.Is4() {
		return "ipv4"
	}
	return "ipv6"
}
