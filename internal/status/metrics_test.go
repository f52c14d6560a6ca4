package status

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

func staticSource(r Report) Source {
	return func(context.Context) (Report, error) { return r, nil }
}

// histogram returns the sample count and sum of the histogram called name
// in g.
func histogram(t *testing.T, g prometheus.Gatherer, name string) (count uint64, sum float64) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0, 0
}

func TestObserver(t *testing.T) {
	m := NewMetrics()
	m.Reconciled(3*time.Millisecond, 5, true)
	m.Reconciled(7*time.Millisecond, 5, true)
	m.Reconciled(40*time.Millisecond, 4, false)
	// Binary fractions of a second, so that the sum is exact.
	m.EventApplied(1953125 * time.Nanosecond) // 2^-9 s
	m.EventApplied(15625 * time.Microsecond)  // 2^-6 s

	if n, sum := histogram(t, m.Registry(), "virtbgp_reconcile_duration_seconds"); n != 3 || !near(sum, 0.050) {
		t.Errorf("reconcile duration: %d samples, sum %v; want 3, 0.050", n, sum)
	}
	if got := testutil.ToFloat64(m.reconcileErrors); got != 1 {
		t.Errorf("reconcile errors = %v, want 1", got)
	}
	if n, sum := histogram(t, m.Registry(), "virtbgp_event_to_announce_seconds"); n != 2 || sum != 0.017578125 {
		t.Errorf("event to announce: %d samples, sum %v; want 2, 0.017578125", n, sum)
	}
	// The 1.95 ms event lands between the 1 ms and 2.5 ms buckets.
	want := `
# HELP virtbgp_event_to_announce_seconds Time from a libvirt lifecycle event's arrival to the return of the announce or withdraw it caused.
# TYPE virtbgp_event_to_announce_seconds histogram
virtbgp_event_to_announce_seconds_bucket{le="0.0005"} 0
virtbgp_event_to_announce_seconds_bucket{le="0.001"} 0
virtbgp_event_to_announce_seconds_bucket{le="0.0025"} 1
virtbgp_event_to_announce_seconds_bucket{le="0.005"} 1
virtbgp_event_to_announce_seconds_bucket{le="0.01"} 1
virtbgp_event_to_announce_seconds_bucket{le="0.025"} 2
virtbgp_event_to_announce_seconds_bucket{le="0.05"} 2
virtbgp_event_to_announce_seconds_bucket{le="0.1"} 2
virtbgp_event_to_announce_seconds_bucket{le="0.25"} 2
virtbgp_event_to_announce_seconds_bucket{le="0.5"} 2
virtbgp_event_to_announce_seconds_bucket{le="1"} 2
virtbgp_event_to_announce_seconds_bucket{le="2.5"} 2
virtbgp_event_to_announce_seconds_bucket{le="5"} 2
virtbgp_event_to_announce_seconds_bucket{le="+Inf"} 2
virtbgp_event_to_announce_seconds_sum 0.017578125
virtbgp_event_to_announce_seconds_count 2
`
	if err := testutil.CollectAndCompare(m.eventToAnnounce, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.reconcileDuration); n != 1 {
		t.Errorf("reconcile duration series = %d, want 1", n)
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestReloadResult(t *testing.T) {
	m := NewMetrics()
	if n := testutil.CollectAndCount(m.reloads); n != 2 {
		t.Fatalf("reloads_total has %d series before any reload, want ok and error", n)
	}
	t1 := time.Date(2025, 6, 4, 12, 0, 0, 500_000_000, time.UTC)
	m.ReloadResult(true, t1)
	if got := testutil.ToFloat64(m.reloadSuccess); got != 1 {
		t.Errorf("after ok: success = %v, want 1", got)
	}
	t2 := t1.Add(time.Hour)
	m.ReloadResult(false, t2)
	m.ReloadResult(false, t2)
	for name, c := range map[string]struct {
		c    prometheus.Collector
		want float64
	}{
		"success":           {m.reloadSuccess, 0},
		"timestamp":         {m.reloadTimestamp, 1749042000.5},
		"success timestamp": {m.reloadOKTimestamp, 1749038400.5},
		"ok":                {m.reloads.WithLabelValues("ok"), 1},
		"error":             {m.reloads.WithLabelValues("error"), 2},
	} {
		if got := testutil.ToFloat64(c.c); got != c.want {
			t.Errorf("%s = %v, want %v", name, got, c.want)
		}
	}
}

func TestStateMetrics(t *testing.T) {
	m := NewMetrics()
	if n := testutil.CollectAndCount(m.state); n != 0 {
		t.Errorf("without a source: %d state series, want none", n)
	}
	m.setSource(staticSource(sampleReport()), time.Second, slog.New(slog.DiscardHandler))
	want := `
# HELP virtbgp_build_info Always 1; the labels are the running virtbgp's release version, the commit it was built from and the Go release that built it.
# TYPE virtbgp_build_info gauge
virtbgp_build_info{goversion="go1.26.8",revision="0123456789ab",version="1.4.0"} 1
# HELP virtbgp_claims_refused Prefixes that domains on this host claim in their metadata and that are not announced (outside the allowed prefixes, the mapping file's, another domain's), by source.
# TYPE virtbgp_claims_refused gauge
virtbgp_claims_refused{source="metadata"} 0
virtbgp_claims_refused{source="nova"} 0
# HELP virtbgp_domains libvirt domains on this host by state (running, paused, off).
# TYPE virtbgp_domains gauge
virtbgp_domains{state="off"} 2
virtbgp_domains{state="paused"} 2
virtbgp_domains{state="running"} 2
# HELP virtbgp_drain_state The host's drain state: 1 for the current state (none, draining or drained), 0 for the others.
# TYPE virtbgp_drain_state gauge
virtbgp_drain_state{state="drained"} 0
virtbgp_drain_state{state="draining"} 0
virtbgp_drain_state{state="none"} 1
# HELP virtbgp_libvirt_connected 1 if the connection to libvirtd is up, else 0.
# TYPE virtbgp_libvirt_connected gauge
virtbgp_libvirt_connected 1
# HELP virtbgp_mapping_generation Generation of the mapping in force: 1 at start, +1 per reload that changed its content.
# TYPE virtbgp_mapping_generation gauge
virtbgp_mapping_generation 7
# HELP virtbgp_mapping_info Always 1; the digest label is the SHA-256 of the mapping's content (entries, UUID pins, routes with resolved attributes; not the files' layout): equal on hosts that map the same VMs to the same routes.
# TYPE virtbgp_mapping_info gauge
virtbgp_mapping_info{digest="5d41402abc4b2a76b9719d911017c592ae1f3c8e2b0e7d7a6b5c4d3e2f1a0b9c"} 1
# HELP virtbgp_mapping_routes Routes (IPs) named by the mapping in force, on this host or not.
# TYPE virtbgp_mapping_routes gauge
virtbgp_mapping_routes 31
# HELP virtbgp_mapping_vms VMs named by the mapping in force.
# TYPE virtbgp_mapping_vms gauge
virtbgp_mapping_vms 12
# HELP virtbgp_metadata_errors Domains on this host whose metadata element (virtbgp's or Nova's, the source label) has a problem: nothing is announced from it.
# TYPE virtbgp_metadata_errors gauge
virtbgp_metadata_errors{source="metadata"} 0
virtbgp_metadata_errors{source="nova"} 0
# HELP virtbgp_peer_established_timestamp_seconds Unix time the BGP session with the peer was established, 0 while it is not.
# TYPE virtbgp_peer_established_timestamp_seconds gauge
virtbgp_peer_established_timestamp_seconds{peer="198.18.0.1"} 1.748768403e+09
virtbgp_peer_established_timestamp_seconds{peer="198.18.0.5"} 0
virtbgp_peer_established_timestamp_seconds{peer="2001:db8:ff::1"} 1.7490384e+09
# HELP virtbgp_peer_family_routes_sent Routes currently advertised to the peer, by address family (GoBGP's Adj-RIB-Out after the export policy).
# TYPE virtbgp_peer_family_routes_sent gauge
virtbgp_peer_family_routes_sent{family="ipv4",peer="198.18.0.1"} 4
virtbgp_peer_family_routes_sent{family="ipv4",peer="198.18.0.5"} 0
virtbgp_peer_family_routes_sent{family="ipv4",peer="2001:db8:ff::1"} 4
virtbgp_peer_family_routes_sent{family="ipv6",peer="198.18.0.1"} 0
virtbgp_peer_family_routes_sent{family="ipv6",peer="2001:db8:ff::1"} 1
# HELP virtbgp_peer_flaps Times the BGP session with the peer went down from established since virtbgp started.
# TYPE virtbgp_peer_flaps gauge
virtbgp_peer_flaps{peer="198.18.0.1"} 1
virtbgp_peer_flaps{peer="198.18.0.5"} 3
virtbgp_peer_flaps{peer="2001:db8:ff::1"} 0
# HELP virtbgp_peer_routes_sent Routes currently advertised to the peer.
# TYPE virtbgp_peer_routes_sent gauge
virtbgp_peer_routes_sent{peer="198.18.0.1"} 4
virtbgp_peer_routes_sent{peer="198.18.0.5"} 0
virtbgp_peer_routes_sent{peer="2001:db8:ff::1"} 5
# HELP virtbgp_peer_updates_received UPDATE messages received from the peer in the current session (0 while it is not established).
# TYPE virtbgp_peer_updates_received gauge
virtbgp_peer_updates_received{peer="198.18.0.1"} 2
virtbgp_peer_updates_received{peer="198.18.0.5"} 0
virtbgp_peer_updates_received{peer="2001:db8:ff::1"} 1
# HELP virtbgp_peer_updates_sent UPDATE messages sent to the peer in the current session (0 while it is not established).
# TYPE virtbgp_peer_updates_sent gauge
virtbgp_peer_updates_sent{peer="198.18.0.1"} 9
virtbgp_peer_updates_sent{peer="198.18.0.5"} 0
virtbgp_peer_updates_sent{peer="2001:db8:ff::1"} 7
# HELP virtbgp_peer_up 1 if the BGP session with the peer is established, else 0.
# TYPE virtbgp_peer_up gauge
virtbgp_peer_up{asn="65000",peer="198.18.0.1"} 1
virtbgp_peer_up{asn="65000",peer="2001:db8:ff::1"} 1
virtbgp_peer_up{asn="65010",peer="198.18.0.5"} 0
# HELP virtbgp_ready 1 once the first full sync from libvirt was applied, else 0.
# TYPE virtbgp_ready gauge
virtbgp_ready 1
# HELP virtbgp_routes_announced Routes announced by this host, by address family; sum() for the total.
# TYPE virtbgp_routes_announced gauge
virtbgp_routes_announced{family="ipv4"} 4
virtbgp_routes_announced{family="ipv6"} 1
# HELP virtbgp_routes_not_carried Routes announced by this host that no peer is sent (no session carries their family, or none has a next hop of it), by address family.
# TYPE virtbgp_routes_not_carried gauge
virtbgp_routes_not_carried{family="ipv4"} 0
virtbgp_routes_not_carried{family="ipv6"} 0
# HELP virtbgp_status_source_up 1 if the daemon's state could be read for this scrape (its main loop answered in time), else 0 and the state series are absent.
# TYPE virtbgp_status_source_up gauge
virtbgp_status_source_up 1
# HELP virtbgp_unmapped_arrival_domains Domains on this host that arrived by live migration and that the mapping in force does not name: nothing is announced for them.
# TYPE virtbgp_unmapped_arrival_domains gauge
virtbgp_unmapped_arrival_domains 1
`
	if err := testutil.CollectAndCompare(m.state, strings.NewReader(want)); err != nil {
		t.Error(err)
	}

	// A draining host with a peer listed twice: one series per peer.
	r := freshReport()
	r.Peers = []Peer{{Address: "198.18.0.1", ASN: 65000, State: "idle"}, {Address: "198.18.0.1", ASN: 65000, State: "idle"}}
	m.setSource(staticSource(r), time.Second, slog.New(slog.DiscardHandler))
	if err := testutil.CollectAndCompare(m.state, strings.NewReader(`
# HELP virtbgp_drain_state The host's drain state: 1 for the current state (none, draining or drained), 0 for the others.
# TYPE virtbgp_drain_state gauge
virtbgp_drain_state{state="drained"} 0
virtbgp_drain_state{state="draining"} 1
virtbgp_drain_state{state="none"} 0
# HELP virtbgp_peer_up 1 if the BGP session with the peer is established, else 0.
# TYPE virtbgp_peer_up gauge
virtbgp_peer_up{asn="65000",peer="198.18.0.1"} 0
# HELP virtbgp_ready 1 once the first full sync from libvirt was applied, else 0.
# TYPE virtbgp_ready gauge
virtbgp_ready 0
# HELP virtbgp_unmapped_arrival_domains Domains on this host that arrived by live migration and that the mapping in force does not name: nothing is announced for them.
# TYPE virtbgp_unmapped_arrival_domains gauge
virtbgp_unmapped_arrival_domains 0
`), "virtbgp_drain_state", "virtbgp_peer_up", "virtbgp_ready", "virtbgp_unmapped_arrival_domains", "virtbgp_mapping_info"); err != nil {
		t.Error(err) // freshReport has no digest: no virtbgp_mapping_info
	}
}

// TestUnmappedArrivalMetrics: virtbgp_unmapped_arrivals_total counts what
// the reconciler reports (each arrival once), from 0; the gauge
// virtbgp_unmapped_arrival_domains is the number of domains the Report
// flags now; virtbgp_mapping_info carries the Report's digest.
func TestUnmappedArrivalMetrics(t *testing.T) {
	m := NewMetrics()
	r := sampleReport()
	r.Domains = append(r.Domains, Domain{Name: "lost-10", UUID: "dd3b4a6f-5555-4e6f-8a71-829304152637", State: "paused",
		Reason: "migration", Migration: "incoming", MigratedIn: true, Problem: ProblemUnmappedArrival})
	r.Mapping.Digest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	m.setSource(staticSource(r), time.Second, slog.New(slog.DiscardHandler))
	const counterHead = `
# HELP virtbgp_unmapped_arrivals_total Domains that arrived on this host by live migration and that the mapping in force did not name (nothing announced for them), each arrival counted once.
# TYPE virtbgp_unmapped_arrivals_total counter
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(counterHead+"virtbgp_unmapped_arrivals_total 0\n"),
		"virtbgp_unmapped_arrivals_total"); err != nil {
		t.Errorf("before any arrival: %v", err)
	}
	m.UnmappedArrival()
	m.UnmappedArrival()
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(counterHead+`virtbgp_unmapped_arrivals_total 2
# HELP virtbgp_unmapped_arrival_domains Domains on this host that arrived by live migration and that the mapping in force does not name: nothing is announced for them.
# TYPE virtbgp_unmapped_arrival_domains gauge
virtbgp_unmapped_arrival_domains 2
# HELP virtbgp_mapping_info Always 1; the digest label is the SHA-256 of the mapping's content (entries, UUID pins, routes with resolved attributes; not the files' layout): equal on hosts that map the same VMs to the same routes.
# TYPE virtbgp_mapping_info gauge
virtbgp_mapping_info{digest="0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"} 1
`), "virtbgp_unmapped_arrivals_total", "virtbgp_unmapped_arrival_domains", "virtbgp_mapping_info"); err != nil {
		t.Error(err)
	}
}

// A Source that fails or hangs costs the state series, not the scrape.
func TestStateMetricsSourceDown(t *testing.T) {
	for name, src := range map[string]Source{
		"error": func(context.Context) (Report, error) { return Report{}, errors.New("main loop stopped") },
		"hang": func(ctx context.Context) (Report, error) {
			<-ctx.Done()
			return Report{}, ctx.Err()
		},
	} {
		t.Run(name, func(t *testing.T) {
			m := NewMetrics()
			m.setSource(src, 50*time.Millisecond, slog.New(slog.DiscardHandler))
			m.Reconciled(time.Millisecond, 0, true)
			if err := testutil.CollectAndCompare(m.state, strings.NewReader(`
# HELP virtbgp_status_source_up 1 if the daemon's state could be read for this scrape (its main loop answered in time), else 0 and the state series are absent.
# TYPE virtbgp_status_source_up gauge
virtbgp_status_source_up 0
`)); err != nil {
				t.Error(err)
			}
			if n, _ := histogram(t, m.Registry(), "virtbgp_reconcile_duration_seconds"); n != 1 {
				t.Errorf("reconcile histogram lost: %d samples", n)
			}
		})
	}
}

// Every series, ours and the Go/process collectors', passes promlint.
func TestPromlint(t *testing.T) {
	m := NewMetrics()
	m.setSource(staticSource(sampleReport()), time.Second, slog.New(slog.DiscardHandler))
	m.Reconciled(time.Millisecond, 5, false)
	m.EventApplied(time.Millisecond)
	m.ReloadResult(true, time.Now())
	m.ReloadResult(false, time.Now())

	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}

	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, want := range []string{
		"virtbgp_reconcile_duration_seconds", "virtbgp_reconcile_errors_total", "virtbgp_event_to_announce_seconds",
		"virtbgp_mapping_reload_success", "virtbgp_mapping_reload_timestamp_seconds",
		"virtbgp_mapping_reload_success_timestamp_seconds", "virtbgp_mapping_reloads_total",
		"virtbgp_status_source_up", "virtbgp_build_info", "virtbgp_ready", "virtbgp_libvirt_connected",
		"virtbgp_drain_state", "virtbgp_peer_up", "virtbgp_peer_established_timestamp_seconds",
		"virtbgp_peer_routes_sent", "virtbgp_routes_announced", "virtbgp_domains",
		"virtbgp_mapping_generation", "virtbgp_mapping_vms", "virtbgp_mapping_routes",
		"virtbgp_mapping_info", "virtbgp_unmapped_arrivals_total", "virtbgp_unmapped_arrival_domains",
		"go_goroutines", "process_start_time_seconds",
	} {
		if !names[want] {
			t.Errorf("metric %s missing", want)
		}
	}
}

// The Observer is called from the reconciler while scrapes run.
func TestMetricsConcurrent(t *testing.T) {
	m := NewMetrics()
	m.setSource(staticSource(sampleReport()), time.Second, slog.New(slog.DiscardHandler))
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range 200 {
				m.Reconciled(time.Duration(i)*time.Microsecond, i, i%7 != 0)
				m.EventApplied(time.Duration(i) * time.Microsecond)
				m.ReloadResult(i%2 == 0, time.Now())
			}
		})
		wg.Go(func() {
			for range 20 {
				if _, err := m.Registry().Gather(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n, _ := histogram(t, m.Registry(), "virtbgp_event_to_announce_seconds"); n != 800 {
		t.Errorf("event histogram: %d samples, want 800", n)
	}
}
